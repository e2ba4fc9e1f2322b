"""Plots and tables written to files: PNG through matplotlib's Agg backend, CSV."""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)


def save_figure(figure, path: str | Path) -> Path:
    """Lay out ``figure``, write it to ``path`` (PNG) and close it; returns the path."""
    figure.tight_layout()
    path = Path(path)
    figure.savefig(path)
    plt.close(figure)
    return path


def plot_curves(
    curves: Mapping[str, Sequence[float]],
    path: str | Path,
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    log_y: bool = False,
    x: Sequence[float] | None = None,
) -> Path:
    """One line per entry of ``curves`` (name -> values) in one PNG; returns its path."""
    figure, axes = plt.subplots(figsize=(7, 4.2), dpi=120)
    for name, values in curves.items():
        values = [float(v) for v in values]
        axes.plot(list(x) if x is not None else range(len(values)), values, label=name)
    if log_y:
        axes.set_yscale("log")
    axes.set(title=title, xlabel=xlabel, ylabel=ylabel)
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize=8)
    return save_figure(figure, path)


def write_csv(rows: Sequence[Mapping[str, object]], path: str | Path) -> Path:
    """Write dict rows (all with the same keys) as CSV with a header; returns the path."""
    path = Path(path)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]) if rows else [])
        writer.writeheader()
        writer.writerows(rows)
    return path
