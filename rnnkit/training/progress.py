"""Training progress for people: a tqdm bar on a terminal, a line every so often in a log."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping
from typing import TextIO

from tqdm import tqdm

SETUP_STEPS = 3
"""Steps of a session that the time left is not judged from: the first calls of the kernels,
memory allocation and ``torch.compile``'s compilation make them slower than the rest."""
TIMED_STEPS = 5
"""Steps timed after those before the time left is shown."""


class Progress:
    """Steps, loss, speed (``unit`` per second: a task's examples, or a language model's
    characters) and time left.

    On a terminal this is a tqdm progress bar; when ``stream`` is not a terminal (a log file,
    a pipe) it prints one line every ``every_seconds`` seconds and after each validation.
    ``enabled=False`` (distributed ranks other than 0) shows nothing. The time left (ETA) is
    shown once it means something: from the pace of the :data:`TIMED_STEPS` (or more) steps
    after the session's first :data:`SETUP_STEPS`, and once the run's length is known.
    """

    def __init__(self, total_steps: int | None, first_step: int, enabled: bool = True,
                 stream: TextIO | None = None, every_seconds: float = 30.0,
                 unit: str = "examples", clock: Callable[[], float] = time.monotonic) -> None:
        """Start showing progress of a run of ``total_steps`` (None: not known yet) that begins
        at ``first_step``; ``clock`` gives the time in seconds."""
        self.total_steps = total_steps
        self.first_step = first_step
        self.enabled = enabled
        self.stream = stream or sys.stdout
        self.every_seconds = every_seconds
        self.unit = unit
        self.clock = clock
        self.last_line = clock()
        self.timed_from: tuple[int, float] | None = None  # (step, time) after the setup steps
        self.bar = None
        if enabled and self.stream.isatty():
            # No tqdm rate or remaining time: judged from the first steps, they mislead.
            self.bar = tqdm(total=total_steps, initial=first_step, file=self.stream,
                            unit="step", dynamic_ncols=True,
                            bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]")

    def seconds_left(self, step: int, now: float) -> float | None:
        """The time left at ``step`` (time ``now``) at the pace since the setup steps, or None
        while it would mean little (too few steps timed, or the length not known)."""
        if self.timed_from is None:
            if step - self.first_step >= SETUP_STEPS:
                self.timed_from = (step, now)
            return None
        timed = step - self.timed_from[0]
        if self.total_steps is None or timed < TIMED_STEPS:
            return None
        return (now - self.timed_from[1]) / timed * max(self.total_steps - step, 0)

    def set_total(self, total_steps: int) -> None:
        """Set the length of a run whose length was not known at the start."""
        self.total_steps = total_steps
        if self.bar is not None:
            self.bar.total = total_steps
            self.bar.refresh()

    def update(self, step: int, loss: float, tokens_per_s: float,
               validation: Mapping[str, float] | None = None) -> None:
        """Report that ``step`` steps are done, with this step's loss and speed."""
        if not self.enabled:
            return
        now = self.clock()
        left = self.seconds_left(step, now)
        val_text = ""
        if validation:
            val_text = " val " + " ".join(f"{k} {v:.4f}" for k, v in validation.items())
        if self.bar is not None:
            self.bar.update(step - self.bar.n)
            postfix = {"loss": f"{loss:.4f}", f"{self.unit}/s": f"{tokens_per_s:,.0f}"}
            if left is not None:
                postfix["ETA"] = format_seconds(left)
            self.bar.set_postfix(postfix, refresh=False)
            if validation:
                self.bar.write(f"step {step}:{val_text}")
            return
        if validation or now - self.last_line >= self.every_seconds:
            self.last_line = now
            eta = "" if left is None else f" ETA {format_seconds(left)}"
            print(f"step {step}/{self.total_steps or '?'} loss {loss:.4f} "
                  f"{tokens_per_s:,.0f} {self.unit}/s{eta}{val_text}", file=self.stream,
                  flush=True)

    def write(self, line: str) -> None:
        """Print a line without breaking the progress bar."""
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.write(line)
        else:
            print(line, file=self.stream, flush=True)

    def close(self) -> None:
        """Finish the bar."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def format_seconds(seconds: float) -> str:
    """A duration as e.g. "7m05s" or "42s"."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
