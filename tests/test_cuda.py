"""On a CUDA device every cell gives the CPU's outputs, states and gradients, and the native
engine runs torch's cuDNN kernels. Skipped where no GPU is present."""

from __future__ import annotations

import copy

import pytest
import torch
from conftest import gradients, state_tensors

import rnnkit

pytestmark = [
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device"),
    # The native engine hands torch.lstm/gru/rnn the layer's own parameters, which cuDNN copies
    # into one buffer per call; torch warns about it, harmlessly.
    pytest.mark.filterwarnings("ignore:RNN module weights are not part of single contiguous"),
]

CUDA = torch.device("cuda")
TOLERANCE = dict(rtol=1e-4, atol=1e-4)  # float32; cuDNN sums in another order than the CPU
LENGTHS = [7, 3, 5, 1]


@pytest.fixture(autouse=True)
def _full_float32_precision():
    """TF32 (10-bit mantissa) in cuBLAS/cuDNN would exceed 1e-4: compare true float32."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def _as_hx(parts):
    return parts[0] if len(parts) == 1 else tuple(parts)


def _loss(output, state):
    """A scalar touching every output and state entry with distinct weights (on their device)."""
    total = (output * torch.linspace(-1, 1, output.numel(), device=output.device)
             .view_as(output)).sum()
    for tensor in state:
        total = total + (tensor * torch.linspace(1, 2, tensor.numel(), device=tensor.device)
                         .view_as(tensor)).sum()
    return total


def _run(layer, x, hx, lengths):
    """Forward and backward with leaf copies of ``x`` and ``hx`` on the layer's device.

    Returns the output and state (on the CPU) and the gradients of the parameters, the input and
    the initial state (on the CPU).
    """
    device = next(layer.parameters()).device
    x = x.detach().clone().to(device).requires_grad_()
    hx = tuple(h.detach().clone().to(device).requires_grad_() for h in hx)
    layer.zero_grad()
    output, state = layer(x, _as_hx(hx), lengths=lengths)
    state = state_tensors(state)
    assert output.device.type == device.type
    assert all(s.device.type == device.type for s in state)
    _loss(output, state).backward()
    grads = {name: g.cpu() for name, g in gradients(layer, x, *hx).items()}
    return output.detach().cpu(), tuple(s.detach().cpu() for s in state), grads


def _assert_same(cpu_result, cuda_result):
    (out_c, state_c, grads_c), (out_g, state_g, grads_g) = cpu_result, cuda_result
    torch.testing.assert_close(out_g, out_c, **TOLERANCE)
    assert len(state_g) == len(state_c)
    for mine, theirs in zip(state_g, state_c):
        torch.testing.assert_close(mine, theirs, **TOLERANCE)
    assert grads_g.keys() == grads_c.keys()
    for name in grads_c:
        torch.testing.assert_close(grads_g[name], grads_c[name], **TOLERANCE, msg=name)


def _inputs(layer):
    """A batch-first (4, 7, 5) input and a random initial state for ``layer`` (CPU)."""
    x = torch.randn(4, 7, 5)
    _, probe = layer(x)
    return x, tuple(torch.randn_like(s) for s in state_tensors(probe))


@pytest.mark.parametrize("name", rnnkit.CELL_NAMES)
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("lengths_on", [None, "cpu", "cuda"],
                         ids=["full", "lengths-cpu", "lengths-cuda"])
def test_layer_on_cuda_matches_cpu(name, bidirectional, lengths_on):
    cpu_layer = rnnkit.build_layer(name, 5, 6, num_layers=2, bidirectional=bidirectional,
                                   batch_first=True)
    cuda_layer = copy.deepcopy(cpu_layer).to(CUDA)
    x, hx = _inputs(cpu_layer)
    lengths = None if lengths_on is None else torch.tensor(LENGTHS)
    cuda_lengths = None if lengths_on is None else lengths.to(lengths_on)
    _assert_same(_run(cpu_layer, x, hx, lengths), _run(cuda_layer, x, hx, cuda_lengths))


NATIVE = [("lstm", {}), ("lstm", {"proj_size": 3}), ("gru", {}), ("rnn", {}), ("rnn-relu", {})]
TORCH_CLASSES = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN,
                 "rnn-relu": torch.nn.RNN}


@pytest.mark.parametrize("name,options", NATIVE, ids=[n + ("-proj" if o else "")
                                                      for n, o in NATIVE])
@pytest.mark.parametrize("ragged", [False, True], ids=["full", "ragged"])
def test_native_engine_runs_on_cuda(name, options, ragged):
    """engine='native' on CUDA (cuDNN) matches the reference engine on the CPU and torch.nn."""
    reference = rnnkit.build_layer(name, 5, 6, num_layers=2, bidirectional=True,
                                   batch_first=True, engine="reference", **options)
    native = rnnkit.build_layer(name, 5, 6, num_layers=2, bidirectional=True, batch_first=True,
                                engine="native", **options).to(CUDA)
    native.load_state_dict(reference.state_dict())
    x, hx = _inputs(reference)
    lengths = torch.tensor(LENGTHS) if ragged else None
    cuda_result = _run(native, x, hx, lengths)
    _assert_same(_run(reference, x, hx, lengths), cuda_result)

    torch_options = {"nonlinearity": "relu"} if name == "rnn-relu" else options
    torch_layer = TORCH_CLASSES[name](5, 6, num_layers=2, bidirectional=True, batch_first=True,
                                      **torch_options).to(CUDA)
    torch_layer.load_state_dict(native.state_dict())
    with torch.no_grad():
        x_cuda, hx_cuda = x.to(CUDA), _as_hx(tuple(h.to(CUDA) for h in hx))
        if ragged:
            packed = torch.nn.utils.rnn.pack_padded_sequence(x_cuda, lengths, batch_first=True,
                                                             enforce_sorted=False)
            out_packed, state = torch_layer(packed, hx_cuda)
            expected, _ = torch.nn.utils.rnn.pad_packed_sequence(out_packed, batch_first=True,
                                                                 total_length=x.shape[1])
        else:
            expected, state = torch_layer(x_cuda, hx_cuda)
    torch.testing.assert_close(cuda_result[0], expected.cpu(), rtol=1e-5, atol=1e-5)
    for mine, theirs in zip(cuda_result[1], state_tensors(state)):
        torch.testing.assert_close(mine, theirs.cpu(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", rnnkit.CELL_NAMES)
def test_cpu_input_to_a_cuda_layer_is_rejected_naming_both_devices(name):
    layer = rnnkit.build_layer(name, 5, 6, num_layers=2).to(CUDA)
    with pytest.raises(ValueError, match=r"input.*cpu.*cuda"):
        layer(torch.randn(7, 4, 5))


@pytest.mark.parametrize("name", rnnkit.CELL_NAMES)
def test_cpu_state_for_a_cuda_layer_is_rejected_naming_both_devices(name):
    cpu_layer = rnnkit.build_layer(name, 5, 6, num_layers=2)
    _, hx = _inputs(cpu_layer)
    layer = cpu_layer.to(CUDA)
    # checks.check_state raises TypeError for a device mismatch, check_input_tensor ValueError;
    # either is a clear error at the call.
    with pytest.raises((TypeError, ValueError), match=r"hx.*cpu.*cuda"):
        layer(torch.randn(4, 7, 5, device=CUDA), _as_hx(hx))
