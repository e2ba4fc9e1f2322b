"""Gated recurrent unit (Cho et al. 2014), in torch's form and in the paper's."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from rnnkit.cells.base import CellMath, Params, RecurrentCell, State, Traces
from rnnkit.checks import check_size


class GRUMath(CellMath):
    """The GRU step; see :class:`GRU` for the equations. Blocks in torch's order r, z, n."""

    fused_kernel = "gru"

    trace_names = ("r", "z", "n", "h")

    def __init__(self, hidden_size: int, *, reset_after: bool = True) -> None:
        super().__init__(hidden_size)
        if not isinstance(reset_after, bool):
            raise TypeError(f"reset_after: expected True or False, got {reset_after!r}")
        self.reset_after = reset_after
        self.native_mode = "GRU" if reset_after else None

    def parameter_shapes(self, input_size: int, bias: bool) -> dict[str, tuple[int, ...]]:
        rows = 3 * self.hidden_size
        shapes: dict[str, tuple[int, ...]] = {
            "weight_ih": (rows, input_size),
            "weight_hh": (rows, self.hidden_size),
        }
        if bias:
            shapes.update(bias_ih=(rows,), bias_hh=(rows,))
        return shapes

    def step(
        self, params: Params, projected: Tensor, state: State, t: int,
        lower_cell: Tensor | None, traces: bool,
    ) -> tuple[State, Traces | None]:
        hidden = state[0]
        x_r, x_z, x_n = projected.chunk(3, -1)
        weight, bias = params["weight_hh"], params.get("bias_hh")
        if self.reset_after:
            h_r, h_z, h_n = F.linear(hidden, weight, bias).chunk(3, -1)
            reset = torch.sigmoid(x_r + h_r)
            update = torch.sigmoid(x_z + h_z)
            candidate = torch.tanh(x_n + reset * h_n)
        else:
            size = self.hidden_size
            gates_bias = None if bias is None else bias[: 2 * size]
            h_r, h_z = F.linear(hidden, weight[: 2 * size], gates_bias).chunk(2, -1)
            reset = torch.sigmoid(x_r + h_r)
            update = torch.sigmoid(x_z + h_z)
            candidate_bias = None if bias is None else bias[2 * size:]
            candidate = torch.tanh(x_n + F.linear(reset * hidden, weight[2 * size:],
                                                  candidate_bias))
        new_hidden = (1 - update) * candidate + update * hidden
        if not traces:
            return (new_hidden,), None
        return (new_hidden,), {"r": reset, "z": update, "n": candidate, "h": new_hidden}


GRU_EQUATIONS = r"""
    Equations (:math:`\sigma` the logistic sigmoid, :math:`\odot` elementwise):

    .. math::
        r_t &= \sigma(W_{ir} x_t + b_{ir} + W_{hr} h_{t-1} + b_{hr}) \\
        z_t &= \sigma(W_{iz} x_t + b_{iz} + W_{hz} h_{t-1} + b_{hz}) \\
        n_t &= \tanh(W_{in} x_t + b_{in} + r_t \odot (W_{hn} h_{t-1} + b_{hn}))
              \quad \text{(reset\_after=True, torch / cuDNN)} \\
        n_t &= \tanh(W_{in} x_t + b_{in} + W_{hn} (r_t \odot h_{t-1}) + b_{hn})
              \quad \text{(reset\_after=False, Cho et al. 2014)} \\
        h_t &= (1 - z_t) \odot n_t + z_t \odot h_{t-1}

    :math:`n_t` is Cho et al.'s :math:`\tilde{h}_t`. As in Cho et al. and torch, :math:`z_t` is
    the share of the old state kept; Chung et al. 2014 write the same unit with :math:`z_t` and
    :math:`1 - z_t` swapped.
"""


class GRUCell(RecurrentCell):
    __doc__ = r"""One GRU step, a drop-in for ``torch.nn.GRUCell``.
    """ + GRU_EQUATIONS + r"""
    Parameters (H = hidden_size), all from U(-k, k), k = 1/sqrt(H): ``weight_ih``
    ``(3*H, input_size)``, ``weight_hh`` ``(3*H, H)``, ``bias_ih`` and ``bias_hh`` ``(3*H,)``,
    blocks in the order r, z, n.

    Inputs: ``input`` (B, input_size) or (input_size,), ``hx`` (B, H) or (H,), zeros if omitted.
    Output: the new ``h``.

    Example::

        >>> cell = rnnkit.GRUCell(10, 20, reset_after=False)
        >>> cell(torch.randn(3, 10)).shape
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
        reset_after: bool = True,
    ) -> None:
        check_size("hidden_size", hidden_size)
        super().__init__(GRUMath(hidden_size, reset_after=reset_after), input_size, bias, device,
                         dtype)

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        return self._step(input, hx)
