"""Bounded memory: big ``.npz`` image arrays read lazily (stored in place, compressed through the cache) give the
same samples and figures as read eagerly; a run feeds uint8 images batch by batch (no float32 copy of the set);
the activation percentiles of ``tensor_stats`` come from a bounded random sample within their stated accuracy."""

from __future__ import annotations

import tracemalloc
import warnings

import numpy as np
import pytest

SHAPE = (28, 28, 1)


@pytest.fixture(scope="module")
def tiny(float_tflite):
    """The float LeNet ``.tflite`` (a session fixture: no conversion of its own)."""
    return float_tflite


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).integers(0, 256, (40, *SHAPE), dtype=np.uint8)


@pytest.mark.parametrize("compressed", [False, True])
def test_a_lazy_npz_gives_the_same_samples_and_figures(tiny, images, tmp_path, monkeypatch, compressed):
    from workbench.core import data, measure
    from workbench.core.samples import read_samples

    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "data.npz"
    labels = np.arange(len(images)) % 3
    (np.savez_compressed if compressed else np.savez)(path, images=images, labels=labels)
    eager = read_samples("data", path)
    monkeypatch.setattr(data, "LAZY_BYTES", 0)
    lazy = read_samples("data", path)
    assert isinstance(lazy.images, data.NpyRows) and isinstance(eager.images, np.ndarray)
    assert lazy.images.file.parent.name == ("npz" if compressed else tmp_path.name)
    assert lazy.describe() == eager.describe() and np.array_equal(lazy.labels, eager.labels)
    assert np.array_equal(np.asarray(lazy.images), images)
    for rows in (slice(3, 9), np.array([7, 1, 2, 39, 1]), labels == 2, slice(None, None, 4)):
        assert np.array_equal(lazy.take(rows).images, images[rows]) and \
            np.array_equal(lazy.take(rows).labels, labels[rows])
    assert np.array_equal(lazy.images[5], images[5]) and np.array_equal(lazy.images[-1, 2], images[-1, 2])
    a, b = (measure.outputs_of(tiny, s, batch_size=16).values[0] for s in (eager, lazy))
    assert np.array_equal(a, b)


def test_a_run_feeds_the_images_batch_by_batch(tiny):
    from workbench.core import measure

    rng = np.random.default_rng(1)

    def peak(count: int) -> int:
        x = rng.integers(0, 256, (count, *SHAPE), dtype=np.uint8)
        tracemalloc.start()
        measure.outputs_of(tiny, x, batch_size=16)
        top = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return top

    small, big = peak(50), peak(2000)
    whole_set_float32 = (2000 - 50) * int(np.prod(SHAPE)) * 4
    assert big - small < whole_set_float32 / 4, (small, big, whole_set_float32)


def test_activation_percentiles_from_a_bounded_sample(tiny, images, monkeypatch):
    from workbench.core import litert, tensor_stats
    from workbench.core.samples import Samples

    samples = Samples.of(images)
    info = litert.read_model(tiny)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*experimental_preserve_all_tensors")
        run = litert.run(tiny, images, keep_tensors=True)
    exact = {t.index: np.asarray(run.tensor(t.index)).reshape(-1).astype(np.float64)
             for t in info.tensors if t.is_activation and t.dtype == "float32"}
    row_bytes = sum(int(np.prod(t.shape[1:] or (1,))) * np.dtype(t.dtype).itemsize
                    for t in info.tensors if t.is_activation)
    monkeypatch.setattr(tensor_stats, "MEMORY", row_bytes * 7)  # chunks of 7 rows: running min/max across chunks
    monkeypatch.setattr(tensor_stats, "SUBSAMPLE", 10**9)
    whole = tensor_stats.activation_ranges(tiny, samples, size=len(images), bounds=(0.0, 1.0), percentile=99)
    monkeypatch.setattr(tensor_stats, "SUBSAMPLE", 5000)
    sampled = tensor_stats.activation_ranges(tiny, samples, size=len(images), bounds=(0.0, 1.0), percentile=99)
    assert [r.index for r in whole] == [r.index for r in sampled] == list(exact)
    for w, s in zip(whole, sampled):
        v = exact[w.index]
        for r in (w, s):  # count, min, max and the share outside are exact whatever the sample
            assert (r.count, r.min, r.max) == (v.size, v.min(), v.max())
            assert r.outside == pytest.approx(np.mean((v < 0) | (v > 1)))
        assert (w.low, w.high) == pytest.approx(tuple(np.percentile(v, [1, 99])), rel=1e-6, abs=1e-9)
        if v.size > 5000:  # sampled: within 4 sigma of the rank (sqrt(0.99 * 0.01 / 5000) = 0.14 points)
            assert np.percentile(v, 0.4) <= s.low <= np.percentile(v, 1.6)
            assert np.percentile(v, 98.4) <= s.high <= np.percentile(v, 99.6)
        else:
            assert (s.low, s.high) == (w.low, w.high)
