"""How many CPU threads each training step uses, when the machine is shared.

Intra-op threads meet at a barrier after every parallel operation, hundreds of times per
recurrent step. When other programs keep the cores busy, one of the threads is often
descheduled and the others wait for it: on a busy two-core machine one thread can train
several times faster than two, while on an idle machine two threads win. With
``--threads 0`` (auto) the trainer therefore tries the other thread count for a step or two
now and then and keeps whichever is faster; a trial that loses doubles the wait before the
next one, so a slow candidate costs little.
"""

from __future__ import annotations

from collections import deque

import torch


class ThreadTuner:
    """Chooses the intra-op thread count of CPU training steps.

    Call :meth:`before_step` before and :meth:`after_step` (with the step's duration) after
    each step. ``threads`` fixes the count and nothing is timed; None switches between all
    cores and 1 thread (CPU only): after ``every`` steps the other count runs up to ``trial``
    steps, cut short after one step if that was 1.5 times slower than the recent steps, and
    it is kept if its fastest step beat the fastest of the last few steps. Each losing trial
    doubles the steps before the next one (up to 32 * ``every``); a switch resets them.
    """

    def __init__(self, threads: int | None, device: torch.device, every: int = 100,
                 trial: int = 2) -> None:
        """Start with ``threads``, or (auto) with torch's current count."""
        cores = torch.get_num_threads() if threads is None else threads
        self.active = threads is None and device.type == "cpu" and cores > 1
        self.current, self.other = cores, 1
        self.every = every
        self.trial = trial
        self.recent: deque[float] = deque(maxlen=5)
        self.trial_times: list[float] = []
        self.trial_left = 0
        self.wait = every
        self.steps_until_trial = 2  # the first comparison comes early
        if threads is not None:
            torch.set_num_threads(threads)

    def before_step(self) -> None:
        """Set the thread count for the coming step."""
        if not self.active:
            return
        if self.steps_until_trial == 0 and not self.trial_left:
            self.trial_left = self.trial
        torch.set_num_threads(self.other if self.trial_left else self.current)

    def after_step(self, seconds: float) -> None:
        """Record how long the step took; at the end of a trial, keep the faster count."""
        if not self.active:
            return
        if not self.trial_left:
            self.recent.append(seconds)
            self.steps_until_trial -= 1
            return
        self.trial_times.append(seconds)
        self.trial_left -= 1
        if self.trial_left and seconds > 1.5 * min(self.recent):
            self.trial_left = 0  # clearly slower: no need to try again now
        if not self.trial_left:
            if min(self.trial_times) < min(self.recent):
                self.current, self.other = self.other, self.current
                self.recent = deque(self.trial_times, maxlen=self.recent.maxlen)
                self.wait = self.every
            else:
                self.wait = min(2 * self.wait, 32 * self.every)
            self.trial_times = []
            self.steps_until_trial = self.wait
