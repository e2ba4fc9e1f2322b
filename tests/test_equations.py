"""Each cell computes exactly the equations of its docstring, read back from its traces."""

import pytest
import torch
import torch.nn.functional as F

import rnnkit
from rnnkit.cells.minimal import positive

TIGHT = dict(rtol=1e-12, atol=1e-12)


def _run(layer, steps=6, batch=3):
    layer = layer.double()
    x = torch.randn(steps, batch, layer.input_size, dtype=torch.float64)
    output, state, traces = layer(x, return_traces=True)
    return x, output, state, traces


def _previous(sequence, initial=0.0):
    """(T, B, H) -> the same sequence shifted one step later, starting from ``initial``."""
    return torch.cat([torch.full_like(sequence[:1], initial), sequence[:-1]])


def _lstm_pre(layer, x, traces):
    """Layer 0's gate pre-activations W_ih x_t + b_ih + W_hh h_{t-1} + b_hh, by block name."""
    blocks = layer.layer_maths[0].blocks
    projected = F.linear(x, layer.weight_ih_l0, layer.bias_ih_l0)
    recurrent = F.linear(_previous(traces["h"]), layer.weight_hh_l0, layer.bias_hh_l0)
    return dict(zip(blocks, (projected[..., :len(blocks) * layer.hidden_size] + recurrent)
                    .chunk(len(blocks), -1)))


def test_lstm_gates_follow_the_seed_equations():
    layer = rnnkit.LSTM(3, 4)
    x, output, (h_n, c_n), [traces] = _run(layer)
    pre = _lstm_pre(layer, x, traces)
    c_prev = _previous(traces["c"])
    torch.testing.assert_close(traces["i"], torch.sigmoid(pre["i"]), **TIGHT)
    torch.testing.assert_close(traces["f"], torch.sigmoid(pre["f"]), **TIGHT)
    torch.testing.assert_close(traces["g"], torch.tanh(pre["g"]), **TIGHT)
    torch.testing.assert_close(traces["o"], torch.sigmoid(pre["o"]), **TIGHT)
    torch.testing.assert_close(traces["c"], traces["f"] * c_prev + traces["i"] * traces["g"],
                               **TIGHT)
    torch.testing.assert_close(traces["h"], traces["o"] * torch.tanh(traces["c"]), **TIGHT)
    torch.testing.assert_close(output, traces["h"], **TIGHT)
    torch.testing.assert_close(c_n[0], traces["c"][-1], **TIGHT)


def test_peepholes_look_at_previous_cell_for_f_i_and_current_cell_for_o():
    layer = rnnkit.LSTM(3, 4, peepholes=True)
    x, _, _, [traces] = _run(layer)
    pre = _lstm_pre(layer, x, traces)
    c_prev = _previous(traces["c"])
    torch.testing.assert_close(traces["f"], torch.sigmoid(pre["f"] + layer.weight_cf_l0 * c_prev),
                               **TIGHT)
    torch.testing.assert_close(traces["i"], torch.sigmoid(pre["i"] + layer.weight_ci_l0 * c_prev),
                               **TIGHT)
    torch.testing.assert_close(traces["o"],
                               torch.sigmoid(pre["o"] + layer.weight_co_l0 * traces["c"]), **TIGHT)


def test_peephole_subset_adds_only_the_named_weights():
    layer = rnnkit.LSTM(3, 4, peepholes="f")
    names = {name for name, _ in layer.named_parameters()}
    assert "weight_cf_l0" in names and "weight_ci_l0" not in names and "weight_co_l0" not in names
    x, _, _, [traces] = _run(layer)
    pre = _lstm_pre(layer, x, traces)
    torch.testing.assert_close(traces["o"], torch.sigmoid(pre["o"]), **TIGHT)


def test_coupled_input_gate_is_one_minus_forget_gate():
    layer = rnnkit.LSTM(3, 4, coupled=True)
    assert layer.weight_ih_l0.shape == (3 * 4, 3)  # blocks f, g, o
    _, _, _, [traces] = _run(layer)
    torch.testing.assert_close(traces["i"], 1 - traces["f"], **TIGHT)
    torch.testing.assert_close(traces["c"], traces["f"] * _previous(traces["c"])
                               + (1 - traces["f"]) * traces["g"], **TIGHT)


def test_no_forget_gate_accumulates_the_cell_like_the_1997_lstm():
    layer = rnnkit.LSTM(3, 4, forget_gate=False)
    _, _, _, [traces] = _run(layer)
    assert "f" not in traces
    torch.testing.assert_close(traces["c"], _previous(traces["c"]) + traces["i"] * traces["g"],
                               **TIGHT)


def test_no_input_gate_adds_the_whole_candidate():
    _, _, _, [traces] = _run(rnnkit.LSTM(3, 4, input_gate=False))
    assert "i" not in traces
    torch.testing.assert_close(traces["c"], traces["f"] * _previous(traces["c"]) + traces["g"],
                               **TIGHT)


def test_no_output_gate_shows_the_whole_cell():
    _, _, _, [traces] = _run(rnnkit.LSTM(3, 4, output_gate=False))
    assert "o" not in traces
    torch.testing.assert_close(traces["h"], torch.tanh(traces["c"]), **TIGHT)


def test_no_input_activation_leaves_candidate_linear():
    layer = rnnkit.LSTM(3, 4, input_activation=False)
    x, _, _, [traces] = _run(layer)
    torch.testing.assert_close(traces["g"], _lstm_pre(layer, x, traces)["g"], **TIGHT)


def test_no_output_activation_outputs_gated_cell():
    _, _, _, [traces] = _run(rnnkit.LSTM(3, 4, output_activation=False))
    torch.testing.assert_close(traces["h"], traces["o"] * traces["c"], **TIGHT)


def test_projection_maps_the_gated_cell_through_weight_hr():
    layer = rnnkit.LSTM(3, 4, proj_size=2)
    _, output, (h_n, _), [traces] = _run(layer)
    expected = F.linear(traces["o"] * torch.tanh(traces["c"]), layer.weight_hr_l0)
    torch.testing.assert_close(traces["h"], expected, **TIGHT)
    assert output.shape[-1] == 2 and h_n.shape[-1] == 2


def test_full_gate_recurrence_feeds_previous_gate_activations():
    layer = rnnkit.LSTM(3, 4, full_gate_recurrence=True)
    x, _, (h_n, c_n, a_n), [traces] = _run(layer)
    gates = torch.cat([traces["i"], traces["f"], traces["o"]], dim=-1)
    torch.testing.assert_close(a_n[0], gates[-1], **TIGHT)
    from_gates = F.linear(_previous(gates), layer.weight_gr_l0).chunk(3, -1)
    pre = _lstm_pre(layer, x, traces)
    torch.testing.assert_close(traces["i"], torch.sigmoid(pre["i"] + from_gates[0]), **TIGHT)
    torch.testing.assert_close(traces["f"], torch.sigmoid(pre["f"] + from_gates[1]), **TIGHT)
    torch.testing.assert_close(traces["o"], torch.sigmoid(pre["o"] + from_gates[2]), **TIGHT)


@pytest.mark.parametrize("reset_after", [True, False])
def test_gru_follows_its_equations(reset_after):
    layer = rnnkit.GRU(3, 4, reset_after=reset_after)
    x, output, _, [traces] = _run(layer)
    h_prev = _previous(traces["h"])
    x_r, x_z, x_n = F.linear(x, layer.weight_ih_l0, layer.bias_ih_l0).chunk(3, -1)
    w_r, w_z, w_n = layer.weight_hh_l0.chunk(3)
    b_r, b_z, b_n = layer.bias_hh_l0.chunk(3)
    r = torch.sigmoid(x_r + F.linear(h_prev, w_r, b_r))
    z = torch.sigmoid(x_z + F.linear(h_prev, w_z, b_z))
    if reset_after:
        n = torch.tanh(x_n + r * F.linear(h_prev, w_n, b_n))
    else:
        n = torch.tanh(x_n + F.linear(r * h_prev, w_n, b_n))
    torch.testing.assert_close(traces["r"], r, **TIGHT)
    torch.testing.assert_close(traces["z"], z, **TIGHT)
    torch.testing.assert_close(traces["n"], n, **TIGHT)
    torch.testing.assert_close(output, (1 - z) * n + z * h_prev, **TIGHT)


def test_gru_forms_differ_when_reset_matters():
    after = rnnkit.GRU(3, 4).double()
    before = rnnkit.GRU(3, 4, reset_after=False).double()
    before.load_state_dict(after.state_dict())
    x = torch.randn(5, 2, 3, dtype=torch.float64)
    assert not torch.allclose(after(x)[0], before(x)[0])


def test_elman_rnn_is_tanh_of_input_and_previous_state():
    layer = rnnkit.RNN(3, 4)
    x, output, _, [traces] = _run(layer)
    expected = torch.tanh(F.linear(x, layer.weight_ih_l0, layer.bias_ih_l0)
                          + F.linear(_previous(output), layer.weight_hh_l0, layer.bias_hh_l0))
    torch.testing.assert_close(output, expected, **TIGHT)


def test_depth_gate_links_cell_to_the_cell_below():
    layer = rnnkit.DepthGatedLSTM(3, 4, num_layers=2)
    x, _, _, [below, above] = _run(layer)
    assert "d" not in below and "d" in above
    c_prev = _previous(above["c"])
    x_upper = below["h"]
    depth_pre = F.linear(x_upper, layer.weight_ih_l1, layer.bias_ih_l1)[..., 16:]
    expected_d = torch.sigmoid(depth_pre + layer.weight_cd_l1 * c_prev
                               + layer.weight_ld_l1 * below["c"])
    torch.testing.assert_close(above["d"], expected_d, **TIGHT)
    torch.testing.assert_close(above["c"], above["d"] * below["c"] + above["f"] * c_prev
                               + above["i"] * above["g"], **TIGHT)


def test_depth_gated_bottom_layer_is_a_plain_lstm():
    layer = rnnkit.DepthGatedLSTM(3, 4, num_layers=2)
    plain = rnnkit.LSTM(3, 4)
    plain.load_state_dict({k: v for k, v in layer.state_dict().items() if k.endswith("_l0")})
    x = torch.randn(5, 2, 3)
    _, _, [below, _] = layer(x, return_traces=True)
    torch.testing.assert_close(plain(x)[0], below["h"])


def test_clockwork_modules_update_only_when_their_period_divides_t():
    layer = rnnkit.ClockworkRNN(3, 6, periods=(1, 2, 3))
    _, output, _, _ = _run(layer, steps=7)
    previous = _previous(output)
    for module, (start, period) in enumerate(zip((0, 2, 4), (1, 2, 3))):
        units = slice(start, start + 2)
        for t in range(7):
            changed = not torch.equal(output[t, :, units], previous[t, :, units])
            assert changed == (t % period == 0), (module, t)


def test_clockwork_connections_run_from_slower_to_faster_modules_only():
    layer = rnnkit.ClockworkRNN(3, 6, periods=(1, 2, 4))
    mask = (layer.weight_hh_l0 != 0)
    fast, middle, slow = slice(0, 2), slice(2, 4), slice(4, 6)
    assert not mask[slow, fast].any() and not mask[slow, middle].any()
    assert not mask[middle, fast].any()
    assert mask[fast, slow].all() and mask[fast, middle].all() and mask[middle, slow].all()
    x = torch.randn(8, 2, 3)
    layer(x)[0].sum().backward()
    assert (layer.weight_hh_l0.grad[~mask] == 0).all()


def test_clockwork_with_one_period_one_module_is_the_elman_rnn():
    clockwork = rnnkit.ClockworkRNN(3, 4, periods=(1,))
    elman = rnnkit.RNN(3, 4)
    elman.load_state_dict(clockwork.state_dict())
    x = torch.randn(6, 2, 3)
    torch.testing.assert_close(clockwork(x)[0], elman(x)[0])


@pytest.mark.parametrize("make", [rnnkit.MinGRU, rnnkit.MinLSTM])
def test_minimal_cells_follow_their_equations(make):
    layer = make(3, 4, engine="reference")
    x, output, _, [traces] = _run(layer)
    h_prev = _previous(output)
    projected = F.linear(x, layer.weight_ih_l0, layer.bias_ih_l0)
    if make is rnnkit.MinGRU:
        pre_z, pre_h = projected.chunk(2, -1)
        z = torch.sigmoid(pre_z)
        expected = (1 - z) * h_prev + z * positive(pre_h)
        torch.testing.assert_close(traces["z"], z, **TIGHT)
    else:
        pre_f, pre_i, pre_h = projected.chunk(3, -1)
        f, i = torch.sigmoid(pre_f), torch.sigmoid(pre_i)
        expected = f / (f + i) * h_prev + i / (f + i) * positive(pre_h)
        torch.testing.assert_close(traces["f"] + traces["i"], torch.ones_like(f), **TIGHT)
    torch.testing.assert_close(output, expected, **TIGHT)


@pytest.mark.parametrize("make", [rnnkit.MinGRU, rnnkit.MinLSTM])
def test_parallel_scan_equals_step_by_step_on_long_sequences(make):
    scan = make(4, 8, num_layers=2, bidirectional=True, engine="scan")
    step = make(4, 8, num_layers=2, bidirectional=True, engine="reference")
    step.load_state_dict(scan.state_dict())
    x = torch.randn(700, 2, 4)
    hx = torch.randn(4, 2, 8)
    lengths = torch.tensor([700, 333])
    out_scan, h_scan, traces_scan = scan(x, hx, lengths=lengths, return_traces=True)
    out_step, h_step, traces_step = step(x, hx, lengths=lengths, return_traces=True)
    torch.testing.assert_close(out_scan, out_step, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(h_scan, h_step, rtol=1e-4, atol=1e-5)
    for mine, theirs in zip(traces_scan, traces_step):
        assert mine.keys() == theirs.keys()
        for name in mine:
            torch.testing.assert_close(mine[name], theirs[name], rtol=1e-4, atol=1e-5)


def test_minimal_cell_generates_step_by_step_like_the_layer():
    layer = rnnkit.MinGRU(3, 4)
    cell = rnnkit.MinGRUCell(3, 4)
    cell.load_state_dict({k.removesuffix("_l0"): v for k, v in layer.state_dict().items()})
    x = torch.randn(9, 2, 3)
    h = None
    for t in range(9):
        h = cell(x[t], h)
    torch.testing.assert_close(h, layer(x)[1][0], rtol=1e-5, atol=1e-6)
