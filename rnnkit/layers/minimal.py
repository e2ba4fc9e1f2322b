"""The MinGRU, MinLSTM sequence layers: stacks of :mod:`rnnkit.cells.minimal` over time."""

from __future__ import annotations

from rnnkit.cells.base import CellMath
from rnnkit.cells.minimal import MINGRU_EQUATIONS, MINLSTM_EQUATIONS, MinGRUMath, MinLSTMMath
from rnnkit.checks import check_size
from rnnkit.layers.base import RecurrentLayer


class MinGRU(RecurrentLayer):
    __doc__ = r"""A multi-layer minGRU with the ``torch.nn.GRU`` contract.
    """ + MINGRU_EQUATIONS + r"""
    Arguments, inputs and outputs as ``rnnkit.GRU``. Traces: ``z, h_tilde, h``.

    Example::

        >>> model = rnnkit.MinGRU(10, 20, num_layers=2, batch_first=True)
        >>> output, h_n = model(torch.randn(3, 100, 10))
        >>> output.shape, h_n.shape
        (torch.Size([3, 100, 20]), torch.Size([2, 3, 20]))
    """

    def __init__(self, input_size: int, hidden_size: int, *args, **kwargs) -> None:
        check_size("hidden_size", hidden_size)
        self._math = MinGRUMath(hidden_size)
        super().__init__(input_size, hidden_size, *args, **kwargs)

    def layer_math(self, layer: int) -> CellMath:
        return self._math


class MinLSTM(RecurrentLayer):
    __doc__ = r"""A multi-layer minLSTM with the ``torch.nn.GRU`` contract (state ``h`` only).
    """ + MINLSTM_EQUATIONS + r"""
    Arguments, inputs and outputs as ``rnnkit.GRU``. Traces: ``f, i, h_tilde, h`` (f, i are the
    normalised gates).

    Example::

        >>> model = rnnkit.MinLSTM(10, 20)
        >>> output, h_n = model(torch.randn(100, 3, 10))
        >>> h_n.shape
        torch.Size([1, 3, 20])
    """

    def __init__(self, input_size: int, hidden_size: int, *args, **kwargs) -> None:
        check_size("hidden_size", hidden_size)
        self._math = MinLSTMMath(hidden_size)
        super().__init__(input_size, hidden_size, *args, **kwargs)

    def layer_math(self, layer: int) -> CellMath:
        return self._math
