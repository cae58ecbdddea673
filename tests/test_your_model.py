"""Models of other shapes and class counts through the whole workbench.

Two models that are not MNIST's LeNet: scikit-learn's 8x8x1 ``digits`` (10 classes) with the
MobileNet-style net (float, and QAT in both schemes), and a 32x32x3 net with 5 classes defined
here, trained on deterministic synthetic images. Each goes through every loader format
(``.keras``, ``.h5``, SavedModel, frozen ``.pb``, ``.tflite``; data from ``.npz`` and an image
folder), every registered recipe, the three input types of ``evaluate``, the mean/std,
default-range, calibration-size and bits sweeps, the per-layer error, the explorers' engines,
the plots and the Netron files. Labels out of range and images of the wrong shape are one
clear error at every entry point. Trained weights are cached in ``$WORKBENCH_CACHE``.
"""

from __future__ import annotations

import warnings

import matplotlib
import numpy as np
import pytest

import workbench as wb
from workbench import sweep as sw
from workbench import widgets
from workbench.core import recipe_table as rt
from workbench.core.converters import export_frozen_graph
from workbench.core.data import Dataset, load_digits, load_image_folder, load_npz, split
from workbench.core.diagnose import QuantizationError
from workbench.core.sources import FrozenGraph, SavedModel, load_source
from workbench.core.train import QatConfig, TrainConfig, TrainingNote, trained_model, trained_mobilenet
from workbench.troubleshoot.layer_error import layer_errors

pytestmark = pytest.mark.slow  # trains and converts whole models: make test runs it, test-quick skips it

matplotlib.use("Agg")

SHAPE_CLASSES = ("hstripes", "vstripes", "diagonal", "disc", "band")
# BatchNorm's moving averages need a few hundred steps: 30 epochs of digits' 45 batches of 32.
DIGITS_CONFIG = TrainConfig(epochs=30, batch_size=32)
SHAPES_CONFIG = TrainConfig(epochs=8, batch_size=32)


def shapes_data(n: int = 1000, seed: int = 0) -> Dataset:
    """32x32 RGB images of five coloured patterns on noise, the same on every run."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:32, 0:32]
    masks = [(yy // 4) % 2 == 0, (xx // 4) % 2 == 0, ((yy + xx) // 6) % 2 == 0,
             (yy - 15.5) ** 2 + (xx - 15.5) ** 2 < 80, np.abs(yy - xx) < 4]
    labels = np.arange(n) % 5
    rng.shuffle(labels)
    images = rng.normal(50, 30, (n, 32, 32, 3))
    for i, k in enumerate(labels):
        images[i][np.roll(masks[k], tuple(rng.integers(-3, 4, 2)), axis=(0, 1))] += rng.uniform(100, 200, 3)
    return split(np.clip(images, 0, 255).astype(np.uint8), labels, class_names=SHAPE_CLASSES, name="shapes")


def user_net():
    """A user's own architecture: two strided convolutions, global pooling, a 5-way softmax."""
    from workbench.core.keras_compat import keras

    layers = keras.layers
    inputs = keras.Input((32, 32, 3), name="image")
    x = layers.Conv2D(16, 3, strides=2, padding="same", activation="relu", name="c1")(inputs)
    x = layers.Conv2D(32, 3, strides=2, padding="same", activation="relu", name="c2")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inputs, layers.Dense(5, activation="softmax", name="out")(x), name="user_net")


# --- data and models ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def digits():
    return load_digits()


@pytest.fixture(scope="module")
def shapes():
    return shapes_data()


@pytest.fixture(scope="module")
def digits_float(digits):
    return trained_mobilenet(digits, DIGITS_CONFIG)


@pytest.fixture(scope="module")
def digits_qat_int8(digits):
    return trained_mobilenet(digits, DIGITS_CONFIG, QatConfig(scheme="int8"))


@pytest.fixture(scope="module")
def digits_qat_uint8(digits):
    with pytest.warns(TrainingNote, match="BatchNormalization folded into the convolutions"):
        return trained_mobilenet(digits, DIGITS_CONFIG, QatConfig(scheme="uint8-legacy"))


@pytest.fixture(scope="module")
def shapes_float(shapes):
    return trained_model(user_net, "shapes-user-net", shapes, SHAPES_CONFIG)


@pytest.fixture(scope="module")
def shapes_qat_uint8(shapes):
    return trained_model(user_net, "shapes-user-net", shapes, SHAPES_CONFIG, QatConfig(scheme="uint8-legacy"))


@pytest.fixture(scope="module")
def shapes_qat_int8(shapes):
    return trained_model(user_net, "shapes-user-net", shapes, SHAPES_CONFIG, QatConfig(scheme="int8"))


@pytest.fixture(scope="module")
def cases(digits, shapes, digits_float, shapes_float):
    """``name -> (data, float Keras model)`` for the two models."""
    return {"digits": (digits, digits_float), "shapes": (shapes, shapes_float)}


@pytest.fixture(scope="module")
def files(tmp_path_factory, cases):
    """Every model file format, written the way a user's tools write them, per case."""
    out = {}
    for name, (_, model) in cases.items():
        folder = tmp_path_factory.mktemp(name)
        model.save(folder / "model.keras")
        model.save(folder / "model.h5")
        wb.export_saved_model(model, folder / "saved_model")
        graph = export_frozen_graph(model, folder / "frozen.pb")
        wb.convert(model, "float32").save(folder / "model.tflite")
        out[name] = {"folder": folder, "graph": graph}
    return out


def load_every_format(files: dict, name: str) -> dict:
    folder, graph = files[name]["folder"], files[name]["graph"]
    return {
        "keras": load_source(folder / "model.keras"),
        "h5": load_source(folder / "model.h5"),
        "saved_model": load_source(folder / "saved_model"),
        "frozen_pb": load_source(folder / "frozen.pb", input_arrays=",".join(graph.input_arrays),
                                 output_arrays=",".join(graph.output_arrays)),
        "tflite": load_source(folder / "model.tflite"),
    }


def test_the_models_learned_their_data(cases, digits_qat_int8, digits_qat_uint8, shapes_qat_uint8, shapes_qat_int8):
    digits, digits_float = cases["digits"]
    shapes, shapes_float = cases["shapes"]
    assert (digits.image_shape, digits.classes, shapes.image_shape, shapes.classes) == ((8, 8, 1), 10, (32, 32, 3), 5)
    assert shapes.class_names == SHAPE_CLASSES
    for data, model in [(digits, digits_float), (digits, digits_qat_int8), (digits, digits_qat_uint8),
                        (shapes, shapes_float), (shapes, shapes_qat_uint8), (shapes, shapes_qat_int8)]:
        assert wb.evaluate_keras(model, data.test_images, data.test_labels).accuracy >= 0.9, model.name
    assert [layer.name for layer in digits_qat_uint8.layers if "bn" in layer.name] == []  # folded before QAT


def test_split_is_a_seeded_partition():
    """``split`` (behind ``load_digits``, ``load_npz`` and the image folders): the same seed gives the same split,
    another seed another one; every image lands in exactly one half, with its own label, in the original order."""
    images = np.arange(200, dtype=np.uint8).reshape(200, 1, 1, 1)  # each image's one pixel is its index
    labels = np.arange(200) % 7
    a, b, other = split(images, labels, 0.25, seed=3), split(images, labels, 0.25, seed=3), split(images, labels, 0.25)
    assert np.array_equal(a.test_images, b.test_images) and np.array_equal(a.train_labels, b.train_labels)
    assert not np.array_equal(a.test_images, other.test_images)
    train, test = a.train_images.ravel().astype(int), a.test_images.ravel().astype(int)
    assert len(test) == 50 and sorted([*train, *test]) == list(range(200))
    assert list(train) == sorted(train) and list(test) == sorted(test)
    assert np.array_equal(a.train_labels, train % 7) and np.array_equal(a.test_labels, test % 7)


# --- data loaders -----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["digits", "shapes"])
def test_npz_round_trip(cases, name, tmp_path):
    data, _ = cases[name]
    path = tmp_path / "data.npz"
    np.savez(path, images=data.test_images, labels=data.test_labels, class_names=np.array(data.class_names))
    loaded = load_npz(path, test_fraction=0.25)
    assert loaded.image_shape == data.image_shape and loaded.classes == data.classes
    assert loaded.class_names == data.class_names and loaded.name == "data"
    assert len(loaded.train_images) + len(loaded.test_images) == len(data.test_images)
    np.savez(tmp_path / "split.npz", x_train=data.train_images, y_train=data.train_labels,
             x_test=data.test_images, y_test=data.test_labels)
    again = load_npz(tmp_path / "split.npz", class_names=data.class_names)
    assert np.array_equal(again.test_images, data.test_images) and again.classes == data.classes
    with pytest.raises(ValueError, match=r"images='pixels' is not an array of .*; allowed: one of \['class_names', "
                                         r"'images', 'labels'\]"):
        load_npz(path, images="pixels")


@pytest.mark.parametrize("name, mode", [("digits", "L"), ("shapes", "RGB")])
def test_image_folder_round_trip(cases, name, mode, tmp_path):
    from PIL import Image

    data, _ = cases[name]
    images, labels = data.test_images[:40], data.test_labels[:40]
    for i, (image, label) in enumerate(zip(images, labels)):
        folder = tmp_path / data.class_names[label]
        folder.mkdir(exist_ok=True)
        Image.fromarray(image[..., 0] if mode == "L" else image).save(folder / f"{i:03d}.png")
    loaded = load_image_folder(tmp_path, test_fraction=0.25)
    present = sorted({data.class_names[k] for k in labels})
    assert loaded.class_names == tuple(present) and loaded.image_shape == data.image_shape
    pixels = np.concatenate([loaded.train_images, loaded.test_images])
    got = {(loaded.class_names[k], img.tobytes()) for k, img in zip(
        np.concatenate([loaded.train_labels, loaded.test_labels]), pixels)}
    assert got == {(data.class_names[k], img.tobytes()) for k, img in zip(labels, images)}  # PNG is lossless


# --- model loaders and recipes ----------------------------------------------------------------------

@pytest.mark.parametrize("name", ["digits", "shapes"])
def test_every_loader_format_gives_the_same_float_model(cases, files, name):
    data, model = cases[name]
    keras_pred = wb.evaluate_keras(model, data.test_images, data.test_labels).predictions
    for fmt, source in load_every_format(files, name).items():
        converted = source if fmt == "tflite" else wb.convert(source, "float32")
        result = wb.evaluate(converted, data.test_images, data.test_labels, data.spec, reference=keras_pred)
        assert result.agreement >= 0.99, (fmt, result.agreement)
        assert wb.read_model(converted).outputs[0].shape[-1] == data.classes


@pytest.mark.parametrize("name, fmt", [("digits", "keras"), ("shapes", "frozen_pb")])
def test_every_registered_recipe(cases, files, name, fmt):
    data, _ = cases[name]
    source = load_every_format(files, name)[fmt]
    runs = rt.run_recipes(source, data.test_images, data.test_labels, spec=data.spec,
                          representative=data.train_images[:200], calibration_size=200)
    assert [r.name for r in runs] == list(wb.RECIPES)
    table = rt.recipe_table(runs).set_index("recipe")
    base = table.loc["float32", "accuracy_pct"]
    for run in runs:
        if run.name == "qat-int8":  # a float model: the registry says this recipe is for QAT models
            assert run.outcome.startswith("not run: needs a QAT model") and not run.ok
            continue
        assert run.ok and run.outcome == "ok", (run.name, run.outcome)
        assert run.result.accuracy >= base / 100 - 0.03, (run.name, run.result.accuracy, base)
        assert run.result.confusion.shape == (data.classes, data.classes)
    assert table.loc["legacy-uint8 [ranges=(0,6)]", "input"] == "uint8"
    assert table.loc["int8-ptq [n=200; io=uint8]", "size_kb"] < 0.7 * table.loc["float32", "size_kb"]


def test_qat_models_through_h5_saved_model_and_frozen_pb(digits, shapes, digits_qat_int8, digits_qat_uint8,
                                                         shapes_qat_uint8, tmp_path):
    for tag, (data, model, recipe) in {"digits-int8": (digits, digits_qat_int8, "qat-int8"),
                                       "digits-uint8": (digits, digits_qat_uint8, "legacy-uint8"),
                                       "shapes-uint8": (shapes, shapes_qat_uint8, "legacy-uint8")}.items():
        direct = wb.evaluate(wb.convert(model, recipe), data.test_images, data.test_labels, data.spec)
        model.save(tmp_path / f"{tag}.h5")
        wb.export_saved_model(model, tmp_path / f"{tag}-sm")
        graph = export_frozen_graph(model, tmp_path / f"{tag}.pb")
        sources = {"h5": load_source(tmp_path / f"{tag}.h5"), "saved_model": load_source(tmp_path / f"{tag}-sm"),
                   "frozen_pb": graph}
        for fmt, source in sources.items():
            assert rt.model_kind(source) == "qat", (tag, fmt)
            with warnings.catch_warnings():
                warnings.simplefilter("error", wb.QuantizationWarning)  # no "came out float", no per-channel uint8
                converted = wb.convert(source, recipe, **({"io_type": "uint8"} if recipe == "qat-int8" else {}))
            assert converted.input.dtype == "uint8" and "float32" not in converted.activation_dtypes, (tag, fmt)
            result = wb.evaluate(converted, data.test_images, data.test_labels, data.spec, reference=direct)
            assert result.accuracy >= direct.accuracy - 0.02 and result.agreement >= 0.97, (tag, fmt, result)
    model.save(tmp_path / "qat.keras")
    with pytest.raises(ValueError, match="is a QAT model in the .keras format, which tfmot cannot load back"):
        load_source(tmp_path / "qat.keras")


def test_recipe_table_of_a_qat_model(digits, digits_qat_uint8):
    runs = {r.name: r for r in rt.run_recipes(digits_qat_uint8, digits.test_images, digits.test_labels,
                                              representative=digits.train_images[:100],
                                              recipes=["float32", "qat-int8", "legacy-uint8"])}
    assert rt.recipe_parameters("legacy-uint8", "qat") == {} and rt.recipe_parameters("qat-int8", "float") is None
    assert runs["legacy-uint8"].ok and runs["legacy-uint8"].converted.input.dtype == "uint8"
    assert runs["legacy-uint8"].result.accuracy >= 0.9 and runs["float32"].ok
    assert runs["qat-int8"].ok and "CONV_2D" in runs["qat-int8"].outcome  # no input range: the first conv stays float


@pytest.mark.parametrize("name", ["digits", "shapes"])
def test_the_three_input_types_of_evaluate(cases, name):
    data, model = cases[name]
    reference = wb.evaluate_keras(model, data.test_images, data.test_labels, data.spec)
    rep = data.train_images[:200]
    for recipe, params, dtype in [("float32", {}, "float32"), ("int8-ptq", {"io_type": "uint8"}, "uint8"),
                                  ("int8-ptq", {"io_type": "int8"}, "int8")]:
        converted = wb.convert(model, recipe, representative=rep, **params) if recipe != "float32" else \
            wb.convert(model, recipe)
        assert converted.input.dtype == dtype and converted.output.shape[-1] == data.classes
        result = wb.evaluate(converted, data.test_images, data.test_labels, data.spec, reference=reference)
        assert result.accuracy >= reference.accuracy - 0.03 and result.agreement >= 0.95, (dtype, result)
        if dtype == "int8":  # the model's own scale and zero point: [0, 1] over int8 is 1/255, -128
            assert converted.input.scale == pytest.approx(1 / 255, rel=1e-3) and converted.input.zero_point == -128


# --- clear errors -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def shapes_uint8(shapes_qat_uint8):
    return wb.convert(shapes_qat_uint8, "legacy-uint8")


def _entry_points(shapes_float, shapes_qat_uint8, shapes_uint8):
    return {
        "evaluate": lambda x, y: wb.evaluate(shapes_uint8, x, y),
        "evaluate_keras": lambda x, y: wb.evaluate_keras(shapes_float, x, y),
        "sweep": lambda x, y: sw.sweep(shapes_qat_uint8, {"mean": [0.0]}, x, y, executor=None, cache=False,
                                       progress=False),
        "explorer": lambda x, y: widgets.StatsExplorer(shapes_qat_uint8, x, y, live_size=10),
        "recipe_table": lambda x, y: rt.run_recipes(shapes_float, x, y, recipes=["float32"]),
        "layer_errors": lambda x, y: layer_errors(shapes_uint8, shapes_qat_uint8, x),
    }


@pytest.mark.parametrize("entry", ["evaluate", "evaluate_keras", "sweep", "explorer", "recipe_table",
                                   "layer_errors"])
def test_images_of_the_wrong_shape_are_one_clear_error(entry, shapes_float, shapes_qat_uint8, shapes_uint8, digits):
    call = _entry_points(shapes_float, shapes_qat_uint8, shapes_uint8)[entry]
    with pytest.raises(ValueError, match=r"images has shape \(20, 8, 8, 1\): images of \(8, 8, 1\), but the model "
                                         r"reads \(32, 32, 3\); allowed: \(N, 32, 32, 3\)"):
        call(digits.test_images[:20], digits.test_labels[:20] % 5)


@pytest.mark.parametrize("entry", ["evaluate", "evaluate_keras", "sweep", "explorer"])
def test_labels_out_of_range_are_one_clear_error(entry, shapes_float, shapes_qat_uint8, shapes_uint8, shapes):
    call = _entry_points(shapes_float, shapes_qat_uint8, shapes_uint8)[entry]
    labels = shapes.test_labels[:20].copy()
    labels[3] = 7
    with pytest.raises(ValueError, match=r"labels contains 7; allowed: class indices 0..4 \(the model has 5 classes\)"):
        call(shapes.test_images[:20], labels)


def test_a_data_set_refuses_labels_beyond_its_class_names(shapes):
    with pytest.raises(ValueError, match=r"test_labels contains 5; allowed: class indices 0..4"):
        Dataset(shapes.train_images, shapes.train_labels, shapes.test_images, shapes.test_labels + 1,
                class_names=SHAPE_CLASSES)


def test_frozen_graph_mistakes_are_explained(files):
    graph = files["digits"]["graph"]
    with pytest.raises(ValueError, match=r"input_arrays: 'input' is not a node of frozen.pb; allowed: 'image'"):
        load_source(graph.path, input_arrays="input", output_arrays=graph.output_arrays)
    with pytest.raises(ValueError, match=r"input_shapes=1,28,28,1 does not match input 'image' of frozen.pb, "
                                         r"which is 1,8,8,1"):
        load_source(graph.path, input_arrays="image", output_arrays=graph.output_arrays, input_shapes="1,28,28,1")
    wrong_shape = FrozenGraph(graph.path, graph.input_arrays, graph.output_arrays, ((1, 28, 28, 1),))
    with pytest.raises(QuantizationError) as info:  # made by hand, past load_source's check: the converter's words
        wb.convert(wrong_shape, "float32")
    assert info.value.key == "input-shape-mismatch" and "(1, 8, 8, 1) to [1, 28, 28, 1]" in str(info.value)
    with pytest.raises(QuantizationError) as info:
        wb.convert(FrozenGraph(graph.path, ("nope",), graph.output_arrays, graph.input_shapes), "float32")
    assert info.value.key == "unknown-array"


# --- sweeps and explorers -----------------------------------------------------------------------------

def test_mean_std_sweep_on_both_models(digits, shapes, digits_qat_uint8, shapes_qat_uint8, files):
    for data, model in [(digits, digits_qat_uint8), (shapes, shapes_qat_uint8)]:
        frame = sw.sweep(model, sw.grid(mean=[0.0, 127.5], std=[1.0, 255.0]), data.test_images, data.test_labels,
                         spec=data.spec, executor=None, cache=False, progress=False)
        best = sw.best_point(frame)
        assert (best["mean"], best["std"]) == (0.0, 255.0), frame
        wrong = frame[(frame["mean"] == 0.0) & (frame["std"] == 1.0)]["accuracy"].item()
        assert wrong <= best["accuracy"] - 0.3 and not frame["stats_ignored"].any()
        direct = wb.evaluate(wb.convert(sw.sweep_source(model), "legacy-uint8", mean=127.5, std=255.0),
                             data.test_images, data.test_labels)
        point = sw.sweep(model, [{"mean": 127.5, "std": 255.0}], data.test_images, data.test_labels,
                         executor=None, cache=False, progress=False)
        assert point.loc[0, "accuracy"] == direct.accuracy


def test_default_range_sweep_from_every_convertible_format(cases, files):
    for name, (data, model) in cases.items():
        sources = load_every_format(files, name)
        frames = {}
        for fmt in ("keras", "saved_model", "frozen_pb"):
            frames[fmt] = sw.sweep(sources[fmt], {"default_ranges": [(0.0, 0.5), (0.0, 6.0)]}, data.test_images,
                                   data.test_labels, spec=data.spec, executor=None, cache=False, progress=False)
            acc = list(frames[fmt]["accuracy"])
            assert not frames[fmt]["came_out_float"].any() and frames[fmt]["error"].eq("").all(), (name, fmt)
            assert acc[1] >= acc[0] + 0.05, (name, fmt, acc)  # too narrow a guess clips
        assert frames["keras"]["accuracy"][1] == pytest.approx(frames["saved_model"]["accuracy"][1], abs=0.01)
    with pytest.raises(ValueError, match="nothing left to convert"):
        sw.sweep(sources["tflite"], {"default_ranges": [(0.0, 6.0)]}, data.test_images, data.test_labels,
                 executor=None, cache=False, progress=False)


def test_calibration_size_sweep_on_digits(digits, digits_float, tmp_path):
    frame = sw.sweep(digits_float, {"calibration_size": [1, 100]}, digits.test_images, digits.test_labels,
                     recipe="int8-ptq", representative=digits.train_images[:100], executor=None, cache=tmp_path,
                     progress=False)
    assert frame["error"].eq("").all() and frame["accuracy"].between(0.2, 1.0).all()
    assert frame.loc[1, "accuracy"] >= 0.9


def test_bits_sweep_on_the_mobilenet_and_on_a_build_function(digits, shapes, digits_qat_int8):
    frame = sw.sweep_training(digits, {"bits": [8]}, model="mobilenet", config=DIGITS_CONFIG,
                              qat=QatConfig(scheme="int8"), progress=False)
    expected = wb.evaluate_keras(digits_qat_int8, digits.test_images, digits.test_labels).accuracy
    assert frame.loc[0, "model"] == "mobilenet" and frame.loc[0, "accuracy"] == expected  # the cached QAT model
    built = sw.sweep_training(shapes, {"bits": [4, 8]}, model=user_net, name="shapes-user-net",
                              config=SHAPES_CONFIG, qat=QatConfig(scheme="uint8-legacy"), progress=False)
    assert list(built["bits"]) == [4, 8] and set(built["model"]) == {"shapes-user-net"}
    acc = dict(zip(built["bits"], built["accuracy"]))
    assert acc[8] >= 0.95 and acc[4] <= acc[8], acc  # 4 simulated bits cost this small net accuracy
    with pytest.raises(ValueError, match=r"model\(\) reads \(32, 32, 3\) and has 5 outputs, but data='digits'"):
        sw.sweep_training(digits, {"bits": [8]}, model=user_net, progress=False)


def test_explorer_engines_on_both_models(digits, shapes, digits_float, shapes_qat_uint8, files):
    live = 100
    engine = widgets.StatsExplorer(shapes_qat_uint8, shapes.test_images, shapes.test_labels, spec=shapes.spec,
                                   live_size=live)
    folder = sw.sweep_source(shapes_qat_uint8)
    direct = wb.evaluate(wb.convert(folder, "legacy-uint8", mean=0, std=255), shapes.test_images[:live],
                         shapes.test_labels[:live])
    assert engine.best.accuracy == direct.accuracy
    view = engine.update(127.5, 127.5)
    assert view.accuracy < engine.best.accuracy and "accuracy now" in engine.readout()
    assert engine.png()[:4] == b"\x89PNG"
    graph = load_every_format(files, "digits")["frozen_pb"]
    ranges = widgets.RangeExplorer(graph, digits.test_images, digits.test_labels, spec=digits.spec, live_size=live)
    narrow = ranges.update(0.0, 0.5)
    wide = ranges.update(0.0, 6.0)
    assert not wide.came_out_float and wide.accuracy >= narrow.accuracy + 0.05
    ui = widgets.stats_explorer(shapes_qat_uint8, shapes.test_images, shapes.test_labels,
                                spec=wb.InputSpec(0.0, 1.0), live_size=live)
    ui.controls["mean"].value = 127.5
    assert ui.engine.view.requested.mean == 127.5
    # a float model: the stats define its input once default ranges fill in the activations
    float_stats = widgets.StatsExplorer(digits_float, digits.test_images, digits.test_labels, live_size=live,
                                        default_ranges=(0.0, 6.0))
    direct = wb.evaluate(wb.convert(sw.sweep_source(digits_float), "legacy-uint8", mean=0, std=255,
                                    default_ranges=(0.0, 6.0)), digits.test_images[:live], digits.test_labels[:live])
    assert float_stats.best.accuracy == direct.accuracy and not float_stats.best.converted.came_out_float
    assert float_stats.update(0.0, 1.0).accuracy <= float_stats.best.accuracy - 0.3
    no_ranges = widgets.StatsExplorer(digits_float, digits.test_images, digits.test_labels, live_size=live)
    assert no_ranges.best.converted.came_out_float and "came out float" in no_ranges.readout()


# --- per-layer error, plots, graphs ---------------------------------------------------------------------

def test_per_layer_error_on_the_mobilenet_and_the_user_net(digits, shapes, digits_float, digits_qat_uint8,
                                                           shapes_float, files):
    int8 = wb.convert(digits_float, "int8-ptq", representative=digits.train_images[:200], io_type="uint8")
    from_keras = layer_errors(int8, digits_float, digits.test_images[:100])
    from_file = layer_errors(int8, files["digits"]["folder"] / "model.keras", digits.test_images[:100])
    names = [e.layer for e in from_keras.layers]
    assert names == ["relu0", "dw1_relu", "pw1_relu", "dw2_relu", "pw2_relu", "dw3_relu", "pw3_relu", "pool",
                     "probs"]
    assert [e.snr_db for e in from_file.layers] == pytest.approx([e.snr_db for e in from_keras.layers])
    ops = {e.layer: e.op for e in from_keras.layers}
    assert ops["dw1_relu"] == "DEPTHWISE_CONV_2D" and ops["pw1_relu"] == "CONV_2D" and ops["probs"] == "SOFTMAX"
    assert all(e.snr_db > 15 for e in from_keras.layers), from_keras.table()  # the softmax too, behind QUANTIZE
    uint8 = layer_errors(wb.convert(digits_qat_uint8, "legacy-uint8"), digits_qat_uint8, digits.test_images[:100])
    assert {e.layer.removeprefix("quant_") for e in uint8.layers} >= {"relu0", "dw3_relu", "pw3_relu", "probs"}
    assert all(e.dtype == "uint8" for e in uint8.layers)
    user = layer_errors(wb.convert(shapes_float, "int8-ptq", representative=shapes.train_images[:100]),
                        shapes_float, shapes.test_images[:50])
    assert [e.layer for e in user.layers] == ["c1", "c2", "gap", "out"]
    ax = wb.layer_error.plot_layer_errors({"int8": from_keras, "uint8": uint8})
    assert ax.figure.get_size_inches()[0] > 8
    with pytest.raises(ValueError, match="no Keras layers to compare with"):
        layer_errors(int8, files["digits"]["graph"], digits.test_images[:10])


def test_plots_for_five_classes_and_colour_pixels(shapes, shapes_float, shapes_uint8):
    float_result = wb.evaluate(wb.convert(shapes_float, "float32"), shapes.test_images, shapes.test_labels)
    uint8_result = wb.evaluate(shapes_uint8, shapes.test_images, shapes.test_labels)
    figure = wb.plots.confusion_pair(float_result.confusion, uint8_result.confusion, class_names=shapes.class_names)
    assert [t.get_text() for t in figure.axes[1].get_yticklabels()] == list(SHAPE_CLASSES)
    ax = wb.plots.input_histogram(wb.InputStats(0, 255), shapes.test_images, (0.0, 1.0))
    assert "0 wasted" in ax.get_title() and "0.0 % of pixels clipped" in ax.get_title()


def test_fake_quant_ranges_and_input_codes_of_the_mobilenet(digits, digits_qat_int8):
    table = wb.input_codes.fake_quant_table(digits_qat_int8)
    rows = {(row.layer, row.quantizer): row for row in table.itertuples()}
    (learned,) = [row for row in table.itertuples() if row.quantizer == "input"]  # the learned input range
    assert learned.min == pytest.approx(0.0, abs=0.02) and learned.max == pytest.approx(1.0, abs=0.02)
    assert rows[("conv0", "kernel")].channels == 16 and rows[("pw3", "kernel")].channels == 64  # per channel
    assert rows[("dw1", "depthwise_kernel")].channels == 1 and ("dw1_relu", "output") in rows
    usage = wb.input_codes.code_usage(wb.InputStats(127.5, 127.5), (0.0, 1.0), digits.test_images)
    assert usage.wasted_codes == 128 and usage.clipped_fraction > 0.5  # the black background reads as -1


def test_graph_views_of_the_users_files(digits, shapes, digits_float, shapes_float, files):
    check = wb.viewer.depthwise_equivalence(digits_float, digits.test_images[:20])
    assert check.layer == "conv0" and check.depth_multiplier == 16 and check.equivalent
    with pytest.raises(ValueError, match="reads 3 channels; allowed: a Conv2D on a 1-channel input"):
        wb.viewer.depthwise_equivalence(shapes_float, shapes.test_images[:5])
    sources = load_every_format(files, "digits")
    assert wb.viewer.model_file(sources["frozen_pb"]) == files["digits"]["graph"].path
    frozen = wb.viewer.model_file(SavedModel(files["digits"]["folder"] / "saved_model", "serving_default"))
    assert frozen.suffix == ".pb" and frozen.stat().st_size > 0
    with pytest.raises(ValueError, match="no 'other' signature"):
        wb.viewer.model_file(SavedModel(files["digits"]["folder"] / "saved_model", "other"))
    table = wb.viewer.tensor_table(wb.convert(digits_float, "int8-ptq", representative=digits.train_images[:50]))
    assert {"CONV_2D", "DEPTHWISE_CONV_2D", "MEAN", "FULLY_CONNECTED"} <= set(table["op"])


def test_the_offline_example_files_load_back_as_a_user_would(digits, digits_float, tmp_path):
    from workbench.core.examples import digits_example

    files = digits_example(tmp_path)
    assert files.model.suffix == ".keras" and files.data.suffix == ".npz"
    model, data = load_source(files.model), load_npz(files.data)
    assert np.array_equal(data.test_images, digits.test_images) and data.class_names == digits.class_names
    assert wb.evaluate_keras(model, data.test_images, data.test_labels).accuracy == \
        wb.evaluate_keras(digits_float, digits.test_images, digits.test_labels).accuracy
    assert digits_example(tmp_path) == files  # reused, not rewritten


def test_your_model_notebook_without_labels():
    """08_your_model on the digits stand-in's images with no labels: every recipe measured against the float model,
    the plots and sweeps drawn by agreement, the right stats and ReLU6's range the points that keep it."""
    from test_notebooks import NOTEBOOK_DIR, execute

    r = execute(NOTEBOOK_DIR / "08_your_model.ipynb",
                {"epochs": 30, "calibration_size": 100, "live_size": 50, "grid_size": 2, "range_maxes": [0.5, 6],
                 "layer_images": 50, "show_widgets": False, "show_netron": False, "labels_key": None},
                {"labelled": "data.labelled", "baseline": "baseline",
                 "table": "table[['recipe', 'accuracy_pct', 'agreement', 'agreement_low', 'snr_db']].to_dict('records')",
                 "grid": "grid[['mean', 'std', 'accuracy', 'agreement']].to_dict('records')",
                 "ranges": "default_ranges[['default_max', 'agreement']].to_dict('records')",
                 "ylabel": "wb.plots.accuracy_bars(table[table[metric].notna()], baseline, accuracy=metric).get_xlabel()"})
    assert r["labelled"] is False and r["baseline"] == 1.0
    rows = {row["recipe"].split(" [")[0]: row for row in r["table"]}
    assert all(row["accuracy_pct"] != row["accuracy_pct"] for row in rows.values())  # NaN: no labels, no accuracy
    assert rows["float32"]["agreement"] == 1.0 and rows["float32"]["snr_db"] == float("inf")
    assert 0.9 < rows["float32"]["agreement_low"] < 1.0  # the exact interval of 359 agreements out of 359
    assert all(row["snr_db"] < 80 for name, row in rows.items() if name != "float32" and row["snr_db"] == row["snr_db"])
    best = max(r["grid"], key=lambda row: row["agreement"])
    assert (best["mean"], best["std"]) == (0.0, 255.0) and best["agreement"] > 0.95
    assert all(row["accuracy"] != row["accuracy"] for row in r["grid"])
    ranges = {row["default_max"]: row["agreement"] for row in r["ranges"]}
    assert ranges[6.0] > ranges[0.5] + 0.3
    assert r["ylabel"] == "agreement with the float model (%)"
