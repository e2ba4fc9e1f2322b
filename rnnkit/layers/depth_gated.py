"""The DepthGatedLSTM sequence layer: stacks of :mod:`rnnkit.cells.depth_gated` over time."""

from __future__ import annotations

import torch

from rnnkit.cells.base import CellMath
from rnnkit.cells.depth_gated import DEPTH_EQUATIONS, DepthGatedMath
from rnnkit.cells.lstm import LSTMMath
from rnnkit.checks import check_size
from rnnkit.layers.base import RecurrentLayer


class DepthGatedLSTM(RecurrentLayer):
    __doc__ = r"""A stack of LSTM layers whose memory cells are connected through depth gates.
    """ + DEPTH_EQUATIONS + r"""
    Arguments, inputs and outputs as ``rnnkit.LSTM`` (no ``proj_size``), with ``num_layers >= 2``.
    In the bidirectional case each direction's depth gates read the same direction's cells below.
    Traces: ``i, f, g, o, c, h``, plus ``d`` for layers above the first.

    Example::

        >>> dg = rnnkit.DepthGatedLSTM(10, 20, num_layers=3)
        >>> output, (h_n, c_n) = dg(torch.randn(5, 3, 10))
        >>> h_n.shape
        torch.Size([3, 3, 20])
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 2,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        *,
        peepholes: bool | str = False,
        learn_initial_state: bool = False,
        weight_dropout: float = 0.0,
        zoneout_hidden: float = 0.0,
        zoneout_cell: float = 0.0,
        engine: str | None = None,
    ) -> None:
        check_size("hidden_size", hidden_size)
        check_size("num_layers", num_layers)
        if num_layers < 2:
            raise ValueError(f"num_layers: a depth gate connects two layers, so expected >= 2, "
                             f"got {num_layers}")
        self._bottom = LSTMMath(hidden_size, peepholes=peepholes)
        self._upper = DepthGatedMath(hidden_size, peepholes=peepholes)
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, device, dtype, learn_initial_state=learn_initial_state,
                         weight_dropout=weight_dropout, zoneout_hidden=zoneout_hidden,
                         zoneout_cell=zoneout_cell, engine=engine)

    def layer_math(self, layer: int) -> CellMath:
        return self._bottom if layer == 0 else self._upper
