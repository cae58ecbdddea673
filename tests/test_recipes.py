"""The recipe registry: one spec per recipe, enumerated by convert, the demo, the CLI and the widgets."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from workbench.core import converters, recipes
from workbench.core.recipes import Recipe, RecipeSpec

PACKAGE = Path(__file__).resolve().parents[1] / "workbench"


@pytest.fixture
def extra_recipe():
    """A new recipe registered by data alone: the legacy uint8 adapter under another name."""
    spec = RecipeSpec("legacy-uint8-copy", "the legacy path, registered by a test", "v1-legacy",
                      converters.legacy_uint8, "uint8", "uint8", params=("mean", "std", "default_ranges"),
                      demo=(("qat-uint8-legacy", {"mean": 0.0, "std": 255.0}),), stats_patchable=True,
                      came_out_float_note="came out float, says the copy: {float_activations} of {activations}")
    recipes.register(spec)
    yield spec
    recipes.unregister(spec.name)


def test_a_registered_recipe_is_picked_up_everywhere(extra_recipe, qat_uint8, test_set):
    import workbench as wb
    from workbench import demo, widgets
    from workbench.cli.main import build_parser

    assert "legacy-uint8-copy" in wb.RECIPES
    # convert: same bytes as the built-in recipe it copies
    copy = wb.convert(qat_uint8, "legacy-uint8-copy", mean=0, std=255)
    original = wb.convert(qat_uint8, "legacy-uint8", mean=0, std=255)
    assert copy.tflite == original.tflite and copy.recipe.label() == "legacy-uint8-copy [mean=0,std=255]"
    # the demo table's lineup
    rows = demo.lineup(100)
    assert ("qat-uint8-legacy", Recipe("legacy-uint8-copy", mean=0.0, std=255.0)) in rows
    chosen = [r.name for _, r in demo.lineup(100, ("legacy-uint8-copy",))]
    assert "legacy-uint8-copy" in chosen and set(chosen) == {"float32", "legacy-uint8-copy"}  # + the baselines
    # the CLI's choices
    args = build_parser().parse_args(["demo", "--recipes", "legacy-uint8-copy", "float32"])
    assert args.recipes == ["legacy-uint8-copy", "float32"]
    # the widgets' options, and an explorer driving it
    assert "legacy-uint8-copy" in widgets.recipe_options("mean")
    assert "legacy-uint8-copy" in widgets.recipe_options("default_ranges")
    assert "legacy-uint8-copy" not in widgets.recipe_options("calibration_size")
    engine = widgets.StatsExplorer(qat_uint8, *test_set, live_size=200, recipe="legacy-uint8-copy")
    assert engine.best.converted.recipe.name == "legacy-uint8-copy"


def test_what_a_spec_says_reaches_every_table_with_no_other_edit(extra_recipe, uint8_folder):
    from workbench.cli.report import choose
    from workbench.core import recipe_table as rt
    from workbench.core.convert import Outcome
    from workbench.core.stats import InputStats
    from workbench.core.stats_patch import GuardedConverter

    # the quick comparison and the report take its parameters from its demo row, for either kind of model
    assert rt.recipe_parameters("legacy-uint8-copy", "qat") == {"mean": 0.0, "std": 255.0}
    assert rt.recipe_parameters("legacy-uint8-copy", "float") == {}  # no float row: its defaults
    chosen = choose(extra_recipe, False, InputStats(0.0, 255.0), 100, (0.0, 6.0), "test images")
    assert chosen.params == {"mean": 0.0, "std": 255.0, "default_ranges": (0.0, 6.0)}
    # its own outcome sentence
    note = Outcome("legacy-uint8-copy", came_out_float=True, float_activations=3, activations=5).sentences()
    assert note == ("came out float, says the copy: 3 of 5",)
    # its stats are patched in place of a conversion (stats_patchable), after one check conversion
    guarded = GuardedConverter(uint8_folder)
    for mean in (0.0, 10.0, 20.0):
        guarded(Recipe("legacy-uint8-copy", mean=mean, std=255.0))
    assert guarded.checked and (guarded.converted, guarded.patched) == (2, 1)
    # not the reference: the reference is one spec, and a second one is refused
    assert recipes.reference().name == "float32" and not recipes.is_reference("legacy-uint8-copy")
    twin = RecipeSpec("float32-twin", "", "v2", converters.tf2, "float32", "float32", is_reference=True)
    with pytest.raises(ValueError, match=r"with is_reference=True while 'float32' is the reference"):
        recipes.register(twin)
    assert "float32-twin" not in recipes.names()


# Where the library, the command line and the explorers ask something of a recipe, they ask its spec, never its
# name (the troubleshooting lessons convert chosen recipes on purpose, and are not scanned).
NAME_TEST = re.compile(r"""\b(?:name|recipe)\s*(?:==|!=)\s*["']([\w-]+)["']|"""
                       r"""\b(?:name|recipe)\.startswith\(["']([\w-]+)["']""")


def test_no_code_outside_the_registry_tests_a_recipe_by_its_name():
    offenders = []
    for folder in ("core", "cli", "explore"):
        for path in (PACKAGE / folder).rglob("*.py"):
            if path.name == "recipes.py":
                continue
            for number, line in enumerate(path.read_text().splitlines(), 1):
                for found in NAME_TEST.finditer(line):
                    equal, prefix = found.groups()
                    if equal in recipes.names() or any(prefix and n.startswith(prefix) for n in recipes.names()):
                        offenders.append(f"{path.relative_to(PACKAGE)}:{number}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


def test_unregistered_recipe_is_gone_from_the_cli(extra_recipe):
    from workbench.cli.main import build_parser

    recipes.unregister(extra_recipe.name)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["demo", "--recipes", "legacy-uint8-copy"])
    recipes.register(extra_recipe)


@pytest.mark.parametrize("name, params, parameter", [
    ("float32", {"mean": 0, "std": 255}, "mean"),
    ("dynamic-range", {"calibration_size": 10}, "calibration_size"),
    ("legacy-uint8", {"io_type": "int8"}, "io_type"),
    ("int16x8", {"io_type": "uint8"}, "io_type"),
    ("qat-int8", {"default_ranges": (0, 6)}, "default_ranges"),
    ("aeq-int8", {"granularity": "blockwise"}, "granularity"),
    ("legacy-uint8", {"keep_float": ("conv1",)}, "keep_float"),
])
def test_a_parameter_the_recipe_does_not_take_is_refused(name, params, parameter):
    with pytest.raises(ValueError, match=rf"^{parameter}=.* is not a parameter of recipe '{name}'; allowed for it"):
        Recipe(name, **params)


def test_every_spec_is_consistent():
    for spec in recipes.specs():
        assert spec.demo, f"{spec.name} has no demo row"
        assert spec.calibrated == spec.takes("calibration_size"), spec.name
        for source, values in spec.demo:
            assert source in ("float", "qat-int8", "qat-uint8-legacy")
            Recipe(spec.name, **values)  # every demo row is a valid recipe
    with pytest.raises(ValueError, match="already registered"):
        recipes.register(recipes.get("float32"))
    with pytest.raises(ValueError, match=r"params=.*'bogus'"):
        RecipeSpec("x", "", "v2", converters.tf2, "float32", "float32", params=("bogus",))


def test_lineup_puts_float_sources_first_and_float32_first():
    rows = recipes.lineup()
    sources = [s for s, _ in rows]
    assert rows[0] == ("float", Recipe("float32"))
    assert sources == sorted(sources, key=("float", "qat-int8", "qat-uint8-legacy").index)
    assert {r.name for _, r in rows} == set(recipes.names())


def test_aeq_recipes_quantize_and_stay_close_to_float(float_model, mnist, test_set, float_tflite):
    from workbench import convert, evaluate

    images, labels = test_set
    base = evaluate(float_tflite, images, labels).accuracy
    int4 = convert(float_model, "aeq-int4-weights")
    int8 = convert(float_model, "aeq-int8", representative=mnist.train_images, calibration_size=200)
    assert int4.size_kb < 0.25 * float_tflite.size_kb  # 4-bit weights: about a sixth of float
    assert set(int4.activation_dtypes) == {"float32"}
    assert int8.activation_dtypes.get("int8", 0) > 0 and int8.input.dtype == "float32"
    assert not int8.came_out_float and int8.outcome.ops_left_float == ()
    for model in (int4, int8):
        assert abs(evaluate(model, images, labels).accuracy - base) < 0.02


def test_outcome_fields_come_from_the_tensors(float_model, qat_uint8_learned):
    from workbench import convert

    with pytest.warns(UserWarning, match="came out float"):
        came = convert(float_model, "legacy-uint8")
    assert came.outcome.came_out_float and came.came_out_float
    assert set(came.outcome.ops_left_float) >= {"CONV_2D", "FULLY_CONNECTED"}
    assert came.outcome.float_activations == came.activation_dtypes["float32"] > 0
    with pytest.warns(UserWarning, match="mean/std ignored"):
        ignored = convert(qat_uint8_learned, "legacy-uint8", mean=127.5, std=127.5)
    assert ignored.outcome.stats_ignored and not ignored.outcome.came_out_float
    assert ignored.outcome.requested_stats.mean == 127.5
    assert ignored.outcome.effective_stats == ignored.effective_stats
    assert ignored.effective_stats.mean != 127.5
    assert ignored.warnings == ignored.outcome.sentences() and len(ignored.warnings) == 1


PRIVATE = re.compile(r"_get_ops_details|_quant_interpreter|_input_layers|_debug_info_func|"
                     r"tensorflow\.python\.|tensorflow_model_optimization\.python\.|"
                     r"\b(interp|interpreter|converter|debugger)\._[a-z]\w*")


def test_private_tf_tfmot_litert_names_only_in_the_access_layers():
    allowed = {"litert.py", "keras_compat.py"}
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if path.name in allowed:
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if PRIVATE.search(line):
                offenders.append(f"{path.relative_to(PACKAGE)}:{number}: {line.strip()}")
    assert not offenders, "\n".join(offenders)
