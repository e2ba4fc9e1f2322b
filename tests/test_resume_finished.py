"""A run killed after its final checkpoint, before its report was (wholly) written, is finished
by ``rnnkit train --resume``: the final results and the report, with no further training, the
same as the run left alone; once its report is written, a resume says the run is complete.
A run that stopped early (``--patience``) is complete in the same way: only another length
(``--steps``) trains on past the early stop."""

import json
import os
import signal
import time
import traceback

import pytest
from conftest import write_word_corpus

from rnnkit.cli import main
from rnnkit.engine.select import set_default_engine
from rnnkit.training import run_dir, trainer

WORDS = "now is the winter of our discontent made glorious summer by this sun of york".split()
STEPS = 6
TINY = ["--embedding-size", "8", "--hidden-size", "16", "--batch-size", "4", "--bptt", "16",
        "--warmup", "2", "--lr", "0.02", "--time-limit", "0", "--device", "cpu",
        "--threads", "1", "--steps", str(STEPS), "--eval-every", "3"]
EARLY_STEPS = 40
EARLY_STOPPING = ["--embedding-size", "8", "--hidden-size", "16", "--batch-size", "4",
                  "--bptt", "16", "--warmup", "2", "--lr", "1.0", "--time-limit", "0",
                  "--device", "cpu", "--threads", "1", "--steps", str(EARLY_STEPS),
                  "--eval-every", "2", "--patience", "1"]
"""lr 1 overshoots: validation stops improving within a few steps, and a patience of one
validation stops the run there (deterministic: the reference engine, one thread)."""
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
    return write_word_corpus(tmp_path / "corpus.txt", WORDS, seed=0, words_per_line=6,
                             length=1500)


def report(run):
    values = json.loads((run / "report.json").read_text())
    return {key: values[key] for key in SAME}


@pytest.mark.parametrize("killed", ["before the report", "between report.md and report.json"])
def test_a_run_killed_before_its_report_is_finished_by_resume(corpus, tmp_path, cli,
                                                              monkeypatch, killed):
    code, _, err = cli("train", "--data", corpus, *TINY, "--out", tmp_path / "whole")
    assert code == 0, err

    run = tmp_path / "run"
    if killed == "before the report":
        def kill(*args, **kwargs):
            raise Killed
        monkeypatch.setattr(trainer, "write_report", kill)
    else:
        write_json = run_dir.write_json

        def kill(path, values):
            if path.name == "report.json":
                raise Killed
            write_json(path, values)
        monkeypatch.setattr(run_dir, "write_json", kill)
    with pytest.raises(Killed):
        cli("train", "--data", corpus, *TINY, "--out", run)
    monkeypatch.undo()
    assert not (run / "report.json").exists()
    metrics = (run / "metrics.csv").read_bytes()
    last = (run / "checkpoints" / "last.safetensors").read_bytes()

    code, out, err = cli("train", "--resume", run)
    assert code == 0, err
    assert "no training" in err and "Traceback" not in err
    assert f"finished {STEPS} steps" in out and "test:" in out
    assert report(run) == report(tmp_path / "whole")
    assert (run / "report.md").read_text().count("| test |") == 1
    assert json.loads((run / "report.json").read_text())["steps_this_session"] == 0
    assert (run / "metrics.csv").read_bytes() == metrics  # nothing trained, nothing logged
    assert (run / "checkpoints" / "last.safetensors").read_bytes() == last

    code, _, err = cli("train", "--resume", run)
    assert code == 1 and f"already trained for {STEPS} of {STEPS} steps" in err, err


def test_a_run_sigkilled_before_its_report_json_is_finished_by_resume(corpus, tmp_path, cli):
    """The same with a real SIGKILL (a forked process, paused with report.md written and
    report.json not): the resume takes the dead process's lock over and finishes."""
    run, marker = tmp_path / "run", tmp_path / "paused"
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 70
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
            os.dup2(os.open(tmp_path / "child.log", os.O_WRONLY | os.O_CREAT), 2)
            write_json = run_dir.write_json

            def pause_before_report_json(path, values):
                if path.name == "report.json":
                    marker.write_text("")
                    time.sleep(600)
                write_json(path, values)

            run_dir.write_json = pause_before_report_json
            code = main(["train", "--data", str(corpus), *TINY, "--out", str(run)])
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    try:
        deadline = time.monotonic() + 300
        while not marker.exists():
            assert os.waitpid(pid, os.WNOHANG)[0] == 0, (tmp_path / "child.log").read_text()
            assert time.monotonic() < deadline, (tmp_path / "child.log").read_text()
            time.sleep(0.01)
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    assert (run / "report.md").exists() and not (run / "report.json").exists()

    code, out, err = cli("train", "--resume", run)
    assert code == 0, err
    assert "no training" in err and f"finished {STEPS} steps" in out
    assert json.loads((run / "report.json").read_text())["steps"] == STEPS


def files(run):
    return {name: (run / name).read_bytes()
            for name in ("metrics.csv", "checkpoints/last.safetensors", "config.json")}


def test_resuming_an_early_stopped_run_trains_no_further(corpus, tmp_path, cli, monkeypatch):
    whole = tmp_path / "whole"
    code, out, err = cli("train", "--data", corpus, *EARLY_STOPPING, "--out", whole)
    assert code == 0, err
    stopped = report(whole)
    assert stopped["stop_reason"] == "early_stopping" and stopped["steps"] < EARLY_STEPS
    step = stopped["steps"]
    before = files(whole)

    code, _, err = cli("train", "--resume", whole)
    assert code == 1 and f"stopped early at step {step} of {EARLY_STEPS}" in err, err
    assert files(whole) == before and report(whole) == stopped

    # Killed after the early stop's checkpoint, before its report: the resume writes the
    # report of the run left alone, and trains nothing.
    run = tmp_path / "run"

    def kill(*args, **kwargs):
        raise Killed

    monkeypatch.setattr(trainer, "write_report", kill)
    with pytest.raises(Killed):
        cli("train", "--data", corpus, *EARLY_STOPPING, "--out", run)
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
    code, _, err = cli("train", "--data", corpus, *EARLY_STOPPING, "--out", run)
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
