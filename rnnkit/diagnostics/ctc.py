"""The figure of Graves et al. 2008 for a CTC line recognizer: a line and, under it, the
probability of every label and of the blank at each of its steps."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rnnkit.diagnostics.plots import plt, save_figure
from rnnkit.models.ctc import BLANK


def plot_ctc(line: np.ndarray, probs: np.ndarray, path: str | Path, *, title: str = "",
             labels: Sequence[str] | None = None,
             step_name: str = "time step (pixel column)") -> Path:
    """Draw a line image (height, T) over its per-step class probabilities (T, C); write PNG.

    The top panel shows the line; the bottom one, aligned column by column, the probability
    of each label (one coloured curve each, named at the steps where best-path decoding emits
    it) and of the blank (black, dotted). ``labels`` names the classes 1..C-1 (default: the
    digits 0..C-2, as the handwriting task's classes stand for); ``step_name`` labels the time
    axis. A line may as well be a recording's features (bands, T). Returns the path written.
    """
    names = list(labels) if labels is not None else [str(k) for k in range(probs.shape[1] - 1)]
    best = probs.argmax(axis=1)
    steps = np.arange(probs.shape[0])
    figure, (top, bottom) = plt.subplots(
        2, 1, sharex=True, figsize=(max(6.0, 0.04 * len(steps) + 2), 4.5), dpi=120,
        gridspec_kw={"height_ratios": [1, 1.6]})
    top.imshow(line, cmap="gray_r", aspect="auto", interpolation="nearest",
               extent=(-0.5, len(steps) - 0.5, line.shape[0] - 0.5, -0.5))
    top.set(title=title, yticks=[])
    colours = plt.get_cmap("tab10")
    for index, name in enumerate(names):
        bottom.plot(steps, probs[:, index + 1], color=colours(index % 10), linewidth=1.2,
                    label=name)
    bottom.plot(steps, probs[:, BLANK], color="black", linestyle=":", linewidth=1.0,
                label="blank")
    for step in np.flatnonzero((best != BLANK) & (np.r_[BLANK, best[:-1]] != best)):
        bottom.annotate(names[best[step] - 1], (step, probs[step, best[step]]),
                        textcoords="offset points", xytext=(0, 3), ha="center", fontsize=9,
                        color=colours((best[step] - 1) % 10))
    bottom.set(xlabel=step_name, ylabel="probability", ylim=(0, 1.12),
               xlim=(-0.5, len(steps) - 0.5))
    bottom.legend(fontsize=7, ncol=len(names) + 1, loc="upper center",
                  bbox_to_anchor=(0.5, -0.28), frameon=False)
    return save_figure(figure, path)
