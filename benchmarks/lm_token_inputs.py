"""The default language model's training step with its embedding folded into the first layer.

The model of ``rnnkit train`` (embedding 64, 1-layer LSTM of 640 units, dropout 0.35 on the
outputs, 65 characters) takes the trainer's AdamW steps on a batch of 32 x 64 characters under
bfloat16 autocast where the CPU computes it natively (as ``--precision auto``), float32
elsewhere, both with the layer on the fused engine, in two forms: as
:class:`rnnkit.models.LanguageModel` runs it there (each step reads a row of the table W_ih e +
b_ih per character: the ``tokens`` of ``RecurrentLayer.forward``), and with the embedding
looked up first and the input projection over all steps (the layer given the embedded
sequence). Timed in the same process, interleaved in an order rotated from round to round;
medians of the rounds after warm-up, and their ratio.

Usage::

    python benchmarks/lm_token_inputs.py [--threads N] [--repeats 30]
"""

from __future__ import annotations

import torch
from report import LM_VOCAB, compare_lm_steps
from torch import nn

from rnnkit.models.language_model import LanguageModel, LanguageModelConfig
from rnnkit.training.config import TrainConfig
from rnnkit.training.trainer import make_optimizer

MODELS = ("embedded sequence", "folded (token inputs)")


class EmbeddedSequence(LanguageModel):
    """The language model with the embedding looked up before the layer."""

    def forward(self, ids, state=None):
        outputs, state = self.layer(self.embedding(ids), state)
        return self.head(self.dropout(outputs)), state


def build(name: str) -> tuple[nn.Module, torch.optim.Optimizer]:
    kind = EmbeddedSequence if name == "embedded sequence" else LanguageModel
    torch.manual_seed(0)
    model = kind(LanguageModelConfig(vocab_size=LM_VOCAB, hidden_size=640, dropout=0.35))
    model.layer.engine = "fused"  # the fold's own effect, on any CPU (auto: see layers.py)
    return model, make_optimizer(TrainConfig(), model)


if __name__ == "__main__":
    compare_lm_steps(__doc__.split("\n\n")[0], MODELS, build,
                     "Language-model step with token inputs", "embedding",
                     {"folded / embedded sequence": (MODELS[1], MODELS[0])},
                     ", both on the fused engine (the fold applies only there)")
