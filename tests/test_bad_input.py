"""Bad input and bad bytes: the workbench's own clear error, never a crash.

What each check guarantees: bytes whose structure is damaged (cut short, without the ``TFL3`` identifier, a root
offset past the end) are always the workbench's ValueError, never a run; any other bytes (bit flips, random bytes)
are that error or a run that returns one score row per image, never another exception or a crash. A bit flip in a
weight gives a model that runs and scores differently: bytes alone cannot tell that from a real model, so no check
here claims it is caught. Bad arrays into ``evaluate`` are refused unless they are a well-formed batch."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workbench import convert, evaluate, read_model
from workbench.core import litert
from workbench.core.stats import stats_for_range
from workbench.core.train import QatConfig

TRIED = {"damaged": 0, "bytes": 0, "evaluate": 0}
NOT_A_MODEL = r"^model bytes (of length \d+ are not a TFLite flatbuffer|are not a TFLite flatbuffer \(no 'TFL3' identifier" \
              r"|could not be read as a TFLite model \()"


@pytest.mark.parametrize("threads, message", [
    (10**5, r"num_threads=100000 is out of range; allowed: a whole number in \[1, 64\]"),
    (-1, r"num_threads=-1 is out of range; allowed: a whole number in \[1, 64\]"),
    (0, r"num_threads=0 is out of range"),
    (2.5, r"num_threads=2.5 is not a whole number"),
])
def test_thread_counts_are_checked_before_litert(float_tflite, test_set, threads, message):
    with pytest.raises(ValueError, match=message):
        evaluate(float_tflite, test_set[0][:4], test_set[1][:4], num_threads=threads)


@pytest.mark.parametrize("value, message", [
    ("no", r"learned_input_range='no'; allowed: True, False or None"),
    (1, r"learned_input_range=1; allowed: True, False or None"),
])
def test_qat_config_takes_no_truthy_stand_ins(value, message):
    with pytest.raises(ValueError, match=message):
        QatConfig("uint8-legacy", learned_input_range=value)


@pytest.mark.parametrize("ranges, message", [
    ((3.0, 3.0), r"min >= max"),
    ((0.0, float("nan")), r"default_ranges\[1\] \(max\)=nan is not finite"),
    ((-1e30, 1e30), r"default_ranges\[0\] \(min\)=-1e\+30 is out of range; allowed: a finite number in \[-1e\+06, 1e\+06\]"),
])
def test_degenerate_default_ranges_are_refused(float_model, ranges, message):
    with pytest.raises(ValueError, match=message):
        convert(float_model, "legacy-uint8", default_ranges=ranges)


def test_stats_for_range_edges():
    assert str(stats_for_range(0, 1)) == "InputStats(mean=0.0, std=255.0)"  # not -0.0
    with pytest.raises(ValueError, match=r"input range=\(0.5, 1\) does not contain 0.0.*allowed: lo <= 0 <= hi"):
        stats_for_range(0.5, 1)


def test_a_corrupt_saved_model_is_named_as_such(tmp_path):
    from workbench.core import sources

    folder = tmp_path / "sm"
    folder.mkdir()
    (folder / "saved_model.pb").write_bytes(b"\x08\x01garbage that is not a SavedModel proto" * 4)
    with pytest.raises(ValueError, match=r"could not be read as a SavedModel"):
        sources.load_source(folder)
    with pytest.raises(ValueError, match=r"saved_model.pb could not be read as a SavedModel"):
        convert(folder, "legacy-uint8")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_damaged_structure_is_always_an_error_never_a_run(float_tflite, data):
    """Cut short anywhere, another file identifier, or a root table offset at or past the end: both reading and
    running the bytes raise the workbench's ValueError, every time."""
    good = float_tflite.tflite
    kind = data.draw(st.sampled_from(["truncate", "identifier", "root offset"]))
    if kind == "truncate":
        blob = good[: data.draw(st.integers(0, len(good) - 1))]
    elif kind == "identifier":
        blob = good[:4] + data.draw(st.binary(min_size=4, max_size=4).filter(lambda b: b != b"TFL3")) + good[8:]
    else:
        blob = struct.pack("<I", data.draw(st.integers(len(good), 2**32 - 1))) + good[4:]
    TRIED["damaged"] += 1
    with pytest.raises(ValueError, match=NOT_A_MODEL):
        read_model(blob)
    with pytest.raises(ValueError, match=NOT_A_MODEL):
        litert.run(blob, np.zeros((2, 28, 28, 1), np.uint8), batch_size=None)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzzed_tflite_bytes_give_the_workbenchs_error_or_a_result(float_tflite, data):
    """Bit flips, random bytes and random bytes after a valid header: the workbench's ValueError (or its subclass
    QuantizationError), or a run with one score row per image. No other exception escapes, and the process does not
    crash. Whether a run's scores are right is not checked (a flipped weight runs)."""
    from workbench import QuantizationError

    good = float_tflite.tflite
    kind = data.draw(st.sampled_from(["flip", "random", "header"]))
    if kind == "flip":
        blob = bytearray(good)
        for index in data.draw(st.lists(st.integers(0, len(good) - 1), min_size=1, max_size=8)):
            blob[index] ^= 1 << data.draw(st.integers(0, 7))
        blob = bytes(blob)
    elif kind == "random":
        blob = data.draw(st.binary(max_size=4096))
    else:
        blob = good[:4] + b"TFL3" + data.draw(st.binary(min_size=0, max_size=64))
    TRIED["bytes"] += 1
    try:
        info = read_model(blob)
        scores = litert.run(blob, np.zeros((2, *info.inputs[0].shape[1:]), np.uint8), batch_size=None).outputs
    except (ValueError, QuantizationError) as err:  # the workbench's own, each with a message
        assert str(err).strip(), f"{type(err).__name__} without a message"
    else:
        assert scores.shape[0] == 2, scores.shape


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(shape=st.lists(st.integers(0, 30), min_size=1, max_size=5),
       dtype=st.sampled_from([np.uint8, np.int8, np.float32, np.float64, np.int64]),
       nan=st.booleans(), labels_shift=st.integers(-2, 12))
def test_fuzzed_images_and_labels_into_evaluate(float_tflite, shape, dtype, nan, labels_shift):
    images = np.ones(shape, dtype=dtype)
    if nan and np.issubdtype(dtype, np.floating) and images.size:
        images.reshape(-1)[0] = np.nan
    labels = np.full(shape[0] if shape else 0, labels_shift)
    TRIED["evaluate"] += 1
    try:
        result = evaluate(float_tflite, images, labels)
    except ValueError as err:
        assert "allowed" in str(err) or "entries for" in str(err), err
    else:  # only a well-formed batch gets through: uint8 images, or finite numbers of the input's shape
        pixels = images.dtype == np.uint8 and images.shape[1:] in ((28, 28, 1), (28, 28))
        numbers = images.dtype != np.uint8 and images.shape[1:] == (28, 28, 1) and np.isfinite(images).all()
        assert (pixels or numbers) and len(images) and 0 <= labels_shift <= 9
        assert 0.0 <= result.accuracy <= 1.0


FUZZ_TESTS = {"damaged": "test_damaged_structure_is_always_an_error_never_a_run",
              "bytes": "test_fuzzed_tflite_bytes_give_the_workbenchs_error_or_a_result",
              "evaluate": "test_fuzzed_images_and_labels_into_evaluate"}


def test_the_fuzz_tests_ran_their_cases(request):
    """After the fuzz tests above (same module, same process): each one selected in this run drew at least 20
    examples (hypothesis told to draw none, or a strategy that always fails, would leave its count at 0)."""
    print(f"fuzz cases tried: {TRIED}")
    selected = {item.name for item in request.session.items}
    ran = {key: TRIED[key] for key, name in FUZZ_TESTS.items() if name in selected}
    assert all(count >= 20 for count in ran.values()), ran


def test_stats_ignored_names_qat_for_every_source_that_shows_it(qat_uint8_learned, tmp_path):
    import warnings

    from workbench import export_saved_model

    folder = export_saved_model(qat_uint8_learned, tmp_path / "learned")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from_keras = convert(qat_uint8_learned, "legacy-uint8", mean=127.5, std=127.5)
        from_folder = convert(folder, "legacy-uint8", mean=127.5, std=127.5)
    assert from_keras.stats_ignored and from_folder.stats_ignored
    # the folder shows its fake-quant ops (sources.is_qat) as the Keras model shows its tfmot layers
    assert "learned its input range in QAT" in from_keras.warnings[0]
    assert from_folder.warnings == from_keras.warnings


@pytest.mark.parametrize("argv, message", [
    (["--out", "/dev/null/out"], r"^error: --out='/dev/null/out' cannot be used as a folder \(Not a directory\); allowed"),
    (["--cache", "/dev/null"], r"^error: --cache='/dev/null' cannot be used as a folder"),
    (["--seed", "-1"], r"^error: --seed=-1 is out of range; allowed: a whole number >= 0"),
    (["--epochs", "0"], r"^error: --epochs=0 is out of range; allowed: a whole number >= 1"),
    (["--test-size", "0"], r"^error: --test-size=0 is out of range"),
])
def test_demo_flags_are_checked_before_any_training(argv, message, capsys, tmp_path):
    from workbench.cli.main import main

    cache = [] if "--cache" in argv else ["--cache", str(tmp_path / "cache")]
    assert main(["demo", "--no-progress", *cache, *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert re_search(message, err) and "Traceback" not in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "cache" / "models").exists()  # refused up front: nothing was trained


def re_search(pattern: str, text: str) -> bool:
    import re

    return re.search(pattern, text) is not None


def test_legacy_graph_cases_check_their_arguments_before_any_work(mnist, tmp_path):
    from workbench.core.models import lstm_rows
    from workbench.troubleshoot import legacy_graphs
    from workbench.troubleshoot.gallery import GalleryConfig

    cfg = GalleryConfig(train_size=256, eval_size=10)  # 2 QAT steps: nothing is trained before the refusal
    with pytest.raises(ValueError, match=r"delay_steps=2 is out of range; allowed: a whole number in \[1, 1\]"):
        legacy_graphs.quant_delay(mnist, cfg, delay_steps=2)
    with pytest.raises(ValueError, match=r"model layer 'rows' is a Reshape; allowed: InputLayer, Conv2D"):
        legacy_graphs.export_tf1_frozen_graph(lstm_rows(), tmp_path / "lstm.pb")
