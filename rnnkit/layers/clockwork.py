"""The ClockworkRNN sequence layer: stacks of :mod:`rnnkit.cells.clockwork` over time."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from rnnkit.cells.base import CellMath
from rnnkit.cells.clockwork import CLOCKWORK_EQUATIONS, ClockworkMath
from rnnkit.checks import check_size
from rnnkit.layers.base import RecurrentLayer


class ClockworkRNN(RecurrentLayer):
    __doc__ = r"""A multi-layer Clockwork RNN with the ``torch.nn.RNN`` contract.
    """ + CLOCKWORK_EQUATIONS + r"""
    Arguments, inputs and outputs as ``rnnkit.RNN``, plus keyword ``periods`` (increasing ints;
    default ``(1, 2, 4, 8)``, fewer if hidden_size < 4). Each sequence's clock starts at its own
    first step, and for the reverse direction at its own last step; to continue a sequence
    chunk by chunk, pass ``start_step=`` the number of steps already run. Traces: ``h``.

    Example::

        >>> cw = rnnkit.ClockworkRNN(10, 32, periods=(1, 2, 4, 8, 16))
        >>> output, h_n = cw(torch.randn(20, 3, 10))
        >>> output.shape
        torch.Size([20, 3, 32])
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
        periods: Sequence[int] | None = None,
        learn_initial_state: bool = False,
        weight_dropout: float = 0.0,
        zoneout_hidden: float = 0.0,
        engine: str | None = None,
    ) -> None:
        check_size("hidden_size", hidden_size)
        self._math = ClockworkMath(hidden_size, periods=periods, nonlinearity=nonlinearity)
        self.periods = self._math.periods
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, device, dtype, learn_initial_state=learn_initial_state,
                         weight_dropout=weight_dropout, zoneout_hidden=zoneout_hidden,
                         engine=engine)

    def layer_math(self, layer: int) -> CellMath:
        return self._math
