"""Cache entries: a manifest with the content hash, rebuilt when they do not match, built once under a lock,
and the temporaries of killed runs removed."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import textwrap

import pytest

from workbench.core import artifacts

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_entry_is_built_once_then_reused(tmp_path):
    calls = []
    path = tmp_path / "a.bin"
    build = lambda tmp: (calls.append(1), tmp.write_bytes(b"hello"))  # noqa: E731
    assert artifacts.entry(path, build, key="k") == path and path.read_bytes() == b"hello"
    artifacts.entry(path, build, key="k")
    assert calls == [1] and artifacts.valid_entry(path, "k") and not artifacts.valid_entry(path, "other key")


@pytest.mark.parametrize("damage", ["flip", "truncate", "manifest", "no-manifest"])
def test_a_damaged_entry_is_rebuilt_with_one_warning(tmp_path, damage):
    path = tmp_path / "a.bin"
    artifacts.entry(path, lambda tmp: tmp.write_bytes(b"good bytes"), key="k")
    if damage == "flip":
        path.write_bytes(b"good bytez")
    elif damage == "truncate":
        path.write_bytes(b"good")
    elif damage == "manifest":
        artifacts.manifest_path(path).write_text("{broken")
    else:
        artifacts.manifest_path(path).unlink()
    assert not artifacts.valid_entry(path, "k")
    with pytest.warns(artifacts.CacheRebuilt, match="a.bin did not match its manifest"):
        artifacts.entry(path, lambda tmp: tmp.write_bytes(b"good bytes"), key="k")
    assert path.read_bytes() == b"good bytes" and artifacts.valid_entry(path, "k")


def test_a_folder_entry_is_hashed_file_by_file(tmp_path):
    def build(tmp):
        tmp.mkdir()
        (tmp / "saved_model.pb").write_bytes(b"graph")
        (tmp / "variables").mkdir()
        (tmp / "variables" / "data").write_bytes(b"weights")

    folder = artifacts.entry(tmp_path / "model", build, key=1)
    (folder / "variables" / "data").write_bytes(b"weightz")
    assert not artifacts.valid_entry(folder, 1)
    with pytest.warns(artifacts.CacheRebuilt):
        artifacts.entry(folder, build, key=1)
    assert (folder / "variables" / "data").read_bytes() == b"weights"


WRITER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from workbench.core import artifacts

    target, tag = Path(sys.argv[1]), sys.argv[2]

    def build(tmp):
        tmp.mkdir()
        for i in range(20):  # slow enough that the two writers overlap
            (tmp / f"part{i}").write_text(tag)
            time.sleep(0.002)

    artifacts.entry(target, build, key="same")
    parts = {p.read_text() for p in target.iterdir()}
    assert len(parts) == 1 and len(list(target.iterdir())) == 20, parts
    print(parts.pop())
""")


def test_two_processes_building_one_entry_never_mix_it(tmp_path):
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    env = {**os.environ, "PYTHONPATH": ROOT}
    for round_ in range(20):
        target = tmp_path / f"entry{round_}"
        procs = [subprocess.Popen([sys.executable, str(script), str(target), tag], env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for tag in ("a", "b")]
        outs = [p.communicate(timeout=60) for p in procs]
        assert all(p.returncode == 0 for p in procs), [o[1][-500:] for o in outs]
        assert outs[0][0] == outs[1][0], outs  # both see the one entry that was built
        assert artifacts.valid_entry(target, "same")
        assert not [p for p in tmp_path.iterdir() if ".wbtmp-" in p.name]


def test_temporaries_of_a_killed_run_are_removed_at_the_next_start(tmp_path):
    script = tmp_path / "slow.py"
    script.write_text(textwrap.dedent("""
        import sys, time
        from pathlib import Path
        from workbench.core import artifacts
        def build(tmp):
            tmp.mkdir()
            (tmp / "half").write_bytes(b"x" * 1000)
            print("building", flush=True)
            time.sleep(60)
        artifacts.entry(Path(sys.argv[1]) / "entry", build, key=0)
    """))
    cache = tmp_path / "cache"
    cache.mkdir()
    proc = subprocess.Popen([sys.executable, str(script), str(cache)], env={**os.environ, "PYTHONPATH": ROOT},
                            stdout=subprocess.PIPE, text=True)
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 120)  # a hung start fails here instead of hanging
        assert ready, "the build did not start within 120 s"
        assert proc.stdout.readline().strip() == "building"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    left = [p for p in cache.iterdir() if ".wbtmp-" in p.name]
    assert left, "the killed run left no temporary to clean (the test would prove nothing)"
    live = cache / f".other{artifacts._TMP_MARK}{os.getpid()}-x.tmp"  # a live owner's temporary stays
    live.write_text("mine")
    assert artifacts.remove_stale_temporaries(cache) == len(left)
    assert not any(p.exists() for p in left) and live.exists()
    assert not artifacts.valid_entry(cache / "entry", 0)
    artifacts.entry(cache / "entry", lambda tmp: tmp.write_text("done"), key=0)
    assert (cache / "entry").read_text() == "done"
