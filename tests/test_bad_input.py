"""Bad arguments fail at the public call with a ValueError or TypeError whose message names the
argument, what was expected and what came: no opaque error from deep inside, no broadcasting.

Every ``match`` names the argument and then the expected and actual value or shape, in the order
"expected ..., got ...".
"""

from __future__ import annotations

import re

import pytest
import torch
from conftest import state_tensors
from torch.nn.utils.rnn import pack_padded_sequence

import rnnkit
import rnnkit.engine.select

N_IN, H, T, B, L = 4, 5, 6, 3, 2  # input size, hidden size, steps, batch, layers


def pattern(*parts: object) -> str:
    """A regex matching the parts, in this order, anywhere in one message."""
    return ".*".join(re.escape(str(part)) for part in parts)


# -- the layers ----------------------------------------------------------------------------------

LAYERS = {
    "rnn": lambda **kw: rnnkit.RNN(N_IN, H, num_layers=L, **kw),
    "lstm": lambda **kw: rnnkit.LSTM(N_IN, H, num_layers=L, **kw),
    "lstm-proj": lambda **kw: rnnkit.LSTM(N_IN, H, num_layers=L, proj_size=2, **kw),
    "peephole-lstm": lambda **kw: rnnkit.LSTM(N_IN, H, num_layers=L, peepholes=True, **kw),
    "fgr-lstm": lambda **kw: rnnkit.LSTM(N_IN, H, num_layers=L, full_gate_recurrence=True, **kw),
    "gru": lambda **kw: rnnkit.GRU(N_IN, H, num_layers=L, **kw),
    "gru-cho": lambda **kw: rnnkit.GRU(N_IN, H, num_layers=L, reset_after=False, **kw),
    "clockwork": lambda **kw: rnnkit.ClockworkRNN(N_IN, H, num_layers=L, **kw),
    "depth-gated-lstm": lambda **kw: rnnkit.DepthGatedLSTM(N_IN, H, num_layers=L, **kw),
    "mingru": lambda **kw: rnnkit.MinGRU(N_IN, H, num_layers=L, **kw),
    "minlstm": lambda **kw: rnnkit.MinLSTM(N_IN, H, num_layers=L, **kw),
}
MULTI_STATE = ("lstm", "lstm-proj", "peephole-lstm", "fgr-lstm", "depth-gated-lstm")
SINGLE_STATE = tuple(name for name in LAYERS if name not in MULTI_STATE)
STATE_NAMES = ("h", "c", "a")
LAYER_CLASSES = [rnnkit.RNN, rnnkit.LSTM, rnnkit.GRU, rnnkit.ClockworkRNN, rnnkit.DepthGatedLSTM,
                 rnnkit.MinGRU, rnnkit.MinLSTM]
CELL_CLASSES = [rnnkit.RNNCell, rnnkit.LSTMCell, rnnkit.GRUCell, rnnkit.ClockworkRNNCell,
                rnnkit.DepthGatedLSTMCell, rnnkit.MinGRUCell, rnnkit.MinLSTMCell]
NON_TORCH_CELLS = ("peephole-lstm", "cifg-lstm", "nfg-lstm", "nig-lstm", "nog-lstm", "niaf-lstm",
                   "noaf-lstm", "fgr-lstm", "gru-cho", "depth-gated-lstm", "clockwork", "mingru",
                   "minlstm")
NON_SCAN_CELLS = tuple(name for name in rnnkit.CELL_NAMES if name not in ("mingru", "minlstm"))

layer_names = pytest.mark.parametrize("name", list(LAYERS))


def good_state(layer) -> tuple[torch.Tensor, ...]:
    """A valid batched state for ``layer`` on a (T, B, N_IN) input, as a tuple."""
    _, state = layer(torch.randn(T, B, N_IN))
    return tuple(torch.randn_like(s) for s in state_tensors(state))


def as_hx(parts):
    return parts[0] if len(parts) == 1 else tuple(parts)


def replaced(parts, index, value):
    return tuple(value if k == index else part for k, part in enumerate(parts))


# input


@layer_names
@pytest.mark.parametrize("shape", [(N_IN,), (2, T, B, N_IN)], ids=["1-D", "4-D"])
def test_layer_rejects_input_of_wrong_rank(name, shape):
    with pytest.raises(ValueError, match=pattern("input", "(T, B, input_size)",
                                                 f"{len(shape)}-D shape {shape}")):
        LAYERS[name]()(torch.randn(shape))


@layer_names
@pytest.mark.parametrize("batch_first,shape", [(False, (T, B, N_IN + 1)), (True, (B, T, N_IN + 1)),
                                               (False, (T, N_IN + 1))],
                         ids=["time-major", "batch-first", "unbatched"])
def test_layer_rejects_wrong_feature_size(name, batch_first, shape):
    layer = LAYERS[name](batch_first=batch_first)
    with pytest.raises(ValueError, match=pattern(f"input_size={N_IN}", shape)):
        layer(torch.randn(shape))


@layer_names
@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.bool])
def test_layer_rejects_non_floating_input(name, dtype):
    with pytest.raises(TypeError, match=pattern("input", "floating", dtype)):
        LAYERS[name]()(torch.ones(T, B, N_IN, dtype=dtype))


@layer_names
@pytest.mark.parametrize("input_dtype,layer_dtype", [(torch.float64, torch.float32),
                                                     (torch.float32, torch.float64)])
def test_layer_rejects_input_dtype_other_than_the_parameters(name, input_dtype, layer_dtype):
    layer = LAYERS[name](dtype=layer_dtype)
    with pytest.raises(TypeError, match=pattern("input", input_dtype, layer_dtype)):
        layer(torch.randn(T, B, N_IN, dtype=input_dtype))


@layer_names
def test_layer_rejects_non_tensor_input(name):
    with pytest.raises(TypeError, match=pattern("input", "Tensor", "list")):
        LAYERS[name]()(torch.randn(T, B, N_IN).tolist())


@layer_names
@pytest.mark.parametrize("batch_first,shape", [(False, (0, B, N_IN)), (True, (B, 0, N_IN))])
def test_layer_rejects_zero_time_steps(name, batch_first, shape):
    with pytest.raises(ValueError, match=pattern("input", "at least one time step", "0")):
        LAYERS[name](batch_first=batch_first)(torch.randn(shape))


# state


@layer_names
def test_layer_rejects_state_of_batch_1_for_batch_3_instead_of_broadcasting(name):
    layer = LAYERS[name]()
    good = good_state(layer)
    for index, part in enumerate(good):
        bad = torch.randn(part.shape[0], 1, part.shape[2])
        with pytest.raises(ValueError, match=pattern("hx", STATE_NAMES[index],
                                                     tuple(part.shape), tuple(bad.shape))):
            layer(torch.randn(T, B, N_IN), as_hx(replaced(good, index, bad)))


@layer_names
@pytest.mark.parametrize("stacked", [1, L + 1])
def test_layer_rejects_state_for_another_number_of_layers(name, stacked):
    layer = LAYERS[name]()
    good = good_state(layer)
    for index, part in enumerate(good):
        bad = torch.randn(stacked, B, part.shape[2])
        with pytest.raises(ValueError, match=pattern("hx", STATE_NAMES[index],
                                                     tuple(part.shape), tuple(bad.shape))):
            layer(torch.randn(T, B, N_IN), as_hx(replaced(good, index, bad)))


@layer_names
def test_layer_rejects_state_of_wrong_feature_size(name):
    layer = LAYERS[name]()
    good = good_state(layer)
    for index, part in enumerate(good):
        bad = torch.randn(L, B, part.shape[2] + 1)
        with pytest.raises(ValueError, match=pattern("hx", STATE_NAMES[index],
                                                     tuple(part.shape), tuple(bad.shape))):
            layer(torch.randn(T, B, N_IN), as_hx(replaced(good, index, bad)))


@layer_names
def test_layer_rejects_state_without_the_layer_dimension(name):
    layer = LAYERS[name]()
    good = good_state(layer)
    for index, part in enumerate(good):
        bad = part[0]
        with pytest.raises(ValueError, match=pattern("hx", STATE_NAMES[index],
                                                     tuple(part.shape), tuple(bad.shape))):
            layer(torch.randn(T, B, N_IN), as_hx(replaced(good, index, bad)))


@layer_names
def test_layer_rejects_state_of_wrong_dtype(name):
    layer = LAYERS[name]()
    good = good_state(layer)
    for index, part in enumerate(good):
        with pytest.raises(TypeError, match=pattern("hx", STATE_NAMES[index], torch.float64,
                                                    torch.float32)):
            layer(torch.randn(T, B, N_IN), as_hx(replaced(good, index, part.double())))


@layer_names
def test_layer_rejects_batched_state_for_unbatched_input(name):
    layer = LAYERS[name]()
    good = good_state(layer)
    unbatched = tuple(part[:, 0] for part in good)
    for index, part in enumerate(good):
        bad = part[:, :1]
        with pytest.raises(ValueError, match=pattern("hx", STATE_NAMES[index],
                                                     tuple(unbatched[index].shape),
                                                     tuple(bad.shape))):
            layer(torch.randn(T, N_IN), as_hx(replaced(unbatched, index, bad)))


@pytest.mark.parametrize("name", MULTI_STATE)
def test_lstm_layer_rejects_a_bare_tensor_as_state(name):
    layer = LAYERS[name]()
    good = good_state(layer)
    with pytest.raises(TypeError, match=pattern("hx", f"tuple of {len(good)} tensors",
                                                "Tensor")):
        layer(torch.randn(T, B, N_IN), good[0])


@pytest.mark.parametrize("name", MULTI_STATE)
@pytest.mark.parametrize("change", [-1, 1])
def test_lstm_layer_rejects_state_tuple_of_wrong_length(name, change):
    layer = LAYERS[name]()
    good = good_state(layer)
    bad = good[:-1] if change < 0 else good + (good[0],)
    with pytest.raises(TypeError, match=pattern("hx", f"tuple of {len(good)} tensors",
                                                f"length {len(bad)}")):
        layer(torch.randn(T, B, N_IN), bad)


@pytest.mark.parametrize("name", MULTI_STATE)
def test_lstm_layer_rejects_non_tensor_in_state_tuple(name):
    layer = LAYERS[name]()
    good = good_state(layer)
    with pytest.raises(TypeError, match=pattern("hx", "c", tuple(good[1].shape), "NoneType")):
        layer(torch.randn(T, B, N_IN), replaced(good, 1, None))


@pytest.mark.parametrize("name", SINGLE_STATE)
def test_single_state_layer_rejects_a_tuple_as_state(name):
    layer = LAYERS[name]()
    good = good_state(layer)
    with pytest.raises(TypeError, match=pattern("hx", tuple(good[0].shape), "tuple")):
        layer(torch.randn(T, B, N_IN), good)


# lengths


@layer_names
@pytest.mark.parametrize("lengths,shown", [([0, T, 2], "min 0"), ([T + 1, T, 2], f"max {T + 1}"),
                                           ([-1, T, 2], "min -1")], ids=["0", "T+1", "-1"])
@pytest.mark.parametrize("as_tensor", [False, True], ids=["list", "tensor"])
def test_layer_rejects_lengths_out_of_range(name, lengths, shown, as_tensor):
    lengths = torch.tensor(lengths) if as_tensor else lengths
    with pytest.raises(ValueError, match=pattern("lengths", f"[1, {T}]", shown)):
        LAYERS[name]()(torch.randn(T, B, N_IN), lengths=lengths)


@layer_names
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bool])
def test_layer_rejects_lengths_tensor_not_integer(name, dtype):
    with pytest.raises(TypeError, match=pattern("lengths", "integers", dtype)):
        LAYERS[name]()(torch.randn(T, B, N_IN), lengths=torch.tensor([T, 2, 1]).to(dtype))


@layer_names
@pytest.mark.parametrize("bad", [2.5, 2.0, True, "2", None])
def test_layer_rejects_lengths_list_with_a_non_integer(name, bad):
    with pytest.raises(TypeError, match=pattern("lengths", "integers", repr(bad))):
        LAYERS[name]()(torch.randn(T, B, N_IN), lengths=[T, bad, 1])


@layer_names
@pytest.mark.parametrize("lengths", [[T], [T, 2], [T, 2, 1, 1]], ids=["1", "2", "4"])
@pytest.mark.parametrize("as_tensor", [False, True], ids=["list", "tensor"])
def test_layer_rejects_wrong_number_of_lengths(name, lengths, as_tensor):
    lengths = torch.tensor(lengths) if as_tensor else lengths
    with pytest.raises(ValueError, match=pattern("lengths", f"{B} lengths", f"got {len(lengths)}")):
        LAYERS[name]()(torch.randn(T, B, N_IN), lengths=lengths)


@layer_names
@pytest.mark.parametrize("lengths", [torch.tensor([[T], [2], [1]]), torch.tensor(T)],
                         ids=["2-D", "0-D"])
def test_layer_rejects_lengths_tensor_not_1d(name, lengths):
    with pytest.raises(ValueError, match=pattern("lengths", "1-D", tuple(lengths.shape))):
        LAYERS[name]()(torch.randn(T, B, N_IN), lengths=lengths)


@layer_names
@pytest.mark.parametrize("lengths,shown", [(T, "int"), ("632", "str"), ({T, 2, 1}, "set")])
def test_layer_rejects_lengths_not_a_sequence(name, lengths, shown):
    with pytest.raises(TypeError, match=pattern("lengths", "sequence", shown)):
        LAYERS[name]()(torch.randn(T, B, N_IN), lengths=lengths)


@layer_names
def test_layer_rejects_lengths_with_unbatched_input(name):
    with pytest.raises(ValueError, match=pattern("lengths", "batched", (T, N_IN))):
        LAYERS[name]()(torch.randn(T, N_IN), lengths=[T])


@layer_names
def test_layer_rejects_lengths_together_with_packed_sequence(name):
    packed = pack_padded_sequence(torch.randn(T, B, N_IN), [T, 2, 1])
    with pytest.raises(ValueError, match=pattern("lengths", "None", "PackedSequence")):
        LAYERS[name]()(packed, lengths=[T, 2, 1])


# start_step


@layer_names
@pytest.mark.parametrize("start_step,error,shown", [(-1, ValueError, ">= 0, got -1"),
                                                    (1.5, TypeError, "float 1.5"),
                                                    (True, TypeError, "bool True")])
def test_layer_rejects_bad_start_step(name, start_step, error, shown):
    with pytest.raises(error, match=pattern("start_step", shown)):
        LAYERS[name]()(torch.randn(T, B, N_IN), start_step=start_step)


# engines


@pytest.mark.parametrize("cls", LAYER_CLASSES)
@pytest.mark.parametrize("engine", ["fast", "Native", ""])
def test_layer_rejects_unknown_engine(cls, engine):
    with pytest.raises(ValueError, match=pattern("engine", "'reference'", repr(engine))):
        cls(N_IN, H, num_layers=L, engine=engine)


@pytest.mark.parametrize("name", NON_TORCH_CELLS)
def test_native_engine_rejected_for_cells_torch_lacks(name):
    """Raised when built or at the first call, never an error from inside torch's kernel."""
    with pytest.raises(ValueError, match=pattern("engine='native'", "torch")):
        rnnkit.build_layer(name, N_IN, H, num_layers=L, engine="native")(torch.randn(T, B, N_IN))


@pytest.mark.parametrize("name", ["lstm", "gru", "rnn"])
def test_native_engine_rejected_with_traces(name):
    layer = rnnkit.build_layer(name, N_IN, H, engine="native")
    with pytest.raises(ValueError, match=pattern("engine='native'", "traces")):
        layer(torch.randn(T, B, N_IN), return_traces=True)


@pytest.mark.parametrize("name", NON_SCAN_CELLS)
def test_scan_engine_rejected_for_cells_not_linear_in_their_state(name):
    with pytest.raises(ValueError, match=pattern("engine='scan'", "MinGRU")):
        rnnkit.build_layer(name, N_IN, H, num_layers=L, engine="scan")(torch.randn(T, B, N_IN))


@layer_names
@pytest.mark.parametrize("value", ["bogus", "NATIVE", " auto"])
def test_invalid_rnnkit_engine_variable_is_rejected(name, value, monkeypatch):
    monkeypatch.setattr(rnnkit.engine.select, "_default", None)
    monkeypatch.setenv("RNNKIT_ENGINE", value)
    with pytest.raises(ValueError, match=pattern("RNNKIT_ENGINE", "'reference'", repr(value))):
        LAYERS[name]()(torch.randn(T, B, N_IN))


@pytest.mark.parametrize("name", ["peephole-lstm", "mingru"])
def test_rnnkit_engine_variable_naming_an_unusable_engine_is_named_in_the_error(name,
                                                                                 monkeypatch):
    """The user set no engine= argument: the message must point at the environment variable."""
    monkeypatch.setattr(rnnkit.engine.select, "_default", "native")
    with pytest.raises(ValueError, match=pattern("RNNKIT_ENGINE", "'native'")):
        rnnkit.build_layer(name, N_IN, H)(torch.randn(T, B, N_IN))


# constructors

BAD_SIZES = [(0, ValueError, ">= 1, got 0"), (-2, ValueError, ">= 1, got -2"),
             (2.5, TypeError, "float 2.5"), (5.0, TypeError, "float 5.0"),
             (True, TypeError, "bool True"), ("5", TypeError, "str '5'")]


@pytest.mark.parametrize("cls", LAYER_CLASSES + CELL_CLASSES)
@pytest.mark.parametrize("bad,error,shown", BAD_SIZES)
def test_constructor_rejects_bad_hidden_size(cls, bad, error, shown):
    with pytest.raises(error, match=pattern("hidden_size", shown)):
        cls(N_IN, bad)


@pytest.mark.parametrize("cls", LAYER_CLASSES + CELL_CLASSES)
@pytest.mark.parametrize("bad,error,shown", BAD_SIZES)
def test_constructor_rejects_bad_input_size(cls, bad, error, shown):
    with pytest.raises(error, match=pattern("input_size", shown)):
        cls(bad, H)


@pytest.mark.parametrize("cls", LAYER_CLASSES)
@pytest.mark.parametrize("bad,error,shown", BAD_SIZES)
def test_layer_rejects_bad_num_layers(cls, bad, error, shown):
    with pytest.raises(error, match=pattern("num_layers", shown)):
        cls(N_IN, H, num_layers=bad)


def test_depth_gated_lstm_rejects_a_single_layer():
    with pytest.raises(ValueError, match=pattern("num_layers", ">= 2", "got 1")):
        rnnkit.DepthGatedLSTM(N_IN, H, num_layers=1)


@pytest.mark.parametrize("cls", LAYER_CLASSES)
@pytest.mark.parametrize("bad,error", [(1.5, ValueError), (-0.1, ValueError),
                                       ("x", (TypeError, ValueError)),
                                       (True, (TypeError, ValueError))])
def test_layer_rejects_bad_dropout(cls, bad, error):
    with pytest.raises(error, match=pattern("dropout", "[0, 1]", repr(bad))):
        cls(N_IN, H, num_layers=L, dropout=bad)


@pytest.mark.parametrize("cls", [rnnkit.LSTM, rnnkit.LSTMCell])
@pytest.mark.parametrize("proj_size", [H, H + 1])
def test_lstm_rejects_proj_size_not_below_hidden_size(cls, proj_size):
    with pytest.raises(ValueError, match=pattern("proj_size", f"hidden_size={H}",
                                                 f"got {proj_size}")):
        cls(N_IN, H, proj_size=proj_size)


@pytest.mark.parametrize("cls", [rnnkit.LSTM, rnnkit.LSTMCell])
@pytest.mark.parametrize("proj_size,error,shown", [(-1, ValueError, ">= 0, got -1"),
                                                   (1.5, TypeError, "float 1.5")])
def test_lstm_rejects_bad_proj_size(cls, proj_size, error, shown):
    with pytest.raises(error, match=pattern("proj_size", shown)):
        cls(N_IN, H, proj_size=proj_size)


@pytest.mark.parametrize("cls", [rnnkit.RNN, rnnkit.RNNCell, rnnkit.ClockworkRNN,
                                 rnnkit.ClockworkRNNCell])
@pytest.mark.parametrize("bad", ["sigmoid", "Tanh", None, ["tanh"]])
def test_rejects_unknown_nonlinearity(cls, bad):
    with pytest.raises(ValueError, match=pattern("nonlinearity", "'tanh'", repr(bad))):
        cls(N_IN, H, nonlinearity=bad)


PEEPHOLE_CLASSES = [rnnkit.LSTM, rnnkit.LSTMCell, rnnkit.DepthGatedLSTM, rnnkit.DepthGatedLSTMCell]


@pytest.mark.parametrize("cls", PEEPHOLE_CLASSES)
@pytest.mark.parametrize("bad", ["x", "ii", "fox", 1, ["f"]])
def test_rejects_malformed_peepholes(cls, bad):
    with pytest.raises(ValueError, match=pattern("peepholes", "'fio'", repr(bad))):
        cls(N_IN, H, peepholes=bad)


@pytest.mark.parametrize("cls", [rnnkit.LSTM, rnnkit.LSTMCell])
@pytest.mark.parametrize("peepholes,switches", [
    ("f", {"forget_gate": False}), ("i", {"input_gate": False}), ("o", {"output_gate": False}),
    ("fo", {"output_gate": False}), ("i", {"coupled": True}),
])
def test_lstm_rejects_peephole_on_a_removed_gate(cls, peepholes, switches):
    missing = next(g for g in peepholes if g == "i" or not switches.get(
        {"f": "forget_gate", "o": "output_gate"}[g], True))
    with pytest.raises(ValueError, match=pattern(f"peepholes={peepholes!r}", repr(missing),
                                                 "removed")):
        cls(N_IN, H, peepholes=peepholes, **switches)


@pytest.mark.parametrize("cls", [rnnkit.LSTM, rnnkit.LSTMCell])
@pytest.mark.parametrize("removed", ["forget_gate", "input_gate"])
def test_lstm_rejects_coupled_gates_with_a_gate_removed(cls, removed):
    with pytest.raises(ValueError, match=pattern("coupled=True", f"{removed}=False")):
        cls(N_IN, H, coupled=True, **{removed: False})


@pytest.mark.parametrize("cls", [rnnkit.LSTM, rnnkit.LSTMCell])
def test_lstm_rejects_full_gate_recurrence_without_gates(cls):
    with pytest.raises(ValueError, match=pattern("full_gate_recurrence=True", "gates")):
        cls(N_IN, H, full_gate_recurrence=True, forget_gate=False, input_gate=False,
            output_gate=False)


@pytest.mark.parametrize("cls", [rnnkit.LSTM, rnnkit.LSTMCell])
@pytest.mark.parametrize("switch", ["coupled", "forget_gate", "input_gate", "output_gate",
                                    "input_activation", "output_activation",
                                    "full_gate_recurrence"])
@pytest.mark.parametrize("bad", ["yes", 1, None])
def test_lstm_rejects_non_boolean_switch(cls, switch, bad):
    with pytest.raises(TypeError, match=pattern(switch, "True or False", repr(bad))):
        cls(N_IN, H, **{switch: bad})


@pytest.mark.parametrize("cls", [rnnkit.GRU, rnnkit.GRUCell])
def test_gru_rejects_non_boolean_reset_after(cls):
    with pytest.raises(TypeError, match=pattern("reset_after", "True or False", "'no'")):
        cls(N_IN, H, reset_after="no")


@pytest.mark.parametrize("cls,typo", [(rnnkit.LSTM, "peephole"), (rnnkit.LSTMCell, "couple"),
                                      (rnnkit.GRU, "peepholes"), (rnnkit.MinGRU, "reset_after")])
def test_rejects_unknown_switch(cls, typo):
    with pytest.raises(TypeError, match=pattern(typo)):
        cls(N_IN, H, **{typo: True})


@pytest.mark.parametrize("cls", [rnnkit.ClockworkRNN, rnnkit.ClockworkRNNCell])
@pytest.mark.parametrize("periods,error,shown", [
    ((), (TypeError, ValueError), "()"),  # empty: a value problem, either type is fine
    ([], (TypeError, ValueError), "[]"),
    ((1, 4, 2), ValueError, "(1, 4, 2)"),
    ((1, 1, 2), ValueError, "(1, 1, 2)"),
    ((2, 1), ValueError, "(2, 1)"),
    ((1, 2, 4, 8, 16, 32), ValueError, f"hidden_size={H}"),
    ((1, 2.5), TypeError, "2.5"),
    ((0, 1), ValueError, "got 0"),
    ((1, True), TypeError, "True"),
    (4, TypeError, "4"),
    ("12", TypeError, "'12'"),
])
def test_clockwork_rejects_bad_periods(cls, periods, error, shown):
    with pytest.raises(error, match=pattern("periods", shown)):
        cls(N_IN, H, periods=periods)


@pytest.mark.parametrize("cell", ["lstmm", "LSTM", "", "depth_gated_lstm"])
def test_build_layer_rejects_unknown_cell_name(cell):
    with pytest.raises(ValueError, match=pattern("cell", repr(cell), "lstm")):
        rnnkit.build_layer(cell, N_IN, H)


def test_build_layer_rejects_options_impossible_for_the_entry():
    with pytest.raises(ValueError, match=pattern("coupled=True", "input_gate=False")):
        rnnkit.build_layer("cifg-lstm", N_IN, H, input_gate=False)


# -- the one-step cells --------------------------------------------------------------------------

CELLS = {
    "LSTMCell": lambda **kw: rnnkit.LSTMCell(N_IN, H, **kw),
    "GRUCell": lambda **kw: rnnkit.GRUCell(N_IN, H, **kw),
    "RNNCell": lambda **kw: rnnkit.RNNCell(N_IN, H, **kw),
    "ClockworkRNNCell": lambda **kw: rnnkit.ClockworkRNNCell(N_IN, H, **kw),
    "DepthGatedLSTMCell": lambda **kw: rnnkit.DepthGatedLSTMCell(N_IN, H, **kw),
    "MinGRUCell": lambda **kw: rnnkit.MinGRUCell(N_IN, H, **kw),
    "MinLSTMCell": lambda **kw: rnnkit.MinLSTMCell(N_IN, H, **kw),
}
TWO_STATE_CELLS = ("LSTMCell", "DepthGatedLSTMCell")
ONE_STATE_CELLS = tuple(name for name in CELLS if name not in TWO_STATE_CELLS)
cell_names = pytest.mark.parametrize("name", list(CELLS))


def call_cell(name, cell, x, hx=None):
    """Call a one-step cell; the Depth-Gated cell also gets a valid lower cell."""
    if name != "DepthGatedLSTMCell":
        return cell(x, hx)
    lower = torch.zeros(tuple(x.shape[:-1]) + (H,)) if isinstance(x, torch.Tensor) \
        else torch.zeros(B, H)
    return cell(x, hx, lower_cell=lower)


def good_cell_state(name, cell):
    return tuple(torch.randn_like(s)
                 for s in state_tensors(call_cell(name, cell, torch.randn(B, N_IN))))


@cell_names
@pytest.mark.parametrize("shape", [(B, 1, N_IN), (1, B, 1, N_IN), ()], ids=["3-D", "4-D", "0-D"])
def test_cell_rejects_input_of_wrong_rank(name, shape):
    with pytest.raises(ValueError, match=pattern("input", "(batch, input_size)",
                                                 f"{len(shape)}-D shape {shape}")):
        call_cell(name, CELLS[name](), torch.randn(shape))


@cell_names
@pytest.mark.parametrize("shape", [(B, N_IN + 1), (N_IN + 1,), (B, N_IN - 1)])
def test_cell_rejects_wrong_feature_size(name, shape):
    with pytest.raises(ValueError, match=pattern(f"input_size={N_IN}", shape)):
        call_cell(name, CELLS[name](), torch.randn(shape))


@cell_names
@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.bool])
def test_cell_rejects_non_floating_input(name, dtype):
    with pytest.raises(TypeError, match=pattern("input", "floating", dtype)):
        call_cell(name, CELLS[name](), torch.ones(B, N_IN, dtype=dtype))


@cell_names
def test_cell_rejects_input_dtype_other_than_the_parameters(name):
    with pytest.raises(TypeError, match=pattern("input", torch.float64, torch.float32)):
        call_cell(name, CELLS[name](), torch.randn(B, N_IN, dtype=torch.float64))


@cell_names
def test_cell_rejects_non_tensor_input(name):
    with pytest.raises(TypeError, match=pattern("input", "Tensor", "list")):
        call_cell(name, CELLS[name](), torch.randn(B, N_IN).tolist())


@cell_names
def test_cell_rejects_state_of_batch_1_for_batch_3_instead_of_broadcasting(name):
    cell = CELLS[name]()
    good = good_cell_state(name, cell)
    for index, part in enumerate(good):
        bad = part[:1]
        with pytest.raises(ValueError, match=pattern("hx", STATE_NAMES[index], (B, H),
                                                     (1, H))):
            call_cell(name, cell, torch.randn(B, N_IN), as_hx(replaced(good, index, bad)))


@cell_names
@pytest.mark.parametrize("make_bad", [lambda p: torch.randn(B, H + 1), lambda p: p[None],
                                      lambda p: p[0]], ids=["features", "3-D", "1-D"])
def test_cell_rejects_state_of_wrong_shape(name, make_bad):
    cell = CELLS[name]()
    good = good_cell_state(name, cell)
    for index, part in enumerate(good):
        bad = make_bad(part)
        with pytest.raises(ValueError, match=pattern("hx", STATE_NAMES[index], (B, H),
                                                     tuple(bad.shape))):
            call_cell(name, cell, torch.randn(B, N_IN), as_hx(replaced(good, index, bad)))


@cell_names
def test_cell_rejects_state_of_wrong_dtype(name):
    cell = CELLS[name]()
    good = good_cell_state(name, cell)
    for index, part in enumerate(good):
        with pytest.raises(TypeError, match=pattern("hx", STATE_NAMES[index], torch.float64,
                                                    torch.float32)):
            call_cell(name, cell, torch.randn(B, N_IN), as_hx(replaced(good, index, part.double())))


@cell_names
def test_cell_rejects_batched_state_for_unbatched_input(name):
    cell = CELLS[name]()
    good = tuple(part[0] for part in good_cell_state(name, cell))
    for index, part in enumerate(good):
        bad = part[None]
        with pytest.raises(ValueError, match=pattern("hx", STATE_NAMES[index], (H,), (1, H))):
            call_cell(name, cell, torch.randn(N_IN), as_hx(replaced(good, index, bad)))


@pytest.mark.parametrize("name", TWO_STATE_CELLS)
def test_lstm_cell_rejects_a_bare_tensor_as_state(name):
    with pytest.raises(TypeError, match=pattern("hx", "tuple of 2 tensors", "Tensor")):
        call_cell(name, CELLS[name](), torch.randn(B, N_IN), torch.randn(B, H))


@pytest.mark.parametrize("name", TWO_STATE_CELLS)
@pytest.mark.parametrize("length", [1, 3])
def test_lstm_cell_rejects_state_tuple_of_wrong_length(name, length):
    hx = (torch.randn(B, H),) * length
    with pytest.raises(TypeError, match=pattern("hx", "tuple of 2 tensors", f"length {length}")):
        call_cell(name, CELLS[name](), torch.randn(B, N_IN), hx)


@pytest.mark.parametrize("name", ONE_STATE_CELLS)
def test_single_state_cell_rejects_a_tuple_as_state(name):
    with pytest.raises(TypeError, match=pattern("hx", (B, H), "tuple")):
        call_cell(name, CELLS[name](), torch.randn(B, N_IN), (torch.randn(B, H),))


@pytest.mark.parametrize("t,error,shown", [(-1, ValueError, ">= 0, got -1"),
                                           (1.5, TypeError, "float 1.5"),
                                           (True, TypeError, "bool True")])
def test_clockwork_cell_rejects_bad_step_index(t, error, shown):
    with pytest.raises(error, match=pattern("t", shown)):
        rnnkit.ClockworkRNNCell(N_IN, H)(torch.randn(B, N_IN), t=t)


def test_depth_gated_cell_requires_the_lower_cell():
    with pytest.raises(ValueError, match=pattern("lower_cell", "(batch, hidden_size)", "None")):
        rnnkit.DepthGatedLSTMCell(N_IN, H)(torch.randn(B, N_IN))


@pytest.mark.parametrize("lower,error,shown", [
    (torch.randn(1, H), ValueError, [(B, H), (1, H)]),
    (torch.randn(B, H + 1), ValueError, [(B, H), (B, H + 1)]),
    (torch.randn(B, H, dtype=torch.float64), TypeError, [torch.float64, torch.float32]),
], ids=["batch-1", "features", "dtype"])
def test_depth_gated_cell_rejects_a_bad_lower_cell_naming_it(lower, error, shown):
    with pytest.raises(error, match=pattern("lower_cell", *shown)) as caught:
        rnnkit.DepthGatedLSTMCell(N_IN, H)(torch.randn(B, N_IN), lower_cell=lower)
    assert not str(caught.value).startswith("hx"), "the bad argument is lower_cell, not hx"


@pytest.mark.parametrize("cls", LAYER_CLASSES)
@pytest.mark.parametrize("bad,error", [(1.0, ValueError), (-0.1, ValueError),
                                       ("x", TypeError), (True, TypeError)])
def test_layer_rejects_bad_weight_dropout(cls, bad, error):
    with pytest.raises(error, match=pattern("weight_dropout", "[0, 1)", repr(bad))):
        cls(N_IN, H, num_layers=L, weight_dropout=bad)


@pytest.mark.parametrize("cls", [rnnkit.MinGRU, rnnkit.MinLSTM])
def test_weight_dropout_needs_recurrent_weights(cls):
    with pytest.raises(ValueError, match=pattern("weight_dropout", cls.__name__,
                                                 "no recurrent weights", "got 0.2")):
        cls(N_IN, H, weight_dropout=0.2)
    layer = cls(N_IN, H)
    with pytest.raises(ValueError, match=pattern("weight_dropout", "no recurrent weights")):
        layer.weight_dropout = 0.2
    assert layer.weight_dropout == 0.0
