"""Training progress for people: a tqdm bar on a terminal, a line every so often in a log."""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from typing import TextIO

from tqdm import tqdm


class Progress:
    """Steps, loss, speed (``unit`` per second: what a batch's size counts) and time left.

    On a terminal this is a tqdm progress bar; when ``stream`` is not a terminal (a log file,
    a pipe) it prints one line every ``every_seconds`` seconds and after each validation.
    ``enabled=False`` (distributed ranks other than 0) shows nothing.
    """

    def __init__(self, total_steps: int | None, first_step: int, enabled: bool = True,
                 stream: TextIO | None = None, every_seconds: float = 30.0,
                 unit: str = "tok") -> None:
        """Start showing progress of a run of ``total_steps`` (None: not known yet) that begins
        at ``first_step``."""
        self.total_steps = total_steps
        self.first_step = first_step
        self.enabled = enabled
        self.stream = stream or sys.stdout
        self.every_seconds = every_seconds
        self.unit = unit
        self.started = time.monotonic()
        self.last_line = self.started
        self.bar = None
        if enabled and self.stream.isatty():
            self.bar = tqdm(total=total_steps, initial=first_step, file=self.stream,
                            unit="step", dynamic_ncols=True, smoothing=0.1)

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
        val_text = ""
        if validation:
            val_text = " val " + " ".join(f"{k} {v:.4f}" for k, v in validation.items())
        if self.bar is not None:
            self.bar.update(step - self.bar.n)
            self.bar.set_postfix({"loss": f"{loss:.4f}", f"{self.unit}/s": f"{tokens_per_s:,.0f}"},
                                 refresh=False)
            if validation:
                self.bar.write(f"step {step}:{val_text}")
            return
        now = time.monotonic()
        if validation or now - self.last_line >= self.every_seconds:
            self.last_line = now
            eta = ""
            if self.total_steps is not None:
                done = step - self.first_step
                left = (now - self.started) / max(done, 1) * (self.total_steps - step)
                eta = f" ETA {format_seconds(left)}"
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
