"""Native libraries' irrelevant notices are dropped from stderr; everything else, the workbench's warnings included, shows.

Each check runs a fresh Python process (the notices are printed once per
process, and pytest itself captures file descriptor 2) and reads its stderr.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from conftest import ROOT

NOISE = ("absl::InitializeLog", "oneDNN", "cuda drivers", "cuInit", "cpu_feature_guard", "XNNPACK",
         "fully_quantize")


def _run(code: str, **env: str) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k != "WORKBENCH_NATIVE_LOGS"} | env
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=300, cwd=ROOT, env=environment)


def test_known_lines_are_dropped_and_others_forwarded_in_order():
    done = _run(r"""
        import os, threading
        from workbench.core.native_log import native_stderr
        os.write(2, b"before\n")
        with native_stderr():
            os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n")
            os.write(2, b"I0000 00:00:1795658413.170469   25728 port.cc:153] oneDNN custom operations are on.\n")
            os.write(2, b"a real error\nINFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n")
            with native_stderr():  # nested and from another thread: one redirection, shared
                t = threading.Thread(target=os.write, args=(2, b"fully_quantize: 0, inference_type: 6, "
                                     b"input_inference_type: FLOAT32, output_inference_type: FLOAT32\n"))
                t.start(); t.join()
            os.write(2, b"no newline at the end")
        os.write(2, b"\nafter\n")
    """)
    assert done.returncode == 0, done.stderr
    assert done.stderr == "before\na real error\nno newline at the end\nafter\n"


def test_everything_shows_when_asked():
    done = _run(r"""
        import os
        from workbench.core.native_log import native_stderr
        with native_stderr():
            os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n")
    """, WORKBENCH_NATIVE_LOGS="all")
    assert "XNNPACK" in done.stderr


def test_tensorflow_converter_and_litert_are_quiet_but_workbench_warnings_show():
    """Import TF, convert (MLIR quantizer), run LiteRT: no native notice; a 'came out float' warning still shows."""
    done = _run(r"""
        import numpy as np
        import workbench as wb
        from workbench.core.keras_compat import keras
        model = keras.Sequential([keras.layers.Input((28, 28, 1)), keras.layers.Conv2D(2, 3, activation="relu"),
                                  keras.layers.Flatten(), keras.layers.Dense(10)])
        images = np.random.default_rng(0).integers(0, 256, (20, 28, 28, 1), dtype=np.uint8)
        int8 = wb.convert(model, "int8-ptq", representative=images)
        wb.evaluate(int8, images, np.zeros(20, np.int64))
        wb.convert(model, "legacy-uint8")  # a float model down the uint8 path, no default ranges
        print("done")
    """)
    assert done.returncode == 0, done.stderr
    assert "done" in done.stdout
    assert "came out float" in done.stderr  # the workbench's own QuantizationWarning
    assert not [word for word in NOISE if word in done.stderr], done.stderr


def test_a_process_started_with_the_real_stderr_never_holds_the_redirection():
    # the child writes a line the filter would drop: it shows only if the child's fd 2 is the real stderr
    done = _run(r"""
        import os, subprocess, sys
        from workbench.core.native_log import native_stderr, real_stderr
        noise = "I0000 00:00:1795658413.170469   25728 port.cc:153] "
        with native_stderr():
            with real_stderr():  # inside a redirection, fd 2 is the real stderr again for a moment
                os.write(2, (noise + "shown: not filtered here\n").encode())
                child = subprocess.Popen([sys.executable, "-c", "import os, sys, time; time.sleep(1); "
                                          "os.write(2, (sys.argv[1] + 'from the child\\n').encode())", noise])
            os.write(2, (noise + "dropped again\n").encode())
        child.wait()
    """)
    assert done.returncode == 0, done.stderr
    assert "shown: not filtered here" in done.stderr and "dropped again" not in done.stderr
    assert "from the child" in done.stderr, done.stderr
