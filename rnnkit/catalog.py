"""Every cell and variant by name, for the command line and for configuration files."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from rnnkit.layers import GRU, LSTM, RNN, ClockworkRNN, DepthGatedLSTM, MinGRU, MinLSTM


@dataclass(frozen=True)
class CellEntry:
    """A named configuration: the layer class, its keyword arguments and a one-line summary."""

    layer: type[nn.Module]
    description: str
    options: dict = field(default_factory=dict)


CATALOG: dict[str, CellEntry] = {
    "rnn": CellEntry(RNN, "Elman RNN, h_t = tanh(W x_t + U h_{t-1} + b)"),
    "rnn-relu": CellEntry(RNN, "Elman RNN with ReLU", {"nonlinearity": "relu"}),
    "lstm": CellEntry(LSTM, "standard LSTM (forget, input, output gates; torch's fused kernel)"),
    "peephole-lstm": CellEntry(LSTM, "LSTM with peepholes on all gates (Gers & Schmidhuber 2000)",
                               {"peepholes": True}),
    "cifg-lstm": CellEntry(LSTM, "LSTM with coupled input-forget gate, i_t = 1 - f_t",
                           {"coupled": True}),
    "nfg-lstm": CellEntry(LSTM, "LSTM without forget gate (the original 1997 form)",
                          {"forget_gate": False}),
    "nig-lstm": CellEntry(LSTM, "LSTM without input gate", {"input_gate": False}),
    "nog-lstm": CellEntry(LSTM, "LSTM without output gate", {"output_gate": False}),
    "niaf-lstm": CellEntry(LSTM, "LSTM without tanh on the candidate",
                           {"input_activation": False}),
    "noaf-lstm": CellEntry(LSTM, "LSTM without tanh on the output, h_t = o_t c_t",
                           {"output_activation": False}),
    "fgr-lstm": CellEntry(LSTM, "LSTM with full gate recurrence (gates see previous gates)",
                          {"full_gate_recurrence": True}),
    "gru": CellEntry(GRU, "GRU, torch/cuDNN form (reset applied after the recurrent product)"),
    "gru-cho": CellEntry(GRU, "GRU as Cho et al. 2014 (reset applied to h_{t-1})",
                         {"reset_after": False}),
    "depth-gated-lstm": CellEntry(DepthGatedLSTM,
                                  "Depth-Gated LSTM: depth gates link cells of adjacent layers"),
    "clockwork": CellEntry(ClockworkRNN, "Clockwork RNN: modules updating at periods 1, 2, 4, 8"),
    "mingru": CellEntry(MinGRU, "minGRU: gates from x_t only, parallel scan over time"),
    "minlstm": CellEntry(MinLSTM, "minLSTM: normalised gates from x_t only, parallel scan"),
}

CELL_NAMES = tuple(CATALOG)


def describe_cells() -> dict[str, str]:
    """Every cell name with its one-line description.

    Example::

        >>> rnnkit.describe_cells()["cifg-lstm"]
        'LSTM with coupled input-forget gate, i_t = 1 - f_t'
    """
    return {name: entry.description for name, entry in CATALOG.items()}


def build_layer(cell: str, input_size: int, hidden_size: int, num_layers: int = 1,
                **kwargs) -> nn.Module:
    """Build the sequence layer named ``cell`` (see :data:`CELL_NAMES`).

    Extra keyword arguments go to the layer (``batch_first``, ``dropout``, ``bidirectional``,
    switches, ...) and override the entry's own options.

    Example::

        >>> layer = rnnkit.build_layer("cifg-lstm", 8, 32, num_layers=2, batch_first=True)
    """
    entry = CATALOG.get(cell)
    if entry is None:
        raise ValueError(f"cell: unknown name {cell!r}; expected one of: {', '.join(CATALOG)}")
    return entry.layer(input_size, hidden_size, num_layers, **{**entry.options, **kwargs})
