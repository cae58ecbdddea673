"""Offline MNIST and the uint8 input-stats arithmetic."""

from __future__ import annotations

import numpy as np
import pytest

from workbench import InputSpec, InputStats, load_mnist, stats_for_range


def test_packaged_mnist_is_full_and_raw_uint8(mnist):
    assert mnist.train_images.shape == (60000, 28, 28, 1)
    assert mnist.test_images.shape == (10000, 28, 28, 1)
    assert mnist.train_images.dtype == np.uint8
    assert mnist.train_images.max() == 255 and mnist.train_images.min() == 0
    assert set(np.unique(mnist.test_labels)) == set(range(10))
    # Exact uint8 recovery: pixel values are whole numbers, not 256ths rounded.
    assert len(np.unique(mnist.test_images)) > 200


def test_user_npz_is_loaded(tmp_path, mnist):
    path = tmp_path / "mine.npz"
    np.savez(path, x_train=mnist.train_images[:50, ..., 0], y_train=mnist.train_labels[:50],
             x_test=mnist.test_images[:20], y_test=mnist.test_labels[:20])
    data = load_mnist(path)
    assert data.train_images.shape == (50, 28, 28, 1)
    np.testing.assert_array_equal(data.test_labels, mnist.test_labels[:20])


def test_missing_data_file_says_how_to_fix(tmp_path):
    with pytest.raises(ValueError, match=r"path=.*does not exist.*x_train"):
        load_mnist(tmp_path / "nope.npz")


def test_npz_with_wrong_arrays_is_refused(tmp_path):
    path = tmp_path / "bad.npz"
    np.savez(path, x_train=np.zeros((3, 5, 5), np.uint8), y_train=np.zeros(3), x_test=np.zeros((1, 28, 28), np.uint8),
             y_test=np.zeros(1))
    with pytest.raises(ValueError, match=r"x_train has shape \(3, 5, 5, 1\)"):
        load_mnist(path)


@pytest.mark.parametrize("lo, hi, mean, std", [(0, 1, 0, 255), (-1, 1, 127.5, 127.5), (0, 255, 0, 1)])
def test_stats_for_known_ranges(lo, hi, mean, std):
    stats = stats_for_range(lo, hi)
    assert stats.mean == pytest.approx(mean)
    assert stats.std == pytest.approx(std)
    assert InputSpec(lo, hi).stats == stats


def test_stats_round_trip_reads_bytes_as_the_training_range():
    spec = InputSpec(-1, 1)
    q = np.arange(256, dtype=np.uint8)
    np.testing.assert_allclose(spec.stats.to_real(q), spec.normalize(q), atol=1e-6)
    assert spec.stats.real_range() == pytest.approx((-1, 1))
    np.testing.assert_array_equal(spec.stats.to_bytes(spec.stats.to_real(q)), q)


def test_stats_from_tflite_quantization():
    assert InputStats.from_quantization(1 / 255, 0) == InputStats(0.0, 255.0)


@pytest.mark.parametrize("kwargs, message", [
    ({"mean": 0, "std": 0}, r"std=0 is out of range; allowed: a finite number > 0"),
    ({"mean": 0, "std": -3}, r"std=-3"),
    ({"mean": 300, "std": 1}, r"mean=300 is out of range; allowed: a finite number in \[0, 255\]"),
    ({"mean": -1, "std": 1}, r"mean=-1"),
    ({"mean": float("nan"), "std": 1}, r"mean=nan is not finite"),
    ({"mean": 0, "std": float("inf")}, r"std=inf is not finite"),
])
def test_bad_stats_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        InputStats(**kwargs)


def test_range_without_zero_is_refused():
    with pytest.raises(ValueError, match=r"does not contain 0.0"):
        stats_for_range(1, 2)
    with pytest.raises(ValueError, match=r"min >= max"):
        InputSpec(1, 0)
