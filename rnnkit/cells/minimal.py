"""minGRU and minLSTM (Feng, Tung, Ahmed, Bengio & Hajimirsadeghi 2024, "Were RNNs All We
Needed?"): gates that read x_t only, so the whole sequence is a parallel scan."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from rnnkit.cells.base import CellMath, Params, RecurrentCell, State, Traces
from rnnkit.checks import check_size


def positive(x: Tensor) -> Tensor:
    """The paper's g: x + 1/2 for x >= 0, sigmoid(x) below; continuous and always > 0."""
    return torch.where(x >= 0, x + 0.5, torch.sigmoid(x))


def log_positive(x: Tensor) -> Tensor:
    """log g(x), computed without forming g(x) where it is tiny."""
    return torch.where(x >= 0, torch.log(F.relu(x) + 0.5), -F.softplus(-x))


class MinGRUMath(CellMath):
    """h_t = (1 - z_t) h_{t-1} + z_t g(W_h x_t + b_h); see :class:`MinGRU`."""

    fused_kernel = "mingru"

    trace_names = ("z", "h_tilde", "h")
    parallel_scan = True

    def parameter_shapes(self, input_size: int, bias: bool) -> dict[str, tuple[int, ...]]:
        shapes: dict[str, tuple[int, ...]] = {"weight_ih": (2 * self.hidden_size, input_size)}
        if bias:
            shapes["bias_ih"] = (2 * self.hidden_size,)
        return shapes

    def step(
        self, params: Params, projected: Tensor, state: State, t: int,
        lower_cell: Tensor | None, traces: bool,
    ) -> tuple[State, Traces | None]:
        pre_z, pre_h = projected.chunk(2, -1)
        update, candidate = torch.sigmoid(pre_z), positive(pre_h)
        hidden = (1 - update) * state[0] + update * candidate
        if not traces:
            return (hidden,), None
        return (hidden,), {"z": update, "h_tilde": candidate, "h": hidden}

    def scan_coefficients(
        self, projected: Tensor, traces: bool
    ) -> tuple[Tensor, Tensor, Traces | None]:
        """log a_t and log b_t of h_t = a_t h_{t-1} + b_t for all steps: (T, B, H) each."""
        pre_z, pre_h = projected.chunk(2, -1)
        log_keep = -F.softplus(pre_z)  # log(1 - z)
        log_update = -F.softplus(-pre_z)  # log z
        recorded = {"z": torch.sigmoid(pre_z), "h_tilde": positive(pre_h)} if traces else None
        return log_keep, log_update + log_positive(pre_h), recorded


class MinLSTMMath(CellMath):
    """h_t = f'_t h_{t-1} + i'_t g(W_h x_t + b_h) with normalised gates; see :class:`MinLSTM`."""

    fused_kernel = "minlstm"

    trace_names = ("f", "i", "h_tilde", "h")
    parallel_scan = True

    def parameter_shapes(self, input_size: int, bias: bool) -> dict[str, tuple[int, ...]]:
        shapes: dict[str, tuple[int, ...]] = {"weight_ih": (3 * self.hidden_size, input_size)}
        if bias:
            shapes["bias_ih"] = (3 * self.hidden_size,)
        return shapes

    @staticmethod
    def _log_gates(pre_f: Tensor, pre_i: Tensor) -> tuple[Tensor, Tensor]:
        # f' = f / (f + i) = sigmoid(-diff) with diff = log i - log f, and i' = sigmoid(diff).
        diff = F.softplus(-pre_f) - F.softplus(-pre_i)
        return -F.softplus(diff), -F.softplus(-diff)

    def step(
        self, params: Params, projected: Tensor, state: State, t: int,
        lower_cell: Tensor | None, traces: bool,
    ) -> tuple[State, Traces | None]:
        pre_f, pre_i, pre_h = projected.chunk(3, -1)
        log_forget, log_input = self._log_gates(pre_f, pre_i)
        forget, input_ = torch.exp(log_forget), torch.exp(log_input)
        candidate = positive(pre_h)
        hidden = forget * state[0] + input_ * candidate
        if not traces:
            return (hidden,), None
        return (hidden,), {"f": forget, "i": input_, "h_tilde": candidate, "h": hidden}

    def scan_coefficients(
        self, projected: Tensor, traces: bool
    ) -> tuple[Tensor, Tensor, Traces | None]:
        """log a_t and log b_t of h_t = a_t h_{t-1} + b_t for all steps: (T, B, H) each."""
        pre_f, pre_i, pre_h = projected.chunk(3, -1)
        log_forget, log_input = self._log_gates(pre_f, pre_i)
        recorded = None
        if traces:
            recorded = {"f": torch.exp(log_forget), "i": torch.exp(log_input),
                        "h_tilde": positive(pre_h)}
        return log_forget, log_input + log_positive(pre_h), recorded


MINGRU_EQUATIONS = r"""
    Equations (the paper's log-space form, :math:`g(x) = x + \tfrac12` for :math:`x \ge 0`,
    :math:`\sigma(x)` otherwise, so :math:`\tilde{h}_t > 0`):

    .. math::
        z_t &= \sigma(W_z x_t + b_z) \\
        \tilde{h}_t &= g(W_h x_t + b_h) \\
        h_t &= (1 - z_t) \odot h_{t-1} + z_t \odot \tilde{h}_t

    No gate reads :math:`h_{t-1}`, so a whole sequence can be computed at once by a parallel scan
    in log space (``engine="scan"``, which ``"auto"`` picks where the fused kernels do not run,
    e.g. on CUDA); the fused kernels and the step-by-step form (``engine="reference"``, and the
    cell) give the same result, and the cell serves generation.
"""

MINLSTM_EQUATIONS = r"""
    Equations (:math:`g` as in ``rnnkit.MinGRU``):

    .. math::
        f_t &= \sigma(W_f x_t + b_f), \quad i_t = \sigma(W_i x_t + b_i) \\
        f'_t &= \frac{f_t}{f_t + i_t}, \quad i'_t = \frac{i_t}{f_t + i_t} \\
        \tilde{h}_t &= g(W_h x_t + b_h) \\
        h_t &= f'_t \odot h_{t-1} + i'_t \odot \tilde{h}_t

    The normalised gates are computed in log space. Whole sequences run on the fused kernels, as
    a parallel scan (``engine="scan"``, which ``"auto"`` picks where the fused kernels do not
    run) or step by step (``engine="reference"``, and the cell).
"""


class MinGRUCell(RecurrentCell):
    __doc__ = r"""One minGRU step, for generation.
    """ + MINGRU_EQUATIONS + r"""
    Parameters (H = hidden_size), from U(-k, k), k = 1/sqrt(H): ``weight_ih``
    ``(2*H, input_size)`` and ``bias_ih`` ``(2*H,)``, blocks z, h.

    Example::

        >>> cell = rnnkit.MinGRUCell(10, 20)
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
    ) -> None:
        check_size("hidden_size", hidden_size)
        super().__init__(MinGRUMath(hidden_size), input_size, bias, device, dtype)

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        return self._step(input, hx)


class MinLSTMCell(RecurrentCell):
    __doc__ = r"""One minLSTM step, for generation.
    """ + MINLSTM_EQUATIONS + r"""
    Parameters (H = hidden_size), from U(-k, k), k = 1/sqrt(H): ``weight_ih``
    ``(3*H, input_size)`` and ``bias_ih`` ``(3*H,)``, blocks f, i, h.

    Example::

        >>> cell = rnnkit.MinLSTMCell(10, 20)
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
    ) -> None:
        check_size("hidden_size", hidden_size)
        super().__init__(MinLSTMMath(hidden_size), input_size, bias, device, dtype)

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        return self._step(input, hx)
