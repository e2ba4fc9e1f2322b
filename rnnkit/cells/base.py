"""The contract every recurrent cell fulfils: its parameters, its state, and one time step.

A cell's mathematics lives in a :class:`CellMath` object, written once. The one-step modules
(:class:`RecurrentCell` subclasses such as ``rnnkit.LSTMCell``) and the sequence layers
(``rnnkit.LSTM`` and friends, see :mod:`rnnkit.layers`) both own tensors named as
:meth:`CellMath.parameter_shapes` says and hand them to :meth:`CellMath.step`; the engines in
:mod:`rnnkit.engine` run that step over time.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.checks import check_input_tensor, check_size, check_state

State = tuple[Tensor, ...]
Params = dict[str, Tensor]
Traces = dict[str, Tensor]


class CellMath:
    """One time step of a recurrent cell, independent of batching, depth and direction.

    Subclasses set the class attributes and implement :meth:`parameter_shapes` and :meth:`step`.

    Attributes:
        state_names: names of the state tensors; the first is always the output ``h``.
        trace_names: names of the per-step tensors :meth:`step` returns when asked for traces.
        native_mode: the ``torch`` RNN mode (``"LSTM"``, ``"GRU"``, ``"RNN_TANH"``,
            ``"RNN_RELU"``) when the cell is exactly torch's, else ``None``.
        uses_lower_cell: the step reads the cell state of the layer below at the same time step.
        parallel_scan: the cell is a linear recurrence in ``h`` and provides
            :meth:`scan_coefficients` for the parallel-scan engine.
        fused_kernel: which compiled kernel of :mod:`rnnkit.engine.fused` computes exactly
            this step (``"lstm"``, ``"gru"``, ``"elman"``, ``"mingru"``, ``"minlstm"``), or
            ``None``. A subclass that does not set it again gets ``None``: it may change the
            step, which the kernel would not know about.
    """

    state_names: tuple[str, ...] = ("h",)
    trace_names: tuple[str, ...] = ("h",)
    native_mode: str | None = None
    uses_lower_cell: bool = False
    parallel_scan: bool = False
    fused_kernel: str | None = None

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if "fused_kernel" not in cls.__dict__:
            cls.fused_kernel = None

    def __init__(self, hidden_size: int) -> None:
        self.hidden_size = hidden_size

    @property
    def output_size(self) -> int:
        """Size of ``h``, the output at each step."""
        return self.hidden_size

    def state_sizes(self) -> tuple[int, ...]:
        """Feature size of each state tensor, in the order of :attr:`state_names`."""
        return (self.output_size,)

    def parameter_shapes(self, input_size: int, bias: bool) -> dict[str, tuple[int, ...]]:
        """Name and shape of every parameter for one layer and direction.

        The input-side parameters are always ``weight_ih`` and (with bias) ``bias_ih``: the engines
        apply them to all time steps in one matrix product before the recurrence starts.
        """
        raise NotImplementedError

    def reset_parameters(self, params: Params) -> None:
        """Initialise in place: every parameter from U(-k, k), k = 1/sqrt(hidden_size), as torch."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for tensor in params.values():
            nn.init.uniform_(tensor, -bound, bound)

    def prepare(self, params: Params) -> Params:
        """Tensors derived from the parameters once per sequence (e.g. masked weights)."""
        return params

    def project_input(self, params: Params, inputs: Tensor) -> Tensor:
        """``W_ih x + b_ih`` for any leading shape: (..., input_size) -> (..., blocks * H).
        Without ``weight_ih`` in ``params`` the inputs are already projected and come back as
        they are (the rows of the table that :meth:`rnnkit.layers.RecurrentLayer.forward` reads
        for ``tokens``)."""
        if "weight_ih" not in params:
            return inputs
        return F.linear(inputs, params["weight_ih"], params.get("bias_ih"))

    def step(
        self,
        params: Params,
        projected: Tensor,
        state: State,
        t: int,
        lower_cell: Tensor | None,
        traces: bool,
    ) -> tuple[State, Traces | None]:
        """Advance one time step.

        Args:
            params: tensors named as in :meth:`parameter_shapes`, after :meth:`prepare`.
            projected: ``W_ih x_t + b_ih``, shape (B, blocks * H).
            state: tensors of shape (B, size) in the order of :attr:`state_names`.
            t: index of this step from the start of the sequence (0-based).
            lower_cell: (B, H) cell state of the layer below at step t, when
                :attr:`uses_lower_cell`, else ``None``.
            traces: also return the per-step tensors named in :attr:`trace_names`.

        Returns:
            The new state and, if asked, the traces (else ``None``).
        """
        raise NotImplementedError


class RecurrentCell(nn.Module):
    """A one-step module like ``torch.nn.LSTMCell``: owns the parameters of one :class:`CellMath`.

    Subclasses build the math object and expose ``forward`` with torch's signature.
    """

    def __init__(
        self,
        cell_math: CellMath,
        input_size: int,
        bias: bool,
        device: torch.device | str | None,
        dtype: torch.dtype | None,
    ) -> None:
        super().__init__()
        check_size("input_size", input_size)
        self.input_size = input_size
        self.hidden_size = cell_math.hidden_size
        self.bias = bias
        self.cell_math = cell_math
        for name, shape in cell_math.parameter_shapes(input_size, bias).items():
            self.register_parameter(
                name, nn.Parameter(torch.empty(shape, device=device, dtype=dtype))
            )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Re-initialise every parameter as the cell's math prescribes."""
        with torch.no_grad():
            self.cell_math.reset_parameters(dict(self.named_parameters()))

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, bias={self.bias}"

    def _step(
        self, input: Tensor, hx: Tensor | State | None, t: int = 0, lower_cell: Tensor | None = None
    ) -> Tensor | State:
        weight = self.weight_ih
        check_input_tensor(input, weight, ranks=(1, 2), what="(batch, input_size) or (input_size,)")
        if input.shape[-1] != self.input_size:
            raise ValueError(
                f"input: expected feature size input_size={self.input_size}, "
                f"got shape {tuple(input.shape)}"
            )
        batched = input.dim() == 2
        x = input if batched else input.unsqueeze(0)
        batch = x.shape[0]
        names, sizes = self.cell_math.state_names, self.cell_math.state_sizes()
        if hx is None:
            state = tuple(x.new_zeros(batch, size) for size in sizes)
        else:
            parts = check_state(hx, names, sizes, leading=(), batch=batch, batched=batched, ref=x)
            state = parts if batched else tuple(s.unsqueeze(0) for s in parts)
        if lower_cell is not None:
            lower = check_state(lower_cell, ("lower_cell",), (self.hidden_size,), leading=(),
                                batch=batch, batched=batched, ref=x, label="lower_cell")[0]
            lower_cell = lower if batched else lower.unsqueeze(0)
        params = self.cell_math.prepare(dict(self.named_parameters()))
        projected = self.cell_math.project_input(params, x)
        new_state, _ = self.cell_math.step(params, projected, state, t, lower_cell, False)
        if not batched:
            new_state = tuple(s.squeeze(0) for s in new_state)
        return new_state[0] if len(new_state) == 1 else new_state
