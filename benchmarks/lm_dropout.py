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

from rnnkit.engine import fused
from rnnkit.models.dropout import Dropout
from rnnkit.models.language_model import LanguageModel, LanguageModelConfig
from rnnkit.training.trainer import uses_bf16

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
    ratio = medians["rnnkit Dropout"] / medians["torch.nn.Dropout"]
    generator_ratio = medians["rnnkit Dropout"] / medians["rnnkit Dropout, torch's generator"]
    rows = [[name, f"{medians[name]:.1f}"] for name in MODELS]
    print(", ".join(f"{name} {ms:.1f} ms" for name, ms in medians.items()),
          f"ratio {ratio:.3f}, against torch's generator {generator_ratio:.3f}")
    title = f"Language-model step and dropout, {threads_label()}"
    write_section(title, machine_lines(load_before) + [
        f"- Training step of the default language model, batch {LM_BATCH} x {LM_LENGTH}, "
        f"{'bfloat16 autocast' if bf16 else 'float32'}; median of {args.repeats} interleaved "
        f"rounds after 3 warm-up steps each", "",
    ] + markdown_table(["dropout", "ms per step"], rows) + [
        "", f"rnnkit Dropout / torch.nn.Dropout: {ratio:.3f}; rnnkit Dropout / the same with "
        f"torch's generator: {generator_ratio:.3f}",
    ])


if __name__ == "__main__":
    main()
