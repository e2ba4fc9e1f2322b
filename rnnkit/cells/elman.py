"""The basic (Elman) recurrent network."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from rnnkit.cells.base import CellMath, Params, RecurrentCell, State, Traces
from rnnkit.checks import check_size
from rnnkit.layers import RecurrentLayer

NONLINEARITIES = {"tanh": torch.tanh, "relu": torch.relu}


def check_nonlinearity(nonlinearity: object) -> str:
    """Raise unless ``nonlinearity`` is 'tanh' or 'relu'."""
    if not isinstance(nonlinearity, str) or nonlinearity not in NONLINEARITIES:
        raise ValueError(f"nonlinearity: expected 'tanh' or 'relu', got {nonlinearity!r}")
    return nonlinearity


class ElmanMath(CellMath):
    """The Elman step h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)."""

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


_ELMAN_DOC = r"""
    Equation (seed 003: :math:`h_t = \tanh(W_{hh} h_{t-1} + W_{xh} x_t)`, with torch's biases):

    .. math::
        h_t = \phi(W_{ih} x_t + b_{ih} + W_{hh} h_{t-1} + b_{hh}), \quad
        \phi = \tanh \text{ or } \mathrm{ReLU} \text{ (nonlinearity)}
"""


class RNNCell(RecurrentCell):
    __doc__ = r"""One Elman RNN step, a drop-in for ``torch.nn.RNNCell``.
    """ + _ELMAN_DOC + r"""
    Parameters (H = hidden_size): weight_ih (H, input_size), weight_hh (H, H), bias_ih (H),
    bias_hh (H); all from U(-k, k), k = 1/sqrt(H).

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


class RNN(RecurrentLayer):
    __doc__ = r"""A multi-layer Elman RNN, a drop-in for ``torch.nn.RNN``.
    """ + _ELMAN_DOC + r"""
    Arguments, inputs and outputs as ``torch.nn.RNN`` (``nonlinearity`` is the fourth argument
    there too; see ``rnnkit.LSTM`` for ``lengths``, ``learn_initial_state``, ``weight_dropout``,
    ``zoneout_hidden`` (on the reference loop), ``engine`` and traces). Traces per layer and
    direction: ``h``.

    Example::

        >>> rnn = rnnkit.RNN(10, 20, num_layers=2, nonlinearity="relu")
        >>> output, h_n = rnn(torch.randn(5, 3, 10))
        >>> output.shape, h_n.shape
        (torch.Size([5, 3, 20]), torch.Size([2, 3, 20]))
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        nonlinearity: str = "tanh",
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        *,
        learn_initial_state: bool = False,
        weight_dropout: float = 0.0,
        zoneout_hidden: float = 0.0,
        engine: str | None = None,
    ) -> None:
        check_size("hidden_size", hidden_size)
        self._math = ElmanMath(hidden_size, nonlinearity=nonlinearity)
        self.nonlinearity = nonlinearity
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, device, dtype, learn_initial_state=learn_initial_state,
                         weight_dropout=weight_dropout, zoneout_hidden=zoneout_hidden,
                         engine=engine)

    def layer_math(self, layer: int) -> CellMath:
        return self._math
