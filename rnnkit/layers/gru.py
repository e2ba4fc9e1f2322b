"""The GRU sequence layer: stacks of :mod:`rnnkit.cells.gru` over time."""

from __future__ import annotations

import torch

from rnnkit.cells.base import CellMath
from rnnkit.cells.gru import GRU_EQUATIONS, GRUMath
from rnnkit.checks import check_size
from rnnkit.layers.base import RecurrentLayer


class GRU(RecurrentLayer):
    __doc__ = r"""A multi-layer GRU, a drop-in for ``torch.nn.GRU``.
    """ + GRU_EQUATIONS + r"""
    Arguments, inputs and outputs as ``torch.nn.GRU`` (see ``rnnkit.LSTM`` for ``lengths``,
    ``learn_initial_state``, ``weight_dropout``, ``zoneout_hidden`` (on the reference loop),
    ``engine`` and traces), plus keyword
    ``reset_after`` (default True).
    Traces per layer and direction: ``r, z, n, h``.

    Example::

        >>> gru = rnnkit.GRU(10, 20, num_layers=2, batch_first=True)
        >>> output, h_n = gru(torch.randn(3, 5, 10))
        >>> output.shape, h_n.shape
        (torch.Size([3, 5, 20]), torch.Size([2, 3, 20]))
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        *,
        reset_after: bool = True,
        learn_initial_state: bool = False,
        weight_dropout: float = 0.0,
        zoneout_hidden: float = 0.0,
        engine: str | None = None,
    ) -> None:
        check_size("hidden_size", hidden_size)
        self._math = GRUMath(hidden_size, reset_after=reset_after)
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, device, dtype, learn_initial_state=learn_initial_state,
                         weight_dropout=weight_dropout, zoneout_hidden=zoneout_hidden,
                         engine=engine)

    def layer_math(self, layer: int) -> CellMath:
        return self._math
