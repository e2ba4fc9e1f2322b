"""rnnkit: recurrent neural networks for PyTorch.

Every cell of the classic literature — Elman RNN, LSTM and its variants, GRU, Depth-Gated LSTM,
Clockwork RNN, minGRU/minLSTM — as a drop-in for ``torch.nn.RNN/LSTM/GRU``.
"""

from rnnkit.catalog import CELL_NAMES, build_layer, describe_cells
from rnnkit.cells import (
    ClockworkRNNCell,
    DepthGatedLSTMCell,
    GRUCell,
    LSTMCell,
    MinGRUCell,
    MinLSTMCell,
    RNNCell,
)
from rnnkit.engine.select import set_default_engine
from rnnkit.layers import GRU, LSTM, RNN, ClockworkRNN, DepthGatedLSTM, MinGRU, MinLSTM

__version__ = "0.1.0"

__all__ = [
    "RNN", "RNNCell", "LSTM", "LSTMCell", "GRU", "GRUCell", "DepthGatedLSTM",
    "DepthGatedLSTMCell", "ClockworkRNN", "ClockworkRNNCell", "MinGRU", "MinGRUCell",
    "MinLSTM", "MinLSTMCell", "CELL_NAMES", "build_layer", "describe_cells",
    "set_default_engine",
]
