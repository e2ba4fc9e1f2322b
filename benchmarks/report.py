"""What the benchmark scripts share: timing, the machine's description, RESULTS.md sections."""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

RESULTS = Path(__file__).with_name("RESULTS.md")


def elapsed(function: Callable[[], object]) -> float:
    """Wall time of one call of ``function()`` in seconds."""
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def median_time(function: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``function()`` in seconds over ``repeats`` calls (no warm-up)."""
    return statistics.median(elapsed(function) for _ in range(repeats))


def rotated(names: list[str], shift: int) -> list[str]:
    """``names`` rotated left by ``shift``: each round of a benchmark starts with another model,
    so that no model always runs first (after a pause) or right after the same neighbour."""
    shift %= len(names)
    return names[shift:] + names[:shift]


def interleaved_medians(jobs: dict[str, Callable[[], object]], repeats: int,
                        warmup: int) -> dict[str, float]:
    """Median milliseconds of each job over ``repeats`` rounds, the jobs interleaved in an order
    rotated from round to round, after ``warmup`` calls of each."""
    for job in jobs.values():
        for _ in range(warmup):
            job()
    samples: dict[str, list[float]] = {name: [] for name in jobs}
    for round_index in range(repeats):
        for name in rotated(list(jobs), round_index):
            samples[name].append(elapsed(jobs[name]))
    return {name: statistics.median(values) * 1e3 for name, values in samples.items()}


# The default language model's training batch: 32 streams of 64 of the corpus's 65 characters.
LM_VOCAB, LM_BATCH, LM_LENGTH = 65, 32, 64


def lm_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer,
            bf16: bool) -> Callable[[], None]:
    """One training step of a language model (ids (B, T) -> (logits, state)) on a fixed
    random batch of the default size, under CPU bfloat16 autocast if ``bf16``; the loss adds
    the model's ``penalty`` where it leaves one (the language model's AR and TAR)."""
    inputs = torch.randint(0, LM_VOCAB, (LM_BATCH, LM_LENGTH))
    targets = torch.randint(0, LM_VOCAB, (LM_BATCH * LM_LENGTH,))

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits, _ = model(inputs, None)
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, LM_VOCAB).float(),
                                                     targets)
            if getattr(model, "penalty", None) is not None:
                loss = loss + model.penalty
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return step


def gemm_peaks(repeats: int = 5, size: int = 2048) -> dict[str, float]:
    """GFLOP/s of one float32 ``size``^3 matrix product with torch's current threads, through
    ``torch.mm`` and, where they run, through rnnkit's own kernels (which the fused engine
    uses instead of torch's BLAS on AVX-512 processors)."""
    from rnnkit.engine.fused import load_extension, own_products_run

    a, b = torch.randn(size, size), torch.randn(size, size)
    products = {"torch.mm": lambda: torch.mm(a, b)}
    if own_products_run():
        products["rnnkit"] = lambda: load_extension().own_matmul(a, b)
    peaks = {}
    for name, product in products.items():
        product()
        peaks[name] = 2 * size**3 / median_time(product, repeats) / 1e9
    return peaks


def cpu_model() -> str:
    """The processor's model name from /proc/cpuinfo (or the platform's guess)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "unknown"
    found = re.search(r"^model name\s*:\s*(.+)$", text, re.MULTILINE)
    return found.group(1).strip() if found else "unknown"


def load_average() -> str:
    """The 1-, 5- and 15-minute load averages, e.g. ``"1.02 0.80 0.55"``."""
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def threads_label() -> str:
    """``"1 thread"`` / ``"2 threads"``: torch's current thread count, for section titles."""
    threads = torch.get_num_threads()
    return f"{threads} thread" + ("s" if threads > 1 else "")


def machine_lines(load_before: str) -> list[str]:
    """Markdown bullet lines describing the machine, the software and the load of this run."""
    return [
        f"- Date: {datetime.datetime.now().isoformat(timespec='minutes')}",
        f"- CPU: {cpu_model()}, {os.cpu_count()} logical cores; torch threads: "
        f"{torch.get_num_threads()}",
        f"- torch {torch.__version__}, Python {platform.python_version()}",
        f"- Load average (1, 5, 15 min) before: {load_before}; after: {load_average()} "
        f"(the cores are shared: other jobs ran during the measurement)",
        f"- Command: `python {' '.join(sys.argv)}`",
    ]


def write_section(title: str, lines: list[str]) -> None:
    """Replace (or append) the ``## title`` section of RESULTS.md, keeping the others."""
    text = RESULTS.read_text() if RESULTS.exists() else "# rnnkit benchmark results\n"
    body = f"## {title}\n\n" + "\n".join(lines).rstrip() + "\n"
    pattern = re.compile(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", re.MULTILINE | re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _: body + "\n", text).rstrip() + "\n"
    else:
        text = text.rstrip() + "\n\n" + body
    RESULTS.write_text(text)


def markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    """Lines of a Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def compare_lm_steps(description: str, names: Sequence[str],
                     build: Callable[[str], tuple[torch.nn.Module, torch.optim.Optimizer]],
                     title: str, column: str, ratios: dict[str, tuple[str, str]],
                     setting: str = "") -> None:
    """The command line of a benchmark that times the default language model's training step
    in the forms ``names`` (``build(name)`` -> model and optimizer): ``--threads``,
    ``--repeats``; interleaved medians (:func:`lm_step`, under bfloat16 autocast where the CPU
    computes it natively, as ``--precision auto``), printed and written to the ``title``
    section of RESULTS.md with each ``ratios`` label -> (numerator, denominator) name."""
    from rnnkit.training.trainer import uses_bf16

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    parser.add_argument("--repeats", type=int, default=30, help="timed rounds (default 30)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    load_before = load_average()
    bf16 = uses_bf16("auto", torch.device("cpu"))
    jobs = {name: lm_step(*build(name), bf16) for name in names}
    medians = interleaved_medians(jobs, args.repeats, warmup=3)
    values = {label: medians[top] / medians[bottom] for label, (top, bottom) in ratios.items()}
    print(", ".join(f"{name} {ms:.1f} ms" for name, ms in medians.items()) + "; "
          + "; ".join(f"{label} {value:.3f}" for label, value in values.items()))
    rows = [[name, f"{medians[name]:.1f}"] for name in names]
    write_section(f"{title}, {threads_label()}", machine_lines(load_before) + [
        f"- Training step of the default language model, batch {LM_BATCH} x {LM_LENGTH}, "
        f"{'bfloat16 autocast' if bf16 else 'float32'}{setting}; median of {args.repeats} "
        "interleaved rounds after 3 warm-up steps each", "",
    ] + markdown_table([column, "ms per step"], rows) + [
        "", "; ".join(f"{label}: {value:.3f}" for label, value in values.items()),
    ])
