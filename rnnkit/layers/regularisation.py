"""Regularisation inside a recurrent layer: DropConnect on the recurrent weights and zoneout of
the states. Masks come from torch's generator, so ``torch.manual_seed`` and saved RNG states
reproduce them."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from rnnkit.engine.reference import Zoneout

RECURRENT_WEIGHTS = ("weight_hh", "weight_gr")
"""Names of the hidden-to-hidden weights that DropConnect drops."""


def bernoulli_mask(shape: tuple[int, ...], p: float, like: Tensor) -> Tensor:
    """A tensor of ``shape`` with ``like``'s dtype and device, each element 1 with probability
    ``p``, else 0."""
    return torch.empty(shape, dtype=like.dtype, device=like.device).bernoulli_(p)


def drop_connect(name: str, weight: Tensor, p: float, training: bool) -> Tensor:
    """``weight`` as a step uses it: with DropConnect (Wan et al. 2013; Merity et al. 2018) if
    it is a recurrent weight and ``p`` > 0 in training — one mask of Bernoulli(1 - p) / (1 - p)
    entries, shared by all steps and sequences of the call."""
    if p and training and name in RECURRENT_WEIGHTS:
        return F.dropout(weight, p, training=True)
    return weight


def zoneout_keep(rates: tuple[float, float], sizes: tuple[int, ...], steps: int, batch: int,
                 like: Tensor, training: bool) -> Zoneout | None:
    """The keep weights of zoneout (Krueger et al. 2017) for h and c of one layer and direction
    over ``steps`` x ``batch``: a fresh (T, B, size) 0/1 mask per state in training, the rate
    in evaluation (the expectation), 0.0 where off; ``None`` when both ``rates`` are 0."""
    if not any(rates):
        return None
    if not training:
        return rates
    return tuple(bernoulli_mask((steps, batch, size), rate, like) if rate else 0.0
                 for rate, size in zip(rates, sizes))
