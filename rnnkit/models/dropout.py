"""Inverted dropout whose mask costs about 0.4 of ``nn.Dropout``'s on the CPU.

On the CPU the mask comes from :func:`rnnkit.masks.bernoulli_mask` (a counter-based generator
seeded from torch's, instead of ``nn.Dropout``'s one 32-bit draw per element), already holding
the scale: the drop probability is ``p`` rounded to a multiple of 1/65536 (0.35 becomes
0.350006), and the kept units are scaled by 1 / (1 - that probability), so the expected output
equals the input exactly. ``torch.manual_seed`` and saved RNG states reproduce the masks. On
other devices it is ``nn.Dropout``.
"""

from __future__ import annotations

from torch import Tensor, nn
from torch.nn import functional as F

from rnnkit.masks import LEVELS, bernoulli_mask


class Dropout(nn.Dropout):
    """Zero each element with probability ``p`` (rounded to a multiple of 1/65536 on the CPU)
    while training and scale the rest by 1 / (1 - p); the identity in eval mode."""

    def forward(self, x: Tensor) -> Tensor:
        """``x`` with a fresh mask applied (training) or unchanged (eval, or ``p`` = 0)."""
        if not self.training or self.p == 0.0:
            return x
        dropped = round(self.p * LEVELS)
        if x.device.type != "cpu" or not 0 < dropped < LEVELS:
            return F.dropout(x, self.p, True, self.inplace)
        kept = (LEVELS - dropped) / LEVELS
        return x * bernoulli_mask(x.shape, kept, x, 1 / kept)
