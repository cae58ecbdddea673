"""One ModelIO record for every kind of model: Keras, SavedModel, frozen graph, .tflite; several inputs and outputs."""

from pathlib import Path

import pytest

from workbench.core.model_io import ModelIO, TensorSpec, model_io
from workbench.core.sources import FrozenGraph, SavedModel


def test_a_keras_model_with_two_inputs_and_two_outputs_is_described_whole():
    from workbench.core.keras_compat import keras

    image = keras.Input((12, 10, 3), name="image")
    extra = keras.Input((4,), name="extra", dtype="int32")
    flat = keras.layers.Flatten()(image)
    joined = keras.layers.Concatenate()([flat, keras.layers.Lambda(lambda x: keras.backend.cast(x, "float32"))(extra)])
    scores = keras.layers.Dense(7, name="scores")(joined)
    boxes = keras.layers.Dense(4, name="boxes")(joined)
    io = model_io(keras.Model([image, extra], [scores, boxes]))
    assert [(t.shape, t.dtype) for t in io.inputs] == [((None, 12, 10, 3), "float32"), ((None, 4), "int32")]
    assert [t.shape for t in io.outputs] == [(None, 7), (None, 4)]
    assert io.input_shape == (12, 10, 3) and io.image_shape == (12, 10, 3) and io.classes == 7


def test_a_tflite_and_its_source_read_the_same(float_model, float_tflite, uint8_folder):
    keras_io, tflite_io = model_io(float_model), model_io(float_tflite)
    assert tflite_io == model_io(float_tflite.tflite)  # a ConvertedModel and its bytes
    assert tflite_io.inputs[0].shape == (1, 28, 28, 1) and tflite_io.inputs[0].dtype == "float32"
    folder_io = model_io(uint8_folder)  # the SavedModel's serving signature
    assert folder_io == model_io(SavedModel(Path(uint8_folder)))
    for io in (keras_io, tflite_io, folder_io):
        assert (io.image_shape, io.classes) == ((28, 28, 1), 10)
    assert model_io(SavedModel(Path(uint8_folder), "no_such_signature")) == ModelIO()


def test_what_is_not_known_before_loading_is_none(tmp_path):
    graph = FrozenGraph(tmp_path / "g.pb", ("a", "b"), ("out",), ((1, 8, 8, 1), (1, 3)))
    io = model_io(graph)
    assert [t.name for t in io.inputs] == ["a", "b"] and io.image_shape == (8, 8, 1)
    assert io.outputs == (TensorSpec("out"),) and io.classes is None  # a frozen graph's outputs are names only
    assert model_io(FrozenGraph(tmp_path / "g.pb", ("a",), ("out",))).input_shape is None
    for path in (tmp_path / "missing.keras", tmp_path / "missing"):
        assert model_io(path) == ModelIO() and model_io(path).classes is None
    partial = ModelIO((TensorSpec("x", (None, None, None, 3)),), (TensorSpec("y", (None, None)),))
    assert partial.input_shape == (None, None, 3) and partial.image_shape is None and partial.classes is None
    (tmp_path / "junk.tflite").write_bytes(b"not a model")
    with pytest.raises(ValueError, match="TFLite"):
        model_io(tmp_path / "junk.tflite")
