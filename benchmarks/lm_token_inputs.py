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

import argparse

import torch
from report import (
    LM_BATCH,
    LM_LENGTH,
    LM_VOCAB,
    interleaved_medians,
    lm_step,
    load_average,
    machine_lines,
    markdown_table,
    threads_label,
    write_section,
)
from torch import nn

from rnnkit.models.language_model import LanguageModel, LanguageModelConfig
from rnnkit.training.config import TrainConfig
from rnnkit.training.trainer import make_optimizer, uses_bf16

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    parser.add_argument("--repeats", type=int, default=30, help="timed rounds (default 30)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    load_before = load_average()
    bf16 = uses_bf16("auto", torch.device("cpu"))
    jobs = {name: lm_step(*build(name), bf16) for name in MODELS}
    medians = interleaved_medians(jobs, args.repeats, warmup=3)
    ratio = medians[MODELS[1]] / medians[MODELS[0]]
    rows = [[name, f"{medians[name]:.1f}"] for name in MODELS]
    print(", ".join(f"{name} {ms:.1f} ms" for name, ms in medians.items()), f"ratio {ratio:.3f}")
    title = f"Language-model step with token inputs, {threads_label()}"
    write_section(title, machine_lines(load_before) + [
        f"- Training step of the default language model, batch {LM_BATCH} x {LM_LENGTH}, "
        f"{'bfloat16 autocast' if bf16 else 'float32'}, both on the fused engine (the fold "
        f"applies only there); median of {args.repeats} interleaved rounds after "
        f"3 warm-up steps each", "",
    ] + markdown_table(["embedding", "ms per step"], rows) + [
        "", f"folded / embedded sequence: {ratio:.3f}",
    ])


if __name__ == "__main__":
    main()
