"""A run that stopped early (``--patience``) is complete: ``rnnkit train --resume`` trains no
further, says so, and writes the report where the run ended before writing it; only another
length (``--steps``) trains on past the early stop."""

import json
import random

import pytest

from rnnkit.engine.select import set_default_engine
from rnnkit.training import trainer

WORDS = "now is the winter of our discontent made glorious summer by this sun of york".split()
STEPS = 40
# lr 1 overshoots: validation stops improving within a few steps, and a patience of one
# validation stops the run there (deterministic: the reference engine, one thread).
TINY = ["--embedding-size", "8", "--hidden-size", "16", "--batch-size", "4", "--bptt", "16",
        "--warmup", "2", "--lr", "1.0", "--time-limit", "0", "--device", "cpu",
        "--threads", "1", "--steps", str(STEPS), "--eval-every", "2", "--patience", "1"]
SAME = ("stop_reason", "message", "steps", "total_steps", "best_step", "validation", "test",
        "sample", "config")
"""What a report holds that does not depend on the session (its speed and time do)."""

pytestmark = pytest.mark.usefixtures("one_thread")


class Killed(BaseException):
    """Stands for SIGKILL: nothing after it runs (no handler catches a BaseException)."""


@pytest.fixture(autouse=True)
def reference_engine():
    previous = set_default_engine("reference")  # no kernel build; the same numbers anywhere
    yield
    set_default_engine(previous)


@pytest.fixture
def corpus(tmp_path):
    rng = random.Random(0)
    text = ""
    while len(text) < 1500:
        text += " ".join(rng.choice(WORDS) for _ in range(6)) + ".\n"
    path = tmp_path / "corpus.txt"
    path.write_text(text)
    return path


def report(run):
    values = json.loads((run / "report.json").read_text())
    return {key: values[key] for key in SAME}


def files(run):
    return {name: (run / name).read_bytes()
            for name in ("metrics.csv", "checkpoints/last.safetensors", "config.json")}


def test_resuming_an_early_stopped_run_trains_no_further(corpus, tmp_path, cli, monkeypatch):
    whole = tmp_path / "whole"
    code, out, err = cli("train", "--data", corpus, *TINY, "--out", whole)
    assert code == 0, err
    stopped = report(whole)
    assert stopped["stop_reason"] == "early_stopping" and stopped["steps"] < STEPS
    step = stopped["steps"]
    before = files(whole)

    code, _, err = cli("train", "--resume", whole)
    assert code == 1 and f"stopped early at step {step} of {STEPS}" in err, err
    assert files(whole) == before and report(whole) == stopped

    # Killed after the early stop's checkpoint, before its report: the resume writes the
    # report of the run left alone, and trains nothing.
    run = tmp_path / "run"

    def kill(*args, **kwargs):
        raise Killed

    monkeypatch.setattr(trainer, "write_report", kill)
    with pytest.raises(Killed):
        cli("train", "--data", corpus, *TINY, "--out", run)
    monkeypatch.undo()
    assert not (run / "report.json").exists()
    killed = files(run)
    code, out, err = cli("train", "--resume", run)
    assert code == 0, err
    assert f"stopped early at step {step}" in err and "no training" in err
    assert "Traceback" not in err and "test:" in out
    assert report(run) == stopped
    assert json.loads((run / "report.json").read_text())["steps_this_session"] == 0
    assert files(run) == killed  # nothing trained, nothing logged
    code, _, err = cli("train", "--resume", run)
    assert code == 1 and f"stopped early at step {step}" in err, err


def test_another_length_trains_an_early_stopped_run_further(corpus, tmp_path, cli):
    run = tmp_path / "run"
    code, _, err = cli("train", "--data", corpus, *TINY, "--out", run)
    assert code == 0, err
    step = report(run)["steps"]
    code, _, err = cli("train", "--resume", run, "--steps", step + 6)
    assert code == 0, err
    longer = json.loads((run / "report.json").read_text())
    # The patience counts afresh: at least one more validation (2 steps) before it may stop.
    assert longer["total_steps"] == step + 6 and longer["steps"] >= step + 2
    assert longer["steps_this_session"] == longer["steps"] - step
    rows = (run / "metrics.csv").read_text().splitlines()[1:]
    assert [int(row.split(",")[0]) for row in rows] == list(range(1, longer["steps"] + 1))
