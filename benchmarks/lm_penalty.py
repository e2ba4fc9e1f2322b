"""The default language model's training step with and without its output penalties.

The model of ``rnnkit train`` (embedding 64, 1-layer LSTM of 640 units, dropout 0.35 on the
outputs, 65 characters) takes AdamW steps on a batch of 32 x 64 characters under bfloat16
autocast where the CPU computes it natively (as ``--precision auto``), float32 elsewhere:
once with the AR and TAR of ``rnnkit train`` (``--activation-penalty``, ``--temporal-penalty``)
in its loss, once without. The two are timed in the same process, interleaved in an order
rotated from round to round; medians of the rounds after warm-up, and their ratio.

Usage::

    python benchmarks/lm_penalty.py [--threads N] [--repeats 30]
"""

from __future__ import annotations

import torch
from report import LM_VOCAB, compare_lm_steps

from rnnkit.models.language_model import LanguageModel, LanguageModelConfig
from rnnkit.training.config import TrainConfig

DEFAULTS = TrainConfig()
PENALTIES = {"no penalties": (0.0, 0.0),
             "AR and TAR": (DEFAULTS.activation_penalty, DEFAULTS.temporal_penalty)}


def build(name: str) -> tuple[LanguageModel, torch.optim.Optimizer]:
    activation, temporal = PENALTIES[name]
    torch.manual_seed(0)
    model = LanguageModel(LanguageModelConfig(
        vocab_size=LM_VOCAB, hidden_size=DEFAULTS.hidden_size, dropout=DEFAULTS.dropout,
        activation_penalty=activation, temporal_penalty=temporal))
    return model, torch.optim.AdamW(model.parameters(), lr=1e-3)


if __name__ == "__main__":
    activation, temporal = PENALTIES["AR and TAR"]
    compare_lm_steps(__doc__.split("\n\n")[0], list(PENALTIES), build,
                     "Language-model step and output penalties", "loss",
                     {"with the penalties / without": ("AR and TAR", "no penalties")},
                     f", with AR {activation:g} and TAR {temporal:g} or without")
