"""What the benchmark scripts share: timing, the machine's description, the sections of the
docs' benchmark tables page (docs/results/benchmarks.md) they write, and the runs that
benchmarks of trained results make or read again."""

from __future__ import annotations

import datetime
import json
import os
import platform
import re
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results" / "benchmarks.md"


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


def gemm_peaks(repeats: int = 5, size: int = 2048) -> dict[str, float]:
    """GFLOP/s of one float32 ``size``^3 matrix product with torch's current threads, through
    ``torch.mm`` and, where they run, through rnnkit's own kernels (which the fused engine
    uses instead of torch's library calls on AVX-512 processors)."""
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


def write_section(title: str, lines: list[str], page: Path = RESULTS,
                  heading: str = "# rnnkit benchmark results") -> None:
    """Replace (or append) the ``## title`` section of ``page`` (the benchmark tables page),
    keeping the others; a new page starts with ``heading``."""
    text = page.read_text() if page.exists() else heading + "\n"
    body = f"## {title}\n\n" + "\n".join(lines).rstrip() + "\n"
    pattern = re.compile(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", re.MULTILINE | re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _: body + "\n", text).rstrip() + "\n"
    else:
        text = text.rstrip() + "\n\n" + body
    page.write_text(text)


def markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    """Lines of a Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def trained_report(run: Path, train_argv: list[str], label: str) -> dict:
    """The report.json of the run in ``run``, made first by ``rnnkit train *train_argv --out
    run`` if it holds none (so that a benchmark interrupted half-way reads the runs it has);
    ``label`` names the run in the error if training fails."""
    if not (run / "report.json").is_file():
        # imported here: the timing benchmarks that share this module need not load the CLI
        from rnnkit.cli import main as rnnkit_main

        code = rnnkit_main(["train", *train_argv, "--out", str(run)])
        if code != 0:
            raise SystemExit(f"{label}: rnnkit train exited with {code}")
    return json.loads((run / "report.json").read_text())

