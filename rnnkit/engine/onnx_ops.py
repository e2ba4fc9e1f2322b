"""Layers as ONNX's own ``LSTM``, ``GRU`` and ``RNN`` operators in an ONNX export.

ONNX has operators that compute some cells exactly, and runtimes run them on their own fused
kernels: the LSTM with peepholes and with coupled input and forget gates (``input_forget``),
the GRU in torch's form (``linear_before_reset=1``) and in Cho et al.'s
(``linear_before_reset=0``), and the Elman RNN with tanh or ReLU. While
:func:`emitting_onnx_operators` is active, ``torch.export`` (which the ONNX exporter runs first)
records such a layer as one of the operators ``rnnkit::onnx_lstm``, ``rnnkit::onnx_gru`` and
``rnnkit::onnx_rnn`` per layer of the stack, whose arguments are those of the ONNX operator
(weights in its layout and gate order, ``sequence_lens`` from the layer's ``lengths``, both
directions at once); :func:`rnnkit.export.to_onnx` turns each into the ONNX operator. Every
other cell, or a layer with a projection, zoneout or traces, runs its step in torch's ``scan``
as without it.

Each operator's eager implementation computes the ONNX operator's equations step by step (for
tests and for a program that runs them outside ONNX).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import Tensor

from rnnkit.cells.base import CellMath, Params, State
from rnnkit.cells.elman import ElmanMath
from rnnkit.cells.gru import GRUMath
from rnnkit.cells.lstm import LSTMMath

_emitting = False


@contextmanager
def emitting_onnx_operators() -> Iterator[None]:
    """Within the block, layers whose cells ONNX computes exactly export as ONNX operators
    (see the module's docstring); the exporter must then translate them
    (:func:`rnnkit.export.to_onnx` does)."""
    global _emitting
    previous, _emitting = _emitting, True
    try:
        yield
    finally:
        _emitting = previous


def emitting() -> bool:
    """Whether :func:`emitting_onnx_operators` is active."""
    return _emitting


def onnx_form(maths: Sequence[CellMath]) -> str | None:
    """``"LSTM"``, ``"GRU"`` or ``"RNN"``: the ONNX operator that computes every layer of a
    stack of ``maths`` exactly; ``None`` where there is none (other cells, an LSTM with a
    projection, without a gate or activation, or with full gate recurrence)."""
    kinds = {_kind(m) for m in maths}
    return kinds.pop() if len(kinds) == 1 else None


def _kind(math: CellMath) -> str | None:
    if type(math) is ElmanMath:
        return "RNN"
    if type(math) is GRUMath:
        return "GRU"
    if type(math) is LSTMMath and not (math.proj_size or math.full_gate_recurrence) \
            and math.input_activation and math.output_activation \
            and set(math.blocks) | set("i" if math.coupled else "") == set("ifgo"):
        return "LSTM"
    return None


# -- the weights in ONNX's layout ---------------------------------------------------------------

def _blocks(tensor: Tensor, names: str) -> dict[str, Tensor]:
    return dict(zip(names, tensor.chunk(len(names), 0)))


def _lstm_weights(math: LSTMMath, params: Params) -> tuple[Tensor, ...]:
    """W, R, B (8H), P (3H) of one direction: gates in ONNX's order i, o, f, c. A coupled cell
    (i = 1 - f) is ONNX's ``input_forget`` (f = 1 - i) with the input gate's rows those of
    rnnkit's forget gate negated, sigmoid(-a) = 1 - sigmoid(a)."""
    hidden = math.hidden_size

    def arranged(tensor: Tensor) -> Tensor:
        block = _blocks(tensor, math.blocks)
        if math.coupled:
            block["i"] = -block["f"]
        return torch.cat([block["i"], block["o"], block["f"], block["g"]])

    weight_ih, weight_hh = params["weight_ih"], params["weight_hh"]
    bias_ih = params.get("bias_ih", weight_ih.new_zeros(weight_ih.shape[0]))
    bias_hh = params.get("bias_hh", weight_hh.new_zeros(weight_hh.shape[0]))
    zeros = weight_hh.new_zeros(hidden)
    peep = {gate: params.get(f"weight_c{gate}", zeros) for gate in "ifo"}
    if math.coupled:
        peep["i"] = -peep["f"]
    return (arranged(weight_ih), arranged(weight_hh),
            torch.cat([arranged(bias_ih), arranged(bias_hh)]),
            torch.cat([peep["i"], peep["o"], peep["f"]]))


def _gru_weights(params: Params) -> tuple[Tensor, ...]:
    """W, R, B (6H) of one direction: gates in ONNX's order z, r, h (rnnkit's r, z, n)."""
    def arranged(tensor: Tensor) -> Tensor:
        block = _blocks(tensor, "rzn")
        return torch.cat([block["z"], block["r"], block["n"]])

    weight_ih, weight_hh = params["weight_ih"], params["weight_hh"]
    bias_ih = params.get("bias_ih", weight_ih.new_zeros(weight_ih.shape[0]))
    bias_hh = params.get("bias_hh", weight_hh.new_zeros(weight_hh.shape[0]))
    return (arranged(weight_ih), arranged(weight_hh),
            torch.cat([arranged(bias_ih), arranged(bias_hh)]))


def _rnn_weights(params: Params) -> tuple[Tensor, ...]:
    weight_ih, weight_hh = params["weight_ih"], params["weight_hh"]
    bias_ih = params.get("bias_ih", weight_ih.new_zeros(weight_ih.shape[0]))
    bias_hh = params.get("bias_hh", weight_hh.new_zeros(weight_hh.shape[0]))
    return weight_ih, weight_hh, torch.cat([bias_ih, bias_hh])


def run_onnx_operators(
    maths: Sequence[CellMath],
    layer_params: Sequence[Sequence[Params]],
    inputs: Tensor,
    state: State,
    lengths: Tensor | None,
) -> tuple[Tensor, State]:
    """Run a stack as ONNX operators, one per layer (both directions in one).

    Args:
        maths: the cell of each layer (:func:`onnx_form` gives their operator).
        layer_params: per layer, the parameters of each direction.
        inputs: (T, B, I), time-major; sequence b occupies steps ``0 .. lengths[b] - 1``.
        state: (h0,) or (h0, c0), each (layers * directions, B, H).
        lengths: (B,) or ``None``: the operators' ``sequence_lens``.

    Returns:
        outputs (T, B, directions * H), zero after each sequence's end, and the final state.
    """
    kind = onnx_form(maths)
    directions = len(layer_params[0])
    direction = "bidirectional" if directions == 2 else "forward"
    finals: list[list[Tensor]] = [[] for _ in state]
    layer_input = inputs
    for layer, (math, params) in enumerate(zip(maths, layer_params)):
        rows = slice(layer * directions, (layer + 1) * directions)
        hidden = math.hidden_size
        if kind == "LSTM":
            w, r, b, p = (torch.stack(parts) for parts in
                          zip(*(_lstm_weights(math, d) for d in params)))
            y, *last = torch.ops.rnnkit.onnx_lstm(layer_input, w, r, b, lengths,
                                                  state[0][rows], state[1][rows], p, direction,
                                                  int(math.coupled), hidden)
        elif kind == "GRU":
            w, r, b = (torch.stack(parts) for parts in zip(*(_gru_weights(d) for d in params)))
            y, *last = torch.ops.rnnkit.onnx_gru(layer_input, w, r, b, lengths, state[0][rows],
                                                 direction, int(math.reset_after), hidden)
        else:
            w, r, b = (torch.stack(parts) for parts in zip(*(_rnn_weights(d) for d in params)))
            y, *last = torch.ops.rnnkit.onnx_rnn(layer_input, w, r, b, lengths, state[0][rows],
                                                 direction, math.nonlinearity, hidden)
        for collected, part in zip(finals, last):
            collected.append(part)
        # Y is (T, directions, B, H): directions side by side as torch's layers give them
        layer_input = y.permute(0, 2, 1, 3).flatten(2)
    return layer_input, tuple(torch.cat(parts) for parts in finals)


# -- the operators: ONNX's equations, step by step ---------------------------------------------

def _run_direction(step, x: Tensor, lengths: Tensor | None, state: tuple[Tensor, ...],
                   reverse: bool) -> tuple[Tensor, tuple[Tensor, ...]]:
    """Run ``step(x_t, state) -> state`` over x (T, B, I) one way; a reverse pass starts at
    each sequence's own last step; outputs are zero past each sequence's end."""
    steps = x.shape[0]
    if lengths is None:
        lengths = torch.full((x.shape[1],), steps, dtype=torch.long, device=x.device)
    lengths = lengths.long()
    time = torch.arange(steps, device=x.device).unsqueeze(1)
    if reverse:  # each sequence's own steps reversed, the padding in place: its own inverse
        index = torch.where(time < lengths, lengths - 1 - time, time)
        x = x.gather(0, index.unsqueeze(-1).expand_as(x))
    outputs = []
    for t in range(steps):
        inside = (t < lengths).unsqueeze(-1)
        new = step(x[t], state)
        state = tuple(torch.where(inside, n, s) for n, s in zip(new, state))
        outputs.append(state[0] * inside)
    y = torch.stack(outputs)
    if reverse:
        y = y.gather(0, index.unsqueeze(-1).expand_as(y))
    return y, state


def _both_ways(step_for, x: Tensor, lengths: Tensor | None, states: Sequence[Tensor],
               direction: str) -> tuple[Tensor, ...]:
    """Y (T, D, B, H) and the final state tensors (D, B, H) of ``step_for(d)`` in each
    direction d."""
    ys, finals = [], []
    for d in range(2 if direction == "bidirectional" else 1):
        y, final = _run_direction(step_for(d), x, lengths, tuple(s[d] for s in states),
                                  reverse=d == 1)
        ys.append(y)
        finals.append(final)
    return (torch.stack(ys, 1), *(torch.stack(parts) for parts in zip(*finals)))


@torch.library.custom_op("rnnkit::onnx_lstm", mutates_args=())
def onnx_lstm(x: Tensor, w: Tensor, r: Tensor, b: Tensor, sequence_lens: Tensor | None,
              initial_h: Tensor, initial_c: Tensor, p: Tensor, direction: str,
              input_forget: int, hidden_size: int) -> tuple[Tensor, Tensor, Tensor]:
    """ONNX's ``LSTM`` (layout 0, default activations): Y, Y_h, Y_c."""
    def step_for(d: int):
        wb, rb = b[d].chunk(2)
        p_i, p_o, p_f = p[d].chunk(3)

        def step(x_t: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
            h, c = state
            i, o, f, g = (x_t @ w[d].T + h @ r[d].T + wb + rb).chunk(4, -1)
            i = torch.sigmoid(i + p_i * c)
            f = 1 - i if input_forget else torch.sigmoid(f + p_f * c)
            c = f * c + i * torch.tanh(g)
            o = torch.sigmoid(o + p_o * c)
            return o * torch.tanh(c), c
        return step

    y, h, c = _both_ways(step_for, x, sequence_lens, (initial_h, initial_c), direction)
    return y, h, c


@torch.library.custom_op("rnnkit::onnx_gru", mutates_args=())
def onnx_gru(x: Tensor, w: Tensor, r: Tensor, b: Tensor, sequence_lens: Tensor | None,
             initial_h: Tensor, direction: str, linear_before_reset: int,
             hidden_size: int) -> tuple[Tensor, Tensor]:
    """ONNX's ``GRU`` (layout 0, default activations): Y, Y_h."""
    def step_for(d: int):
        wb, rb = b[d].chunk(2)
        r_z, r_r, r_h = r[d].chunk(3)
        rb_z, rb_r, rb_h = rb.chunk(3)

        def step(x_t: Tensor, state: tuple[Tensor]) -> tuple[Tensor]:
            h = state[0]
            x_z, x_r, x_h = (x_t @ w[d].T + wb).chunk(3, -1)
            z = torch.sigmoid(x_z + h @ r_z.T + rb_z)
            reset = torch.sigmoid(x_r + h @ r_r.T + rb_r)
            if linear_before_reset:
                candidate = torch.tanh(x_h + reset * (h @ r_h.T + rb_h))
            else:
                candidate = torch.tanh(x_h + (reset * h) @ r_h.T + rb_h)
            return ((1 - z) * candidate + z * h,)
        return step

    y, h = _both_ways(step_for, x, sequence_lens, (initial_h,), direction)
    return y, h


@torch.library.custom_op("rnnkit::onnx_rnn", mutates_args=())
def onnx_rnn(x: Tensor, w: Tensor, r: Tensor, b: Tensor, sequence_lens: Tensor | None,
             initial_h: Tensor, direction: str, activation: str,
             hidden_size: int) -> tuple[Tensor, Tensor]:
    """ONNX's ``RNN`` (layout 0) with activation ``"tanh"`` or ``"relu"``: Y, Y_h."""
    act = torch.tanh if activation == "tanh" else torch.relu

    def step_for(d: int):
        wb, rb = b[d].chunk(2)
        return lambda x_t, state: (act(x_t @ w[d].T + state[0] @ r[d].T + wb + rb),)

    y, h = _both_ways(step_for, x, sequence_lens, (initial_h,), direction)
    return y, h


def _outputs_like(x: Tensor, initial_h: Tensor, count: int) -> tuple[Tensor, ...]:
    directions, batch, hidden = initial_h.shape
    y = x.new_empty(x.shape[0], directions, batch, hidden)
    return (y, *(initial_h.new_empty(directions, batch, hidden) for _ in range(count)))


@onnx_lstm.register_fake
def _(x, w, r, b, sequence_lens, initial_h, initial_c, p, direction, input_forget,
      hidden_size):
    return _outputs_like(x, initial_h, 2)


@onnx_gru.register_fake
def _(x, w, r, b, sequence_lens, initial_h, direction, linear_before_reset, hidden_size):
    return _outputs_like(x, initial_h, 1)


@onnx_rnn.register_fake
def _(x, w, r, b, sequence_lens, initial_h, direction, activation, hidden_size):
    return _outputs_like(x, initial_h, 1)
