"""The default language model's training step with torch.nn.Dropout and with rnnkit's Dropout.

rnnkit's Dropout runs twice: with its masks from the fused extension's counter-based generator
(what it uses wherever the extension is built) and with them drawn from torch's generator (one
32-bit draw per two elements: its fallback without the extension, and what it used before).

The model of ``rnnkit train`` (embedding 64, 1-layer LSTM of 640 units, dropout 0.35 on the
outputs, 65 characters) takes AdamW steps on a batch of 32 x 64 characters under bfloat16
autocast where the CPU computes it natively (as ``--precision auto``), float32 elsewhere. The
two models are timed in the same process, interleaved in an order rotated from round to round;
medians of the rounds after warm-up, and their ratio.

Usage::

    python benchmarks/lm_dropout.py [--threads N] [--repeats 30]
"""

from __future__ import annotations

import torch
from report import LM_VOCAB, compare_lm_steps
from rnnkit.models.dropout import Dropout
from torch import nn

from rnnkit.engine import fused
from rnnkit.models.language_model import LanguageModel, LanguageModelConfig

MODELS = ("torch.nn.Dropout", "rnnkit Dropout, torch's generator", "rnnkit Dropout")


class TorchGeneratorDropout(Dropout):
    """rnnkit's Dropout with its masks from torch's generator (as without the extension)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        real = fused.load_extension
        fused.load_extension = lambda: None
        try:
            return super().forward(x)
        finally:
            fused.load_extension = real


def build(name: str) -> tuple[nn.Module, torch.optim.Optimizer]:
    model = LanguageModel(LanguageModelConfig(vocab_size=LM_VOCAB, hidden_size=640, dropout=0.35))
    if name == "torch.nn.Dropout":
        model.dropout = nn.Dropout(0.35)
    elif name != "rnnkit Dropout":
        model.dropout = TorchGeneratorDropout(0.35)
    return model, torch.optim.AdamW(model.parameters(), lr=1e-3)


if __name__ == "__main__":
    compare_lm_steps(__doc__.split("\n\n")[0], MODELS, build,
                     "Language-model step and dropout", "dropout",
                     {"rnnkit Dropout / torch.nn.Dropout": ("rnnkit Dropout", "torch.nn.Dropout"),
                      "rnnkit Dropout / the same with torch's generator":
                          ("rnnkit Dropout", "rnnkit Dropout, torch's generator")})
