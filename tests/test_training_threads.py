"""The CPU thread count of a run: fixed before the first step, recorded, followed on resume;
so the default (``--threads 0``) repeats runs bit for bit and resumes exactly."""

import csv
import dataclasses

import pytest
import torch
from safetensors.torch import load_file

from rnnkit import cli
from rnnkit.training.checkpoint import load_checkpoint
from rnnkit.training.threads import run_threads

# A constant learning rate, so that 4 steps resumed to 8 follow the schedule of 8 steps; no
# --threads: the default.
TINY = ["train", "--task", "classify", "--data", "ItalyPowerDemand", "--hidden-size", "8",
        "--batch-size", "8", "--warmup", "0", "--min-lr-ratio", "1", "--time-limit", "0",
        "--device", "cpu", "--precision", "fp32", "--eval-every", "4", "--dropout", "0.2"]


@pytest.fixture(autouse=True)
def restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def counts_per_step(monkeypatch):
    """The thread count of each training step of the runs the command line starts."""
    counts = []
    build_task = cli.build_task

    def spied(*args):
        task = build_task(*args)

        def batch_at(step):
            counts.append(torch.get_num_threads())
            return task.batch_at(step)

        return dataclasses.replace(task, batch_at=batch_at)

    monkeypatch.setattr(cli, "build_task", spied)
    return counts


def train(*options) -> None:
    assert cli.main(TINY + [str(option) for option in options]) == 0


def rows(run) -> list[dict[str, str]]:
    """metrics.csv without its throughput, the one column that is measured, not computed."""
    with open(run / "metrics.csv", newline="") as file:
        return [{k: v for k, v in row.items() if k != "tokens_per_s"}
                for row in csv.DictReader(file)]


def checkpoint_bytes(run) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in (run / "checkpoints").iterdir()}


def test_the_count_is_the_requested_then_the_recorded_then_torch_s():
    torch.set_num_threads(1)
    assert run_threads(None) == 1
    assert run_threads(None, recorded=2) == 2 and torch.get_num_threads() == 2
    assert run_threads(1, recorded=2) == 1 and torch.get_num_threads() == 1


def test_two_runs_with_the_default_threads_are_identical(tmp_path, capsys, counts_per_step):
    torch.set_num_threads(2)
    train("--steps", 8, "--out", tmp_path / "first")
    train("--steps", 8, "--out", tmp_path / "second")
    assert counts_per_step == [2] * 16  # never changed during a run
    assert rows(tmp_path / "first") == rows(tmp_path / "second")
    assert len(rows(tmp_path / "first")) == 8
    assert checkpoint_bytes(tmp_path / "first") == checkpoint_bytes(tmp_path / "second")
    assert load_checkpoint(tmp_path / "first" / "checkpoints" / "last.safetensors"
                           ).info["threads"] == 2
    assert ", 2 CPU threads" in capsys.readouterr().out


def test_a_resumed_run_keeps_its_count_and_ends_as_an_uninterrupted_one(tmp_path,
                                                                         counts_per_step):
    torch.set_num_threads(1)
    train("--steps", 8, "--out", tmp_path / "whole")
    train("--steps", 4, "--out", tmp_path / "split")
    torch.set_num_threads(2)  # the resuming process would use 2 threads of its own accord
    assert cli.main(["train", "--resume", str(tmp_path / "split"), "--steps", "8"]) == 0
    assert counts_per_step == [1] * 16  # the recorded count, in the resumed session too
    assert rows(tmp_path / "split") == rows(tmp_path / "whole")
    for name in ("last", "best"):
        whole = load_file(tmp_path / "whole" / "checkpoints" / f"{name}.safetensors")
        split = load_file(tmp_path / "split" / "checkpoints" / f"{name}.safetensors")
        assert whole.keys() == split.keys()
        assert [key for key in whole if not torch.equal(whole[key], split[key])] == []
    assert checkpoint_bytes(tmp_path / "split") == checkpoint_bytes(tmp_path / "whole")
