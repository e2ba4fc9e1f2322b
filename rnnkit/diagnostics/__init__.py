"""Inside a recurrent network, measured and drawn: gradient flow through time, gate traces,
and a CTC recognizer's label probabilities along a line.

* :mod:`~rnnkit.diagnostics.gradient_flow` -- ||dL/dh_k|| and ||dh_T/dh_k|| at every step k.
* :mod:`~rnnkit.diagnostics.gate_traces` -- gate activations over a sequence and saturation.
* :mod:`~rnnkit.diagnostics.ctc` -- the figure of Graves et al. 2008 for a line recognizer.
* :mod:`~rnnkit.diagnostics.attention` -- an attention decoder's weights as a heat map.
* :mod:`~rnnkit.diagnostics.forecast` -- a forecast with its interval over the series.
* :mod:`~rnnkit.diagnostics.plots` -- PNG and CSV writing shared by the others.
"""

from rnnkit.diagnostics.attention import plot_attention
from rnnkit.diagnostics.ctc import plot_ctc
from rnnkit.diagnostics.forecast import plot_forecast
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
    "GATE_NAMES", "GradientFlow", "gate_saturation", "gradient_flow",
    "plot_attention", "plot_ctc", "plot_curves", "plot_forecast",
    "plot_gate_traces", "plot_gradient_flow", "plot_saturation", "recording_states",
    "unit_saturation", "write_csv",
]
