"""Clockwork RNN (Koutník, Greff, Gomez & Schmidhuber 2014)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from rnnkit.cells.base import CellMath, Params, RecurrentCell, State, Traces
from rnnkit.cells.elman import NONLINEARITIES, check_nonlinearity
from rnnkit.checks import check_size


def default_periods(num_modules: int) -> tuple[int, ...]:
    """The paper's exponential clock periods 1, 2, 4, ..., 2**(num_modules - 1)."""
    return tuple(2**g for g in range(num_modules))


class ClockworkMath(CellMath):
    """The Clockwork RNN step; see :class:`ClockworkRNN` for the equations."""

    fused_kernel = "elman"

    def __init__(
        self,
        hidden_size: int,
        *,
        periods: Sequence[int] | None = None,
        nonlinearity: str = "tanh",
    ) -> None:
        super().__init__(hidden_size)
        if periods is None:
            periods = default_periods(min(4, hidden_size))
        if isinstance(periods, (str, bytes)) or not isinstance(periods, Sequence):
            raise TypeError(f"periods: expected a sequence of ints, got {periods!r}")
        if not periods:
            raise ValueError(f"periods: expected at least one clock period, got {periods!r}")
        for period in periods:
            check_size("periods", period)
        if list(periods) != sorted(set(periods)):
            raise ValueError(f"periods: expected strictly increasing periods (fastest module "
                             f"first), got {tuple(periods)}")
        if len(periods) > hidden_size:
            raise ValueError(f"periods: {len(periods)} modules need hidden_size >= "
                             f"{len(periods)}, got hidden_size={hidden_size}")
        self.periods = tuple(periods)
        self.nonlinearity = check_nonlinearity(nonlinearity)
        # Module g holds units [starts[g], starts[g+1]); sizes differ by at most one.
        base, extra = divmod(hidden_size, len(periods))
        self.module_sizes = tuple(base + (g < extra) for g in range(len(periods)))
        self.unit_module = [g for g, size in enumerate(self.module_sizes) for _ in range(size)]

    def parameter_shapes(self, input_size: int, bias: bool) -> dict[str, tuple[int, ...]]:
        shapes: dict[str, tuple[int, ...]] = {
            "weight_ih": (self.hidden_size, input_size),
            "weight_hh": (self.hidden_size, self.hidden_size),
        }
        if bias:
            shapes.update(bias_ih=(self.hidden_size,), bias_hh=(self.hidden_size,))
        return shapes

    def recurrent_mask(self, like: Tensor) -> Tensor:
        """(H, H) 0/1 mask: unit i reads unit j when j's module is as slow as i's or slower."""
        module = torch.tensor(self.unit_module, device=like.device)
        return (module.unsqueeze(1) <= module.unsqueeze(0)).to(like.dtype)

    def unit_periods(self, like: Tensor) -> Tensor:
        """(H,) clock period of each hidden unit."""
        periods = torch.tensor(self.periods, device=like.device)
        return periods[torch.tensor(self.unit_module, device=like.device)]

    def reset_parameters(self, params: Params) -> None:
        super().reset_parameters(params)
        params["weight_hh"].mul_(self.recurrent_mask(params["weight_hh"]))

    def prepare(self, params: Params) -> Params:
        weight = params["weight_hh"]
        return dict(params, weight_hh=weight * self.recurrent_mask(weight),
                    unit_periods=self.unit_periods(weight))

    def step(
        self, params: Params, projected: Tensor, state: State, t: int,
        lower_cell: Tensor | None, traces: bool,
    ) -> tuple[State, Traces | None]:
        hidden = state[0]
        pre = projected + F.linear(hidden, params["weight_hh"], params.get("bias_hh"))
        active = (t % params["unit_periods"]) == 0
        new_hidden = torch.where(active, NONLINEARITIES[self.nonlinearity](pre), hidden)
        return (new_hidden,), ({"h": new_hidden} if traces else None)


CLOCKWORK_EQUATIONS = r"""
    The hidden units are split into modules :math:`g = 1..G` with clock periods
    :math:`T_1 < T_2 < \dots < T_G` (default :math:`1, 2, 4, 8`; sizes differ by at most one).
    At step :math:`t = 0, 1, 2, \dots` only the modules whose period divides :math:`t` update:

    .. math::
        \hat{h}_t &= \phi(W_{ih} x_t + b_{ih} + (W_{hh} \odot M) h_{t-1} + b_{hh}) \\
        h_t^{(g)} &= \hat{h}_t^{(g)} \text{ if } t \bmod T_g = 0
                     \text{ else } h_{t-1}^{(g)}

    :math:`M` is block upper-triangular: module :math:`g` reads module :math:`g'` only when
    :math:`T_{g'} \ge T_g`, so connections run from slower modules to faster ones. Entries of
    ``weight_hh`` outside :math:`M` stay zero and get zero gradient. With one module of period 1 it
    is exactly the Elman RNN.
"""


class ClockworkRNNCell(RecurrentCell):
    __doc__ = r"""One Clockwork RNN step; the caller passes the step index ``t``.
    """ + CLOCKWORK_EQUATIONS + r"""
    Parameters (H = hidden_size), all from U(-k, k), k = 1/sqrt(H): ``weight_ih``
    ``(H, input_size)``, ``weight_hh`` ``(H, H)`` (masked by :math:`M`), ``bias_ih`` and
    ``bias_hh`` ``(H,)``.

    Inputs: ``input`` (B, input_size) or (input_size,), ``hx`` (B, H) or (H,), ``t`` (int).
    Output: the new ``h``.

    Example::

        >>> cell = rnnkit.ClockworkRNNCell(10, 16, periods=(1, 2, 4, 8))
        >>> h = cell(torch.randn(3, 10), t=0)
        >>> h.shape
        torch.Size([3, 16])
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        *,
        periods: Sequence[int] | None = None,
        nonlinearity: str = "tanh",
    ) -> None:
        check_size("hidden_size", hidden_size)
        cell_math = ClockworkMath(hidden_size, periods=periods, nonlinearity=nonlinearity)
        super().__init__(cell_math, input_size, bias, device, dtype)

    def forward(self, input: Tensor, hx: Tensor | None = None, t: int = 0) -> Tensor:
        check_size("t", t, minimum=0)
        return self._step(input, hx, t=t)
