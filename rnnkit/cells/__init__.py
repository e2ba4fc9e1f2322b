"""Recurrent cells: one file per family, each with its step math, one-step cell and layer."""

from rnnkit.cells.clockwork import ClockworkRNN, ClockworkRNNCell
from rnnkit.cells.depth_gated import DepthGatedLSTM, DepthGatedLSTMCell
from rnnkit.cells.elman import RNN, RNNCell
from rnnkit.cells.gru import GRU, GRUCell
from rnnkit.cells.lstm import LSTM, LSTMCell
from rnnkit.cells.minimal import MinGRU, MinGRUCell, MinLSTM, MinLSTMCell

__all__ = [
    "RNN", "RNNCell", "LSTM", "LSTMCell", "GRU", "GRUCell", "DepthGatedLSTM",
    "DepthGatedLSTMCell", "ClockworkRNN", "ClockworkRNNCell", "MinGRU", "MinGRUCell",
    "MinLSTM", "MinLSTMCell",
]
