"""Why gates matter, measured: gradient flow through time and gate traces, with plots."""

from rnnkit.diagnostics.gate_traces import (
    GATE_NAMES,
    gate_saturation,
    plot_gate_traces,
    plot_saturation,
    unit_saturation,
)
from rnnkit.diagnostics.gradient_flow import (
    GradientFlow,
    gradient_flow,
    plot_gradient_flow,
    recording_states,
)
from rnnkit.diagnostics.plots import plot_curves, write_csv

__all__ = [
    "GATE_NAMES", "GradientFlow", "gate_saturation", "gradient_flow", "plot_curves",
    "plot_gate_traces", "plot_gradient_flow", "plot_saturation", "recording_states",
    "unit_saturation", "write_csv",
]
