"""The basic (Elman) recurrent network."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from rnnkit.cells.base import CellMath, Params, RecurrentCell, State, Traces
from rnnkit.checks import check_size

NONLINEARITIES = {"tanh": torch.tanh, "relu": torch.relu}


def check_nonlinearity(nonlinearity: object) -> str:
    """Raise unless ``nonlinearity`` is 'tanh' or 'relu'."""
    if not isinstance(nonlinearity, str) or nonlinearity not in NONLINEARITIES:
        raise ValueError(f"nonlinearity: expected 'tanh' or 'relu', got {nonlinearity!r}")
    return nonlinearity


class ElmanMath(CellMath):
    """The Elman step h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)."""

    fused_kernel = "elman"

    def __init__(self, hidden_size: int, *, nonlinearity: str = "tanh") -> None:
        super().__init__(hidden_size)
        self.nonlinearity = check_nonlinearity(nonlinearity)
        self.native_mode = "RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU"

    def parameter_shapes(self, input_size: int, bias: bool) -> dict[str, tuple[int, ...]]:
        shapes: dict[str, tuple[int, ...]] = {
            "weight_ih": (self.hidden_size, input_size),
            "weight_hh": (self.hidden_size, self.hidden_size),
        }
        if bias:
            shapes.update(bias_ih=(self.hidden_size,), bias_hh=(self.hidden_size,))
        return shapes

    def step(
        self, params: Params, projected: Tensor, state: State, t: int,
        lower_cell: Tensor | None, traces: bool,
    ) -> tuple[State, Traces | None]:
        pre = projected + F.linear(state[0], params["weight_hh"], params.get("bias_hh"))
        hidden = NONLINEARITIES[self.nonlinearity](pre)
        return (hidden,), ({"h": hidden} if traces else None)


ELMAN_EQUATIONS = r"""
    Equation (Elman 1990, in torch's form with an input and a recurrent bias):

    .. math::
        h_t = \phi(W_{ih} x_t + b_{ih} + W_{hh} h_{t-1} + b_{hh}), \quad
        \phi = \tanh \text{ or } \mathrm{ReLU} \text{ (nonlinearity)}
"""


class RNNCell(RecurrentCell):
    __doc__ = r"""One Elman RNN step, a drop-in for ``torch.nn.RNNCell``.
    """ + ELMAN_EQUATIONS + r"""
    Parameters (H = hidden_size), all from U(-k, k), k = 1/sqrt(H): ``weight_ih``
    ``(H, input_size)``, ``weight_hh`` ``(H, H)``, ``bias_ih`` and ``bias_hh`` ``(H,)``.

    Inputs: ``input`` (B, input_size) or (input_size,), ``hx`` (B, H) or (H,), zeros if omitted.
    Output: the new ``h``.

    Example::

        >>> cell = rnnkit.RNNCell(10, 20)
        >>> cell(torch.randn(3, 10)).shape
        torch.Size([3, 20])
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        nonlinearity: str = "tanh",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        check_size("hidden_size", hidden_size)
        super().__init__(ElmanMath(hidden_size, nonlinearity=nonlinearity), input_size, bias,
                         device, dtype)
        self.nonlinearity = nonlinearity

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        return self._step(input, hx)
