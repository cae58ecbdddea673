"""The user's data and model, at the core: data-set loaders, checks, model sources, the built-in architectures."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from workbench.core import data as D
from workbench.core import models, sources


def _blocks(n: int = 40, classes: int = 5, shape=(12, 10, 3)) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    labels = np.arange(n) % classes
    images = rng.integers(0, 40, (n, *shape)).astype(np.uint8)
    for i, label in enumerate(labels):
        images[i, :, :, label % shape[2]] += np.uint8(100 + 20 * label)
    return images, labels


def test_dataset_knows_its_shape_classes_and_names():
    images, labels = _blocks()
    ds = D.split(images, labels, 0.25, class_names=("a", "b", "c", "d", "e"), spec=D.InputSpec(-1, 1))
    assert ds.image_shape == (12, 10, 3) and ds.classes == 5 and ds.class_names == ("a", "b", "c", "d", "e")
    assert len(ds.test_images) == 10 and len(ds.train_images) == 30
    assert sorted(np.concatenate([ds.train_labels, ds.test_labels]).tolist()) == sorted(labels.tolist())
    small = ds.subset(train=5, test=3)
    assert (len(small.train_images), len(small.test_images)) == (5, 3) and small.class_names == ds.class_names
    default = D.Dataset(images, labels, images[:4], labels[:4])
    assert default.class_names == ("0", "1", "2", "3", "4")


@pytest.mark.parametrize("kwargs, message", [
    ({"train_labels": np.full(40, 7)}, r"train_labels contains 7; allowed: class indices 0..4 \(the model has 5"),
    ({"test_labels": np.full(4, -1)}, r"test_labels contains -1; allowed: class indices 0..4"),
    ({"test_images": np.zeros((4, 8, 8, 3), np.uint8)}, r"test_images has shape \(4, 8, 8, 3\).*reads \(12, 10, 3\)"),
    ({"train_images": np.zeros((40, 12, 10, 3), np.float32)}, r"train_images has dtype float32; allowed: uint8"),
    ({"class_names": ("a", "a", "b", "c", "d")}, r"class_names=.* repeats a name"),
])
def test_dataset_refuses_inconsistent_parts(kwargs, message):
    images, labels = _blocks()
    parts = {"train_images": images, "train_labels": labels, "test_images": images[:4], "test_labels": labels[:4],
             "class_names": ("a", "b", "c", "d", "e"), **kwargs}
    with pytest.raises(ValueError, match=message):
        D.Dataset(**parts)


def test_npz_loader_named_arrays_and_errors(tmp_path):
    images, labels = _blocks()
    path = tmp_path / "mine.npz"
    np.savez(path, pics=images, y=labels)
    ds = D.load_npz(path, images="pics", labels="y", input_range=(-1, 1))
    assert ds.image_shape == (12, 10, 3) and ds.spec == D.InputSpec(-1, 1) and ds.name == "mine"
    with pytest.raises(ValueError, match=r"images='images' is not an array of .*mine.npz'; allowed: one of \['pics', 'y'\]"):
        D.load_npz(path)
    with pytest.raises(ValueError, match=r"does not exist"):
        D.load_npz(tmp_path / "missing.npz")
    np.savez(tmp_path / "bad.npz", images=images, labels=labels + 3)
    # labels 3..7 for five classes: an out-of-range label is named, with the range allowed
    with pytest.raises(ValueError, match=r"^(train|test)_labels contains [5-7]; "
                                         r"allowed: class indices 0\.\.4 \(the model has 5 classes\)$"):
        D.load_npz(tmp_path / "bad.npz", class_names=("a", "b", "c", "d", "e"))


def test_one_npz_reader_for_the_library_and_the_command_line(tmp_path):
    from workbench.cli import inputs

    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    for name in ("junk.npz", "missing.npz"):
        with pytest.raises(ValueError) as library:
            D.load_npz(tmp_path / name)
        with pytest.raises(ValueError) as command_line:
            inputs.samples("--data", tmp_path / name)
        assert str(library.value).removeprefix("data=") == str(command_line.value).removeprefix("--data=")
    with pytest.raises(ValueError, match=r"junk.npz' is not a readable .npz \(ValueError: .*\); allowed: a file "):
        D.read_npz("data", tmp_path / "junk.npz")
    np.savez(tmp_path / "ok.npz", a=np.arange(3))
    assert list(D.read_npz("data", tmp_path / "ok.npz")) == ["a"]


def test_image_folder_loader(tmp_path):
    from PIL import Image

    images, labels = _blocks(20, 2, (6, 6, 3))
    for i, (image, label) in enumerate(zip(images, labels)):
        folder = tmp_path / ("cat" if label == 0 else "dog")
        folder.mkdir(exist_ok=True)
        Image.fromarray(image).save(folder / f"{i}.png")
    ds = D.load_image_folder(tmp_path, test_fraction=0.5)
    assert ds.class_names == ("cat", "dog") and ds.image_shape == (6, 6, 3)
    every = np.concatenate([ds.train_images, ds.test_images])
    assert {tuple(im.reshape(-1)) for im in every} == {tuple(im.reshape(-1)) for im in images}  # lossless PNG
    gray = D.load_image_folder(tmp_path, size=(4, 5), color="L")
    assert gray.image_shape == (4, 5, 1)
    with pytest.raises(ValueError, match=r"has 0 class subfolder"):
        D.load_image_folder(tmp_path / "cat")


def test_digits_is_offline_8x8_with_10_classes():
    ds = D.load_digits()
    assert ds.image_shape == (8, 8, 1) and ds.classes == 10 and ds.name == "digits"
    assert len(ds.train_images) + len(ds.test_images) == 1797 and ds.train_images.max() == 255


@pytest.mark.parametrize("shape, classes", [((8, 8, 1), 10), ((32, 32, 3), 5), ((28, 28, 1), 10), ((5, 7, 2), 3)])
def test_builtin_architectures_take_any_shape_and_class_count(shape, classes):
    for model in (models.lenet(input_shape=shape, classes=classes), models.mobilenet_style(shape, classes)):
        assert model.input_shape == (None, *shape) and model.output_shape == (None, classes)
    with pytest.raises(ValueError, match=r"classes=1; allowed: a whole number >= 2"):
        models.mobilenet_style(shape, 1)
    with pytest.raises(ValueError, match=r"input_shape=\(8, 8\); allowed: \(height, width, channels\)"):
        models.lenet(input_shape=(8, 8))


def test_lenet_on_mnist_keeps_its_classic_shape():
    assert models.lenet().count_params() == 61706  # conv 6, conv 16 valid, 120, 84, 10


def test_fold_batchnorm_is_the_same_function_without_bn():
    model = models.mobilenet_style((16, 16, 3), 4)
    rng = np.random.default_rng(0)
    for layer in model.layers:
        if type(layer).__name__ == "BatchNormalization":
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([gamma * rng.uniform(0.5, 2, gamma.shape), beta + rng.normal(0, 0.3, beta.shape),
                               mean + rng.normal(0, 0.3, mean.shape), var * rng.uniform(0.5, 2, var.shape)])
    folded = models.fold_batchnorm(model)
    assert not models.has_batchnorm(folded) and models.has_batchnorm(model)
    x = rng.uniform(0, 1, (6, 16, 16, 3)).astype(np.float32)
    from workbench.core.keras_compat import keras

    probe = [keras.Model(m.input, m.get_layer("pw3_relu").output) for m in (model, folded)]
    ref, out = (p(x).numpy() for p in probe)
    assert np.abs(ref).max() > 0.1
    np.testing.assert_allclose(out, ref, atol=1e-5 * np.abs(ref).max() + 1e-6)


def test_sources_refuse_what_they_cannot_use(tmp_path, float_model):
    from workbench.core.converters import export_frozen_graph

    graph = export_frozen_graph(float_model, tmp_path / "lenet.pb")
    assert graph.input_shapes == ((1, 28, 28, 1),)
    found = sources.load_source(graph.path, input_arrays="image:0", output_arrays=list(graph.output_arrays))
    assert found.input_arrays == ("image",) and found.input_shapes == ((1, 28, 28, 1),)
    with pytest.raises(ValueError, match=r"input_arrays: 'nope' is not a node of lenet.pb; allowed: 'image'"):
        sources.load_source(graph.path, input_arrays="nope", output_arrays=graph.output_arrays)
    with pytest.raises(ValueError, match=r"input_shapes='1,28,28,1:1,2' gives 2 shape\(s\) for 1 input"):
        sources.load_source(graph.path, input_arrays="image", output_arrays=graph.output_arrays,
                            input_shapes="1,28,28,1:1,2")
    with pytest.raises(ValueError, match=r"output_arrays=None; allowed: one or more tensor names"):
        sources.load_source(graph.path, input_arrays="image")
    (tmp_path / "junk.pb").write_bytes(b"\x00not a graph at all\xff" * 3)
    with pytest.raises(ValueError, match=r"is not a frozen GraphDef"):
        sources.load_source(tmp_path / "junk.pb", input_arrays="a", output_arrays="b")
    (tmp_path / "m.onnx").write_bytes(b"x")
    with pytest.raises(ValueError, match=r"has suffix '.onnx'; allowed: .keras, .h5, .pb, .tflite"):
        sources.load_source(tmp_path / "m.onnx")
    (tmp_path / "broken.keras").write_bytes(b"PK not a zip")
    with pytest.raises(ValueError, match=r"could not be loaded as a Keras model"):
        sources.load_source(tmp_path / "broken.keras")


def test_frozen_graph_converts_like_the_keras_model(tmp_path, float_model, test_set):
    from workbench import convert, evaluate
    from workbench.core.converters import export_frozen_graph

    graph = export_frozen_graph(float_model, tmp_path / "lenet.pb")
    images, labels = test_set
    for recipe, params in (("float32", {}), ("legacy-uint8", {"default_ranges": (0.0, 6.0)})):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the float model's legacy conversion notes are not under test
            from_graph = convert(graph, recipe, **params)
            from_keras = convert(float_model, recipe, **params)
        assert from_graph.input.dtype == from_keras.input.dtype
        a = evaluate(from_graph, images, labels)
        b = evaluate(from_keras, images, labels)
        assert np.mean(a.predictions == b.predictions) > 0.99, recipe



def test_is_qat_reads_every_kind_of_source(tmp_path, float_model, qat_int8):
    import warnings

    from workbench import convert
    from workbench.core.converters import export_frozen_graph, export_saved_model
    from workbench.core.recipe_table import model_kind

    for tag, model, qat in (("float", float_model, False), ("qat", qat_int8, True)):
        h5, keras_file = tmp_path / f"{tag}.h5", tmp_path / f"{tag}.keras"
        model.save(h5)
        model.save(keras_file)
        folder = export_saved_model(model, tmp_path / f"{tag}-sm")
        graph = export_frozen_graph(model, tmp_path / f"{tag}.pb")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            as_float = convert(model, "float32")  # a QAT model's fake-quant stays, as QUANTIZE -> DEQUANTIZE
        (tmp_path / f"{tag}.tflite").write_bytes(as_float.tflite)
        kinds = {"Keras model": model, ".h5": h5, ".keras": keras_file, "SavedModel folder": folder,
                 "SavedModel folder (str)": str(folder), "SavedModel": sources.SavedModel(folder),
                 "saved_model.pb": folder / "saved_model.pb", "FrozenGraph": graph, "frozen .pb": graph.path,
                 ".tflite bytes": as_float.tflite, ".tflite file": tmp_path / f"{tag}.tflite",
                 "ConvertedModel": as_float}
        for kind, source in kinds.items():
            assert sources.is_qat(source) is qat, (tag, kind)
        assert model_kind(folder) == ("qat" if qat else "float")
    # a QAT model converted to integers is a quantized model, no longer one to train or convert as QAT
    assert not sources.is_qat(convert(qat_int8, "qat-int8"))
    assert not sources.is_qat(tmp_path / "missing.h5") and not sources.is_qat(object())
    with pytest.raises(ValueError, match=r"recipe 'qat-int8' needs a QAT model"):
        convert(tmp_path / "float-sm", "qat-int8")  # the same answer for a folder as for the Keras model
