"""Progress display: a tqdm bar on a terminal, occasional plain lines otherwise."""

import io

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
