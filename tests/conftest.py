"""Shared fixtures: real MNIST, small real training runs, cached between test runs.

Trained weights are cached in ``$WORKBENCH_CACHE`` (default ``.cache/`` in the
checkout) keyed by their configuration, so notebooks executed by the tests
with the same parameters reuse them.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("WORKBENCH_CACHE", str(ROOT / ".cache"))
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
# Kernels, JupyterLab and other processes the tests start import this checkout's workbench (not another copy
# the environment may have installed in editable mode).
if str(ROOT) not in os.environ.get("PYTHONPATH", "").split(os.pathsep):
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))

# Under pytest-xdist (`make test` runs two workers on two cores) each worker, and the kernels and processes it
# starts, gets its share of the cores for TensorFlow's thread pools: two pools of two threads each on two cores
# spin against each other (four of the longest modules, cold: 219 s with them, 200 s without).
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _WORKERS > 1:
    for _name in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
        os.environ.setdefault(_name, str(max(1, (os.cpu_count() or 1) // _WORKERS)))

# Text TensorFlow, absl, the converter and LiteRT write on their own (absl/glog-prefixed lines, their notices).
NATIVE_NOISE = re.compile(r"^([IWEF]\d{4} [\d:.]+ +\d+ \S+\.cc:\d+\]|WARNING: All log messages before absl"
                          r"|INFO: Created TensorFlow Lite|fully_quantize: |To enable the following instructions|.*cuInit"
                          r"|.*(oneDNN custom operations|cuda drivers))", re.MULTILINE)


# Small enough to train in seconds, big enough for the effects to be clear.
TRAIN_SIZE = 20000
TRAIN_EPOCHS = 2
EVAL_SIZE = 2000


@pytest.fixture(scope="session")
def mnist():
    from workbench import load_mnist

    return load_mnist()


@pytest.fixture(scope="session")
def test_set(mnist):
    """``(images, labels)``: the first EVAL_SIZE test images."""
    return mnist.test_images[:EVAL_SIZE], mnist.test_labels[:EVAL_SIZE]


@pytest.fixture(scope="session")
def train_config():
    from workbench.core.train import TrainConfig

    return TrainConfig(epochs=TRAIN_EPOCHS, train_size=TRAIN_SIZE)


@pytest.fixture(scope="session")
def float_model(mnist, train_config):
    from workbench.core.train import trained_lenet

    return trained_lenet(mnist, train_config)


def _qat(mnist, train_config, **kw):
    from workbench.core.train import QatConfig, trained_lenet

    return trained_lenet(mnist, train_config, QatConfig(**kw))


@pytest.fixture(scope="session")
def qat_int8(mnist, train_config):
    """tfmot default scheme: per-channel weights, learned input range."""
    return _qat(mnist, train_config, scheme="int8")


@pytest.fixture(scope="session")
def qat_uint8(mnist, train_config):
    """Per-tensor weights, no input quantizer: the stats define the input."""
    return _qat(mnist, train_config, scheme="uint8-legacy")


@pytest.fixture(scope="session")
def qat_uint8_learned(mnist, train_config):
    """Per-tensor weights with a learned input range: the stats are ignored."""
    return _qat(mnist, train_config, scheme="uint8-legacy", learned_input_range=True)


@pytest.fixture(scope="session")
def float_tflite(float_model):
    from workbench import convert

    return convert(float_model, "float32")


@pytest.fixture(scope="session")
def uint8_folder(qat_uint8):
    """The uint8-legacy QAT LeNet exported once as a SavedModel folder (what sweeps and explorers convert)."""
    from workbench.explore.sweep import saved_model_folder

    return saved_model_folder(qat_uint8)


@pytest.fixture(scope="session")
def output_dir():
    """Where tests write artifacts worth looking at (screenshots, plots)."""
    folder = ROOT / "test-output"
    folder.mkdir(exist_ok=True)
    return folder


# Under pytest-xdist (`make test`: `-n 2 --dist loadscope --no-loadscope-reorder`) the tests of one module share a
# worker, so each module-scoped fixture (a JupyterLab server, converted models, notebook 07's run) is built once;
# the tests of SPREAD modules share only session fixtures cached on disk and are spread one by one; the units
# start in FIRST's order. (pytest-xdist's `xdist_group` marks do not group under pytest 9: its loadgroup suffix is
# written to a node attribute pytest 9 no longer reads, so the scheduler is told the units here.)
SPREAD = {"test_notebooks.py"}
# The longest modules first (measured with an empty cache), so the short ones fill the gaps at the end.
FIRST = ("test_gallery.py", "test_notebooks.py", "test_your_model.py", "test_browser.py", "test_any_task_cli.py",
         "test_standins.py", "test_faults.py", "test_sweep.py", "test_cli_report.py", "test_demo.py", "test_dask.py",
         "test_parallel.py", "test_unlabelled_explore.py")


@pytest.hookimpl(trylast=True)  # after ``-m``/``-k`` deselection: the items are the ones that will run
def pytest_collection_modifyitems(config, items):
    # A notebook that a selected browser test runs in JupyterLab (and checks there) is not run again by nbclient.
    if any(item.path.name == "test_notebooks.py" for item in items):
        from test_notebooks import left_to_the_browser

        left = left_to_the_browser(items)
        if left:
            config.hook.pytest_deselected(items=left)
            items[:] = [item for item in items if item not in left]

    def rank(item):
        name = item.path.name
        return FIRST.index(name) if name in FIRST else len(FIRST)

    items.sort(key=rank)  # stable: each module's tests keep their order and stay together


def _scope(nodeid: str) -> str:
    """A test's scheduling unit: its module, or the test itself in a SPREAD module."""
    module = nodeid.split("::", 1)[0]
    return nodeid if Path(module).name in SPREAD else module


@pytest.hookimpl(optionalhook=True)  # a hook of pytest-xdist's, absent without it
def pytest_xdist_make_scheduler(config, log):
    if config.getvalue("dist") != "loadscope":
        return None  # any other --dist: pytest-xdist's own scheduler
    return _module_scheduling()(config, log)


def _module_scheduling() -> type:
    """pytest-xdist's loadscope scheduler with ``_scope`` as its units."""
    from xdist.scheduler import LoadScopeScheduling

    class ModuleScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return _scope(nodeid)

    return ModuleScheduling
