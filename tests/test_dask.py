"""Sweeps and training grids on a real ``dask.distributed`` LocalCluster: 2 worker processes on loopback."""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import distributed  # noqa: F401  (pinned in requirements.txt: a missing package fails, it is not skipped)
import numpy as np
import pytest

from workbench import sweep as sw

TIMING = ["convert_s", "eval_s"]  # wall-clock seconds: the only columns allowed to differ between runs


def _same(frame, expected) -> None:
    """Equal in every column but the timings, values and dtypes; a failure names the column that differs."""
    import pandas as pd

    pd.testing.assert_frame_equal(frame.drop(columns=TIMING), expected.drop(columns=TIMING), check_exact=True)


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    """One cluster for the module; the workers have their own weight cache, as machines of a cluster would."""
    from distributed import Client, LocalCluster

    worker_cache = tmp_path_factory.mktemp("worker-cache")
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address="127.0.0.1:0", env={"WORKBENCH_CACHE": str(worker_cache)}) as cluster, \
            Client(cluster) as c:
        yield c


@pytest.fixture(scope="module")
def small_set(test_set):
    images, labels = test_set
    return images[:1000], labels[:1000]


def test_serial_and_distributed_sweeps_give_identical_frames(client, uint8_folder, small_set, tmp_path, capsys):
    points = sw.grid(mean=[0.0, 64.0, 127.5], std=[1.0, 127.5, 255.0])
    serial = sw.sweep(uint8_folder, points, *small_set, executor=None, cache=tmp_path / "a", progress=False)
    spread = sw.sweep(uint8_folder, points, *small_set, client=client, cache=tmp_path / "b", progress=True)
    assert spread.attrs["evaluator"] == "dask" and spread.attrs["workers"] == 2
    _same(spread, serial)
    assert f"Dask dashboard: {client.dashboard_link}" in capsys.readouterr().out
    assert client.dashboard_link.startswith("http://127.0.0.1:")
    # cached points are neither converted nor sent again; a new point is the only task
    # a point far off the input range (mean 250): never the most accurate, so the reference point stays the same
    more = sw.sweep(uint8_folder, points + [{"mean": 250.0, "std": 1.0}], *small_set, client=client,
                    cache=tmp_path / "b", progress=False)
    assert list(more["cached"]) == [True] * len(points) + [False]
    assert more.attrs["converted"] + more.attrs["patched"] == 1
    _same(more.iloc[:len(points)], spread.assign(cached=True))


def test_a_killed_worker_loses_no_point(client, uint8_folder, small_set, test_set):
    images, labels = test_set  # 2000 images: each task runs long enough to be killed half way
    points = sw.grid(mean=[0.0, 32.0, 64.0, 96.0, 127.5, 160.0], std=[64.0, 255.0])
    expected = sw.sweep(uint8_folder, points, images, labels, executor=None, cache=False, progress=False)
    pids = client.run(os.getpid)
    killed = {}

    def kill_a_busy_worker():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not killed:
            busy = [w for w, tasks in client.processing().items() if tasks and w in pids]
            if busy:
                killed["tasks"] = len(client.processing()[busy[0]])
                os.kill(pids[busy[0]], signal.SIGKILL)
                killed["pid"] = pids[busy[0]]
            time.sleep(0.005)

    killer = threading.Thread(target=kill_a_busy_worker)
    killer.start()
    frame = sw.sweep(uint8_folder, points, images, labels, client=client, cache=False, progress=False)
    killer.join()
    assert killed.get("tasks", 0) >= 1, "no worker was killed while it held tasks"
    with pytest.raises(ProcessLookupError):
        os.kill(killed["pid"], 0)
    assert frame["error"].eq("").all()
    _same(frame, expected)
    client.wait_for_workers(2, timeout=60)  # the nanny started a new worker


def _hidden_worker(scheduler: str, hidden: Path) -> subprocess.Popen:
    """A Dask worker process for which ``hidden`` is an empty folder (its own mount namespace, a tmpfs on top)."""
    command = (f"mount -t tmpfs none {shlex.quote(str(hidden))} && exec {shlex.quote(sys.executable)} -m "
               f"distributed.cli.dask_worker {scheduler} --nthreads 1 --no-nanny --host 127.0.0.1 --no-dashboard")
    return subprocess.Popen(["unshare", "--mount", "sh", "-c", command], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def test_a_worker_without_the_kernels_files_still_works(uint8_folder, small_set, tmp_path):
    """A worker that cannot see the kernel's model folder (as on another machine) evaluates the sweep's bytes;
    the old path-based task, which converts in the worker, fails there."""
    from distributed import Client, LocalCluster

    if shutil.which("unshare") is None or subprocess.run(["unshare", "--mount", "true"], timeout=30).returncode != 0:
        pytest.skip("needs unshare --mount (a private mount namespace) to hide a folder from one process")
    private = tmp_path / "kernel-only"
    shutil.copytree(uint8_folder, private / "model")
    with LocalCluster(n_workers=0, processes=True, host="127.0.0.1", dashboard_address="127.0.0.1:0") as cluster, \
            Client(cluster) as c:
        worker = _hidden_worker(cluster.scheduler_address, private)
        try:
            c.wait_for_workers(1, timeout=60)
            assert c.submit(os.listdir, str(private), pure=False).result() == []  # the folder is empty there
            old = c.submit(sw.run_point, sw.PointTask(private / "model", sw.Recipe("legacy-uint8", mean=0.0, std=255.0),
                                                      sw.InputSpec(), *small_set), pure=False)
            with pytest.raises(ValueError, match="saved_model.pb"):
                old.result()
            points = sw.grid(mean=[0.0, 127.5], std=[1.0, 255.0])
            frame = sw.sweep(private / "model", points, *small_set, client=c, cache=False, progress=False)
        finally:
            worker.terminate()
            worker.wait(timeout=30)
    here = sw.sweep(private / "model", points, *small_set, executor=None, cache=False, progress=False)
    assert frame["error"].eq("").all()
    _same(frame, here)


@pytest.mark.slow  # the workers import TensorFlow and train
def test_training_grid_on_the_cluster(client, mnist, tmp_path):
    from workbench.core.train import QatConfig, TrainConfig

    config = TrainConfig(epochs=1, train_size=2000, seed=11)
    images, labels = mnist.test_images[:500], mnist.test_labels[:500]
    frame = sw.sweep_training(mnist, {"bits": [4, 8]}, config=config, qat=QatConfig(scheme="uint8-legacy"),
                              images=images, labels=labels, client=client, cache=tmp_path, progress=False)
    assert list(frame["bits"]) == [4, 8] and not frame["cached"].any() and frame["error"].eq("").all()
    assert frame["accuracy"].between(0.5, 1.0).all() and frame["verdict"].notna().all()
    assert not (tmp_path / "models").exists()  # trained in the workers, cached in their own folder
    stored = client.run(lambda: [f for d, _, files in os.walk(os.environ["WORKBENCH_CACHE"]) for f in files
                                 if f.endswith(".weights.h5")])
    assert sum(len(files) for files in stored.values()) >= 2
    again = sw.sweep_training(mnist, {"bits": [4, 8]}, config=config, qat=QatConfig(scheme="uint8-legacy"),
                              images=images, labels=labels, client="not an address", cache=tmp_path, progress=False)
    assert again["cached"].all() and list(again["accuracy"]) == list(frame["accuracy"])


def test_report_evaluates_on_the_scheduler(client, uint8_folder, small_set, tmp_path, capsys):
    """``python -m workbench report ... --scheduler ADDRESS``: the same table, evaluated on the cluster."""
    import csv

    from workbench.cli.main import main

    np.savez(tmp_path / "data.npz", images=small_set[0], labels=small_set[1])
    common = ["report", str(uint8_folder), "--data", str(tmp_path / "data.npz"), "--recipes", "float32", "legacy-uint8"]
    assert main([*common, "--out", str(tmp_path / "here")]) == 0
    assert main([*common, "--out", str(tmp_path / "there"), "--scheduler", client.scheduler.address]) == 0
    assert f"dashboard: {client.dashboard_link}" in capsys.readouterr().out
    here, there = ([{k: r[k] for k in ("recipe", "status", "accuracy", "p_value", "agreement")}
                    for r in csv.DictReader((tmp_path / d / "report.csv").open())] for d in ("here", "there"))
    assert here == there and [r["status"] for r in here] == ["ok", "ok"]
    assert main([*common, "--out", str(tmp_path / "x"), "--scheduler", "tcp://127.0.0.1:9"]) == 2
    assert "--scheduler tcp://127.0.0.1:9" in capsys.readouterr().err


def test_bad_clients_are_refused(uint8_folder, small_set, mnist):
    with pytest.raises(ValueError, match="client=42"):
        sw.sweep(uint8_folder, {"mean": [0.0]}, *small_set, client=42, cache=False, progress=False)
    with pytest.raises(ValueError, match="no Dask scheduler answered"):
        sw.sweep(uint8_folder, {"mean": [0.0]}, *small_set, client="tcp://127.0.0.1:9", cache=False, progress=False)
    with pytest.raises(ValueError, match="client=3.5"):
        sw.sweep_training(mnist, {"bits": [8]}, client=3.5, progress=False)
