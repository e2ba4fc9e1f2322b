"""Kill -9 at any moment loses nothing that resuming cannot redo: a short run is killed with
SIGKILL at chosen points (between checkpoints, after a checkpoint's metrics row, in the middle
of writing last.safetensors or best.safetensors, between the two, while a resume rewrites
metrics.csv), resumed, and must end with the metrics rows and checkpoint tensors of the same
run left alone."""

import csv
import os
import signal
import sys
import time
import traceback
from pathlib import Path

import pytest
import torch
from conftest import write_word_corpus

from rnnkit.cli import main
from rnnkit.engine.select import set_default_engine
from rnnkit.training.checkpoint import load_checkpoint
from rnnkit.training.run_dir import MetricsLog

WORDS = "now is the winter of our discontent made glorious summer by this sun of york".split()
STEPS, EVAL_EVERY = 8, 2
ARGS = ["--embedding-size", "8", "--hidden-size", "16", "--batch-size", "4", "--bptt", "16",
        "--warmup", "2", "--lr", "0.02", "--time-limit", "0", "--device", "cpu", "--threads", "1",
        "--steps", str(STEPS), "--eval-every", str(EVAL_EVERY)]
ENGINE = "reference"
"""The reference loop in every run: no kernel build in the killed processes."""

def install_pauses(point, marker):
    """In a forked child: pause (sleep until killed) at ``point``, "KIND:NAME:COUNT" --

    * ``after-row::S`` -- once metrics.csv has the row of step S;
    * ``before-replace:NAME:K`` / ``after-replace:NAME:K`` -- before or after the K-th rename
      of a complete temporary file over NAME (last.safetensors, best.safetensors, ...);
    * ``mid-write:NAME:K`` -- in the K-th write of NAME, with half of its temporary file
      written (cut to half its length before the fsync).

    ``marker`` is created when the pause begins."""
    kind, name, count = point.split(":")
    count, seen = int(count), [0]

    def pause():
        marker.write_text(str(os.getpid()))
        time.sleep(600)

    def reached():
        seen[0] += 1
        return seen[0] == count

    real_replace, real_fsync, real_write = os.replace, os.fsync, MetricsLog.write

    def replace(src, dst, *args, **kwargs):
        if kind == "before-replace" and Path(dst).name == name and reached():
            pause()
        real_replace(src, dst, *args, **kwargs)
        if kind == "after-replace" and Path(dst).name == name and reached():
            pause()

    def fsync(fd):
        opened = os.readlink(f"/proc/self/fd/{fd}").rsplit("/", 1)[-1]
        if kind == "mid-write" and opened.startswith(f".{name}.") and reached():
            os.ftruncate(fd, os.fstat(fd).st_size // 2)
            pause()
        real_fsync(fd)

    def write(self, step, values):
        real_write(self, step, values)
        if kind == "after-row" and step == count:
            pause()

    os.replace, os.fsync, MetricsLog.write = replace, fsync, write


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(autouse=True)
def reference_engine():
    previous = set_default_engine(ENGINE)
    yield
    set_default_engine(previous)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_word_corpus(tmp_path_factory.mktemp("data") / "corpus.txt", WORDS, seed=0,
                             words_per_line=6, length=1500)


@pytest.fixture(scope="module")
def whole_run(tmp_path_factory, corpus):
    """The run left alone."""
    previous = set_default_engine(ENGINE)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run = tmp_path_factory.mktemp("whole") / "run"
        assert main(["train", "--data", str(corpus), *ARGS, "--out", str(run)]) == 0
    finally:
        set_default_engine(previous)
        torch.set_num_threads(threads)
    return run


def metrics_rows(run):
    """metrics.csv without the speed column (the one value that depends on the clock)."""
    with open(run / "metrics.csv", newline="") as file:
        return [{k: v for k, v in row.items() if k != "tokens_per_s"}
                for row in csv.DictReader(file)]


def improved_checkpoints(run) -> list[int]:
    """The ordinals (1 = first) of the checkpoints that also wrote best.safetensors."""
    best, found = float("inf"), []
    for row in metrics_rows(run):
        if row["val_cross_entropy"]:
            ordinal = int(row["step"]) // EVAL_EVERY
            if float(row["val_cross_entropy"]) < best:
                best = float(row["val_cross_entropy"])
                found.append(ordinal)
    return found


def kill_at(run, point, argv):
    """Run ``rnnkit train argv`` in a forked process (this one's modules already imported)
    that pauses at ``point`` (see :func:`install_pauses`), and SIGKILL it there."""
    marker = run.parent / f"paused-{time.monotonic_ns()}"
    log = run.parent / "killed.log"
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 70
        try:
            sys.stdout = sys.stderr = open(log, "w", buffering=1)
            install_pauses(point, marker)
            code = main(argv)
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    try:
        deadline = time.monotonic() + 300
        while not marker.exists():
            ended, status = os.waitpid(pid, os.WNOHANG)
            assert not ended, f"ended before {point}: {log.read_text()}"
            assert time.monotonic() < deadline, f"{point} not reached: {log.read_text()}"
            time.sleep(0.01)
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        pid = None
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    finally:
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)


def assert_same_run(run, whole_run):
    assert metrics_rows(run) == metrics_rows(whole_run)
    for name in ("last.safetensors", "best.safetensors"):
        got = load_checkpoint(run / "checkpoints" / name)
        expected = load_checkpoint(whole_run / "checkpoints" / name)
        assert got.tensors.keys() == expected.tensors.keys(), name
        for key, tensor in expected.tensors.items():
            assert torch.equal(got.tensors[key], tensor), f"{name}: {key}"
        for key in ("step", "total_steps", "best", "data_position", "task"):
            assert got.info[key] == expected.info[key], f"{name}: {key}"
    leftovers = [p.name for p in run.rglob("*.tmp")]
    assert not leftovers


def resume(run, capsys):
    """``rnnkit train --resume run``; a run killed after its last checkpoint has nothing left
    to train: it repairs what the kill left and writes the final results and report (no
    training, see tests/test_resume_finished.py)."""
    finished = load_checkpoint(run / "checkpoints" / "last.safetensors").info["step"] == STEPS
    code = main(["train", "--resume", str(run)])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert code == 0, err
    assert ("no training" in err) == finished, err


def kill_points(whole_run):
    # The last checkpoint that wrote best.safetensors: a kill there leaves a best file that
    # no later checkpoint rewrites, so only the repair on resuming can make it right.
    last_best = improved_checkpoints(whole_run)[-1]
    return {
        "between checkpoints": f"after-row::{EVAL_EVERY + 1}",
        "after a checkpoint's row, before the checkpoint": f"after-row::{2 * EVAL_EVERY}",
        "half-way through writing last.safetensors": "mid-write:last.safetensors:2",
        "with last.safetensors written, before its rename": "before-replace:last.safetensors:2",
        "between last.safetensors and best.safetensors":
            f"after-replace:last.safetensors:{last_best}",
        "half-way through writing best.safetensors": f"mid-write:best.safetensors:{last_best}",
    }


POINTS = ["between checkpoints", "after a checkpoint's row, before the checkpoint",
          "half-way through writing last.safetensors",
          "with last.safetensors written, before its rename",
          "between last.safetensors and best.safetensors",
          "half-way through writing best.safetensors"]


@pytest.mark.parametrize("where", POINTS, ids=[point.replace(" ", "-") for point in POINTS])
def test_a_run_killed_and_resumed_ends_as_the_run_left_alone(corpus, whole_run, tmp_path,
                                                             where, capsys):
    run = tmp_path / "run"
    kill_at(run, kill_points(whole_run)[where],
            ["train", "--data", str(corpus), *ARGS, "--out", str(run)])
    resume(run, capsys)
    assert_same_run(run, whole_run)


def test_a_resume_killed_while_it_rewrites_metrics_is_resumed_again(corpus, whole_run,
                                                                    tmp_path, capsys):
    run = tmp_path / "run"
    kill_at(run, f"after-row::{EVAL_EVERY + 1}",
            ["train", "--data", str(corpus), *ARGS, "--out", str(run)])
    # The resume cuts metrics.csv back to its checkpoint: killed half-way through that.
    kill_at(run, "mid-write:metrics.csv:1", ["train", "--resume", str(run)])
    kill_at(run, f"after-row::{3 * EVAL_EVERY}", ["train", "--resume", str(run)])
    resume(run, capsys)
    assert_same_run(run, whole_run)


def test_the_kill_points_are_where_they_say(whole_run):
    # The last best.safetensors is written after the second checkpoint, so the kills between
    # and during the two writes of a checkpoint hit one that writes both, after which the
    # best file a killed run has is older than last.safetensors records.
    assert improved_checkpoints(whole_run)[-1] >= 2
