"""Interactive explorers for the uint8 knobs: input mean/std and default ranges.

The work is done by plain objects that tests drive without a browser:
``StatsExplorer.update(mean, std)`` reconverts the ``legacy-uint8`` model
from its source (a Keras model exported once to a SavedModel folder, a
SavedModel, a frozen ``.pb``: ``sweep.sweep_source``), evaluates a fixed live
subset and moves the figure's artists in place; ``RangeExplorer.update(lo, hi)``
does the same for ``default_ranges``. Any image shape and class count works: the
images and labels are checked against the model before the first conversion.
``stats_explorer`` / ``range_explorer`` wrap them in ipywidgets (imported only
there): sliders, an accuracy readout, the figure as a PNG, and a button that
evaluates the full test set. The mean/std readout
tests the current stats against the correct ones on the same live images
(``core.compare``) and says when a difference is within noise.
"""

from __future__ import annotations

import io
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import plots

from ..core import checks
from ..core import recipes as registry
from ..core.compare import paired
from .input_codes import CodeUsage, code_usage
from ..core.convert import ConvertedModel, QuantizationWarning, convert
from ..core.data import InputSpec
from ..core.evaluate import evaluate
from ..core.stats import InputStats, stats_for_range
from .sweep import model_io, sweep_source

LIVE_SIZE = 2000


@dataclass(frozen=True)
class StatsView:
    """One position of the mean/std sliders and what it gave."""

    requested: InputStats
    effective: InputStats  # what the model really reads its input with
    accuracy: float
    count: int
    usage: CodeUsage
    stats_ignored: bool
    converted: ConvertedModel = field(repr=False)
    predictions: np.ndarray | None = field(default=None, repr=False)  # on the live images, for paired tests


@dataclass(frozen=True)
class RangeView:
    """One position of the default-range sliders and what it gave."""

    default_ranges: tuple[float, float]
    accuracy: float
    count: int
    came_out_float: bool
    converted: ConvertedModel = field(repr=False)


def recipe_options(parameter: str) -> tuple[str, ...]:
    """The registered recipes an explorer can drive: those taking ``parameter`` (``"mean"``, ``"default_ranges"``)."""
    return registry.names(taking=parameter)


def stats_view(model_dir: Any, images: np.ndarray, labels: np.ndarray, mean: float, std: float,
               spec: InputSpec = InputSpec(), recipe: str = "legacy-uint8",
               default_ranges: tuple[float, float] | None = None) -> StatsView:
    """Convert with ``(mean, std)``, evaluate on ``images``, and measure the input-code usage.

    ``default_ranges`` goes along for a float model (no QAT ranges), which would otherwise
    come out float and ignore the stats; recipes that do not take it get none.

    Raises:
        ValueError: mean outside [0, 255], std <= 0, or bad images/labels.
    """
    requested = InputStats(mean, std)
    extra = {"default_ranges": default_ranges} if default_ranges is not None and \
        registry.get(recipe).takes("default_ranges") else {}
    converted = _convert(model_dir, recipe, spec, "mean", mean=requested.mean, std=requested.std, **extra)
    result = evaluate(converted, images, labels, spec)
    effective = converted.effective_stats or requested
    usage = code_usage(effective, (spec.lo, spec.hi), images)
    return StatsView(requested, effective, result.accuracy, result.count, usage, converted.stats_ignored, converted,
                     result.predictions)


def range_view(model_dir: Any, images: np.ndarray, labels: np.ndarray, lo: float, hi: float,
               spec: InputSpec = InputSpec(), recipe: str = "legacy-uint8") -> RangeView:
    """Convert with ``default_ranges=(lo, hi)`` and evaluate on ``images``.

    Raises:
        ValueError: ``lo >= hi`` or bad images/labels.
    """
    lo, hi = checks.range_pair("default_ranges", (lo, hi))
    converted = _convert(model_dir, recipe, spec, "default_ranges", default_ranges=(lo, hi))
    result = evaluate(converted, images, labels, spec)
    return RangeView((lo, hi), result.accuracy, result.count, converted.came_out_float, converted)


class _LiveFigure:
    """What both explorers share: the full-test-set button and the figure as PNG."""

    def evaluate_full(self) -> float:
        """Accuracy of the current model on the whole test set."""
        return evaluate(self.view.converted, self.images, self.labels, self.spec).accuracy

    def png(self) -> bytes:
        """The figure as PNG bytes (what the widget shows)."""
        return _png(self.figure)

    def _setup(self, model: Any, images: np.ndarray, labels: np.ndarray, spec: InputSpec, live_size: int,
               cache: Any, recipe: str, parameter: str) -> None:
        """Check the arguments, export the model once and pick the live subset."""
        self.recipe = checks.choice("recipe", recipe, recipe_options(parameter))
        live_size = checks.number("live_size", live_size, low=1, integer=True)
        shape, classes = model_io(model)
        self.images = checks.images("images", images, shape=shape)
        self.labels = checks.labels("labels", labels, len(self.images), classes)
        self.folder = sweep_source(model, cache)  # a SavedModel folder, a SavedModel or a FrozenGraph
        self.live_images, self.live_labels = self.images[:live_size], self.labels[:live_size]
        self.spec = spec


class StatsExplorer(_LiveFigure):
    """The mean/std explorer's state and figure, without any widget.

    Args:
        model: a trained Keras model (exported once to a SavedModel folder), the folder, or any
            source ``sweep.sweep_source`` takes (a SavedModel with its signature, a frozen ``.pb``).
        images, labels: the test set; the first ``live_size`` images are the live subset.
        spec: the range the model was trained on (the correct stats follow from it).
        baseline: the float model's accuracy (fraction), drawn on the figure.
        live_size: images evaluated on every slider change.
        cache: the artifact folder for the exported model.
        recipe: a registered recipe taking mean/std (``recipe_options("mean")``).
        default_ranges: ``(min, max)`` for activations without a learned range: give it for a
            float model (e.g. ``(0, 6)``), whose uint8 conversion would otherwise come out float.
    """

    def __init__(self, model: Any, images: np.ndarray, labels: np.ndarray, spec: InputSpec = InputSpec(),
                 baseline: float | None = None, live_size: int = LIVE_SIZE, cache: Any = None,
                 recipe: str = "legacy-uint8", default_ranges: tuple[float, float] | None = None) -> None:
        from matplotlib.figure import Figure

        self._setup(model, images, labels, spec, live_size, cache, recipe, "mean")
        self.default_ranges = None if default_ranges is None else checks.range_pair("default_ranges", default_ranges)
        self.best = stats_view(self.folder, self.live_images, self.live_labels, spec.stats.mean,
                               spec.stats.std, spec, self.recipe, self.default_ranges)
        self.baseline = self.best.accuracy if baseline is None else baseline
        self.view = self.best
        self.seconds = 0.0
        self.figure = Figure(figsize=(13, 4.2), dpi=72, layout="constrained")
        self._gauge, self._hist = self.figure.subplots(1, 2, width_ratios=(1, 1.6))
        plots.accuracy_gauge(self._values(self.best), self.baseline, ax=self._gauge,
                             title=f"Accuracy on {len(self.live_images):,} test images")
        plots.input_histogram(self.best.effective, self.live_images, (spec.lo, spec.hi), ax=self._hist)
        self._counts = np.bincount(self.live_images.reshape(-1), minlength=256)
        _freeze_layout(self.figure)

    def update(self, mean: float, std: float) -> StatsView:
        """Reconvert with ``(mean, std)``, re-evaluate the live subset, move the artists."""
        start = time.perf_counter()
        self.view = stats_view(self.folder, self.live_images, self.live_labels, mean, std, self.spec, self.recipe,
                               self.default_ranges)
        plots.update_gauge(self._gauge, self._values(self.view))
        plots.update_input_histogram(self._hist, self.view.effective, self._counts, (self.spec.lo, self.spec.hi))
        self.seconds = time.perf_counter() - start
        return self.view

    def readout(self) -> str:
        """The HTML text under the sliders."""
        v, b = self.view, self.best
        text = (f"<b>accuracy now: {100 * v.accuracy:.2f} %</b> on {v.count:,} images "
                f"(best {100 * b.accuracy:.2f} % at the correct stats mean={b.requested.mean + 0.0:g}, "
                f"std={b.requested.std:g}; float {100 * self.baseline:.2f} %) &middot; "
                f"{v.usage.codes_in_range} of 256 codes in the training range, "
                f"{100 * v.usage.clipped_fraction:.1f} % of pixels clipped")
        if v is not b and v.predictions is not None and b.predictions is not None:
            test = paired(b.predictions, v.predictions, self.live_labels)
            text += f"<br>against the correct stats, on these {v.count:,} images: " + (
                f"<b>{test.summary()}</b>" if test.significant else f"{test.summary()} (within noise)")
        if v.stats_ignored:
            text += (f"<br><b>These stats are ignored:</b> the model learned its input range in QAT and reads "
                     f"bytes with mean={v.effective.mean + 0.0:g}, std={v.effective.std:.4g} whatever you ask for.")
        if v.converted.came_out_float:
            text += ("<br><b>The model came out float</b>: it has no ranges for its activations, so the stats do "
                     "nothing; give default_ranges (a float model) or use a QAT model.")
        return text

    def _values(self, view: StatsView) -> dict[str, float]:
        return {"now": view.accuracy, "best (correct stats)": self.best.accuracy}


class RangeExplorer(_LiveFigure):
    """The default-range explorer's state and figure, without any widget.

    Args:
        model: a float model without fake-quant ranges, or its SavedModel folder, or any source
            ``sweep.sweep_source`` takes (a frozen ``.pb``).
        images, labels: the test set; the first ``live_size`` images are the live subset.
        spec: the range the model was trained on.
        baseline: the float model's accuracy (fraction).
        compare: other accuracies to show beside it, e.g. ``{"QAT uint8": 0.98}``.
        start: the default range to begin with.
        live_size: images evaluated on every slider change.
        cache: the artifact folder for the exported model.
        recipe: a registered recipe taking default ranges (``recipe_options("default_ranges")``).
    """

    def __init__(self, model: Any, images: np.ndarray, labels: np.ndarray, spec: InputSpec = InputSpec(),
                 baseline: float = 1.0, compare: dict[str, float] | None = None,
                 start: tuple[float, float] = (0.0, 6.0), live_size: int = LIVE_SIZE, cache: Any = None,
                 recipe: str = "legacy-uint8") -> None:
        from matplotlib.figure import Figure

        self._setup(model, images, labels, spec, live_size, cache, recipe, "default_ranges")
        self.baseline, self.compare = baseline, dict(compare or {})
        self.view = range_view(self.folder, self.live_images, self.live_labels, *start, spec, self.recipe)
        self.seconds = 0.0
        self.figure = Figure(figsize=(9, 0.6 * len(self.compare) + 2.4), dpi=72, layout="constrained")
        ax = self.figure.subplots()
        plots.accuracy_gauge(self._values(), baseline, ax=ax,
                             title=f"Accuracy on {len(self.live_images):,} test images")
        self._ax = ax
        _freeze_layout(self.figure)

    def update(self, lo: float, hi: float) -> RangeView:
        """Reconvert with ``default_ranges=(lo, hi)``, re-evaluate the live subset, move the bars."""
        start = time.perf_counter()
        self.view = range_view(self.folder, self.live_images, self.live_labels, lo, hi, self.spec, self.recipe)
        plots.update_gauge(self._ax, self._values())
        self.seconds = time.perf_counter() - start
        return self.view

    def readout(self) -> str:
        """The HTML text under the sliders."""
        lo, hi = self.view.default_ranges
        text = (f"<b>accuracy now: {100 * self.view.accuracy:.2f} %</b> with default_ranges=({lo:g}, {hi:g}) "
                f"on {self.view.count:,} images (float {100 * self.baseline:.2f} %)")
        if self.view.came_out_float:
            text += "<br><b>The model came out float</b>: no uint8 tensors, the ranges were not used."
        return text

    def _values(self) -> dict[str, float]:
        return {"default ranges now": self.view.accuracy, **self.compare}


@dataclass(frozen=True)
class Explorer:
    """An ipywidgets UI with its engine and controls (displays as the UI in a notebook)."""

    ui: Any
    engine: Any
    controls: dict[str, Any]
    readout: Any
    image: Any

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.ui)


def stats_explorer(model: Any, images: np.ndarray, labels: np.ndarray, spec: InputSpec = InputSpec(),
                   baseline: float | None = None, live_size: int = LIVE_SIZE, cache: Any = None,
                   recipe: str = "legacy-uint8", default_ranges: tuple[float, float] | None = None) -> Explorer:
    """Sliders for mean (0-255), std (log, 1-1000) and an assumed training range, with live accuracy.

    Moving ``mean`` or ``std`` reconverts and re-evaluates ``live_size`` images;
    moving the range sets mean/std by the formula for that range. The button
    evaluates the full test set. Arguments are those of ``StatsExplorer``.
    """
    import ipywidgets as w

    engine = StatsExplorer(model, images, labels, spec, baseline, live_size, cache, recipe, default_ranges)
    chooser = _recipe_chooser(w, engine, "mean")
    right = spec.stats
    mean = w.FloatSlider(value=right.mean, min=0, max=255, step=0.5, description="mean",
                         continuous_update=False, readout_format=".1f")
    std = w.FloatLogSlider(value=right.std, base=10, min=0, max=3, step=0.01, description="std",
                           continuous_update=False, readout_format=".4g")
    low, high = min(-2.0, spec.lo), max(2.0, spec.hi)  # a model trained on [0, 255] gets a slider that reaches it
    span = w.FloatRangeSlider(value=(spec.lo, spec.hi), min=low, max=high, step=0.05 if high - low <= 4 else 0.5,
                              description="trained on", continuous_update=False, readout_format=".2f")
    readout = w.HTML(engine.readout())
    image = w.Image(value=engine.png(), format="png")
    full = w.Button(description=f"Evaluate all {len(engine.images):,} images", layout=w.Layout(width="260px"))
    full_text = w.HTML("")
    busy = {"on": False}

    def redraw(_=None):
        if busy["on"]:
            return
        engine.update(mean.value, std.value)
        readout.value = engine.readout()
        image.value = engine.png()
        full_text.value = ""

    def from_range(change):
        try:
            stats = stats_for_range(*change["new"])
        except ValueError as err:
            readout.value = f"<b>{err}</b>"
            return
        busy["on"] = True
        mean.value, std.value = stats.mean, stats.std
        busy["on"] = False
        redraw()

    def on_full(_):
        full_text.value = f"accuracy on all {len(engine.images):,} images: {100 * engine.evaluate_full():.2f} %"

    mean.observe(redraw, names="value")
    std.observe(redraw, names="value")
    span.observe(from_range, names="value")
    chooser.observe(redraw, names="value")
    full.on_click(on_full)
    ui = w.VBox([w.HBox([mean, std, span, chooser]), readout, w.HBox([full, full_text]), image])
    return Explorer(ui, engine, {"mean": mean, "std": std, "range": span, "recipe": chooser, "full": full},
                    readout, image)


def range_explorer(model: Any, images: np.ndarray, labels: np.ndarray, spec: InputSpec = InputSpec(),
                   baseline: float = 1.0, compare: dict[str, float] | None = None,
                   live_size: int = LIVE_SIZE, cache: Any = None, recipe: str = "legacy-uint8") -> Explorer:
    """Sliders for the ``default_ranges`` min and max, with live accuracy beside the comparisons.

    Arguments are those of ``RangeExplorer``.
    """
    import ipywidgets as w

    engine = RangeExplorer(model, images, labels, spec, baseline, compare, live_size=live_size, cache=cache,
                           recipe=recipe)
    chooser = _recipe_chooser(w, engine, "default_ranges")
    lo0, hi0 = engine.view.default_ranges
    lo = w.FloatSlider(value=lo0, min=-10, max=0, step=0.5, description="min", continuous_update=False)
    hi = w.FloatSlider(value=hi0, min=0.5, max=30, step=0.5, description="max", continuous_update=False)
    readout = w.HTML(engine.readout())
    image = w.Image(value=engine.png(), format="png")
    full = w.Button(description=f"Evaluate all {len(engine.images):,} images", layout=w.Layout(width="260px"))
    full_text = w.HTML("")

    def redraw(_=None):
        engine.update(lo.value, hi.value)
        readout.value = engine.readout()
        image.value = engine.png()
        full_text.value = ""

    def on_full(_):
        full_text.value = f"accuracy on all {len(engine.images):,} images: {100 * engine.evaluate_full():.2f} %"

    lo.observe(redraw, names="value")
    hi.observe(redraw, names="value")
    chooser.observe(redraw, names="value")
    full.on_click(on_full)
    ui = w.VBox([w.HBox([lo, hi, chooser]), readout, w.HBox([full, full_text]), image])
    return Explorer(ui, engine, {"min": lo, "max": hi, "recipe": chooser, "full": full}, readout, image)


def _recipe_chooser(w: Any, engine: Any, parameter: str):
    """A dropdown of the registered recipes taking ``parameter``; choosing one switches the engine's recipe."""
    chooser = w.Dropdown(options=recipe_options(parameter), value=engine.recipe, description="recipe")

    def choose(change):
        engine.recipe = change["new"]

    chooser.observe(choose, names="value")  # registered first: runs before the redraw observer
    return chooser


def _convert(model_dir: Any, recipe: str, spec: InputSpec, parameter: str, **params: Any) -> ConvertedModel:
    checks.choice("recipe", recipe, recipe_options(parameter))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", QuantizationWarning)  # shown in the readout instead
        return convert(model_dir, recipe, spec=spec, **params)


def _freeze_layout(figure) -> None:
    """Lay the figure out once, then keep the axes where they are: redraws skip the layout pass."""
    _png(figure)
    figure.set_layout_engine("none")


def _png(figure) -> bytes:
    # One Agg draw and a fast PNG encode: savefig would draw twice and compress hard.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from PIL import Image

    canvas = figure.canvas if isinstance(figure.canvas, FigureCanvasAgg) else FigureCanvasAgg(figure)
    canvas.draw()
    buf = io.BytesIO()
    Image.frombuffer("RGBA", canvas.get_width_height(), canvas.buffer_rgba()).save(buf, format="png",
                                                                                    compress_level=1)
    return buf.getvalue()
