"""Interactive explorers for the uint8 knobs: input mean/std and default ranges.

The work is done by plain objects that tests drive without a browser:
``StatsExplorer.update(mean, std)`` reconverts the ``legacy-uint8`` model
from its source (a Keras model exported once to a SavedModel folder, a
SavedModel, a frozen ``.pb``: ``sweep.sweep_source``), evaluates a fixed live
subset and moves the figure's artists in place; ``RangeExplorer.update(lo, hi)``
does the same for ``default_ranges``. Any image shape and class count works: the
images and labels are checked against the model before the first conversion. Without labels
(``labels=None``) every view is measured against the float model (``float_reference``: its outputs taken
once on the test set, cached with the sweep points) and the explorers show the agreement with it in
place of the accuracy (``explorer_views``).
``stats_explorer`` / ``range_explorer`` wrap them in ipywidgets (imported only
there): sliders, an accuracy readout, the figure as a PNG, and a button that
evaluates the full test set. The mean/std readout
tests the current stats against the correct ones on the same live images
(``core.compare``) and says when a difference is within noise.

``sweep_in_background`` sweeps a whole grid over the full test set (exactly, or
screened: ``screening.sweep``) in the background (``background``: converted in a
thread here, evaluated in LiteRT-only worker processes) while the sliders keep
working; the widgets' "Sweep the grid" button starts it, shows its progress and
draws the result (a heatmap, or accuracy over the default range) in the
explorer's own output area. Both widgets are built by one function (``_explorer``).
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import plots

from ..core import checks, measure
from ..core import recipes as registry
from ..core.compare import paired
from . import float_reference as floats
from . import screening
from .background import BackgroundSweep, default_workers, start_pool
from .conversion_sweep import float_reference_for
from .explorer_views import RangeView, StatsView, measured, range_view, recipe_options, stats_view
from ..core.data import InputSpec
from ..core.fixed_input import fit_to_images
from ..core.stats import stats_for_range
from ..core.stats_patch import GuardedConverter
from ..core.model_io import model_io
from .sweep import grid, stats_grid, sweep, sweep_source

__all__ = ["Explorer", "LIVE_SIZE", "RangeExplorer", "RangeView", "StatsExplorer", "StatsView", "range_explorer",
           "range_view", "recipe_options", "stats_explorer", "stats_view"]

LIVE_SIZE = 2000


class _LiveFigure:
    """What both explorers share: the full-test-set button and the figure as PNG."""

    def evaluate_full(self) -> float:
        """Accuracy of the current model on the whole test set (without labels: agreement with the float model)."""
        accuracy, _, _, fidelity = measured(self.folder, self.view.converted, self.images, self.labels, self.spec,
                                            self.floats)
        return fidelity.get("agreement", accuracy)

    @property
    def metric(self) -> str:
        """What the explorer measures, in words: ``accuracy`` or ``agreement with the float model``."""
        return "accuracy" if self.labels is not None else "agreement with the float model"

    def _gauge_text(self) -> dict[str, str]:
        """The gauge's title and axis label."""
        if self.labels is not None:
            return {"title": f"Accuracy on {len(self.live_images):,} test images"}
        return {"title": f"Agreement with the float model on {len(self.live_images):,} images",
                "xlabel": floats.AGREEMENT_LABEL}

    def png(self) -> bytes:
        """The figure as PNG bytes (what the widget shows)."""
        return _png(self.figure)

    def sweep_in_background(self, points: Any = None, *, screen: bool = False, workers: int | None = None,
                            cache: Any = None, on_progress: Any = None, on_done: Any = None,
                            **options: Any) -> BackgroundSweep:
        """Sweep a grid on the whole test set in the background; returns at once, the sliders keep working.

        The points convert in a thread of this process (patched where a real conversion proved it) and are
        evaluated by the explorer's LiteRT-only, lower-priority worker pool (``background.start_pool``).

        Args:
            points: the grid (as ``sweep.sweep`` takes it); default ``default_points()``.
            screen: screen the grid on image subsets first (``screening.sweep``) instead of the exact sweep.
            workers: worker processes of the explorer's pool, started by its first background sweep and
                kept warm for the next ones (default: every core but one, so the sliders keep one).
            cache: the artifact folder of the point cache (default: the explorer's; ``False``: none).
            on_progress, on_done: called with the ``BackgroundSweep`` handle, in the background thread.
            options: more keywords for the sweep (e.g. ``stages``, ``alpha`` when screening).

        Returns:
            The ``BackgroundSweep`` (also kept as ``self.background``): ``result()`` is the DataFrame.

        Raises:
            ValueError: a bad point, or a sweep of this explorer still running, before anything starts.
        """
        running = getattr(self, "background", None)
        if running is not None and not running.done():
            raise ValueError("a background sweep is still running; allowed: one at a time (wait for "
                             "explorer.background.result())")
        pts = screening.check_points(self.default_points() if points is None else points, self.recipe, self.spec)
        pool = getattr(self, "pool", None)
        if pool is None or (running is not None and running.error is not None):  # none yet, or maybe broken
            if pool is not None:
                pool.shutdown(wait=False)
            self.pool = start_pool(default_workers() if workers is None else workers)
        run_sweep = screening.sweep if screen else sweep
        folder, images, labels = self.folder, self.images, self.labels
        settings = dict(recipe=self.recipe, spec=self.spec, cache=self.cache if cache is None else cache,
                        progress=False, **options)

        def run():
            return run_sweep(folder, pts, images, labels, **settings)

        self.background = BackgroundSweep(run, self.pool, on_progress, on_done)
        return self.background

    def close(self) -> None:
        """Stop the background sweeps' worker processes (they also stop when Python exits)."""
        pool, self.pool = getattr(self, "pool", None), None
        if pool is not None:
            pool.shutdown()

    def _setup(self, model: Any, images: np.ndarray, labels: np.ndarray | None, spec: InputSpec, live_size: int,
               cache: Any, recipe: str, parameter: str) -> None:
        """Check the arguments, export the model once and pick the live subset (without labels: take the float
        model's outputs on the test set once, ``float_reference``)."""
        self.recipe = checks.choice("recipe", recipe, recipe_options(parameter))
        live_size = checks.number("live_size", live_size, low=1, integer=True)
        described = model_io(model)
        shape, classes = described.image_shape, described.classes
        self.images = checks.images("images", images, shape=shape)
        self.labels = None if labels is None else checks.labels("labels", labels, len(self.images), classes)
        model = fit_to_images(model, self.images)  # a model that reads any size: the images' size
        self.folder = sweep_source(model, cache)  # a SavedModel folder, a SavedModel or a FrozenGraph
        self.cache = cache
        self.live_images = self.images[:live_size]
        self.live_labels = None if self.labels is None else self.labels[:live_size]
        self.floats: measure.Reference | None = None  # without labels: the float model's outputs
        self.live_floats: measure.Reference | None = None
        self.live_truth = self.live_labels  # what paired tests score against
        if self.labels is None:
            self.floats = float_reference_for(self.folder, self.images, spec, cache)
            self.live_floats = floats.subset(self.floats, slice(0, len(self.live_images)))
            self.live_truth = floats.predictions(self.live_floats)
        self.spec = spec


class StatsExplorer(_LiveFigure):
    """The mean/std explorer's state and figure, without any widget.

    Args:
        model: a trained Keras model (exported once to a SavedModel folder), the folder, or any
            source ``sweep.sweep_source`` takes (a SavedModel with its signature, a frozen ``.pb``).
        images, labels: the test set; the first ``live_size`` images are the live subset. ``labels=None``:
            every view is measured by its agreement with the float model (its outputs taken once).
        spec: the range the model was trained on (the correct stats follow from it).
        baseline: the float model's accuracy (fraction), drawn on the figure (without labels: 1.0).
        live_size: images evaluated on every slider change.
        cache: the artifact folder for the exported model and the background sweep's points.
        recipe: a registered recipe taking mean/std (``recipe_options("mean")``).
        default_ranges: ``(min, max)`` for activations without a learned range: give it for a
            float model (e.g. ``(0, 6)``), whose uint8 conversion would otherwise come out float.
        grid_size: values per axis of the background sweep's grid (``sweep.stats_grid``).
    """

    def __init__(self, model: Any, images: np.ndarray, labels: np.ndarray | None, spec: InputSpec = InputSpec(),
                 baseline: float | None = None, live_size: int = LIVE_SIZE, cache: Any = None,
                 recipe: str = "legacy-uint8", default_ranges: tuple[float, float] | None = None,
                 grid_size: int = 7) -> None:
        from matplotlib.figure import Figure

        self._setup(model, images, labels, spec, live_size, cache, recipe, "mean")
        self.grid_size = checks.number("grid_size", grid_size, low=2, high=40, integer=True)
        self.default_ranges = None if default_ranges is None else checks.range_pair("default_ranges", default_ranges)
        self.converter = GuardedConverter(self.folder, spec)  # slider moves patch checked bytes where they can
        self.best = stats_view(self.folder, self.live_images, self.live_labels, spec.stats.mean,
                               spec.stats.std, spec, self.recipe, self.default_ranges, self.converter,
                               self.live_floats)
        if baseline is None:  # without labels the float model agrees with itself
            baseline = self.best.accuracy if self.labels is not None else 1.0
        self.baseline = baseline
        self.view = self.best
        self.seconds = 0.0
        self.figure = Figure(figsize=(13, 4.2), dpi=72, layout="constrained")
        self._gauge, self._hist = self.figure.subplots(1, 2, width_ratios=(1, 1.6))
        plots.accuracy_gauge(self._values(self.best), self.baseline, ax=self._gauge, **self._gauge_text())
        plots.input_histogram(self.best.effective, self.live_images, (spec.lo, spec.hi), ax=self._hist)
        self._counts = np.bincount(self.live_images.reshape(-1), minlength=256)
        _freeze_layout(self.figure)

    def update(self, mean: float, std: float) -> StatsView:
        """Reconvert with ``(mean, std)``, re-evaluate the live subset, move the artists."""
        start = time.perf_counter()
        self.view = stats_view(self.folder, self.live_images, self.live_labels, mean, std, self.spec, self.recipe,
                               self.default_ranges, self.converter, self.live_floats)
        plots.update_gauge(self._gauge, self._values(self.view))
        plots.update_input_histogram(self._hist, self.view.effective, self._counts, (self.spec.lo, self.spec.hi))
        self.seconds = time.perf_counter() - start
        return self.view

    def readout(self) -> str:
        """The HTML text under the sliders."""
        v, b = self.view, self.best
        text = (f"<b>{self.metric} now: {100 * v.score:.2f} %</b> on {v.count:,} images "
                f"(best {100 * b.score:.2f} % at the correct stats mean={b.requested.mean + 0.0:g}, "
                f"std={b.requested.std:g}; float {100 * self.baseline:.2f} %) &middot; "
                f"{v.usage.codes_in_range} of 256 codes in the training range, "
                f"{100 * v.usage.clipped_fraction:.1f} % of pixels clipped")
        if v.snr_db is not None:
            text += f"<br>SNR of the output against the float model's: {v.snr_db:.1f} dB"
        if v is not b and v.predictions is not None and b.predictions is not None:
            test = paired(b.predictions, v.predictions, self.live_truth)
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
        return {"now": view.score, "best (correct stats)": self.best.score}

    def default_points(self) -> list[dict[str, Any]]:
        """The background sweep's grid: ``sweep.stats_grid`` of ``grid_size`` (with the default ranges, if any)."""
        points = stats_grid(self.spec, self.grid_size)
        if self.default_ranges is not None and registry.get(self.recipe).takes("default_ranges"):
            points = [{**p, "default_ranges": self.default_ranges} for p in points]
        return points

    def sweep_figure(self, frame):
        """The background sweep's result drawn: accuracy (without labels: agreement with the float model) over the
        mean x std grid, the correct stats starred."""
        return plots.stats_heatmap(frame, self.baseline, correct=self.spec.stats).figure


class RangeExplorer(_LiveFigure):
    """The default-range explorer's state and figure, without any widget.

    Args:
        model: a float model without fake-quant ranges, or its SavedModel folder, or any source
            ``sweep.sweep_source`` takes (a frozen ``.pb``).
        images, labels: the test set; the first ``live_size`` images are the live subset. ``labels=None``:
            every view is measured by its agreement with the float model (its outputs taken once).
        spec: the range the model was trained on.
        baseline: the float model's accuracy (fraction; without labels keep 1.0, the float model's agreement).
        compare: other accuracies to show beside it, e.g. ``{"QAT uint8": 0.98}``.
        start: the default range to begin with.
        live_size: images evaluated on every slider change.
        cache: the artifact folder for the exported model and the background sweep's points.
        recipe: a registered recipe taking default ranges (``recipe_options("default_ranges")``).
    """

    def __init__(self, model: Any, images: np.ndarray, labels: np.ndarray | None, spec: InputSpec = InputSpec(),
                 baseline: float = 1.0, compare: dict[str, float] | None = None,
                 start: tuple[float, float] = (0.0, 6.0), live_size: int = LIVE_SIZE, cache: Any = None,
                 recipe: str = "legacy-uint8") -> None:
        from matplotlib.figure import Figure

        self._setup(model, images, labels, spec, live_size, cache, recipe, "default_ranges")
        self.baseline, self.compare = baseline, dict(compare or {})
        self.view = range_view(self.folder, self.live_images, self.live_labels, *start, spec, self.recipe,
                               self.live_floats)
        self.seconds = 0.0
        self.figure = Figure(figsize=(9, 0.6 * len(self.compare) + 2.4), dpi=72, layout="constrained")
        ax = self.figure.subplots()
        plots.accuracy_gauge(self._values(), baseline, ax=ax, **self._gauge_text())
        self._ax = ax
        _freeze_layout(self.figure)

    def update(self, lo: float, hi: float) -> RangeView:
        """Reconvert with ``default_ranges=(lo, hi)``, re-evaluate the live subset, move the bars."""
        start = time.perf_counter()
        self.view = range_view(self.folder, self.live_images, self.live_labels, lo, hi, self.spec, self.recipe,
                               self.live_floats)
        plots.update_gauge(self._ax, self._values())
        self.seconds = time.perf_counter() - start
        return self.view

    def readout(self) -> str:
        """The HTML text under the sliders."""
        lo, hi = self.view.default_ranges
        text = (f"<b>{self.metric} now: {100 * self.view.score:.2f} %</b> with default_ranges=({lo:g}, {hi:g}) "
                f"on {self.view.count:,} images (float {100 * self.baseline:.2f} %)")
        if self.view.snr_db is not None:
            text += f"<br>SNR of the output against the float model's: {self.view.snr_db:.1f} dB"
        if self.view.came_out_float:
            text += "<br><b>The model came out float</b>: no uint8 tensors, the ranges were not used."
        return text

    def _values(self) -> dict[str, float]:
        return {"default ranges now": self.view.score, **self.compare}

    def default_points(self) -> list[dict[str, Any]]:
        """The background sweep's grid: ``default_ranges`` ``(0, max)`` for a range of maxima."""
        return grid(default_ranges=[(0.0, m) for m in (0.5, 1.0, 2.0, 4.0, 6.0, 10.0, 20.0, 30.0)])

    def sweep_figure(self, frame):
        """The background sweep's result drawn: accuracy against the default range's maximum."""
        return plots.accuracy_curve(frame, "default_max", self.baseline, logx=True, xlabel="default_ranges max",
                                    references=self.compare).figure


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

    def sweep_in_background(self, screen: bool = False) -> BackgroundSweep:
        """What the "Sweep the grid" button does: the grid on every test image in worker processes, its progress and
        result drawn under the explorer; returns at once with the ``BackgroundSweep`` (``result()`` waits for it).

        Raises:
            ValueError: a sweep of this explorer is still running.
        """
        running = getattr(self.engine, "background", None)
        if running is not None and not running.done():
            raise ValueError("a background sweep is still running; allowed: one at a time (wait for its result())")
        self.controls["screen"].value = bool(screen)
        self.controls["sweep"].click()
        return self.engine.background


def stats_explorer(model: Any, images: np.ndarray, labels: np.ndarray | None, spec: InputSpec = InputSpec(),
                   baseline: float | None = None, live_size: int = LIVE_SIZE, cache: Any = None,
                   recipe: str = "legacy-uint8", default_ranges: tuple[float, float] | None = None,
                   grid_size: int = 7) -> Explorer:
    """Sliders for mean (0-255), std (log, 1-1000) and an assumed training range, with live accuracy.

    Moving ``mean`` or ``std`` reconverts and re-evaluates ``live_size`` images;
    moving the range sets mean/std by the formula for that range. The first button
    evaluates the full test set; "Sweep the grid" sweeps the mean x std grid over it in
    the background (screened first when ticked) and draws the heatmap below, while the
    sliders keep working. Arguments are those of ``StatsExplorer``.
    """
    import ipywidgets as w

    engine = StatsExplorer(model, images, labels, spec, baseline, live_size, cache, recipe, default_ranges, grid_size)
    right = spec.stats
    mean = w.FloatSlider(value=right.mean, min=0, max=255, step=0.5, description="mean",
                         continuous_update=False, readout_format=".1f")
    std = w.FloatLogSlider(value=right.std, base=10, min=0, max=3, step=0.01, description="std",
                           continuous_update=False, readout_format=".4g")
    low, high = min(-2.0, spec.lo), max(2.0, spec.hi)  # a model trained on [0, 255] gets a slider that reaches it
    span = w.FloatRangeSlider(value=(spec.lo, spec.hi), min=low, max=high, step=0.05 if high - low <= 4 else 0.5,
                              description="trained on", continuous_update=False, readout_format=".2f")
    explorer, set_sliders = _explorer(w, engine, "mean", {"mean": mean, "std": std}, {"range": span})

    def from_range(change):
        try:
            stats = stats_for_range(*change["new"])
        except ValueError as err:
            explorer.readout.value = f"<b>{err}</b>"
            return
        set_sliders(mean=stats.mean, std=stats.std)

    span.observe(from_range, names="value")
    return explorer


def range_explorer(model: Any, images: np.ndarray, labels: np.ndarray | None, spec: InputSpec = InputSpec(),
                   baseline: float = 1.0, compare: dict[str, float] | None = None,
                   live_size: int = LIVE_SIZE, cache: Any = None, recipe: str = "legacy-uint8") -> Explorer:
    """Sliders for the ``default_ranges`` min and max, with live accuracy beside the comparisons.

    Arguments are those of ``RangeExplorer``.
    """
    import ipywidgets as w

    engine = RangeExplorer(model, images, labels, spec, baseline, compare, live_size=live_size, cache=cache,
                           recipe=recipe)
    lo0, hi0 = engine.view.default_ranges
    lo = w.FloatSlider(value=lo0, min=-10, max=0, step=0.5, description="min", continuous_update=False)
    hi = w.FloatSlider(value=hi0, min=0.5, max=30, step=0.5, description="max", continuous_update=False)
    return _explorer(w, engine, "default_ranges", {"min": lo, "max": hi})[0]


def _explorer(w: Any, engine: Any, parameter: str, sliders: dict[str, Any],
              others: dict[str, Any] | None = None) -> tuple[Explorer, Any]:
    """The UI both explorers are: their sliders (each move calls ``engine.update(*slider values)``), the
    other controls beside them, a recipe menu, the readout, the full-test-set button, the figure and the
    background sweep's controls.

    Returns:
        The ``Explorer`` and ``set_sliders(**values)``, which moves several sliders with one update.
    """
    chooser = _recipe_chooser(w, engine, parameter)
    readout = w.HTML(engine.readout())
    image = w.Image(value=engine.png(), format="png")
    full = w.Button(description=f"Evaluate all {len(engine.images):,} images", layout=w.Layout(width="260px"))
    full_text = w.HTML("")
    held = {"on": False}

    def redraw(_=None):
        if held["on"]:
            return
        engine.update(*(slider.value for slider in sliders.values()))
        readout.value = engine.readout()
        image.value = engine.png()
        full_text.value = ""

    def set_sliders(**values):
        held["on"] = True
        try:
            for name, value in values.items():
                sliders[name].value = value
        finally:
            held["on"] = False
        redraw()

    def on_full(_):
        full_text.value = f"{engine.metric} on all {len(engine.images):,} images: {100 * engine.evaluate_full():.2f} %"

    for slider in sliders.values():
        slider.observe(redraw, names="value")
    chooser.observe(redraw, names="value")
    full.on_click(on_full)
    others = dict(others or {})
    background = _sweep_controls(w, engine)
    ui = w.VBox([w.HBox([*sliders.values(), *others.values(), chooser]), readout, w.HBox([full, full_text]), image,
                 *background.pop("ui")])
    controls = {**sliders, **others, "recipe": chooser, "full": full, **background}
    return Explorer(ui, engine, controls, readout, image), set_sliders


def _sweep_controls(w: Any, engine: Any) -> dict[str, Any]:
    """The "Sweep the grid" button, a "screen" checkbox, a status line and the output area the result goes to.

    The sweep runs in the background (``sweep_in_background``); its progress and result reach the widgets
    through their values and the output's ``append_*`` methods, never through ``print`` or the output's
    context manager (either would land in whatever cell runs at that moment).
    """
    from IPython.display import Image

    button = w.Button(description=f"Sweep the grid on all {len(engine.images):,} images",
                      layout=w.Layout(width="300px"))
    screen = w.Checkbox(value=False, description="screen on subsets first", indent=False)
    status = w.HTML("")
    output = w.Output()

    def progress(handle):
        status.value = f"sweeping in the background: {handle.points_done} points done, {handle.elapsed:.0f} s"

    def done(handle):
        button.disabled = False
        if handle.error is not None:
            status.value = f"<b>the sweep failed</b> after {handle.elapsed:.0f} s"
            output.append_stderr(f"{type(handle.error).__name__}: {handle.error}\n")
            return
        frame = handle.value
        metric = floats.metric_of(frame)
        best = frame.loc[frame[metric].idxmax()] if frame[metric].notna().any() else None
        text = f"swept {len(frame)} points in {handle.elapsed:.1f} s"
        if best is not None:
            where = ", ".join(f"{k}={best[k]:g}" for k in ("mean", "std", "default_max") if k in frame)
            text += f"; best {where}: {100 * best[metric]:.2f} %" + ("" if metric == "accuracy" else " agreement")
        if "screened" in frame:
            text += f"<br>{screening.describe(frame)}"
        status.value = text
        output.outputs = ()
        output.append_display_data(Image(data=_png(engine.sweep_figure(frame)), format="png"))

    def start(_):
        button.disabled = True
        status.value = "sweeping in the background: starting the worker processes"
        try:
            engine.sweep_in_background(screen=screen.value, on_progress=progress, on_done=done)
        except ValueError as err:
            button.disabled = False
            status.value = f"<b>{err}</b>"

    button.on_click(start)
    return {"ui": [w.HBox([button, screen, status]), output], "sweep": button, "screen": screen,
            "sweep_status": status, "sweep_output": output}


def _recipe_chooser(w: Any, engine: Any, parameter: str):
    """A dropdown of the registered recipes taking ``parameter``; choosing one switches the engine's recipe."""
    chooser = w.Dropdown(options=recipe_options(parameter), value=engine.recipe, description="recipe")

    def choose(change):
        engine.recipe = change["new"]

    chooser.observe(choose, names="value")  # registered first: runs before the redraw observer
    return chooser


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
