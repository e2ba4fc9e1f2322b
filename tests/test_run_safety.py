"""A run directory you can trust: one writer at a time (a lock naming its holder), SIGTERM and
SIGINT stop with a checkpoint and the conventional exit codes, --force replaces only a run's
own files, leftovers of interrupted writes are cleaned, best and last checkpoints agree."""

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import write_word_corpus

from rnnkit.tasks import build_task, task_config
from rnnkit.training import trainer
from rnnkit.training.checkpoint import load_checkpoint
from rnnkit.training.distributed import Ranks
from rnnkit.training.errors import RunError
from rnnkit.training.run_dir import LOCK_NAME, RunDirectory

REPOSITORY = Path(__file__).resolve().parents[1]
WORDS = "now is the winter of our discontent made glorious summer by this sun of york".split()
TINY = ["--embedding-size", "8", "--hidden-size", "16", "--batch-size", "4", "--bptt", "16",
        "--warmup", "2", "--time-limit", "0", "--device", "cpu", "--threads", "1"]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def corpus(tmp_path):
    return write_word_corpus(tmp_path / "corpus.txt", WORDS, seed=0, words_per_line=6,
                             length=1500)


def steps_logged(run) -> list[int]:
    try:
        with open(run / "metrics.csv", newline="") as file:
            return [int(row["step"]) for row in csv.DictReader(file)]
    except (OSError, KeyError, ValueError):
        return []


def wait_until(condition, timeout=120.0, what="the condition"):
    """Poll ``condition`` until it holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


def snapshot(folder) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


class LongRun:
    """``python -m rnnkit train`` of a run far longer than the test, in another process."""

    def __init__(self, tmp_path, corpus):
        self.run = tmp_path / "run"
        self.stdout, self.stderr = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
        with open(self.stdout, "w") as out, open(self.stderr, "w") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "rnnkit", "train", "--data", str(corpus), *TINY,
                 "--steps", "100000", "--eval-every", "100000", "--out", str(self.run)],
                stdout=out, stderr=err, cwd=tmp_path,
                env={**os.environ, "PYTHONPATH": str(REPOSITORY)})

    def wait_for_steps(self, count: int) -> None:
        wait_until(lambda: len(steps_logged(self.run)) >= count or self.process.poll() is not None,
                   what=f"{count} rows of metrics.csv")
        assert self.process.poll() is None, self.stderr.read_text()

    def stop(self, signum) -> int:
        self.process.send_signal(signum)
        return self.process.wait(timeout=120)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def long_run(tmp_path, corpus):
    started = LongRun(tmp_path, corpus)
    yield started
    started.close()


def test_a_run_in_use_is_refused_naming_its_pid_and_sigterm_keeps_the_work(long_run, cli):
    run = long_run.run
    long_run.wait_for_steps(3)
    pid = long_run.process.pid
    assert (run / LOCK_NAME).read_text().strip() == str(pid)
    # A second writer, resuming or replacing the run, is refused before it writes anything.
    for argv in (["--resume", run], ["--data", run.parent / "corpus.txt", *TINY, "--steps",
                                      "4", "--out", run, "--force"]):
        code, out, err = cli("train", *argv)
        assert code == 1 and out == ""
        assert len(err.strip().splitlines()) == 1 and f"pid {pid}" in err, err
    assert long_run.process.poll() is None
    # SIGTERM (what `timeout` and schedulers send): a checkpoint at the step reached, 143.
    assert long_run.stop(signal.SIGTERM) == 128 + signal.SIGTERM == 143
    out = long_run.stdout.read_text()
    assert f"rnnkit train --resume {run}" in out and "SIGTERM" in out
    reached = steps_logged(run)[-1]
    assert steps_logged(run) == list(range(1, reached + 1))
    assert load_checkpoint(run / "checkpoints" / "last.safetensors").info["step"] == reached
    assert (run / LOCK_NAME).read_text() == ""  # released by a process that ended normally
    # ... and it continues from there.
    code, out, err = cli("train", "--resume", run, "--steps", reached + 2)
    assert code == 0, err
    assert f"finished {reached + 2} steps" in out
    assert steps_logged(run) == list(range(1, reached + 3))


def test_sigint_checkpoints_and_exits_130(long_run):
    long_run.wait_for_steps(2)
    assert long_run.stop(signal.SIGINT) == 128 + signal.SIGINT == 130
    reached = steps_logged(long_run.run)[-1]
    last = load_checkpoint(long_run.run / "checkpoints" / "last.safetensors")
    assert last.info["step"] == reached
    assert f"rnnkit train --resume {long_run.run}" in long_run.stdout.read_text()


def test_a_lock_left_by_a_dead_process_is_taken_over(corpus, tmp_path, cli):
    run = tmp_path / "run"
    assert cli("train", "--data", corpus, *TINY, "--steps", 2, "--eval-every", 2,
               "--out", run)[0] == 0
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    (run / LOCK_NAME).write_text(dead.stdout)  # as a killed process leaves it
    code, out, err = cli("train", "--resume", run, "--steps", 4)
    assert code == 0, err
    assert f"locked by pid {dead.stdout.strip()}" in err and "finished 4 steps" in out
    assert (run / LOCK_NAME).read_text() == ""


def test_a_lock_is_held_per_process_until_released(tmp_path):
    first, second = RunDirectory(tmp_path), RunDirectory(tmp_path)
    first.lock()
    with pytest.raises(RunError, match=f"pid {os.getpid()}"):
        second.lock()
    first.unlock()
    second.lock()
    second.unlock()


def test_force_refuses_a_folder_that_is_not_a_run_and_deletes_nothing(corpus, tmp_path,
                                                                      cli):
    folder = tmp_path / "mine"
    (folder / "checkpoints").mkdir(parents=True)
    (folder / "config.json").write_text('{"name": "my project"}')
    (folder / "checkpoints" / "weights.pt").write_bytes(b"precious")
    (folder / "metrics.csv").write_text("a,b\n1,2\n")
    before = snapshot(folder)
    code, out, err = cli("train", "--data", corpus, *TINY, "--steps", 2,
                         "--out", folder, "--force")
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert "not an rnnkit run" in err and "choose another --out" in err
    assert snapshot(folder) == before and not (folder / LOCK_NAME).exists()


def test_force_on_a_run_keeps_files_rnnkit_did_not_write(corpus, tmp_path, cli):
    run = tmp_path / "run"
    assert cli("train", "--data", corpus, *TINY, "--steps", 4, "--eval-every", 2,
               "--out", run)[0] == 0
    (run / "notes.txt").write_text("mine")
    (run / "checkpoints" / "by-hand.safetensors").write_bytes(b"mine")
    (run / "tensorboard" / "notes.txt").write_text("mine")
    code, _, err = cli("train", "--data", corpus, *TINY, "--steps", 2, "--eval-every",
                       2, "--out", run, "--force")
    assert code == 0, err
    assert steps_logged(run) == [1, 2]
    assert load_checkpoint(run / "checkpoints" / "last.safetensors").info["step"] == 2
    for name in ("notes.txt", "checkpoints/by-hand.safetensors", "tensorboard/notes.txt"):
        assert (run / name).read_text() == "mine"


def test_leftover_temporary_files_are_removed_when_the_run_is_opened(corpus, tmp_path, cli):
    run = tmp_path / "run"
    assert cli("train", "--data", corpus, *TINY, "--steps", 2, "--eval-every", 2,
               "--out", run)[0] == 0
    leftovers = [run / "checkpoints" / ".last.safetensors.4242.tmp",
                 run / "checkpoints" / ".best.safetensors.4242.tmp", run / ".metrics.csv.77.tmp"]
    for path in leftovers:
        path.write_bytes(b"half a file")
    (run / ".mine.tmp").write_text("mine")  # not a file rnnkit writes
    code, _, err = cli("train", "--resume", run, "--steps", 4)
    assert code == 0, err
    assert not any(path.exists() for path in leftovers)
    assert (run / ".mine.tmp").read_text() == "mine"


def test_a_kill_between_the_last_and_best_checkpoints_is_repaired_on_resume(corpus, tmp_path,
                                                                          monkeypatch):
    config = task_config("lm", data=str(corpus), embedding_size=8, hidden_size=16,
                         batch_size=4, bptt=16, steps=8, eval_every=4, warmup=2, lr=0.02,
                         time_limit=None, device="cpu", threads=1)
    one_rank = Ranks(rank=0, world_size=1, device=torch.device("cpu"))
    whole = trainer.train(config, tmp_path / "whole", one_rank, build_task)
    assert whole.best_step == 8

    def killed_before_the_best_of_step_8(path, model, info, *args, **kwargs):
        if Path(path).name == "best.safetensors" and info["step"] == 8:
            raise SystemExit("killed")
        return save_checkpoint(path, model, info, *args, **kwargs)

    save_checkpoint = trainer.save_checkpoint
    monkeypatch.setattr(trainer, "save_checkpoint", killed_before_the_best_of_step_8)
    with pytest.raises(SystemExit):
        trainer.train(config, tmp_path / "killed", one_rank, build_task)
    monkeypatch.undo()
    best = tmp_path / "killed" / "checkpoints" / "best.safetensors"
    assert load_checkpoint(best).info["step"] == 4  # older than last.safetensors records
    # Killed before its report too: the resume repairs best.safetensors, then writes the
    # final results from it, without training.
    finished = trainer.train(config, tmp_path / "killed", one_rank, build_task, resume=True)
    assert finished.stop_reason == "finished" and finished.test == whole.test
    repaired = load_checkpoint(best)
    expected = load_checkpoint(tmp_path / "whole" / "checkpoints" / "best.safetensors")
    assert repaired.info == expected.info
    assert repaired.tensors.keys() == expected.tensors.keys()
    assert all(torch.equal(repaired.tensors[k], expected.tensors[k]) for k in expected.tensors)
