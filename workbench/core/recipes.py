"""The recipe registry: every way the workbench can convert a model, declared once as data.

A ``RecipeSpec`` says what a recipe is (converter path, the dtypes it should
produce, whether it needs representative data or a QAT model), which
parameters it takes (every other parameter is refused with a clear error), what
it learns or ignores, which trained model the demo feeds it, and the adapter
that calls the converter. A ``Recipe`` is one use of a spec with its parameter
values. ``convert``, the demo table, the command line and the widgets list
recipes from here, so a new recipe is one ``register(RecipeSpec(...))`` call.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from . import converters, checks, diagnose
from .aeq import GRANULARITIES
from .stats import InputStats

IO_TYPES = ("float32", "int8", "uint8")
# The Recipe fields a spec may take; each has a default that "not given" means.
PARAMETERS = ("calibration_size", "io_type", "mean", "std", "default_ranges", "keep_float", "granularity")


@dataclass(frozen=True)
class RecipeSpec:
    """One recipe, as data.

    Args:
        name: the recipe's name (``convert(model, name)``).
        summary: one line for tables and ``--help``.
        converter: which converter path: ``"v2"`` (``tf.lite.TFLiteConverter``),
            ``"v1-legacy"`` (``tf.compat.v1`` with ``inference_type=uint8``) or
            ``"aeq"`` (ai-edge-quantizer on the float ``.tflite``).
        adapter: ``adapter(job: converters.Job) -> bytes`` calls the converter.
        weights, activations: the dtypes the recipe should produce; integer
            activations that come out float are reported (``came_out_float``).
        params: the ``Recipe`` fields it takes (see ``PARAMETERS``).
        io_types: the ``io_type`` values it allows.
        calibrated: needs a representative set (``convert(..., representative=)``).
        needs_qat: needs a model trained with quantization-aware training.
        options: adapter settings (e.g. the v2 converter's supported types).
        learns, ignores: what the recipe takes from the model or data, and what
            it silently ignores (shown in tables and explanations).
        demo: the demo's rows: ``(trained model, parameter values)`` pairs, where
            the model is ``"float"``, ``"qat-int8"`` or ``"qat-uint8-legacy"``.
        is_reference: the recipe every other one is compared with (the float model as
            converted, nothing quantized); exactly one registered recipe is.
        stats_patchable: the uint8 input's ``mean``/``std`` sit in the converted model as the
            input's scale and zero point only, so a model converted once can be patched for
            other stats instead of converted again (``stats_patch``).
        min_weight_elements: the converter leaves weight tensors with fewer elements than
            this in float; when every weight is that small the model is the float model
            again and ``unquantized_note`` says so (0: the recipe quantizes every weight).
        came_out_float_note, unquantized_note: the recipe's own outcome sentences, as
            ``str.format`` templates of ``recipe``, ``float_activations``, ``activations``
            (came out float) and ``min_elements``, ``largest_weight`` (weights unquantized);
            empty: the general sentence (``came_out_float_sentence``, ``unquantized_sentence``).
    """

    name: str
    summary: str
    converter: str
    adapter: Callable[[converters.Job], bytes] = field(repr=False, compare=False)
    weights: str
    activations: str
    params: tuple[str, ...] = ()
    io_types: tuple[str, ...] = ("float32",)
    calibrated: bool = False
    needs_qat: bool = False
    options: Mapping[str, Any] = field(default_factory=dict)
    learns: str = ""
    ignores: str = ""
    demo: tuple[tuple[str, Mapping[str, Any]], ...] = ()
    is_reference: bool = False
    stats_patchable: bool = False
    min_weight_elements: int = 0
    came_out_float_note: str = ""
    unquantized_note: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name or " " in self.name:
            raise ValueError(f"name={self.name!r}; allowed: a non-empty recipe name without spaces")
        unknown = set(self.params) - set(PARAMETERS)
        if unknown:
            raise ValueError(f"params={self.params!r} names {sorted(unknown)}; allowed: {', '.join(PARAMETERS)}")
        for value in self.io_types:
            checks.choice("io_types", value, IO_TYPES)
        if len(self.io_types) > 1 and "io_type" not in self.params:
            raise ValueError(f"io_types={self.io_types!r} without 'io_type' in params; allowed: list io_type")
        if not callable(self.adapter):
            raise ValueError(f"adapter={self.adapter!r}; allowed: a function taking a converters.Job")

    @property
    def integer_activations(self) -> bool:
        return self.activations in ("int8", "uint8", "int16")

    def takes(self, parameter: str) -> bool:
        return parameter in self.params

    def came_out_float_sentence(self, float_activations: int, activations: int) -> str:
        """The outcome sentence when integer activations were asked for and none came out."""
        template = self.came_out_float_note or (CAME_OUT_FLOAT_QAT if self.needs_qat else CAME_OUT_FLOAT)
        return template.format(recipe=self.name, float_activations=float_activations, activations=activations)

    def unquantized_sentence(self, largest_weight: int) -> str:
        """The outcome sentence when no weight tensor reached ``min_weight_elements``."""
        return (self.unquantized_note or UNQUANTIZED).format(recipe=self.name, min_elements=self.min_weight_elements,
                                                             largest_weight=largest_weight)


CAME_OUT_FLOAT = "came out float: the {recipe!r} model has no integer activations."
CAME_OUT_FLOAT_QAT = ("came out float: the {recipe!r} model has no integer activations ({float_activations} of "
                      "{activations} are float32); was the model trained with QAT?")
UNQUANTIZED = ("{recipe} changed nothing: the converter quantizes only weight tensors of at least {min_elements} "
               "elements and this model's largest has {largest_weight}, so every weight stayed float32 and the "
               "model is the float model.")


_REGISTRY: dict[str, RecipeSpec] = {}


def register(spec: RecipeSpec, replace: bool = False) -> RecipeSpec:
    """Add ``spec`` to the registry (``replace=True`` to redefine a name)."""
    if not isinstance(spec, RecipeSpec):
        raise ValueError(f"spec={spec!r}; allowed: a RecipeSpec")
    if spec.name in _REGISTRY and not replace:
        raise ValueError(f"recipe {spec.name!r} is already registered; allowed: a new name, or replace=True")
    other = next((s.name for s in _REGISTRY.values() if s.is_reference and s.name != spec.name), None)
    if spec.is_reference and other is not None:
        raise ValueError(f"recipe {spec.name!r} with is_reference=True while {other!r} is the reference; allowed: "
                         "one reference recipe")
    _REGISTRY[spec.name] = spec
    return spec


register_recipe = register


def unregister(name: str) -> None:
    """Remove a recipe (no error if it is not registered)."""
    _REGISTRY.pop(name, None)


def names(taking: str | None = None) -> tuple[str, ...]:
    """Registered recipe names, in registration order (optionally only those taking a parameter)."""
    return tuple(n for n, s in _REGISTRY.items() if taking is None or s.takes(taking))


def get(name: str) -> RecipeSpec:
    """The spec of a registered recipe (``ValueError`` naming the allowed ones otherwise)."""
    checks.choice("recipe", name, names())
    return _REGISTRY[name]


def specs() -> tuple[RecipeSpec, ...]:
    return tuple(_REGISTRY.values())


def reference() -> RecipeSpec:
    """The reference recipe (``is_reference``): the row every other recipe is compared with."""
    found = [s for s in _REGISTRY.values() if s.is_reference]
    if len(found) != 1:
        raise ValueError(f"{len(found)} registered recipes are the reference ({[s.name for s in found]}); "
                         "allowed: exactly one RecipeSpec with is_reference=True")
    return found[0]


def full_integer() -> RecipeSpec | None:
    """The calibrated full-integer recipe of the TF2 converter that can keep layers in float (``int8-ptq``): the one a
    losing row's fix converts to (``verdicts``); ``None`` when none is registered."""
    return next((s for s in _REGISTRY.values() if s.converter == "v2" and s.calibrated and s.activations == "int8"
                 and s.takes("keep_float")), None)


def is_reference(name: str) -> bool:
    """Whether ``name`` is the reference recipe (a name that is not registered is not)."""
    spec = _REGISTRY.get(name)
    return spec is not None and spec.is_reference


@dataclass(frozen=True)
class Recipe:
    """One conversion and its parameters; a parameter its spec does not take is an error.

    Args:
        name: a registered recipe (``names()``).
        calibration_size: representative images used by calibrated recipes.
        io_type: input/output dtype where the spec allows several
            (``float32`` keeps float I/O with quantize/dequantize ops).
        mean, std: ``quantized_input_stats`` for ``legacy-uint8``; ``None`` uses
            the correct stats for the ``InputSpec``.
        default_ranges: ``default_ranges_stats`` (min, max) for ``legacy-uint8``.
        keep_float: Keras layer names to leave in float in an ``int8-ptq`` model
            (selective quantization, through the QuantizationDebugger's denylist);
            needs ``io_type="float32"``.
        granularity: weight quantization granularity for AEQ's int4 weights.
    """

    name: str = "float32"
    calibration_size: int = 500
    io_type: str = "float32"
    mean: float | None = None
    std: float | None = None
    default_ranges: tuple[float, float] | None = None
    keep_float: tuple[str, ...] = ()
    granularity: str = "channel"

    def __post_init__(self) -> None:
        spec = get(self.name)
        defaults = {f.name: f.default for f in dataclasses.fields(Recipe)}
        for parameter in PARAMETERS:
            if not spec.takes(parameter) and getattr(self, parameter) != defaults[parameter]:
                takes = ", ".join(spec.params) or "no parameters"
                raise ValueError(f"{parameter}={getattr(self, parameter)!r} is not a parameter of recipe "
                                 f"{self.name!r}; allowed for it: {takes}")
        checks.number("calibration_size", self.calibration_size, low=1, integer=True)
        checks.choice("io_type", self.io_type, spec.io_types)
        checks.choice("granularity", self.granularity, GRANULARITIES)
        if (self.mean is None) != (self.std is None):
            raise ValueError(f"mean={self.mean!r}, std={self.std!r}: give both or neither")
        if self.mean is not None:
            InputStats(self.mean, self.std)  # validates mean in [0, 255], std > 0
        if self.default_ranges is not None:
            object.__setattr__(self, "default_ranges", checks.range_pair("default_ranges", self.default_ranges))
        if isinstance(self.keep_float, str) or not all(isinstance(n, str) and n for n in self.keep_float):
            raise ValueError(f"keep_float={self.keep_float!r}; allowed: a tuple of Keras layer names")
        object.__setattr__(self, "keep_float", tuple(self.keep_float))
        if self.keep_float and self.io_type != "float32":
            raise ValueError(f"keep_float={self.keep_float!r} with io_type {self.io_type!r}; "
                             "allowed: only with io_type 'float32'")

    @property
    def spec(self) -> RecipeSpec:
        return get(self.name)

    def label(self) -> str:
        """A short human-readable name with the parameters that matter."""
        spec, extra = self.spec, []
        if spec.calibrated:
            extra.append(f"n={self.calibration_size}")
        if spec.takes("io_type") and self.io_type != "float32":
            extra.append(f"io={self.io_type}")
        if self.keep_float:
            extra.append("float=" + ",".join(self.keep_float))
        if self.mean is not None:
            extra.append(f"mean={self.mean:g},std={self.std:g}")
        if self.default_ranges is not None:
            extra.append(f"ranges=({self.default_ranges[0]:g},{self.default_ranges[1]:g})")
        if spec.takes("granularity"):
            extra.append(self.granularity)
        return self.name + (f" [{'; '.join(extra)}]" if extra else "")


def recipe(name: str | Recipe, **params: Any) -> Recipe:
    """A ``Recipe`` from a name or another ``Recipe`` with ``params`` overriding its fields."""
    if isinstance(name, Recipe):
        return dataclasses.replace(name, **params) if params else name
    if not isinstance(name, str):
        raise ValueError(f"recipe={name!r}; allowed: a Recipe or one of {', '.join(names())}")
    fields = {f.name for f in dataclasses.fields(Recipe)}
    unknown = set(params) - fields
    if unknown:
        raise ValueError(f"unknown parameter(s) {sorted(unknown)}; allowed: {sorted(fields - {'name'})}")
    return Recipe(name, **params)


def lineup(calibration_size: int = 500) -> list[tuple[str, Recipe]]:
    """The demo's rows: which trained model goes through which recipe, float models first."""
    order = ("float", "qat-int8", "qat-uint8-legacy")
    rows = []
    for spec in specs():
        for source, values in spec.demo:
            params = dict(values)
            if spec.takes("calibration_size"):
                params.setdefault("calibration_size", calibration_size)
            rows.append((source, Recipe(spec.name, **params)))
    return sorted(rows, key=lambda row: order.index(row[0]) if row[0] in order else len(order))


# --- the built-in recipes -----------------------------------------------------------------------

_V2 = converters.tf2
for _spec in (
    RecipeSpec("float32", "the plain TF2 converter (baseline)", "v2", _V2, "float32", "float32",
               demo=(("float", {}),), is_reference=True),
    RecipeSpec("dynamic-range", "int8 weights, float activations (the old post_training_quantize)", "v2", _V2,
               "int8", "float32", options={"optimize": True},
               learns="weight ranges; activation ranges are computed at run time", demo=(("float", {}),),
               min_weight_elements=1024,  # TF's weight quantizer leaves smaller weight tensors in float32
               unquantized_note="dynamic range changed nothing: the converter quantizes only weight tensors of at "
               "least {min_elements} elements and this model's largest has {largest_weight}, so every weight stayed "
               "float32 and the model is the float model; use int8-ptq (it quantizes every weight) to get a smaller "
               "model."),
    RecipeSpec("float16", "float16 weights", "v2", _V2, "float16", "float32",
               options={"optimize": True, "supported_types": ("float16",)}, demo=(("float", {}),)),
    RecipeSpec("int8-ptq", "full integer from a representative set (calibration)", "v2", _V2, "int8", "int8",
               params=("calibration_size", "io_type", "keep_float"), io_types=IO_TYPES, calibrated=True,
               options={"optimize": True, "ops": "int8"},
               learns="activation ranges from the representative images",
               demo=(("float", {"io_type": "uint8"}),)),
    RecipeSpec("int16x8", "int16 activations, int8 weights", "v2", _V2, "int8", "int16",
               params=("calibration_size",), calibrated=True, options={"optimize": True, "ops": "int16x8"},
               learns="activation ranges from the representative images", demo=(("float", {}),)),
    RecipeSpec("qat-int8", "a QAT model through the TF2 converter", "v2", _V2, "int8", "int8",
               params=("io_type",), io_types=IO_TYPES, needs_qat=True, options={"optimize": True},
               learns="every range from the fake-quant layers trained in QAT",
               demo=(("qat-int8", {"io_type": "uint8"}),)),
    RecipeSpec("legacy-uint8", "the TOCO-era v1 converter: inference_type=uint8, quantized_input_stats, "
               "default_ranges_stats", "v1-legacy", converters.legacy_uint8, "uint8", "uint8",
               params=("mean", "std", "default_ranges"),
               learns="activation ranges from fake-quant layers; default_ranges for any range missing",
               ignores="mean/std when the QAT model learned its own input range",
               demo=(("float", {"default_ranges": (0.0, 6.0)}), ("qat-uint8-legacy", {})), stats_patchable=True,
               came_out_float_note="came out float: uint8 was asked for but {float_activations} of {activations} "
               "activation tensors are float32 (the legacy converter does this silently when activations lack "
               "min/max and no default_ranges are given). "
               + diagnose.entry("came-out-float").fix.replace("{", "{{").replace("}", "}}")),
    RecipeSpec("aeq-int4-weights", "ai-edge-quantizer: int4 weights, float activations", "aeq",
               converters.aeq_int4_weights, "int4", "float32", params=("granularity",),
               learns="weight ranges per output channel (or per block of 32)", demo=(("float", {}),)),
    RecipeSpec("aeq-int8", "ai-edge-quantizer: int8 weights and activations, calibrated, float I/O", "aeq",
               converters.aeq_int8, "int8", "int8", params=("calibration_size",), calibrated=True,
               learns="activation ranges from the representative images (a moving average: shuffle them)",
               demo=(("float", {}),)),
):
    register(_spec)
