"""Properties every layer keeps, over random sizes, lengths, stacks, directions and switches.

Hypothesis draws a cell family with valid options (every LSTM switch combination the maths
allows), sizes (input 1-4, hidden 1-5, batch 1-4, T 1-7), ragged lengths, 1-2 layers, both
directions and the layout. The exact properties run in float64; the engine comparison in float32.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
from conftest import gradients, state_tensors
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import rnnkit
from rnnkit.engine import fused

FAMILIES = ("rnn", "lstm", "gru", "clockwork", "depth-gated", "mingru", "minlstm")
LAYER_CLASSES = {
    "rnn": rnnkit.RNN, "lstm": rnnkit.LSTM, "gru": rnnkit.GRU, "clockwork": rnnkit.ClockworkRNN,
    "depth-gated": rnnkit.DepthGatedLSTM, "mingru": rnnkit.MinGRU, "minlstm": rnnkit.MinLSTM,
}
EXACT = dict(rtol=1e-10, atol=1e-12)  # float64: same arithmetic up to summation order
ENGINES_AGREE = dict(rtol=1e-5, atol=1e-5)  # float32
SETTINGS = settings(max_examples=100, deadline=None)


# -- strategies ----------------------------------------------------------------------------------


@st.composite
def lstm_switches(draw, hidden_size: int) -> dict:
    """A valid combination of the Greff et al. switches (and proj_size) for ``rnnkit.LSTM``."""
    forget_gate, input_gate, output_gate = draw(st.tuples(st.booleans(), st.booleans(),
                                                          st.booleans()))
    coupled = draw(st.booleans()) if forget_gate and input_gate else False
    gates = "".join(name for name, present in (("i", input_gate and not coupled),
                                               ("f", forget_gate), ("o", output_gate))
                    if present)
    full_gate_recurrence = draw(st.booleans()) if gates else False
    peepholes = draw(st.one_of(
        st.booleans(),
        st.lists(st.sampled_from(gates or "f"), unique=True, max_size=len(gates)).map("".join),
    ))
    return dict(
        forget_gate=forget_gate, input_gate=input_gate, output_gate=output_gate,
        coupled=coupled, full_gate_recurrence=full_gate_recurrence, peepholes=peepholes,
        input_activation=draw(st.booleans()), output_activation=draw(st.booleans()),
        proj_size=draw(st.integers(0, hidden_size - 1)),
    )


@dataclasses.dataclass(frozen=True)
class Case:
    family: str
    options: dict
    input_size: int
    hidden_size: int
    num_layers: int
    bidirectional: bool
    batch_first: bool
    lengths: tuple[int, ...]
    steps: int
    with_state: bool
    lengths_as_tensor: bool
    seed: int

    @property
    def batch(self) -> int:
        return len(self.lengths)

    def build(self, dtype=torch.float64, **overrides) -> torch.nn.Module:
        kwargs = dict(num_layers=self.num_layers, bidirectional=self.bidirectional,
                      batch_first=self.batch_first, dtype=dtype, **self.options)
        kwargs.update(overrides)
        torch.manual_seed(self.seed)  # parameters drawn from the example's seed: reproducible
        return LAYER_CLASSES[self.family](self.input_size, self.hidden_size, **kwargs)

    def lengths_argument(self):
        return torch.tensor(self.lengths) if self.lengths_as_tensor else list(self.lengths)


@st.composite
def cases(draw, families=FAMILIES, bidirectional=None, num_layers=None, batch_first=None,
          full_length=False) -> Case:
    family = draw(st.sampled_from(families))
    hidden_size = draw(st.integers(1, 5))
    if family == "rnn":
        options = {"nonlinearity": draw(st.sampled_from(["tanh", "relu"]))}
    elif family == "lstm":
        options = draw(lstm_switches(hidden_size))
    elif family == "gru":
        options = {"reset_after": draw(st.booleans())}
    elif family == "clockwork":
        modules = draw(st.integers(1, min(hidden_size, 3)))
        periods = draw(st.lists(st.integers(1, 8), min_size=modules, max_size=modules,
                                unique=True))
        options = {"periods": tuple(sorted(periods)),
                   "nonlinearity": draw(st.sampled_from(["tanh", "relu"]))}
    elif family == "depth-gated":
        options = {"peepholes": draw(st.sampled_from([False, True, "f", "io", "o"]))}
    else:
        options = {}
    if num_layers is None:
        num_layers = draw(st.integers(1, 2))
    if family == "depth-gated":
        num_layers = max(num_layers, 2)
    steps = draw(st.integers(1, 7))
    batch = draw(st.integers(1, 4))
    lengths = (steps,) * batch if full_length else tuple(
        draw(st.lists(st.integers(1, steps), min_size=batch, max_size=batch)))
    return Case(
        family=family, options=options, input_size=draw(st.integers(1, 4)),
        hidden_size=hidden_size, num_layers=num_layers,
        bidirectional=draw(st.booleans()) if bidirectional is None else bidirectional,
        batch_first=draw(st.booleans()) if batch_first is None else batch_first,
        lengths=lengths, steps=steps, with_state=draw(st.booleans()),
        lengths_as_tensor=draw(st.booleans()), seed=draw(st.integers(0, 2**31 - 1)),
    )


# -- helpers -------------------------------------------------------------------------------------


def inputs_for(case: Case, layer: torch.nn.Module, dtype=torch.float64):
    """(T, B, I) time-major input and an initial state (or None) for ``layer``."""
    generator = torch.Generator().manual_seed(case.seed)
    x = torch.randn(case.steps, case.batch, case.input_size, generator=generator, dtype=dtype)
    if not case.with_state:
        return x, None
    _, probe = run(layer, x, None, None, case.batch_first)
    return x, tuple(torch.randn(s.shape, generator=generator, dtype=dtype) for s in probe)


def run(layer, x, hx, lengths, batch_first, **kwargs):
    """Call ``layer`` on time-major ``x`` with ``hx`` a tuple (or None); return the output
    time-major and the state as a tuple."""
    if hx is not None and len(hx) == 1:
        hx = hx[0]  # single-state layers take a bare tensor, as torch.nn.GRU
    result = layer(x.transpose(0, 1) if batch_first else x, hx, lengths=lengths, **kwargs)
    output = result[0].transpose(0, 1) if batch_first else result[0]
    return (output, state_tensors(result[1])) + tuple(result[2:])


def select_batch(state, index):
    return None if state is None else tuple(s[:, index] for s in state)


def reverse_each(sequence: torch.Tensor, lengths) -> torch.Tensor:
    """Reverse each sequence b of (T, B, ...) within its first lengths[b] steps."""
    result = sequence.clone()
    for b, length in enumerate(lengths):
        result[:length, b] = sequence[:length, b].flip(0)
    return result


def loss_of(output, state):
    """A scalar touching every output and state entry with distinct weights."""
    total = (output * torch.linspace(-1, 1, output.numel(), dtype=output.dtype)
             .view_as(output)).sum()
    for tensor in state:
        total = total + (tensor * torch.linspace(1, 2, tensor.numel(), dtype=tensor.dtype)
                         .view_as(tensor)).sum()
    return total


def assert_states_close(actual, expected, **tolerance):
    assert len(actual) == len(expected)
    for mine, theirs in zip(actual, expected):
        torch.testing.assert_close(mine, theirs, **tolerance)


# -- ragged batches ------------------------------------------------------------------------------


@SETTINGS
@given(cases())
def test_each_sequence_of_a_ragged_batch_equals_running_it_alone(case):
    layer = case.build()
    x, hx = inputs_for(case, layer)
    output, state = run(layer, x, hx, case.lengths_argument(), case.batch_first)
    assert output.shape[:2] == (case.steps, case.batch)
    for b, length in enumerate(case.lengths):
        alone_out, alone_state = run(layer, x[:length, b:b + 1], select_batch(hx, [b]), None,
                                     case.batch_first)
        torch.testing.assert_close(output[:length, b:b + 1], alone_out, **EXACT)
        assert_states_close(tuple(s[:, b:b + 1] for s in state), alone_state, **EXACT)
        assert torch.count_nonzero(output[length:, b]) == 0, "padded outputs must be exactly 0"


# -- the reverse direction -----------------------------------------------------------------------


def _weights_of(layer, suffix: str) -> dict:
    return {name[: -len(suffix)]: value for name, value in layer.state_dict().items()
            if name.endswith(suffix)}


@SETTINGS
@given(cases(families=tuple(f for f in FAMILIES if f != "depth-gated"), bidirectional=True,
             num_layers=1))
def test_reverse_direction_is_a_forward_layer_on_reversed_sequences(case):
    layer = case.build()
    forward_only = case.build(bidirectional=False)
    forward_only.load_state_dict({name + "_l0": value
                                  for name, value in _weights_of(layer, "_l0_reverse").items()})
    x, hx = inputs_for(case, layer)
    lengths = case.lengths_argument()
    output, state = run(layer, x, hx, lengths, case.batch_first)
    size = output.shape[-1] // 2
    hx_reverse = None if hx is None else tuple(s[1:2] for s in hx)
    rev_out, rev_state = run(forward_only, reverse_each(x, case.lengths), hx_reverse, lengths,
                             case.batch_first)
    torch.testing.assert_close(output[..., size:], reverse_each(rev_out, case.lengths), **EXACT)
    assert_states_close(tuple(s[1:2] for s in state), rev_state, **EXACT)


@SETTINGS
@given(cases(families=("depth-gated",), bidirectional=True, num_layers=2, batch_first=False))
def test_depth_gated_reverse_direction_is_forward_steps_on_reversed_sequences(case):
    """Layer 0 reversed is a plain LSTM; layer 1 reversed is DepthGatedLSTMCell steps whose lower
    cell is layer 0's reverse-direction cell (the stack mixes both directions, so no forward-only
    layer can hold these weights)."""
    layer = case.build()
    x, hx = inputs_for(case, layer)
    output, state, traces = run(layer, x, hx, case.lengths_argument(), False, return_traces=True)
    hidden = case.hidden_size

    bottom = rnnkit.LSTM(case.input_size, hidden, dtype=torch.float64, **case.options)
    bottom.load_state_dict({name + "_l0": value
                            for name, value in _weights_of(layer, "_l0_reverse").items()})
    bottom_out, bottom_state = run(bottom, reverse_each(x, case.lengths),
                                   None if hx is None else tuple(s[1:2] for s in hx),
                                   case.lengths_argument(), False)
    torch.testing.assert_close(traces[1]["h"], reverse_each(bottom_out, case.lengths), **EXACT)
    assert_states_close(tuple(s[1:2] for s in state), bottom_state, **EXACT)

    cell = rnnkit.DepthGatedLSTMCell(2 * hidden, hidden, dtype=torch.float64, **case.options)
    cell.load_state_dict(_weights_of(layer, "_l1_reverse"))
    upper_input = reverse_each(torch.cat([traces[0]["h"], traces[1]["h"]], -1), case.lengths)
    lower_cells = reverse_each(traces[1]["c"], case.lengths)
    for b, length in enumerate(case.lengths):
        h, c = (torch.zeros(hidden, dtype=torch.float64),) * 2 if hx is None \
            else (hx[0][3, b], hx[1][3, b])
        steps = []
        with torch.no_grad():
            for t in range(length):
                h, c = cell(upper_input[t, b], (h, c), lower_cell=lower_cells[t, b])
                steps.append(h)
        expected = torch.stack(steps).flip(0)
        torch.testing.assert_close(output[:length, b, hidden:], expected, **EXACT)
        torch.testing.assert_close(state[0][3, b], h, **EXACT)
        torch.testing.assert_close(state[1][3, b], c, **EXACT)


# -- padding, batch order, engines ---------------------------------------------------------------


@SETTINGS
@given(cases(), st.floats(-100, 100))
def test_padding_content_changes_nothing(case, fill):
    layer = case.build()
    x, hx = inputs_for(case, layer)
    other = x.clone()
    for b, length in enumerate(case.lengths):
        other[length:, b] = fill + torch.randn_like(other[length:, b])
    results = []
    for sequence in (x, other):
        layer.zero_grad()
        output, state = run(layer, sequence, hx, case.lengths_argument(), case.batch_first)
        loss_of(output, state).backward()
        results.append((output, state, gradients(layer)))
    (out_a, state_a, grads_a), (out_b, state_b, grads_b) = results
    assert torch.equal(out_a, out_b)
    assert all(torch.equal(a, b) for a, b in zip(state_a, state_b))
    assert grads_a.keys() == grads_b.keys()
    for name in grads_a:
        torch.testing.assert_close(grads_a[name], grads_b[name], **EXACT, msg=name)


@SETTINGS
@given(cases(), st.data())
def test_permuting_the_batch_permutes_outputs_and_states(case, data):
    layer = case.build()
    x, hx = inputs_for(case, layer)
    order = data.draw(st.permutations(range(case.batch)), label="order")
    lengths = case.lengths_argument()
    permuted_lengths = [case.lengths[i] for i in order]
    if case.lengths_as_tensor:
        permuted_lengths = torch.tensor(permuted_lengths)
    output, state = run(layer, x, hx, lengths, case.batch_first)
    out_p, state_p = run(layer, x[:, order], select_batch(hx, order), permuted_lengths,
                         case.batch_first)
    torch.testing.assert_close(out_p, output[:, order], **EXACT)
    assert_states_close(state_p, tuple(s[:, order] for s in state), **EXACT)


@SETTINGS
@given(cases())
def test_reference_engine_agrees_with_auto_engine(case):
    reference = case.build(torch.float32, engine="reference")
    auto = case.build(torch.float32, engine="auto")
    auto.load_state_dict(reference.state_dict())
    x, hx = inputs_for(case, reference, torch.float32)
    if fused.load_extension() is not None:  # else (no compiler) the fixtures fail or skip
        assert auto.engine_for(x) != "reference"  # not the reference against itself
    results = []
    for layer in (reference, auto):
        sequence = x.clone().requires_grad_()
        output, state = run(layer, sequence, hx, case.lengths_argument(), case.batch_first)
        loss_of(output, state).backward()
        results.append((output, state, gradients(layer, sequence)))
    (out_r, state_r, grads_r), (out_a, state_a, grads_a) = results
    torch.testing.assert_close(out_a, out_r, **ENGINES_AGREE)
    assert_states_close(state_a, state_r, **ENGINES_AGREE)
    for name in grads_r:
        torch.testing.assert_close(grads_a[name], grads_r[name], rtol=1e-4, atol=1e-4, msg=name)


@SETTINGS
@given(cases(families=("mingru", "minlstm")))
def test_scan_engine_traces_agree_with_reference(case):
    reference = case.build(torch.float32, engine="reference")
    scan = case.build(torch.float32, engine="scan")
    scan.load_state_dict(reference.state_dict())
    x, hx = inputs_for(case, reference, torch.float32)
    *_, traces_r = run(reference, x, hx, case.lengths_argument(), case.batch_first,
                       return_traces=True)
    *_, traces_s = run(scan, x, hx, case.lengths_argument(), case.batch_first,
                       return_traces=True)
    assert len(traces_r) == len(traces_s)
    for mine, theirs in zip(traces_s, traces_r):
        assert mine.keys() == theirs.keys()
        for name in mine:
            torch.testing.assert_close(mine[name], theirs[name], **ENGINES_AGREE, msg=name)


@SETTINGS
@given(cases(bidirectional=False, full_length=True), st.data())
def test_two_chunks_with_start_step_equal_one_run(case, data):
    """Continuing a sequence chunk by chunk (state carried, ``start_step`` = steps already run)
    gives the one-call result; for the Clockwork RNN the clock must carry on."""
    assume(case.steps >= 2)
    split = data.draw(st.integers(1, case.steps - 1), label="split")
    layer = case.build()
    x, hx = inputs_for(case, layer)
    whole_out, whole_state = run(layer, x, hx, None, case.batch_first)
    first_out, first_state = run(layer, x[:split], hx, None, case.batch_first)
    second_out, second_state = run(layer, x[split:], first_state, None, case.batch_first,
                                   start_step=split)
    torch.testing.assert_close(torch.cat([first_out, second_out]), whole_out, **EXACT)
    assert_states_close(second_state, whole_state, **EXACT)


# -- the LSTM equations in the traces ------------------------------------------------------------


def _valid_steps(lengths, like):
    """(T, B, 1) 1.0 at steps inside each sequence, 0.0 in the padding."""
    time = torch.arange(like.shape[0]).unsqueeze(1)
    return (time < torch.tensor(lengths).unsqueeze(0)).unsqueeze(-1).to(like.dtype)


def _previous_cells(cells, start, lengths, reverse):
    """c_{t-1} (c_{t+1} for the reverse direction) at every valid step; 0 in the padding."""
    previous = torch.zeros_like(cells)
    for b, length in enumerate(lengths):
        own = cells[:length, b]
        if reverse:
            previous[:length, b] = torch.cat([own[1:], start[b][None]])
        else:
            previous[:length, b] = torch.cat([start[b][None], own[:-1]])
    return previous


def _check_cell_equations(layer, case, hx, traces, options, lower_layer_traces=None):
    """c_t = f c_prev + i g (+ d c_lower) and h_t = o act(c_t) (projected) for each trace."""
    directions = 2 if case.bidirectional else 1
    proj = options.get("proj_size", 0)
    for index, trace in enumerate(traces):
        layer_index, direction = divmod(index, directions)
        start = hx[1][index] if hx is not None else torch.zeros_like(trace["c"][0])
        previous = _previous_cells(trace["c"], start, case.lengths, bool(direction))
        one = torch.ones_like(trace["c"])
        forget, input_ = trace.get("f", one), trace.get("i", one)
        assert ("f" in trace) == options.get("forget_gate", True)
        assert ("i" in trace) == options.get("input_gate", True)
        assert ("o" in trace) == options.get("output_gate", True)
        if options.get("coupled"):
            valid = _valid_steps(case.lengths, trace["c"])
            torch.testing.assert_close(input_, (1 - forget) * valid, **EXACT)
        expected_c = forget * previous + input_ * trace["g"]
        if "d" in trace:
            lower = lower_layer_traces[index - directions]["c"]
            expected_c = expected_c + trace["d"] * lower
        torch.testing.assert_close(trace["c"], expected_c, **EXACT)
        shown = torch.tanh(trace["c"]) if options.get("output_activation", True) else trace["c"]
        expected_h = trace.get("o", one) * shown
        if proj:
            suffix = f"_l{layer_index}" + ("_reverse" if direction else "")
            expected_h = expected_h @ getattr(layer, "weight_hr" + suffix).T
        torch.testing.assert_close(trace["h"], expected_h, **EXACT)
        for b, length in enumerate(case.lengths):
            for name, value in trace.items():
                assert torch.count_nonzero(value[length:, b]) == 0, name


@SETTINGS
@given(cases(families=("lstm",), batch_first=False))
def test_lstm_traces_satisfy_the_cell_and_output_equations(case):
    layer = case.build()
    x, hx = inputs_for(case, layer)
    output, _, traces = run(layer, x, hx, case.lengths_argument(), False, return_traces=True)
    assert len(traces) == case.num_layers * (2 if case.bidirectional else 1)
    _check_cell_equations(layer, case, hx, traces, case.options)
    top = traces[-2:] if case.bidirectional else traces[-1:]
    torch.testing.assert_close(output, torch.cat([t["h"] for t in top], -1), rtol=0, atol=0)


@SETTINGS
@given(cases(families=("depth-gated",), batch_first=False))
def test_depth_gated_traces_add_the_gated_lower_cell(case):
    layer = case.build()
    x, hx = inputs_for(case, layer)
    _, _, traces = run(layer, x, hx, case.lengths_argument(), False, return_traces=True)
    directions = 2 if case.bidirectional else 1
    assert all(("d" in t) == (i >= directions) for i, t in enumerate(traces))
    _check_cell_equations(layer, case, hx, traces, {}, lower_layer_traces=traces)


# -- NaN padding (explicit cases: hypothesis draws finite padding above) --------------------------


# "auto" is another engine than "reference" only for these (native or scan).
FAST_AUTO = ("rnn", "rnn-relu", "lstm", "gru", "mingru", "minlstm")
# Every cell with a fused kernel, asked for by name: run on the kernels or refused, never
# quietly on another engine.
FUSED = [name for name in rnnkit.CELL_NAMES
         if all(fused.fused_supports(cell) for cell in rnnkit.build_layer(
             name, 3, 4, num_layers=2, bidirectional=True).layer_maths)]
ENGINE_CHOICES = ([(name, "reference") for name in rnnkit.CELL_NAMES]
                  + [(name, "auto") for name in FAST_AUTO]
                  + [(name, "fused") for name in FUSED])


@pytest.fixture
def nan_padded_runs(request):
    """The runs of :func:`_nan_padded_runs`, with the fused kernels built where asked for."""
    def runs(name, engine):
        if engine == "fused":
            request.getfixturevalue("fused_extension")
        return _nan_padded_runs(name, engine)
    return runs


def _nan_padded_runs(name, engine):
    layer = rnnkit.build_layer(name, 3, 4, num_layers=2, bidirectional=True, engine=engine)
    x = torch.randn(5, 3, 3)
    lengths = torch.tensor([5, 2, 4])
    used = layer.engine_for(x)
    assert used == engine if engine != "auto" else used != "reference", used
    padded = x.clone()
    for b, length in enumerate(lengths.tolist()):
        padded[length:, b] = float("nan")
    results = []
    for sequence in (x, padded):
        layer.zero_grad()
        output, state = layer(sequence, lengths=lengths)
        state = state_tensors(state)
        loss_of(output, state).backward()
        results.append((output, state, gradients(layer)))
    return results


def test_the_nan_padding_tests_reach_the_fused_kernel_of_every_family():
    # The ones "auto" runs elsewhere (torch's LSTM) or not at all (the LSTM variants,
    # Depth-Gated, Cho's GRU, Clockwork) included.
    assert {"lstm", "peephole-lstm", "cifg-lstm", "nfg-lstm", "nig-lstm", "nog-lstm",
            "niaf-lstm", "noaf-lstm", "fgr-lstm", "depth-gated-lstm", "gru", "gru-cho", "rnn",
            "rnn-relu", "clockwork", "mingru", "minlstm"} <= set(FUSED)


@pytest.mark.parametrize("name,engine", ENGINE_CHOICES)
def test_nan_padding_leaves_outputs_and_states_unchanged(name, engine, nan_padded_runs):
    """Padding past each end is never read: NaN there (e.g. missing data) must not leak."""
    (out_a, state_a, _), (out_b, state_b, _) = nan_padded_runs(name, engine)
    torch.testing.assert_close(out_b, out_a, rtol=0, atol=0)
    assert_states_close(state_b, state_a, rtol=0, atol=0)


@pytest.mark.parametrize("name,engine", ENGINE_CHOICES)
def test_nan_padding_leaves_gradients_unchanged(name, engine, nan_padded_runs):
    (_, _, grads_a), (_, _, grads_b) = nan_padded_runs(name, engine)
    for grad_name in grads_a:
        torch.testing.assert_close(grads_b[grad_name], grads_a[grad_name], msg=grad_name)
