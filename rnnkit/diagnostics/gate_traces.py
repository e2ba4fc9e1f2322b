"""Gate traces: every gate and the cell state over a sequence, and how saturated each gate is.

Karpathy, Johnson & Fei-Fei 2015 ("Visualizing and Understanding Recurrent Networks") call a gate
left-saturated when its activation is below 0.1 and right-saturated above 0.9; the fractions of
such activations tell whether gates act as soft switches or as hard ones.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from torch import Tensor

from rnnkit.diagnostics.plots import plt, save_figure

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
    return save_figure(figure, path)


def unit_saturation(traces: Mapping[str, Tensor], low: float = 0.1,
                    high: float = 0.9) -> dict[str, tuple[Tensor, Tensor]]:
    """Per unit, the fraction of steps its gate is below ``low`` and above ``high``.

    This is the per-unit statistic of Karpathy, Johnson & Fei-Fei 2015 (their Figure 5: one dot
    per gate unit, the fraction of time it is left-saturated against right-saturated).

    Args:
        traces: name -> (..., H) tensor (e.g. (T, H) or (B, T, H)); non-gate names are skipped.

    Returns:
        ``{gate: (left_fraction (H,), right_fraction (H,))}``.
    """
    stats = {}
    for name, values in traces.items():
        if name not in GATE_NAMES:
            continue
        values = values.detach().float().reshape(-1, values.shape[-1])
        stats[name] = ((values < low).float().mean(0), (values > high).float().mean(0))
    return stats


def plot_saturation(per_unit: Mapping[str, tuple[Tensor, Tensor]], path: str | Path, *,
                    title: str = "") -> Path:
    """Scatter each gate unit's left- against right-saturated fraction, one panel per gate.

    Args:
        per_unit: the output of :func:`unit_saturation` (gate -> (left (H,), right (H,))).
        path: the PNG to write.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    gates = list(per_unit)
    figure, axes = plt.subplots(1, max(1, len(gates)), figsize=(3.2 * max(1, len(gates)), 3.4),
                                dpi=110, squeeze=False)
    for axis, gate in zip(axes[0], gates):
        left, right = per_unit[gate]
        axis.scatter(left.numpy(), right.numpy(), s=8, alpha=0.6)
        axis.plot([0, 1], [1, 0], color="grey", lw=0.6, ls="--")
        axis.set(xlim=(-0.02, 1.02), ylim=(-0.02, 1.02), title=f"gate {gate}",
                 xlabel="fraction < 0.1 (left-saturated)")
        axis.grid(True, alpha=0.3)
    axes[0, 0].set_ylabel("fraction > 0.9 (right-saturated)")
    if title:
        figure.suptitle(title)
    return save_figure(figure, path)
