"""Depth-Gated LSTM (Yao, Cohn, Vylomova, Duh & Dyer 2015)."""

from __future__ import annotations

import torch
from torch import Tensor

from rnnkit.cells.base import CellMath, Params, RecurrentCell, State, Traces
from rnnkit.cells.lstm import LSTMMath
from rnnkit.checks import check_size
from rnnkit.layers import RecurrentLayer


class DepthGatedMath(LSTMMath):
    """An LSTM step whose cell also takes a gated share of the lower layer's cell state."""

    uses_lower_cell = True

    def __init__(self, hidden_size: int, *, peepholes: bool | str = False) -> None:
        super().__init__(hidden_size, peepholes=peepholes)
        self.trace_names = ("i", "f", "g", "o", "d", "c", "h")

    def input_blocks(self) -> int:
        return len(self.blocks) + 1  # the depth gate's W_xd x_t + b_d is the last block

    def parameter_shapes(self, input_size: int, bias: bool) -> dict[str, tuple[int, ...]]:
        shapes = super().parameter_shapes(input_size, bias)
        shapes.update(weight_cd=(self.hidden_size,), weight_ld=(self.hidden_size,))
        return shapes

    def cell_input(
        self, params: Params, extra: Tensor, cell: Tensor, lower_cell: Tensor | None
    ) -> tuple[Tensor | None, Traces]:
        if lower_cell is None:
            raise ValueError("lower_cell: the depth gate needs the cell state of the layer "
                             "below at this step, got None")
        depth = torch.sigmoid(extra + params["weight_cd"] * cell
                              + params["weight_ld"] * lower_cell)
        return depth * lower_cell, {"d": depth}


_DEPTH_DOC = r"""
    Layer :math:`L+1` of the stack is an LSTM (see ``rnnkit.LSTM``; input
    :math:`x_t^{L+1} = h_t^{L}`) whose memory cell is linked to the cell of layer :math:`L` below
    by a depth gate :math:`d_t`:

    .. math::
        d_t^{L+1} &= \sigma(W_{xd} x_t^{L+1} + b_d + w_{cd} \odot c_{t-1}^{L+1}
                     + w_{ld} \odot c_t^{L}) \\
        c_t^{L+1} &= d_t^{L+1} \odot c_t^{L} + f_t^{L+1} \odot c_{t-1}^{L+1}
                     + i_t^{L+1} \odot g_t^{L+1}

    The first layer has nothing below it and is a plain LSTM. Optional peepholes as in
    ``rnnkit.LSTM``.
"""


class DepthGatedLSTMCell(RecurrentCell):
    __doc__ = r"""One Depth-Gated LSTM step of an upper layer, given the lower layer's cell.
    """ + _DEPTH_DOC + r"""
    Parameters (H = hidden_size): weight_ih (5H, input_size) and bias_ih (5H) with blocks
    i, f, g, o, d; weight_hh (4H, H) and bias_hh (4H) with blocks i, f, g, o; weight_cd (H) and
    weight_ld (H) (:math:`w_{cd}, w_{ld}`); all from U(-k, k), k = 1/sqrt(H).

    Inputs: ``input`` (B, input_size) or (input_size,), ``hx = (h, c)``, and ``lower_cell``, the
    (B, H) cell state of the layer below at this step. Output: the new ``(h, c)``.

    Example::

        >>> cell = rnnkit.DepthGatedLSTMCell(20, 20)
        >>> h, c = cell(torch.randn(3, 20), lower_cell=torch.randn(3, 20))
        >>> c.shape
        torch.Size([3, 20])
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        *,
        peepholes: bool | str = False,
    ) -> None:
        check_size("hidden_size", hidden_size)
        super().__init__(DepthGatedMath(hidden_size, peepholes=peepholes), input_size, bias,
                         device, dtype)

    def forward(
        self, input: Tensor, hx: State | None = None, *, lower_cell: Tensor | None = None
    ) -> State:
        if lower_cell is None:
            raise ValueError("lower_cell: expected the (batch, hidden_size) cell state of the "
                             "layer below, got None")
        return self._step(input, hx, lower_cell=lower_cell)


class DepthGatedLSTM(RecurrentLayer):
    __doc__ = r"""A stack of LSTM layers whose memory cells are connected through depth gates.
    """ + _DEPTH_DOC + r"""
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
