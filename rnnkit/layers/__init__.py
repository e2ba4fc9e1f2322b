"""The public sequence layers, drop-ins for ``torch.nn.RNN/LSTM/GRU``.

:mod:`rnnkit.layers.base` holds what every layer shares (stacking, directions, state, engine
choice); :mod:`rnnkit.layers.inputs` turns every accepted input form (padded, batch-first,
unbatched, packed, ragged with ``lengths``, token ids) into one time-major form and back;
:mod:`rnnkit.layers.regularisation` holds DropConnect and zoneout. One module per cell family
says which :class:`~rnnkit.cells.CellMath` each layer of a stack uses.
"""

from rnnkit.layers.base import RecurrentLayer
from rnnkit.layers.clockwork import ClockworkRNN
from rnnkit.layers.depth_gated import DepthGatedLSTM
from rnnkit.layers.elman import RNN
from rnnkit.layers.gru import GRU
from rnnkit.layers.lstm import LSTM
from rnnkit.layers.minimal import MinGRU, MinLSTM

__all__ = ["RecurrentLayer", "RNN", "LSTM", "GRU", "DepthGatedLSTM", "ClockworkRNN", "MinGRU",
           "MinLSTM"]
