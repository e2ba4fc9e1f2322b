"""Random 0/1 masks for dropout and zoneout, cheap on the CPU.

On the CPU, ``torch.bernoulli_`` draws one 32-bit number per element from torch's Mersenne
Twister: about 28 ms for the (32, 64, 640) outputs of the default language model on a 2-core
Xeon, a sixth of its training step. :func:`bernoulli_mask` instead takes one 64-bit seed from
torch's generator and fills the mask from a counter-based generator in the fused extension
(SplitMix64, four 16-bit draws per output, all threads at once: about 0.3 ms for that mask),
comparing each draw with a threshold; without the extension it draws one 32-bit number per two
elements from torch's generator. Either way the probability is ``p`` rounded to a multiple of
1/65536 (:func:`rounded_probability`: 0.35 becomes 0.350006), and ``torch.manual_seed`` and
saved RNG states reproduce the masks (the two ways give different masks). On other devices
the mask comes from ``bernoulli_`` with the same rounded probability.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

LEVELS = 1 << 16


def rounded_probability(p: float) -> float:
    """``p`` rounded to the nearest multiple of 1/65536: the probability of a
    :func:`bernoulli_mask`."""
    return round(p * LEVELS) / LEVELS


def bernoulli_mask(shape: tuple[int, ...], p: float, like: Tensor, value: float = 1.0) -> Tensor:
    """A tensor of ``shape`` with ``like``'s dtype and device, each element ``value`` with
    probability ``rounded_probability(p)``, else 0."""
    from rnnkit.engine.fused import load_extension

    levels = round(p * LEVELS)
    if not 0 < levels < LEVELS:  # no draws needed
        return torch.full(shape, value if levels else 0.0, dtype=like.dtype, device=like.device)
    if like.device.type != "cpu":
        mask = torch.empty(shape, dtype=like.dtype, device=like.device).bernoulli_(levels / LEVELS)
        return mask if value == 1.0 else mask.mul_(value)
    extension = load_extension() if like.dtype in (torch.float32, torch.float64) else None
    if extension is not None:
        mask = torch.empty(shape, dtype=like.dtype)
        seed = int(torch.randint(-(1 << 63), (1 << 63) - 1, (), dtype=torch.int64))
        extension.bernoulli_fill(mask, seed, LEVELS - levels, value)
        return mask
    n = math.prod(shape)
    words = torch.randint(-(1 << 31), 1 << 31, ((n + 1) // 2,), dtype=torch.int32)
    halves = words.view(torch.int16)[:n].view(shape)  # uniform over [-2^15, 2^15)
    mask = (halves >= LEVELS // 2 - levels).to(like.dtype)
    return mask if value == 1.0 else mask.mul_(value)
