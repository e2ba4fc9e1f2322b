"""Gate traces: every gate and the cell state over a sequence, and how saturated each gate is.

Karpathy, Johnson & Fei-Fei 2015 ("Visualizing and Understanding Recurrent Networks") call a gate
left-saturated when its activation is below 0.1 and right-saturated above 0.9; the fractions of
such activations tell whether gates act as soft switches or as hard ones.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from torch import Tensor

from rnnkit.diagnostics.plots import plt

GATE_NAMES = ("i", "f", "o", "r", "z", "d")
"""Trace names that are sigmoid gates (values in (0, 1)) in any rnnkit cell."""


def gate_saturation(traces: Mapping[str, Tensor], low: float = 0.1,
                    high: float = 0.9) -> dict[str, dict[str, float]]:
    """Fractions of gate activations below ``low`` and above ``high``, per gate.

    Args:
        traces: name -> tensor of any shape (a layer's traces); non-gate names are skipped.

    Returns:
        ``{gate: {"left_saturated": ..., "right_saturated": ..., "mean": ...}}``.
    """
    stats = {}
    for name, values in traces.items():
        if name not in GATE_NAMES:
            continue
        values = values.detach().float()
        stats[name] = {
            "left_saturated": float((values < low).float().mean()),
            "right_saturated": float((values > high).float().mean()),
            "mean": float(values.mean()),
        }
    return stats


def plot_gate_traces(
    traces: Mapping[str, Tensor],
    labels: Sequence[str],
    path: str | Path,
    *,
    title: str = "",
    max_units: int = 64,
) -> Path:
    """Heatmaps (units x time) of every trace of one sequence; input labels on the time axis.

    Args:
        traces: name -> (T, H) tensor for one sequence of one layer and direction.
        labels: T strings shown under the time axis (e.g. the input characters).
        max_units: show at most this many units per trace.
    """
    names = [n for n in traces if n != "h"] + (["h"] if "h" in traces else [])
    steps = next(iter(traces.values())).shape[0]
    if len(labels) != steps:
        raise ValueError(f"labels: expected {steps} labels (one per step), got {len(labels)}")
    width = max(6.0, min(0.18 * steps + 2, 40.0))
    figure, axes = plt.subplots(len(names), 1, figsize=(width, 1.6 * len(names) + 0.6),
                                dpi=110, squeeze=False)
    for row, name in enumerate(names):
        values = traces[name].detach().float()[:, :max_units].T.numpy()
        gate = name in GATE_NAMES
        image = axes[row, 0].imshow(values, aspect="auto", interpolation="nearest",
                                    cmap="viridis" if gate else "coolwarm",
                                    vmin=0.0 if gate else None, vmax=1.0 if gate else None)
        axes[row, 0].set_ylabel(name, rotation=0, labelpad=12)
        axes[row, 0].set_yticks([])
        figure.colorbar(image, ax=axes[row, 0], fraction=0.02, pad=0.01)
        axes[row, 0].set_xticks([])
    shown = [{"\n": "⏎", " ": "␣"}.get(c, c) for c in labels]
    axes[-1, 0].set_xticks(range(steps), shown, fontsize=7)
    if title:
        axes[0, 0].set_title(title)
    figure.tight_layout()
    path = Path(path)
    figure.savefig(path)
    plt.close(figure)
    return path
