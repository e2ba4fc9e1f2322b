"""Long short-term memory (Hochreiter & Schmidhuber 1997) and the variants of Greff et al. 2017."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from rnnkit.cells.base import CellMath, Params, RecurrentCell, State, Traces
from rnnkit.checks import check_size

_SIGMOID_GATES = "ifo"


class LSTMMath(CellMath):
    """The LSTM step with every switch of Greff et al. 2017; see :class:`LSTM` for the equations.

    Rows of ``weight_ih``/``weight_hh`` hold the blocks of :attr:`blocks`, a subset of torch's
    order ``i, f, g, o``: a gate that a switch removes has no block.
    """

    fused_kernel = "lstm"

    def __init__(
        self,
        hidden_size: int,
        *,
        proj_size: int = 0,
        peepholes: bool | str = False,
        coupled: bool = False,
        forget_gate: bool = True,
        input_gate: bool = True,
        output_gate: bool = True,
        input_activation: bool = True,
        output_activation: bool = True,
        full_gate_recurrence: bool = False,
    ) -> None:
        super().__init__(hidden_size)
        for name, value in (("coupled", coupled), ("forget_gate", forget_gate),
                            ("input_gate", input_gate), ("output_gate", output_gate),
                            ("input_activation", input_activation),
                            ("output_activation", output_activation),
                            ("full_gate_recurrence", full_gate_recurrence)):
            if not isinstance(value, bool):
                raise TypeError(f"{name}: expected True or False, got {value!r}")
        check_size("proj_size", proj_size, minimum=0)
        if proj_size >= hidden_size:
            raise ValueError(f"proj_size: expected 0 or less than hidden_size={hidden_size}, "
                             f"got {proj_size}")
        if coupled and not forget_gate:
            raise ValueError("coupled=True sets i_t = 1 - f_t and needs the forget gate, but "
                             "forget_gate=False")
        if coupled and not input_gate:
            raise ValueError("coupled=True derives the input gate from the forget gate, "
                             "input_gate=False removes it: choose one")
        self.proj_size = proj_size
        self.coupled = coupled
        self.input_activation = input_activation
        self.output_activation = output_activation
        self.full_gate_recurrence = full_gate_recurrence
        present = {"i": input_gate and not coupled, "f": forget_gate, "o": output_gate}
        self.blocks = "".join(b for b in "ifgo" if b == "g" or present[b])
        self.gates = "".join(g for g in _SIGMOID_GATES if present[g])
        self.peepholes = self._parse_peepholes(peepholes)
        if full_gate_recurrence and not self.gates:
            raise ValueError("full_gate_recurrence=True needs at least one gate, but input, "
                             "forget and output gates are all removed")
        traced = {"i": input_gate, "f": forget_gate, "o": output_gate}
        self.trace_names = tuple(n for n in "ifgo" if n == "g" or traced[n]) + ("c", "h")
        self.state_names = ("h", "c", "a") if full_gate_recurrence else ("h", "c")
        standard = (not peepholes and not coupled and forget_gate and input_gate and output_gate
                    and input_activation and output_activation and not full_gate_recurrence)
        self.native_mode = "LSTM" if standard and type(self) is LSTMMath else None

    def _parse_peepholes(self, peepholes: bool | str) -> str:
        if peepholes is True:
            return self.gates
        if peepholes is False or peepholes is None or peepholes == "":
            return ""
        if not isinstance(peepholes, str) or set(peepholes) - set(_SIGMOID_GATES) \
                or len(set(peepholes)) != len(peepholes):
            raise ValueError(f"peepholes: expected True, False or a subset of 'fio' such as "
                             f"'f' or 'fo', got {peepholes!r}")
        missing = [g for g in peepholes if g not in self.gates]
        if missing:
            raise ValueError(f"peepholes={peepholes!r}: gate {missing[0]!r} is removed by the "
                             f"other switches (gates present: {self.gates!r})")
        return "".join(g for g in _SIGMOID_GATES if g in peepholes)

    @property
    def output_size(self) -> int:
        return self.proj_size or self.hidden_size

    def state_sizes(self) -> tuple[int, ...]:
        sizes = (self.output_size, self.hidden_size)
        return sizes + (len(self.gates) * self.hidden_size,) if self.full_gate_recurrence \
            else sizes

    def input_blocks(self) -> int:
        """Number of H-sized blocks in the input projection."""
        return len(self.blocks)

    def parameter_shapes(self, input_size: int, bias: bool) -> dict[str, tuple[int, ...]]:
        hidden, rows = self.hidden_size, len(self.blocks) * self.hidden_size
        shapes: dict[str, tuple[int, ...]] = {
            "weight_ih": (self.input_blocks() * hidden, input_size),
            "weight_hh": (rows, self.output_size),
        }
        if bias:
            shapes["bias_ih"] = (self.input_blocks() * hidden,)
            shapes["bias_hh"] = (rows,)
        if self.proj_size:
            shapes["weight_hr"] = (self.proj_size, hidden)
        for gate in self.peepholes:
            shapes[f"weight_c{gate}"] = (hidden,)
        if self.full_gate_recurrence:
            width = len(self.gates) * hidden
            shapes["weight_gr"] = (width, width)
        return shapes

    def cell_input(
        self, params: Params, extra: Tensor, cell: Tensor, lower_cell: Tensor | None
    ) -> tuple[Tensor | None, Traces]:
        """A term added to the new cell state beyond f c + i g (none for the LSTM itself)."""
        return None, {}

    def step(
        self, params: Params, projected: Tensor, state: State, t: int,
        lower_cell: Tensor | None, traces: bool,
    ) -> tuple[State, Traces | None]:
        hidden, cell = state[0], state[1]
        width = len(self.blocks) * self.hidden_size
        recurrent = F.linear(hidden, params["weight_hh"], params.get("bias_hh"))
        pre = dict(zip(self.blocks, (projected[..., :width] + recurrent).chunk(len(self.blocks),
                                                                               -1)))
        if self.full_gate_recurrence:
            from_gates = F.linear(state[2], params["weight_gr"]).chunk(len(self.gates), -1)
            for gate, term in zip(self.gates, from_gates):
                pre[gate] = pre[gate] + term

        def gate(name: str, peek: Tensor) -> Tensor | None:
            if name not in pre:
                return None
            if name in self.peepholes:
                return torch.sigmoid(pre[name] + params[f"weight_c{name}"] * peek)
            return torch.sigmoid(pre[name])

        forget = gate("f", cell)
        input_ = 1 - forget if self.coupled else gate("i", cell)
        candidate = torch.tanh(pre["g"]) if self.input_activation else pre["g"]
        new_cell = cell if forget is None else forget * cell
        new_cell = new_cell + (candidate if input_ is None else input_ * candidate)
        extra, extra_traces = self.cell_input(params, projected[..., width:], cell, lower_cell)
        if extra is not None:
            new_cell = new_cell + extra
        output_gate = gate("o", new_cell)
        shown = torch.tanh(new_cell) if self.output_activation else new_cell
        new_hidden = shown if output_gate is None else output_gate * shown
        if self.proj_size:
            new_hidden = F.linear(new_hidden, params["weight_hr"])
        values = {"i": input_, "f": forget, "g": candidate, "o": output_gate}
        new_state: State = (new_hidden, new_cell)
        if self.full_gate_recurrence:
            new_state += (torch.cat([values[g] for g in self.gates], dim=-1),)
        if not traces:
            return new_state, None
        recorded = {n: values[n] for n in "ifgo" if values[n] is not None}
        recorded.update(extra_traces)
        recorded.update(c=new_cell, h=new_hidden)
        return new_state, recorded


SWITCHES_EQUATIONS = r"""
    Equations (torch's notation; :math:`\sigma` the logistic sigmoid, :math:`\odot` elementwise):

    .. math::
        i_t &= \sigma(W_{ii} x_t + b_{ii} + W_{hi} h_{t-1} + b_{hi} + w_{ci} \odot c_{t-1}) \\
        f_t &= \sigma(W_{if} x_t + b_{if} + W_{hf} h_{t-1} + b_{hf} + w_{cf} \odot c_{t-1}) \\
        g_t &= \tanh(W_{ig} x_t + b_{ig} + W_{hg} h_{t-1} + b_{hg}) \quad (\tilde{C}_t) \\
        c_t &= f_t \odot c_{t-1} + i_t \odot g_t \\
        o_t &= \sigma(W_{io} x_t + b_{io} + W_{ho} h_{t-1} + b_{ho} + w_{co} \odot c_t) \\
        h_t &= o_t \odot \tanh(c_t) \quad (\text{then } h_t = W_{hr} h_t \text{ if proj\_size} > 0)

    The peephole terms :math:`w_{c\cdot} \odot c` exist only for the gates named in ``peepholes``
    (forget and input gates look at :math:`c_{t-1}`, the output gate at :math:`c_t`, as in Gers &
    Schmidhuber 2000 and Greff et al. 2017).
    Switches (keyword-only, combinable where the maths allows; Greff et al. 2017 names in
    brackets):

    - ``peepholes``: ``False``, ``True`` (every gate present) or a subset of ``"fio"`` [V / NP].
    - ``coupled=True``: :math:`i_t = 1 - f_t` [CIFG].
    - ``forget_gate=False``: :math:`f_t \equiv 1`, so :math:`c_t = c_{t-1} + i_t g_t`, the
      original form of Hochreiter & Schmidhuber 1997, whose cell only accumulates [NFG].
    - ``input_gate=False``: :math:`i_t \equiv 1` [NIG]; ``output_gate=False``:
      :math:`o_t \equiv 1` [NOG].
    - ``input_activation=False``: :math:`g_t` without tanh [NIAF];
      ``output_activation=False``: :math:`h_t = o_t \odot c_t` [NOAF].
    - ``full_gate_recurrence=True``: each gate's pre-activation also gets
      :math:`W_{gr} a_{t-1}`, where :math:`a_{t-1}` stacks the previous step's activations of the
      gates present (in the order i, f, o) [FGR]. The state is then ``(h, c, a)``.
    - ``proj_size > 0``: torch's projection :math:`h_t = W_{hr}(o_t \odot \tanh(c_t))`.
"""


class LSTMCell(RecurrentCell):
    __doc__ = r"""One LSTM step, a drop-in for ``torch.nn.LSTMCell`` (with every variant switch).
    """ + SWITCHES_EQUATIONS + r"""
    Parameters (H = hidden_size, P = proj_size or H, G = number of blocks among i, f, g, o,
    n = number of gates among i, f, o), all from U(-k, k), k = 1/sqrt(H), as torch:

    - ``weight_ih`` ``(G*H, input_size)``, ``weight_hh`` ``(G*H, P)``, ``bias_ih`` and
      ``bias_hh`` ``(G*H,)``, blocks in torch's order i, f, g, o (a removed gate has none);
    - ``weight_hr`` ``(P, H)`` with ``proj_size``;
    - ``weight_ci``, ``weight_cf``, ``weight_co`` ``(H,)`` with ``peepholes``;
    - ``weight_gr`` ``(n*H, n*H)`` with ``full_gate_recurrence``.

    Inputs: ``input`` (B, input_size) or (input_size,); ``hx`` = ``(h, c)`` (or ``(h, c, a)``),
    each (B, size) or unbatched, zeros if omitted. Output: the new ``(h, c)`` (or ``(h, c, a)``).

    Example::

        >>> cell = rnnkit.LSTMCell(10, 20, peepholes=True)
        >>> h, c = cell(torch.randn(3, 10))
        >>> h.shape
        torch.Size([3, 20])
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        **switches,
    ) -> None:
        check_size("hidden_size", hidden_size)
        super().__init__(LSTMMath(hidden_size, **switches), input_size, bias, device, dtype)

    def forward(self, input: Tensor, hx: State | None = None) -> State:
        return self._step(input, hx)
