"""Training under bfloat16 autocast on the CPU: the fused kernels' bfloat16 products, by cell and
in the default language model's step.

Under ``torch.autocast("cpu", dtype=torch.bfloat16)`` the fused kernels multiply bfloat16
operands (rnnkit's AMX or AVX512-BF16 kernel for the per-step products where the CPU has one,
oneDNN for the rest) while their pointwise steps stay float32; before, they ran float32 products
under autocast. Two tables, each timed in one process with the rows interleaved in an order rotated
from round to round (medians of the rounds after warm-up):

* Cells: a forward and backward pass of one layer (input size H) over a (B, T) batch, with
  float32 products (no autocast, what the kernels computed under autocast before) and under
  bfloat16 autocast, and torch.nn.LSTM under the same autocast (torch's oneDNN kernel).
* Language model: AdamW steps of the ``rnnkit train`` model (embedding 64, LSTM of 640 units,
  dropout 0.35, batch 32 x 64) under bfloat16 autocast, with the LSTM on torch's kernel and on
  the fused ones, and with torch's default (foreach) AdamW and its fused one.

Usage::

    python benchmarks/bf16.py [--threads N] [--repeats 15] [--shape 32x64x640]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

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

import rnnkit
from rnnkit.engine.fused import load_extension
from rnnkit.models.language_model import LanguageModel, LanguageModelConfig

CELLS = ("lstm", "peephole-lstm", "cifg-lstm", "gru", "gru-cho", "rnn", "clockwork")
BF16 = torch.bfloat16


def layer_job(layer: nn.Module, x: torch.Tensor, autocast: bool) -> Callable[[], None]:
    def job() -> None:
        with torch.autocast("cpu", dtype=BF16, enabled=autocast):
            output = layer(x)[0]
        output.float().sum().backward()
    return job


def cell_rows(shape: tuple[int, int, int], repeats: int) -> list[list[str]]:
    batch, steps, hidden = shape
    x = torch.randn(steps, batch, hidden, requires_grad=True)
    jobs = {"torch.nn.LSTM, bf16": layer_job(nn.LSTM(hidden, hidden), x, True)}
    for cell in CELLS:
        layer = rnnkit.build_layer(cell, hidden, hidden, engine="fused")
        jobs[f"{cell}, float32"] = layer_job(layer, x, False)
        jobs[f"{cell}, bf16"] = layer_job(layer, x, True)
    medians = interleaved_medians(jobs, repeats, warmup=2)
    lstm = medians["torch.nn.LSTM, bf16"]
    rows = [["torch.nn.LSTM", "", f"{lstm:.1f}", "", "1.00"]]
    for cell in CELLS:
        full, half = medians[f"{cell}, float32"], medians[f"{cell}, bf16"]
        rows.append([cell, f"{full:.1f}", f"{half:.1f}", f"{half / full:.2f}",
                     f"{half / lstm:.2f}"])
    return rows


def lm_rows(repeats: int) -> list[list[str]]:
    def job(engine: str, fused_adamw: bool) -> Callable[[], None]:
        torch.manual_seed(0)
        model = LanguageModel(LanguageModelConfig(vocab_size=LM_VOCAB, hidden_size=640,
                                                  dropout=0.35))
        model.layer.engine = engine
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=fused_adamw)
        return lm_step(model, optimizer, bf16=True)

    jobs = {"torch's LSTM kernel, foreach AdamW (before)": job("native", False),
            "torch's LSTM kernel, fused AdamW": job("native", True),
            "fused LSTM kernels, fused AdamW (now)": job("fused", True)}
    medians = interleaved_medians(jobs, repeats, warmup=2)
    before = medians["torch's LSTM kernel, foreach AdamW (before)"]
    return [[name, f"{ms:.1f}", f"{ms / before:.2f}"] for name, ms in medians.items()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    parser.add_argument("--repeats", type=int, default=15, help="timed rounds (default 15)")
    parser.add_argument("--shape", default="32x64x640", help="BxTxH of the cell table")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    shape = tuple(int(part) for part in args.shape.split("x"))
    load_before = load_average()
    extension = load_extension()
    kernel = ("AMX" if extension.amx_available() else
              "AVX512-BF16" if extension.avx512_bf16_available() else "none (oneDNN products only)")
    cells = cell_rows(shape, args.repeats)
    lm = lm_rows(args.repeats)
    for row in cells + lm:
        print(" | ".join(row))
    write_section(f"bfloat16 autocast, {threads_label()}", machine_lines(load_before) + [
        f"- rnnkit's kernel for the per-step bfloat16 products here: {kernel}",
        f"- Cells: one layer, B x T x H = {args.shape}, forward and backward, ms (median of "
        f"{args.repeats} interleaved rounds)", "",
    ] + markdown_table(["cell", "float32 products", "bf16 autocast", "bf16 / float32",
                        "bf16 / torch.nn.LSTM"], cells) + [
        "", f"- Language model: one training step, batch {LM_BATCH} x {LM_LENGTH}, bfloat16 "
        "autocast, ms", "",
    ] + markdown_table(["LSTM engine, optimizer", "ms per step", "vs before"], lm))


if __name__ == "__main__":
    main()
