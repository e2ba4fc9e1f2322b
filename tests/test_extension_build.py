"""Building the fused kernels: one build directory per version of the sources, a killed
build's lock does not hang later processes, and a process that waits for another's build
says so."""

import fcntl
import select
import subprocess
import sys
from pathlib import Path

import pytest
from torch.utils.cpp_extension import _get_build_directory

from rnnkit.engine import fused

REPOSITORY = Path(__file__).resolve().parents[1]
LOAD = ("import sys; from rnnkit.engine.fused import load_extension; "
        "sys.exit(0 if load_extension() is not None else 3)")

pytestmark = pytest.mark.skipif(fused.load_extension() is None,
                                reason="the fused kernels cannot be built here")


def build_directory() -> Path:
    source_dir = Path(fused.__file__).parent / "csrc"
    return Path(_get_build_directory(f"rnnkit_fused_{fused._sources_digest(source_dir)}",
                                     verbose=False))


def test_the_build_directory_is_named_by_the_sources_hash(tmp_path):
    (tmp_path / "a.cpp").write_text("int a;")
    (tmp_path / "a.h").write_text("int b;")
    first = fused._sources_digest(tmp_path)
    (tmp_path / "notes.txt").write_text("not a source")
    assert fused._sources_digest(tmp_path) == first
    (tmp_path / "a.h").write_text("int c;")
    assert fused._sources_digest(tmp_path) != first and len(first) == 12
    assert (build_directory() / f"{build_directory().name}.so").is_file()


def test_a_lock_left_by_a_killed_build_does_not_hang_the_next_process():
    stale = build_directory() / "lock"  # what torch leaves when its build is killed
    stale.write_text("")
    result = subprocess.run([sys.executable, "-c", LOAD], cwd=REPOSITORY, timeout=300,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert not stale.exists()


def test_a_process_waiting_for_another_s_build_says_so():
    with open(build_directory() / "rnnkit.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # as a process in the middle of a build holds it
        waiting = subprocess.Popen([sys.executable, "-c", LOAD], cwd=REPOSITORY,
                                   stderr=subprocess.PIPE, text=True)
        ready, _, _ = select.select([waiting.stderr], [], [], 120)
        if not ready:  # it waits silently: fail rather than hang
            waiting.kill()
        first_line = waiting.stderr.readline() if ready else ""
    # the lock is released when the file closes; the waiting process then loads the kernels
    assert "waiting for another process that is compiling" in first_line
    assert waiting.wait(timeout=300) == 0, waiting.stderr.read()
