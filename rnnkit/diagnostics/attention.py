"""Where an attention decoder looks: a heat map of its attention weights, source pieces along
one axis and the target pieces it emitted along the other (Bahdanau et al. 2015, figure 3)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rnnkit.diagnostics.plots import plt, save_figure


def plot_attention(weights: np.ndarray, source: Sequence[str], target: Sequence[str],
                   path: str | Path, *, title: str = "") -> Path:
    """Draw attention weights (T, S) -- row t: how the decoder spread its attention over the
    S source pieces while emitting target piece t -- as a heat map (0 white, 1 black) with the
    ``source`` pieces as columns and the ``target`` pieces as rows; write a PNG and return its
    path."""
    weights = np.asarray(weights, dtype=float)
    if weights.shape != (len(target), len(source)):
        raise ValueError(f"weights: expected shape ({len(target)}, {len(source)}) for "
                         f"{len(target)} target and {len(source)} source labels, got "
                         f"{weights.shape}")
    figure, axes = plt.subplots(figsize=(max(4.0, 0.38 * len(source) + 2),
                                         max(3.0, 0.32 * len(target) + 1.6)), dpi=120)
    image = axes.imshow(weights, cmap="Greys", vmin=0.0, vmax=1.0, aspect="auto",
                        interpolation="nearest")
    axes.set_xticks(range(len(source)), source, rotation=60, ha="right", fontsize=8)
    axes.set_yticks(range(len(target)), target, fontsize=8)
    axes.set(xlabel="source", ylabel="translation", title=title)
    figure.colorbar(image, ax=axes, fraction=0.04, pad=0.02, label="attention weight")
    return save_figure(figure, path)
