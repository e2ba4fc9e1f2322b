"""Progress display: a tqdm bar on a terminal, occasional plain lines otherwise; the speed in
each task's unit, the time left once it means something; ``rnnkit evaluate --threads``."""

import io
import json

import torch

from rnnkit.cli import main
from rnnkit.tasks import build_task, task_config
from rnnkit.training.progress import Progress, format_seconds


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_a_log_file_gets_a_line_per_validation_and_none_in_between():
    stream = io.StringIO()
    progress = Progress(100, 0, stream=stream, every_seconds=3600)
    for step in range(1, 10):
        progress.update(step, loss=2.5, tokens_per_s=1000.0)
    progress.update(10, loss=2.0, tokens_per_s=1000.0, validation={"cross_entropy": 1.9})
    progress.close()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("step 10/100 loss 2.0000") and "val cross_entropy 1.9000" in lines[0]
    assert "ETA" in lines[0] and "\r" not in stream.getvalue()


def test_a_terminal_gets_a_progress_bar():
    stream = Terminal()
    progress = Progress(50, 10, stream=stream)
    progress.update(11, loss=1.5, tokens_per_s=2000.0)
    progress.close()
    assert "11/50" in stream.getvalue() and "loss=1.5000" in stream.getvalue()


def test_other_ranks_show_nothing():
    stream = Terminal()
    progress = Progress(50, 0, enabled=False, stream=stream)
    progress.update(1, loss=1.0, tokens_per_s=1.0, validation={"cross_entropy": 1.0})
    progress.write("hello")
    progress.close()
    assert stream.getvalue() == ""


def test_format_seconds():
    assert [format_seconds(s) for s in (42, 425, 7300)] == ["42s", "7m05s", "2h01m"]


def test_the_speed_is_shown_in_the_task_s_unit():
    stream = io.StringIO()
    progress = Progress(100, 0, stream=stream, unit="series")
    progress.update(10, loss=2.0, tokens_per_s=1234.0, validation={"error_rate": 0.5})
    assert "1,234 series/s" in stream.getvalue()
    terminal = Terminal()
    bar = Progress(50, 10, stream=terminal, unit="series")
    bar.update(11, loss=1.5, tokens_per_s=2000.0)
    bar.close()
    assert "series/s=2,000" in terminal.getvalue()


class Clock:
    """A clock the test moves by hand."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_the_time_left_is_shown_once_it_means_something():
    clock = Clock()
    stream = io.StringIO()
    progress = Progress(1000, 0, stream=stream, every_seconds=0, clock=clock)
    clock.now = 150.0  # the first step waited for the kernels to compile (or torch.compile)
    progress.update(1, loss=3.0, tokens_per_s=10.0)
    for step in range(2, 8):  # then a step a second
        clock.now += 1.0
        progress.update(step, loss=2.0, tokens_per_s=1000.0)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 7 and not any("ETA" in line for line in lines)
    clock.now += 1.0
    progress.update(8, loss=2.0, tokens_per_s=1000.0)
    # 3 setup steps, then 5 timed in 5 s: 992 steps left take 992 s, not 150 s each
    assert stream.getvalue().splitlines()[-1].endswith("ETA 16m32s")


def test_the_time_left_waits_for_the_length_of_an_auto_run():
    clock = Clock()
    stream = io.StringIO()
    progress = Progress(None, 0, stream=stream, every_seconds=0, clock=clock)
    for step in range(1, 61):
        clock.now += 0.5
        progress.update(step, loss=2.0, tokens_per_s=1.0)
    assert "ETA" not in stream.getvalue()
    progress.set_total(160)
    clock.now += 0.5
    progress.update(61, loss=2.0, tokens_per_s=1.0)
    assert stream.getvalue().splitlines()[-1].endswith("ETA 50s")


def test_a_terminal_bar_shows_no_time_left_before_it_means_something():
    clock = Clock()
    terminal = Terminal()
    bar = Progress(100, 0, stream=terminal, clock=clock, unit="chars")
    clock.now = 150.0
    bar.update(1, loss=3.0, tokens_per_s=10.0)
    bar.bar.refresh()
    first = terminal.getvalue()
    assert "ETA" not in first and "chars/s=10" in first
    assert "?" not in first.split("1/100")[1]  # no tqdm remaining time or rate
    for step in range(2, 10):
        clock.now += 2.0
        bar.update(step, loss=2.0, tokens_per_s=1000.0)
    bar.bar.refresh()
    assert "ETA=3m02s" in terminal.getvalue()  # 91 steps left at 2 s each
    bar.close()


def test_each_task_counts_what_its_speed_means(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("to be or not to be, that is the question.\n" * 40)
    lm = build_task(task_config("lm", data=str(corpus), hidden_size=8, embedding_size=8,
                                batch_size=4, bptt=16, device="cpu"), torch.device("cpu"))
    batch = lm.batch_at(0)
    assert (lm.unit, lm.counts_targets, batch.size) == ("chars", True, 4 * 16)
    classify = build_task(task_config("classify", data="ItalyPowerDemand", hidden_size=8,
                                      batch_size=4, device="cpu"), torch.device("cpu"))
    assert (classify.unit, classify.counts_targets, classify.batch_at(0).rows) == (
        "series", False, 4)
    adding = build_task(task_config("adding", data="12", hidden_size=8, batch_size=4,
                                    device="cpu"), torch.device("cpu"))
    assert (adding.unit, adding.batch_at(0).rows) == ("sequences", 4)


def test_training_shows_and_reports_the_task_s_unit_and_evaluate_takes_threads(tmp_path,
                                                                              capsys):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("to be or not to be, that is the question.\n" * 40)
    run = tmp_path / "run"
    assert main(["train", "--data", str(corpus), "--hidden-size", "8", "--embedding-size", "8",
                 "--batch-size", "4", "--bptt", "16", "--steps", "2", "--eval-every", "2",
                 "--time-limit", "0", "--threads", "1", "--out", str(run)]) == 0
    assert " chars/s" in capsys.readouterr().out  # the line after the validation
    assert json.loads((run / "report.json").read_text())["speed_unit"] == "chars"
    assert " chars/s" in (run / "report.md").read_text()
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        assert main(["evaluate", str(run), "--threads", "1"]) == 0
        assert torch.get_num_threads() == 1 and "cross_entropy" in capsys.readouterr().out
    finally:
        torch.set_num_threads(threads)
    assert main(["evaluate", str(run), "--threads", "-1"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--threads must be >= 0" in err and "-1" in err
