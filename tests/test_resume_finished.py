"""A run killed after its final checkpoint, before its report was (wholly) written, is finished
by ``rnnkit train --resume``: the final results and the report, with no further training, the
same as the run left alone; once its report is written, a resume says the run is complete."""

import json
import os
import random
import signal
import time
import traceback

import pytest

from rnnkit.cli import main
from rnnkit.engine.select import set_default_engine
from rnnkit.training import run_dir, trainer

WORDS = "now is the winter of our discontent made glorious summer by this sun of york".split()
STEPS = 6
TINY = ["--embedding-size", "8", "--hidden-size", "16", "--batch-size", "4", "--bptt", "16",
        "--warmup", "2", "--lr", "0.02", "--time-limit", "0", "--device", "cpu",
        "--threads", "1", "--steps", str(STEPS), "--eval-every", "3"]
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
