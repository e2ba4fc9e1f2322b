"""Recurrent cells: one file per family, each with its step math (:class:`CellMath`) and its
one-step module (``rnnkit.LSTMCell`` and friends). Nothing here knows about sequences; the
sequence layers live in :mod:`rnnkit.layers` and the engines that run a step over time in
:mod:`rnnkit.engine`."""

from rnnkit.cells.base import CellMath, RecurrentCell
from rnnkit.cells.clockwork import ClockworkMath, ClockworkRNNCell
from rnnkit.cells.depth_gated import DepthGatedLSTMCell, DepthGatedMath
from rnnkit.cells.elman import ElmanMath, RNNCell
from rnnkit.cells.gru import GRUCell, GRUMath
from rnnkit.cells.lstm import LSTMCell, LSTMMath
from rnnkit.cells.minimal import MinGRUCell, MinGRUMath, MinLSTMCell, MinLSTMMath

__all__ = [
    "CellMath", "RecurrentCell", "RNNCell", "ElmanMath", "LSTMCell", "LSTMMath", "GRUCell",
    "GRUMath", "DepthGatedLSTMCell", "DepthGatedMath", "ClockworkRNNCell", "ClockworkMath",
    "MinGRUCell", "MinGRUMath", "MinLSTMCell", "MinLSTMMath",
]
