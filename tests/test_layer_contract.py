"""The layer contract every family shares: shapes, states, ragged batches, traces, engines."""

import pytest
import torch
from conftest import state_tensors

import rnnkit
import rnnkit.engine.select

ALL_CELLS = list(rnnkit.CELL_NAMES)


def _layer(name, **kwargs):
    kwargs.setdefault("num_layers", 2)
    return rnnkit.build_layer(name, 3, 4, **kwargs)


@pytest.mark.parametrize("name", ALL_CELLS)
def test_output_and_state_shapes_follow_torch(name):
    layer = _layer(name, bidirectional=True, batch_first=True)
    output, state = layer(torch.randn(5, 7, 3))
    assert output.shape == (5, 7, 8)
    for tensor in state_tensors(state)[:2]:
        assert tensor.shape == (4, 5, 4)
    unbatched_output, unbatched_state = layer(torch.randn(7, 3))
    assert unbatched_output.shape == (7, 8)
    assert state_tensors(unbatched_state)[0].shape == (4, 4)


@pytest.mark.parametrize("name", ALL_CELLS)
def test_given_state_is_used_and_can_continue_a_sequence(name):
    layer = _layer(name, engine="reference")
    x = torch.randn(8, 2, 3)
    whole, _ = layer(x)
    first, state = layer(x[:4])
    second, _ = layer(x[4:], state, start_step=4)
    torch.testing.assert_close(torch.cat([first, second]), whole)


@pytest.mark.parametrize("name", ["lstm", "gru", "mingru", "fgr-lstm"])
def test_learned_initial_state_is_a_trained_parameter(name):
    layer = _layer(name, learn_initial_state=True, bidirectional=True)
    names = [n for n, _ in layer.named_parameters() if n.startswith("initial_")]
    assert names and all(getattr(layer, n).shape[0] == 4 for n in names)
    with torch.no_grad():
        for n in names:
            getattr(layer, n).fill_(0.5)
    x = torch.randn(6, 3, 3)
    output, _ = layer(x)
    zeros = tuple(torch.zeros(4, 3, getattr(layer, n).shape[1]) for n in names)
    output_from_zeros, _ = layer(x, zeros[0] if len(zeros) == 1 else zeros)
    assert not torch.allclose(output, output_from_zeros)
    output.sum().backward()
    assert all(getattr(layer, n).grad.abs().sum() > 0 for n in names)


@pytest.mark.parametrize("name", ALL_CELLS)
def test_traces_list_each_layer_and_direction_with_the_cells_symbols(name):
    layer = _layer(name, bidirectional=True, batch_first=True)
    x = torch.randn(2, 5, 3)
    output, _, traces = layer(x, lengths=[5, 3], return_traces=True)
    assert len(traces) == 4
    for index, trace in enumerate(traces):
        expected = set(layer.layer_maths[index // 2].trace_names)
        assert set(trace) == expected
        for value in trace.values():
            assert value.shape[:2] == (2, 5)
            assert (value[1, 3:] == 0).all()
    # The top layer's h traces are the output, forward then reverse direction.
    torch.testing.assert_close(torch.cat([traces[2]["h"], traces[3]["h"]], -1), output)


def test_lstm_traces_name_the_seed_symbols():
    _, _, [trace] = rnnkit.LSTM(3, 4)(torch.randn(5, 3), return_traces=True)
    assert set(trace) == {"i", "f", "g", "o", "c", "h"}
    _, _, [trace] = rnnkit.GRU(3, 4)(torch.randn(5, 3), return_traces=True)
    assert set(trace) == {"r", "z", "n", "h"}
    _, _, [trace] = rnnkit.RNN(3, 4)(torch.randn(5, 3), return_traces=True)
    assert set(trace) == {"h"}


def test_traces_with_torch_cells_come_from_the_same_numbers_as_the_native_path():
    layer = rnnkit.LSTM(3, 4, num_layers=2)
    x = torch.randn(6, 2, 3)
    native_output, _ = layer(x)
    traced_output, _, _ = layer(x, return_traces=True)
    torch.testing.assert_close(traced_output, native_output, rtol=1e-5, atol=1e-6)


def test_engine_environment_variable_selects_the_reference_loop(monkeypatch):
    layer = rnnkit.LSTM(3, 4)
    monkeypatch.setattr(rnnkit.engine.select, "_default", "reference")
    assert layer.engine_for(None) == "reference"
    monkeypatch.setattr(rnnkit.engine.select, "_default", "auto")
    assert layer.engine_for(None) == "native"
    assert layer.engine_for(None, return_traces=True) == "reference"
    assert rnnkit.MinGRU(3, 4).engine_for(None) == "scan"
    assert rnnkit.LSTM(3, 4, coupled=True).engine_for(None) == "reference"


@pytest.mark.parametrize("name", ALL_CELLS)
def test_ragged_sequence_ends_where_its_length_says(name):
    layer = _layer(name, bidirectional=True)
    x = torch.randn(6, 2, 3)
    output, state = layer(x, lengths=torch.tensor([6, 2]))
    alone_output, alone_state = layer(x[:2, 1:2])
    torch.testing.assert_close(output[:2, 1:2], alone_output, rtol=1e-5, atol=1e-6)
    assert (output[2:, 1] == 0).all()
    for tensor, alone in zip(state_tensors(state), state_tensors(alone_state)):
        torch.testing.assert_close(tensor[:, 1:2], alone, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ALL_CELLS)
def test_float64_parameters_run_in_float64(name):
    layer = _layer(name, dtype=torch.float64)
    output, _ = layer(torch.randn(4, 2, 3, dtype=torch.float64))
    assert output.dtype == torch.float64


def test_build_layer_options_override_the_catalog_entry():
    layer = rnnkit.build_layer("peephole-lstm", 3, 4, peepholes="f")
    assert layer.layer_maths[0].peepholes == "f"
    assert set(rnnkit.describe_cells()) == set(rnnkit.CELL_NAMES)


def test_lstm_without_switches_is_torch_native_and_switched_is_not():
    assert rnnkit.LSTM(3, 4).layer_maths[0].native_mode == "LSTM"
    for switch in ({"peepholes": True}, {"coupled": True}, {"forget_gate": False},
                   {"input_gate": False}, {"output_gate": False}, {"input_activation": False},
                   {"output_activation": False}, {"full_gate_recurrence": True}):
        assert rnnkit.LSTM(3, 4, **switch).layer_maths[0].native_mode is None, switch


RECURRENT_CELLS = [name for name in ALL_CELLS if name not in ("mingru", "minlstm")]


@pytest.mark.parametrize("name", RECURRENT_CELLS)
def test_weight_dropout_is_one_mask_per_call_on_the_recurrent_weights_only(name):
    """Each engine draws the same masks in training: the fused kernels equal the reference loop,
    and the result equals the plain layer given the dropped recurrent weights; eval: no drop."""
    layer = _layer(name, engine="reference", weight_dropout=0.5, bidirectional=True)
    x = torch.randn(6, 2, 3)
    torch.manual_seed(5)
    output, _ = layer(x)
    recurrent = [n for n, _ in layer.named_parameters()
                 if n.split("_l")[0] in rnnkit.layers.regularisation.RECURRENT_WEIGHTS]
    assert recurrent
    torch.manual_seed(5)
    dropped = {n: torch.nn.functional.dropout(p, 0.5) if n in recurrent else p
               for n, p in layer.named_parameters()}
    layer.weight_dropout = 0.0
    expected, _ = torch.func.functional_call(layer, dropped, (x,))
    torch.testing.assert_close(output, expected)
    layer.weight_dropout = 0.5
    if all(rnnkit.engine.fused.fused_supports(m) for m in layer.layer_maths):
        layer.engine = "fused"
        torch.manual_seed(5)
        torch.testing.assert_close(layer(x)[0], output, rtol=1e-5, atol=1e-5)
    layer.eval()
    layer.weight_dropout = 0.0
    plain, _ = layer(x)
    layer.weight_dropout = 0.5
    torch.testing.assert_close(layer(x)[0], plain)
    assert not torch.allclose(output, plain)
