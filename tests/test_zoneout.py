"""Zoneout (Krueger et al. 2017): ``zoneout_hidden`` and ``zoneout_cell`` of every layer.

In training each unit keeps its previous state with the given probability at each step; in
evaluation the state is the expectation z s_{t-1} + (1 - z) s~_t. The fused LSTM kernels are
held to the float64 reference loop (same seed, so the same masks), the evaluation form to a
loop written here over ``torch.nn.LSTMCell`` / ``GRUCell``, and the training masks to their
rate."""


import pytest
import torch
from conftest import state_tensors
from torch.autograd import gradcheck

import rnnkit
import rnnkit.engine.select
from rnnkit.catalog import build_layer
from rnnkit.engine import fused
from rnnkit.layers.regularisation import bernoulli_mask

T, B, N_IN, H = 7, 3, 4, 6
LENGTHS = [7, 4, 2]
TOLERANCE = dict(rtol=1e-10, atol=1e-10)

# LSTM-family configurations the kernels must get right with zoneout.
CONFIGS = {
    "lstm": ("lstm", {}),
    "peepholes": ("peephole-lstm", {}),
    "cifg": ("cifg-lstm", {}),
    "no-forget-gate": ("nfg-lstm", {}),
    "no-output-activation": ("noaf-lstm", {}),
    "fgr": ("fgr-lstm", {}),
    "depth-gated": ("depth-gated-lstm", {"num_layers": 2}),
    "stacked-bidirectional": ("lstm", {"num_layers": 2, "bidirectional": True}),
}
RATES = {"cell": {"zoneout_cell": 0.5}, "hidden": {"zoneout_hidden": 0.3},
         "both": {"zoneout_cell": 0.4, "zoneout_hidden": 0.2}}


def _pair(name, switches, rates):
    """The same float64 layer on the reference loop and on the fused kernels."""
    torch.manual_seed(0)
    reference = build_layer(name, N_IN, H, dtype=torch.float64, engine="reference", **switches,
                            **rates)
    kernels = build_layer(name, N_IN, H, dtype=torch.float64, engine="fused", **switches, **rates)
    kernels.load_state_dict(reference.state_dict())
    return reference, kernels


def _results(layer, x, seed, lengths=LENGTHS):
    """Outputs, final states and the gradients of a fixed loss wrt input and parameters."""
    x = x.detach().clone().requires_grad_()
    torch.manual_seed(seed)
    output, state = layer(x, lengths=lengths)
    states = state_tensors(state)
    loss = (output * torch.linspace(-1, 1, output.numel(), dtype=x.dtype).view_as(output)).sum()
    for tensor in states:
        loss = loss + tensor.pow(2).sum()
    grads = torch.autograd.grad(loss, [x, *layer.parameters()])
    return (output, *states), grads


@pytest.mark.parametrize("rates", RATES.values(), ids=RATES.keys())
@pytest.mark.parametrize("config", CONFIGS.values(), ids=CONFIGS.keys())
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_fused_kernels_match_the_reference_loop(fused_extension, config, rates, training):
    reference, kernels = _pair(*config, rates)
    reference.train(training)
    kernels.train(training)
    x = torch.randn(T, B, N_IN, dtype=torch.float64)
    expected, expected_grads = _results(reference, x, seed=1)
    got, got_grads = _results(kernels, x, seed=1)
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b, **TOLERANCE)
    for a, b in zip(got_grads, expected_grads):
        torch.testing.assert_close(a, b, **TOLERANCE)


def test_projection_takes_cell_zoneout(fused_extension):
    reference, kernels = _pair("lstm", {"proj_size": 3}, {"zoneout_cell": 0.5})
    x = torch.randn(T, B, N_IN, dtype=torch.float64)
    for a, b in zip(_results(kernels, x, seed=2)[0], _results(reference, x, seed=2)[0]):
        torch.testing.assert_close(a, b, **TOLERANCE)


@pytest.mark.parametrize("engine", ["fused", "reference"])
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_gradcheck(fused_extension, engine, training):
    torch.manual_seed(0)
    layer = rnnkit.LSTM(N_IN, H, num_layers=2, dtype=torch.float64, engine=engine, peepholes=True,
                        zoneout_cell=0.5, zoneout_hidden=0.25).train(training)
    x = torch.randn(T, B, N_IN, dtype=torch.float64, requires_grad=True)

    def run(x):
        torch.manual_seed(3)  # the same masks at every evaluation
        output, (h, c) = layer(x, lengths=LENGTHS)
        return output, h, c

    assert gradcheck(run, (x,), eps=1e-6, atol=1e-5)


def _lstm_loop(layer, x, z_hidden, z_cell):
    """The evaluation form written out over torch.nn.LSTMCell with the layer's weights."""
    cell = torch.nn.LSTMCell(N_IN, H, dtype=x.dtype)
    cell.load_state_dict({"weight_ih": layer.weight_ih_l0, "weight_hh": layer.weight_hh_l0,
                          "bias_ih": layer.bias_ih_l0, "bias_hh": layer.bias_hh_l0})
    h = c = torch.zeros(x.shape[1], H, dtype=x.dtype)
    outputs = []
    for x_t in x:
        # h~ comes from the cell the gates made, c~, not from the zoned-out c_t.
        h_new, c_new = cell(x_t, (h, c))
        h = z_hidden * h + (1 - z_hidden) * h_new
        c = z_cell * c + (1 - z_cell) * c_new
        outputs.append(h)
    return torch.stack(outputs), h, c


@pytest.mark.parametrize("engine", ["fused", "reference"])
def test_evaluation_is_the_expectation(fused_extension, engine):
    torch.manual_seed(0)
    layer = rnnkit.LSTM(N_IN, H, dtype=torch.float64, engine=engine, zoneout_cell=0.5,
                        zoneout_hidden=0.25).eval()
    x = torch.randn(T, B, N_IN, dtype=torch.float64)
    output, (h, c) = layer(x)
    expected = _lstm_loop(layer, x, 0.25, 0.5)
    for a, b in zip((output, h[0], c[0]), expected):
        torch.testing.assert_close(a, b, **TOLERANCE)


@pytest.mark.parametrize("name", ["gru", "rnn", "mingru"])
def test_other_cells_zone_out_their_hidden_state(fused_extension, name):
    torch.manual_seed(0)
    layer = build_layer(name, N_IN, H, dtype=torch.float64, zoneout_hidden=0.4).eval()
    x = torch.randn(T, B, N_IN, dtype=torch.float64)
    output, _ = layer(x)
    plain = build_layer(name, N_IN, H, dtype=torch.float64).eval()
    plain.load_state_dict(layer.state_dict())
    h = torch.zeros(B, H, dtype=torch.float64)
    expected = []
    for x_t in x:  # one step of the plain layer from h, then the expectation
        new = plain(x_t.unsqueeze(0), h.unsqueeze(0))[0][0]
        h = layer.zoneout_hidden * h + (1 - layer.zoneout_hidden) * new  # 0.4, rounded
        expected.append(h)
    torch.testing.assert_close(output, torch.stack(expected), **TOLERANCE)


@pytest.mark.parametrize("engine", ["fused", "reference"])
def test_training_keeps_each_state_with_its_probability(fused_extension, engine):
    torch.manual_seed(0)
    layer = rnnkit.LSTM(N_IN, 64, engine=engine, zoneout_cell=0.3, zoneout_hidden=0.1)
    x = torch.randn(50, 40, N_IN)
    _, _, traces = layer(x, return_traces=True)
    for name, rate in (("c", 0.3), ("h", 0.1)):
        states = traces[0][name]
        kept = (states[1:] == states[:-1]).double().mean().item()
        assert abs(kept - rate) < 0.01, (name, kept)


def test_training_masks_follow_the_seed(fused_extension):
    layer = rnnkit.LSTM(N_IN, H, zoneout_cell=0.5, zoneout_hidden=0.2)
    x = torch.randn(T, B, N_IN)
    torch.manual_seed(5)
    first = layer(x)[0]
    torch.manual_seed(5)
    again = layer(x)[0]
    other = layer(x)[0]
    torch.testing.assert_close(first, again, rtol=0, atol=0)
    assert not torch.equal(first, other)


def test_bf16_autocast_stays_close_to_float32(fused_extension):
    torch.manual_seed(0)
    layer = rnnkit.LSTM(N_IN, 32, zoneout_cell=0.5, zoneout_hidden=0.1).eval()
    x = torch.randn(T, B, N_IN)
    expected = layer(x)[0]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        output = layer(x)[0]
    torch.testing.assert_close(output.float(), expected, rtol=0, atol=0.05)


def test_engines_with_zoneout(monkeypatch):
    monkeypatch.setattr(rnnkit.engine.select, "_default", "auto")
    lstm = rnnkit.LSTM(N_IN, H, zoneout_cell=0.5)
    x = torch.randn(T, B, N_IN)
    assert lstm.engine_for(x) == ("fused" if fused.fused_runs(x) else "reference")
    with pytest.raises(ValueError, match="zoneout"):
        rnnkit.LSTM(N_IN, H, zoneout_hidden=0.1, engine="native")
    with pytest.raises(ValueError, match="zoneout"):
        build_layer("mingru", N_IN, H, zoneout_hidden=0.1, engine="scan")
    assert build_layer("mingru", N_IN, H, zoneout_hidden=0.1, engine="reference")(x)[0].shape == (
        T, B, H)
    gru = rnnkit.GRU(N_IN, H, zoneout_hidden=0.1)
    assert gru.engine_for(x) == "reference"
    with pytest.raises(ValueError, match="zoneout only in the LSTM family"):
        rnnkit.GRU(N_IN, H, zoneout_hidden=0.1, engine="fused")
    lstm.zoneout_cell = 0.0
    assert lstm.engine_for(x) == rnnkit.LSTM(N_IN, H).engine_for(x)


@pytest.mark.parametrize("bad", [-0.1, 1.0, 1.5])
@pytest.mark.parametrize("name", ["zoneout_hidden", "zoneout_cell"])
def test_rates_out_of_range_are_refused(name, bad):
    with pytest.raises(ValueError, match=rf"{name}.*\[0, 1\).*{bad}"):
        rnnkit.LSTM(N_IN, H, **{name: bad})


def test_cell_zoneout_needs_a_cell_state():
    with pytest.raises(ValueError, match="zoneout_cell: GRU has no cell state"):
        rnnkit.GRU(N_IN, H).zoneout_cell = 0.2
    layer = build_layer("rnn", N_IN, H)
    with pytest.raises(ValueError, match="zoneout_cell: RNN has no cell state"):
        layer.zoneout_cell = 0.2
    assert layer.zoneout_cell == 0.0


def test_hidden_zoneout_is_refused_with_a_projection():
    with pytest.raises(ValueError, match="zoneout_hidden: not with proj_size"):
        rnnkit.LSTM(N_IN, H, proj_size=3, zoneout_hidden=0.1)


def test_rates_are_kept_as_given():
    layer = rnnkit.LSTM(N_IN, H, zoneout_cell=0.35)
    assert layer.zoneout_cell == 0.35
    assert "zoneout_cell=0.35" in repr(layer)


@pytest.mark.parametrize("p", [0.0, 0.35, 0.5, 1.0])
def test_bernoulli_mask_has_its_probability(p):
    torch.manual_seed(0)
    mask = bernoulli_mask((400, 500), p, torch.zeros(1))
    assert mask.dtype == torch.float32 and set(mask.unique().tolist()) <= {0.0, 1.0}
    assert abs(mask.mean().item() - p) < 0.005
    torch.manual_seed(0)
    assert torch.equal(bernoulli_mask((400, 500), p, torch.zeros(1)), mask)  # seeded
