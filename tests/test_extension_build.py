"""Building the fused kernels: one build directory per version of the sources, rebuilt only
when the sources or the toolchain change and never while tracing; a killed build's lock does
not hang later processes, a process that waits for another's build says so, and a machine
without a compiler runs on the reference engines after one warning."""

import fcntl
import os
import select
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rnnkit.engine import fused

REPOSITORY = Path(__file__).resolve().parents[1]
LOAD = ("import sys; from rnnkit.engine.fused import load_extension; "
        "sys.exit(0 if load_extension() is not None else 3)")

needs_kernels = pytest.mark.usefixtures("fused_extension")  # fails where a compiler is


def build_directory() -> Path:
    return fused.build_directory()


def run_python(code, env=None, cwd=REPOSITORY, timeout=300):
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, timeout=timeout,
                          capture_output=True, text=True)


def fresh_environment(tmp_path, **changes):
    """This process's environment with an empty extensions directory (nothing built)."""
    return {**os.environ, "TORCH_EXTENSIONS_DIR": str(tmp_path / "extensions"), **changes}


def warnings_in(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "Warning:" in line]


@needs_kernels
def test_the_build_directory_is_named_by_the_sources_hash(tmp_path):
    (tmp_path / "a.cpp").write_text("int a;")
    (tmp_path / "a.h").write_text("int b;")
    first = fused._sources_digest(tmp_path)
    (tmp_path / "notes.txt").write_text("not a source")
    assert fused._sources_digest(tmp_path) == first
    (tmp_path / "a.h").write_text("int c;")
    assert fused._sources_digest(tmp_path) != first and len(first) == 12
    assert (build_directory() / f"{build_directory().name}.so").is_file()


@needs_kernels
def test_a_lock_left_by_a_killed_build_does_not_hang_the_next_process():
    # A build killed half-way leaves torch's lock file and no record of a finished build.
    stale = build_directory() / "lock"
    stale.write_text("")
    (build_directory() / fused._BUILT).unlink()
    result = subprocess.run([sys.executable, "-c", LOAD], cwd=REPOSITORY, timeout=300,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert not stale.exists() and (build_directory() / fused._BUILT).is_file()


@needs_kernels
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


@needs_kernels
def test_a_copy_of_the_sources_elsewhere_loads_the_build_without_rebuilding(tmp_path):
    # A fresh clone: the same sources at another path, every file's time new. torch's own
    # builder would compile again (its commands name the paths; ninja compares the times).
    library = build_directory() / f"{build_directory().name}.so"
    built = library.stat().st_mtime_ns
    shutil.copytree(REPOSITORY / "rnnkit", tmp_path / "rnnkit",
                    ignore=shutil.ignore_patterns("files", "__pycache__"))
    result = run_python(LOAD, env={**os.environ, "PYTHONPATH": str(tmp_path)}, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "compiling" not in result.stderr
    assert library.stat().st_mtime_ns == built


@needs_kernels
def test_a_build_is_reused_only_with_the_toolchain_that_made_it():
    toolchain = (build_directory() / fused._BUILT).read_text()
    assert toolchain.startswith(os.path.realpath(fused.compiler()))
    assert fused._finished(build_directory(), toolchain)
    assert not fused._finished(build_directory(), "/usr/bin/g++-99 g++ (GCC) 99.1")
    assert fused._finished(build_directory(), None)  # no compiler here: any finished build


TRACE = """
import warnings, torch, rnnkit
from rnnkit.engine import fused
warnings.simplefilter("always")
layer = rnnkit.GRU(3, 4, batch_first=True).eval()
x = torch.randn(2, 5, 3)
torch.export.export(layer, (x,))
torch.compile(layer, backend="eager", fullgraph=True)(x)
print("traced; decided:", fused._outcome)
"""


def test_tracing_never_builds_the_kernels(tmp_path):
    result = run_python(TRACE, env=fresh_environment(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "traced; decided: []" in result.stdout  # the next eager call builds them
    assert "compiling" not in result.stderr and "waiting" not in result.stderr
    assert not list((tmp_path / "extensions").rglob("*.so"))
    assert not list((tmp_path / "extensions").rglob("*.o"))
    # torch.compile's trace asked for the kernels, and was told once (torch's own deprecation
    # warnings aside, which "always" shows too)
    [warning] = [line for line in warnings_in(result.stderr) if "rnnkit" in line]
    assert "never builds them" in warning and "rnnkit build" in warning


def no_compiler(tmp_path):
    """An environment where no C++ compiler can be found, with nothing built yet."""
    return fresh_environment(tmp_path, CXX="rnnkit-test-no-such-compiler",
                             PATH=str(Path(sys.executable).parent))


def test_without_a_compiler_rnnkit_builds_nothing_and_runs_after_one_warning(tmp_path):
    env = no_compiler(tmp_path)
    build = subprocess.run([sys.executable, "-m", "rnnkit", "build"], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr  # the README's install command goes on
    [warning] = warnings_in(build.stderr)
    assert "no C++ compiler found (`rnnkit-test-no-such-compiler`" in warning
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("to be or not to be, that is the question.\n" * 30)
    train = subprocess.run(
        [sys.executable, "-m", "rnnkit", "train", "--data", str(corpus), "--cell", "gru",
         "--hidden-size", "8", "--embedding-size", "8", "--batch-size", "4", "--bptt", "8",
         "--steps", "2", "--eval-every", "2", "--time-limit", "0", "--threads", "1",
         "--out", str(tmp_path / "run")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert train.returncode == 0, train.stderr
    [warning] = warnings_in(train.stderr)
    assert "no C++ compiler found" in warning and "rnnkit build" in warning
    assert "compiling" not in train.stderr
    assert not list((tmp_path / "extensions").rglob("*.so"))
    engines = run_python("import torch, rnnkit; x = torch.randn(2, 1, 3); "
                         "print(rnnkit.GRU(3, 4).engine_for(x), "
                         "rnnkit.LSTM(3, 4, peepholes=True).engine_for(x))", env=env)
    assert engines.stdout.split() == ["native", "reference"], engines.stderr


def pytest_of_a_kernel_test(env):
    """One test that needs the kernels, run by pytest in a process with ``env``."""
    test = ("tests/test_fused_engine.py::"
            "test_auto_uses_the_loop_or_the_scan_when_the_kernels_cannot_be_built")
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
                           test], cwd=REPOSITORY, env=env, capture_output=True, text=True,
                          timeout=600)


def test_a_failed_build_fails_the_tests_where_a_compiler_is(tmp_path):
    # A compiler is found (CXX is a program) but the build fails: the tests fail.
    failing = pytest_of_a_kernel_test(fresh_environment(tmp_path, CXX="/bin/false"))
    assert failing.returncode == 1, failing.stdout + failing.stderr
    assert "not built although this machine can build them" in failing.stdout
    # No compiler: the tests are skipped, but not in CI.
    env = {k: v for k, v in no_compiler(tmp_path).items() if k != "CI"}
    skipped = pytest_of_a_kernel_test(env)
    assert skipped.returncode == 0 and "SKIPPED [1]" in skipped.stdout, skipped.stdout
    in_ci = pytest_of_a_kernel_test({**env, "CI": "true"})
    assert in_ci.returncode == 1, in_ci.stdout + in_ci.stderr
