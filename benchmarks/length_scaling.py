"""Training time against sequence length: LSTM, CIFG-LSTM, MinGRU (two engines), torch.nn.GRU.

At B=8, H=256 (input size H, one layer) and T = 64, 128, ..., 4096, one training step (forward
plus the backward pass of ``output.sum()``) of each model is timed, the models interleaved at
each length, median of the repeats after warm-up. A least-squares line time = a + b T per model
gives the cost per step b and R^2 (how linear the cost is in T), and MinGRU's speedup over
torch.nn.GRU is reported at each length. rnnkit's ``lstm`` runs on torch's kernel,
``cifg-lstm`` and ``mingru`` on the fused engine (what ``auto`` picks on the CPU) and
``mingru [scan]`` on the parallel scan in log space (what ``auto`` picks on CUDA).

Usage::

    python benchmarks/length_scaling.py            # writes the "Length scaling" section
    python benchmarks/length_scaling.py --quick    # T up to 1024, 3 repeats
    python benchmarks/length_scaling.py --threads 1
"""

from __future__ import annotations

import argparse
import statistics

import torch
from report import (
    elapsed,
    load_average,
    machine_lines,
    markdown_table,
    rotated,
    threads_label,
    write_section,
)

import rnnkit

BATCH, HIDDEN = 8, 256
LENGTHS = tuple(2**k for k in range(6, 13))  # 64 .. 4096
MODELS = ("lstm", "cifg-lstm", "mingru", "mingru [scan]", "torch.nn.GRU")
MINGRU = ("mingru", "mingru [scan]")


def build(name: str) -> torch.nn.Module:
    """A one-layer model of input and hidden size HIDDEN."""
    if name == "torch.nn.GRU":
        return torch.nn.GRU(HIDDEN, HIDDEN)
    cell, _, engine = name.partition(" [")
    return rnnkit.build_layer(cell, HIDDEN, HIDDEN, engine=engine.rstrip("]") or "auto")


def training_step(model: torch.nn.Module, inputs: torch.Tensor) -> None:
    model.zero_grad(set_to_none=True)
    output, _ = model(inputs)
    output.sum().backward()


def time_lengths(models: dict[str, torch.nn.Module], lengths: tuple[int, ...], repeats: int,
                 warmup: int) -> dict[str, list[float]]:
    """Median training-step seconds per model and length, models interleaved in an order
    rotated from round to round."""
    times: dict[str, list[float]] = {name: [] for name in models}
    for steps in lengths:
        inputs = torch.randn(steps, BATCH, HIDDEN)
        samples: dict[str, list[float]] = {name: [] for name in models}
        for model in models.values():
            for _ in range(warmup):
                training_step(model, inputs)
        for round_index in range(repeats):
            for name in rotated(list(models), round_index):
                model = models[name]
                samples[name].append(elapsed(lambda m=model, x=inputs: training_step(m, x)))
        for name in models:
            times[name].append(statistics.median(samples[name]))
        print(f"T={steps}: " + ", ".join(f"{n} {times[n][-1] * 1e3:.1f} ms" for n in models),
              flush=True)
    return times


def linear_fit(lengths: tuple[int, ...], seconds: list[float]) -> tuple[float, float, float]:
    """Slope (ms per step), intercept (ms) and R^2 of the least-squares line ms = a + b T."""
    milliseconds = [s * 1e3 for s in seconds]
    slope, intercept = statistics.linear_regression(lengths, milliseconds)
    mean = statistics.fmean(milliseconds)
    residual = sum((y - intercept - slope * x) ** 2 for x, y in zip(lengths, milliseconds))
    total = sum((y - mean) ** 2 for y in milliseconds)
    return slope, intercept, 1 - residual / total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="T up to 1024, 3 repeats")
    parser.add_argument("--repeats", type=int, help="timed rounds per length (default 5)")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    lengths = tuple(t for t in LENGTHS if t <= 1024) if args.quick else LENGTHS
    repeats = args.repeats or (3 if args.quick else 5)

    load_before = load_average()
    models = {name: build(name) for name in MODELS}
    times = time_lengths(models, lengths, repeats, warmup=1)

    rows = []
    for index, steps in enumerate(lengths):
        gru = times["torch.nn.GRU"][index]
        rows.append([str(steps)] + [f"{times[name][index] * 1e3:.1f}" for name in MODELS]
                    + [f"{gru / times[name][index]:.1f}x" for name in MINGRU])
    table = markdown_table(["T"] + [f"{name} ms" for name in MODELS]
                           + [f"{name} vs torch.nn.GRU" for name in MINGRU], rows)
    fits = []
    for name in MODELS:
        slope, intercept, r_squared = linear_fit(lengths, times[name])
        fits.append([name, f"{slope * 1e3:.1f}", f"{intercept:.1f}", f"{r_squared:.4f}"])
    fit_table = markdown_table(["model", "slope (us per step)", "intercept (ms)", "R^2"], fits)
    print("\n".join(table + [""] + fit_table))
    write_section(f"Length scaling, {threads_label()}", machine_lines(load_before) + [
        f"- Training step (forward + backward of output.sum()), B={BATCH}, H={HIDDEN}, input "
        f"size H, one layer; median of {repeats} interleaved rounds after 1 warm-up", "",
    ] + table + ["", "Linear fit time = intercept + slope * T:", ""] + fit_table)


if __name__ == "__main__":
    main()
