"""An exponential moving average of a model's weights, the weights a run is judged by.

Training updates the raw weights; after every optimizer step the average moves towards them:

    avg_t = d_t * avg_{t-1} + (1 - d_t) * w_t,    d_t = min(decay, (1 + t) / (10 + t))

(t = 0, 1, ... counts the optimizer steps, so the first steps are averaged over fewer steps and
the start-up weights are soon forgotten). Validation, the best checkpoint, test metrics and
samples use the averaged weights. At a high learning rate they are much better than the raw
ones, and they smooth the noise of the last steps.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn


class WeightAverage:
    """The moving average of ``model``'s floating-point parameters (see the module docs)."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        """Start the average at the model's current weights."""
        if not 0.0 < decay < 1.0:
            raise ValueError(f"decay must be in (0, 1), got {decay}")
        self.decay = decay
        self._params = {name: p for name, p in model.named_parameters() if p.is_floating_point()}
        self.tensors = {name: p.detach().clone() for name, p in self._params.items()}
        # The two sides of the per-step update, listed once: the optimizer updates the
        # parameters in place, so these views stay current.
        self._averages = list(self.tensors.values())
        self._weights = [p.detach() for p in self._params.values()]

    def update(self, step: int) -> None:
        """Move the average towards the current weights, just updated by step ``step`` (0, 1,
        ...)."""
        weight = 1.0 - min(self.decay, (1 + step) / (10 + step))
        with torch.no_grad():
            torch._foreach_lerp_(self._averages, self._weights, weight)

    @contextmanager
    def applied(self) -> Iterator[None]:
        """Within the block the model holds the averaged weights; after it, the raw ones."""
        with torch.no_grad():
            raw = {name: p.detach().clone() for name, p in self._params.items()}
            for name, p in self._params.items():
                p.copy_(self.tensors[name])
        try:
            yield
        finally:
            with torch.no_grad():
                for name, p in self._params.items():
                    p.copy_(raw[name])

    def load(self, tensors: dict[str, Tensor]) -> None:
        """Take the average saved in a checkpoint; if there is none that fits (a run that kept
        no average), start it again at the model's current weights."""
        fits = set(tensors) == set(self.tensors) and all(
            tensors[name].shape == t.shape for name, t in self.tensors.items())
        with torch.no_grad():
            for name, t in self.tensors.items():
                t.copy_(tensors[name] if fits else self._params[name])


@contextmanager
def averaged(average: WeightAverage | None) -> Iterator[None]:
    """``average.applied()``, or nothing for a run that keeps no average."""
    if average is None:
        yield
    else:
        with average.applied():
            yield
