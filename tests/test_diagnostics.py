"""Gradient flow through time and gate traces measure what they claim to."""

import math

import pytest
import torch

import rnnkit
from rnnkit.diagnostics import gate_saturation, gradient_flow, plot_curves, plot_gate_traces


def _last_step_loss(layer, x):
    return lambda: layer(x)[0][:, -1].pow(2).sum()


@pytest.mark.parametrize("name", ["rnn", "lstm", "gru", "cifg-lstm", "mingru"])
def test_loss_gradient_equals_gradient_of_a_run_restarted_at_step_k(name):
    layer = rnnkit.build_layer(name, 2, 5, batch_first=True).double()
    x = torch.randn(3, 9, 2, dtype=torch.float64)
    flow = gradient_flow(layer, _last_step_loss(layer, x), jacobian=False)
    for k in (0, 4, 7):
        # State after step k, as the start of a run over the remaining steps.
        _, state = layer(x[:, : k + 1])
        tensors = (state,) if isinstance(state, torch.Tensor) else state
        tensors = tuple(t.detach().requires_grad_() for t in tensors)
        hx = tensors[0] if len(tensors) == 1 else tensors
        loss = layer(x[:, k + 1:], hx)[0][:, -1].pow(2).sum()
        (grad_h,) = torch.autograd.grad(loss, tensors[0])
        expected = grad_h[0].norm(dim=-1).mean()
        torch.testing.assert_close(flow.loss_gradient[k], expected)


def test_state_jacobian_of_the_last_step_is_the_identity():
    layer = rnnkit.GRU(2, 6, batch_first=True)
    flow = gradient_flow(layer, _last_step_loss(layer, torch.randn(2, 5, 2)))
    assert flow.state_jacobian[-1].item() == pytest.approx(math.sqrt(6))


def test_contractive_tanh_rnn_gradient_vanishes_geometrically():
    layer = rnnkit.RNN(2, 8, batch_first=True).double()
    with torch.no_grad():
        weight = torch.randn(8, 8, dtype=torch.float64)
        layer.weight_hh_l0.copy_(0.5 * weight / torch.linalg.matrix_norm(weight, ord=2))
    flow = gradient_flow(layer, _last_step_loss(layer, torch.randn(4, 20, 2,
                                                                  dtype=torch.float64)))
    for k in range(20):
        bound = 0.5 ** (19 - k) * math.sqrt(8)
        assert flow.state_jacobian[k] <= bound * (1 + 1e-9)
    assert flow.state_jacobian[0] < 1e-4


def test_multilayer_and_depth_gated_layers_report_their_top_layer():
    layer = rnnkit.DepthGatedLSTM(2, 4, num_layers=2, batch_first=True)
    x = torch.randn(2, 6, 2)
    expected, _ = layer(x)
    flow = gradient_flow(layer, _last_step_loss(layer, x))
    assert flow.loss_gradient.shape == (6,) and flow.state_jacobian.shape == (6,)
    torch.testing.assert_close(layer(x)[0], expected)  # the layer is restored afterwards


def test_gradient_flow_rejects_a_bidirectional_layer():
    layer = rnnkit.LSTM(2, 4, bidirectional=True)
    with pytest.raises(ValueError, match="unidirectional.*bidirectional=True"):
        gradient_flow(layer, lambda: layer(torch.randn(3, 1, 2))[0].sum())


def test_gate_saturation_counts_activations_outside_0_1_and_0_9():
    traces = {"f": torch.tensor([0.05, 0.5, 0.95, 0.99]), "c": torch.tensor([5.0]),
              "h": torch.tensor([0.0])}
    stats = gate_saturation(traces)
    assert set(stats) == {"f"}
    assert stats["f"]["left_saturated"] == pytest.approx(0.25)
    assert stats["f"]["right_saturated"] == pytest.approx(0.5)


def test_gate_trace_heatmap_is_written_with_one_label_per_step(tmp_path):
    _, _, [traces] = rnnkit.LSTM(3, 4)(torch.randn(5, 3), return_traces=True)
    path = plot_gate_traces(traces, list("hello"), tmp_path / "gates.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="expected 5 labels.*got 2"):
        plot_gate_traces(traces, ["a", "b"], tmp_path / "bad.png")


def test_curves_plot_is_a_png(tmp_path):
    path = plot_curves({"rnn": [1.0, 0.1, 0.01]}, tmp_path / "flow.png", title="t",
                       xlabel="k", ylabel="norm", log_y=True)
    assert path.read_bytes()[:4] == b"\x89PNG"
