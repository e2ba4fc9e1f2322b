"""The RNN sequence layer: stacks of :mod:`rnnkit.cells.elman` over time."""

from __future__ import annotations

import torch

from rnnkit.cells.base import CellMath
from rnnkit.cells.elman import ELMAN_EQUATIONS, ElmanMath
from rnnkit.checks import check_size
from rnnkit.layers.base import RecurrentLayer


class RNN(RecurrentLayer):
    __doc__ = r"""A multi-layer Elman RNN, a drop-in for ``torch.nn.RNN``.
    """ + ELMAN_EQUATIONS + r"""
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
