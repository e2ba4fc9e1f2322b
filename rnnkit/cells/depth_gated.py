"""Depth-Gated LSTM (Yao, Cohn, Vylomova, Duh & Dyer 2015)."""

from __future__ import annotations

import torch
from torch import Tensor

from rnnkit.cells.base import Params, RecurrentCell, State, Traces
from rnnkit.cells.lstm import LSTMMath
from rnnkit.checks import check_size


class DepthGatedMath(LSTMMath):
    """An LSTM step whose cell also takes a gated share of the lower layer's cell state."""

    fused_kernel = "lstm"

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


DEPTH_EQUATIONS = r"""
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
    """ + DEPTH_EQUATIONS + r"""
    Parameters (H = hidden_size), all from U(-k, k), k = 1/sqrt(H): ``weight_ih``
    ``(5*H, input_size)`` and ``bias_ih`` ``(5*H,)`` with blocks i, f, g, o, d; ``weight_hh``
    ``(4*H, H)`` and ``bias_hh`` ``(4*H,)`` with blocks i, f, g, o; ``weight_cd`` and
    ``weight_ld`` ``(H,)`` (:math:`w_{cd}, w_{ld}`).

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
