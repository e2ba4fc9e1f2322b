"""Analytic gradients of every cell and LSTM switch equal numerical ones (float64 gradcheck)."""

import pytest
import torch
from conftest import state_tensors

import rnnkit

LAYERS = {
    "rnn-tanh": lambda: rnnkit.RNN(3, 4, num_layers=2, bidirectional=True),
    "rnn-relu": lambda: rnnkit.RNN(3, 4, nonlinearity="relu"),
    "lstm": lambda: rnnkit.LSTM(3, 4, num_layers=2, bidirectional=True),
    "lstm-proj": lambda: rnnkit.LSTM(3, 4, proj_size=2),
    "lstm-peepholes": lambda: rnnkit.LSTM(3, 4, peepholes=True),
    "lstm-peephole-f": lambda: rnnkit.LSTM(3, 4, peepholes="f"),
    "lstm-coupled": lambda: rnnkit.LSTM(3, 4, coupled=True, peepholes=True),
    "lstm-no-forget": lambda: rnnkit.LSTM(3, 4, forget_gate=False),
    "lstm-no-input": lambda: rnnkit.LSTM(3, 4, input_gate=False),
    "lstm-no-output": lambda: rnnkit.LSTM(3, 4, output_gate=False, proj_size=2),
    "lstm-no-input-activation": lambda: rnnkit.LSTM(3, 4, input_activation=False),
    "lstm-no-output-activation": lambda: rnnkit.LSTM(3, 4, output_activation=False),
    "lstm-full-gate-recurrence": lambda: rnnkit.LSTM(3, 4, full_gate_recurrence=True,
                                                     peepholes=True),
    "gru": lambda: rnnkit.GRU(3, 4, num_layers=2, bidirectional=True),
    "gru-cho": lambda: rnnkit.GRU(3, 4, reset_after=False),
    "depth-gated": lambda: rnnkit.DepthGatedLSTM(3, 4, num_layers=3, bidirectional=True),
    "depth-gated-peepholes": lambda: rnnkit.DepthGatedLSTM(3, 4, peepholes=True),
    "clockwork": lambda: rnnkit.ClockworkRNN(3, 5, periods=(1, 2, 3)),
    "mingru": lambda: rnnkit.MinGRU(3, 4, num_layers=2, bidirectional=True),
    "minlstm": lambda: rnnkit.MinLSTM(3, 4, num_layers=2),
}


@pytest.mark.parametrize("engine", ["reference", "auto"])
@pytest.mark.parametrize("name", list(LAYERS))
def test_gradcheck_layer(name, engine):
    layer = LAYERS[name]().double()
    layer.engine = engine
    names = [n for n, _ in layer.named_parameters()]
    params = [p.detach().clone().requires_grad_() for _, p in layer.named_parameters()]
    x = torch.randn(5, 2, 3, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([5, 3])

    def run(x, *values):
        out, state = torch.func.functional_call(layer, dict(zip(names, values)), (x,),
                                                {"lengths": lengths})
        return (out,) + state_tensors(state)

    assert torch.autograd.gradcheck(run, (x, *params), eps=1e-6, atol=1e-5)


@pytest.mark.parametrize("name,make", [
    ("lstm", lambda: rnnkit.LSTMCell(3, 4, peepholes=True, coupled=True)),
    ("lstm-fgr", lambda: rnnkit.LSTMCell(3, 4, full_gate_recurrence=True)),
    ("gru-cho", lambda: rnnkit.GRUCell(3, 4, reset_after=False)),
    ("rnn", lambda: rnnkit.RNNCell(3, 4)),
    ("mingru", lambda: rnnkit.MinGRUCell(3, 4)),
    ("minlstm", lambda: rnnkit.MinLSTMCell(3, 4)),
])
def test_gradcheck_cell(name, make):
    cell = make().double()
    names = [n for n, _ in cell.named_parameters()]
    params = [p.detach().clone().requires_grad_() for _, p in cell.named_parameters()]
    x = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    sizes = cell.cell_math.state_sizes()
    hx = tuple(torch.rand(2, size, dtype=torch.float64, requires_grad=True) for size in sizes)

    def run(x, *values):
        state = values[len(names):]
        state = state[0] if len(state) == 1 else state
        result = torch.func.functional_call(cell, dict(zip(names, values)), (x, state))
        return state_tensors(result)

    assert torch.autograd.gradcheck(run, (x, *params, *hx), eps=1e-6, atol=1e-5)


def test_gradcheck_clockwork_and_depth_gated_cells():
    clockwork = rnnkit.ClockworkRNNCell(3, 4, periods=(1, 2)).double()
    depth = rnnkit.DepthGatedLSTMCell(3, 4).double()
    x = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    h = torch.randn(2, 4, dtype=torch.float64, requires_grad=True)
    c = torch.randn(2, 4, dtype=torch.float64, requires_grad=True)
    lower = torch.randn(2, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, h: clockwork(x, h, t=2), (x, h))
    assert torch.autograd.gradcheck(
        lambda x, h, c, lower: depth(x, (h, c), lower_cell=lower), (x, h, c, lower))
