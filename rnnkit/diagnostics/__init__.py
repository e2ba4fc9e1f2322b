"""Why gates matter, measured: gradient flow through time and gate traces, with plots."""

from rnnkit.diagnostics.gate_traces import GATE_NAMES, gate_saturation, plot_gate_traces
from rnnkit.diagnostics.gradient_flow import GradientFlow, gradient_flow, recording_states
from rnnkit.diagnostics.plots import plot_curves, write_csv

__all__ = [
    "GATE_NAMES", "GradientFlow", "gate_saturation", "gradient_flow", "plot_curves",
    "plot_gate_traces", "recording_states", "write_csv",
]
