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

from rnnkit.models.language_model import LanguageModel, LanguageModelConfig
from rnnkit.training.config import TrainConfig
from rnnkit.training.trainer import uses_bf16

DEFAULTS = TrainConfig()
PENALTIES = {"no penalties": (0.0, 0.0),
             "AR and TAR": (DEFAULTS.activation_penalty, DEFAULTS.temporal_penalty)}


def build(activation: float, temporal: float) -> tuple[LanguageModel, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = LanguageModel(LanguageModelConfig(
        vocab_size=LM_VOCAB, hidden_size=DEFAULTS.hidden_size, dropout=DEFAULTS.dropout,
        activation_penalty=activation, temporal_penalty=temporal))
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
    jobs = {name: lm_step(*build(*values), bf16) for name, values in PENALTIES.items()}
    medians = interleaved_medians(jobs, args.repeats, warmup=3)
    ratio = medians["AR and TAR"] / medians["no penalties"]
    print(", ".join(f"{name} {ms:.1f} ms" for name, ms in medians.items()), f"ratio {ratio:.3f}")
    activation, temporal = PENALTIES["AR and TAR"]
    rows = [[name, f"{medians[name]:.1f}"] for name in PENALTIES]
    write_section(f"Language-model step and output penalties, {threads_label()}",
                  machine_lines(load_before) + [
        f"- Training step of the default language model, batch {LM_BATCH} x {LM_LENGTH}, "
        f"{'bfloat16 autocast' if bf16 else 'float32'}, with AR {activation:g} and TAR "
        f"{temporal:g} or without; median of {args.repeats} interleaved rounds after 3 "
        "warm-up steps each", "",
    ] + markdown_table(["loss", "ms per step"], rows) + [
        "", f"with the penalties / without: {ratio:.3f}",
    ])


if __name__ == "__main__":
    main()
