"""rnnkit.RNN/LSTM/GRU are drop-ins for torch.nn: same state_dict, outputs and gradients."""

import itertools

import pytest
import torch
from conftest import gradients, state_tensors
from torch.nn.utils.rnn import pack_padded_sequence

import rnnkit

TOLERANCE = dict(rtol=1e-5, atol=1e-5)

CONFIGS = [
    # (torch class, rnnkit class, extra constructor kwargs)
    (torch.nn.LSTM, rnnkit.LSTM, {}),
    (torch.nn.LSTM, rnnkit.LSTM, {"proj_size": 3}),
    (torch.nn.GRU, rnnkit.GRU, {}),
    (torch.nn.RNN, rnnkit.RNN, {"nonlinearity": "tanh"}),
    (torch.nn.RNN, rnnkit.RNN, {"nonlinearity": "relu"}),
]


def _pair(torch_class, rnnkit_class, kwargs, engine, **common):
    reference = torch_class(5, 6, **common, **kwargs)
    ours = rnnkit_class(5, 6, **common, **kwargs, engine=engine)
    ours.load_state_dict(reference.state_dict())
    return reference, ours


def _loss(output, state):
    """A scalar touching every output and state entry with distinct weights."""
    total = (output * torch.linspace(-1, 1, output.numel()).view_as(output)).sum()
    for tensor in state_tensors(state):
        total = total + (tensor * torch.linspace(1, 2, tensor.numel()).view_as(tensor)).sum()
    return total


def _assert_close_all(a: dict, b: dict):
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], **TOLERANCE, msg=name)


@pytest.mark.parametrize("engine", ["reference", "native", "auto"])
@pytest.mark.parametrize("torch_class,rnnkit_class,kwargs", CONFIGS)
@pytest.mark.parametrize("num_layers,bidirectional", [(1, False), (2, True), (3, False)])
@pytest.mark.parametrize("ragged", [False, True])
def test_outputs_and_gradients_match_torch(torch_class, rnnkit_class, kwargs, engine,
                                           num_layers, bidirectional, ragged):
    reference, ours = _pair(torch_class, rnnkit_class, kwargs, engine, num_layers=num_layers,
                            bidirectional=bidirectional, batch_first=True)
    lengths = torch.tensor([7, 3, 5, 1]) if ragged else None
    x_ref = torch.randn(4, 7, 5, requires_grad=True)
    x_ours = x_ref.detach().clone().requires_grad_()
    directions = 2 if bidirectional else 1
    h_size = kwargs.get("proj_size") or 6
    hx = torch.randn(num_layers * directions, 4, h_size)
    hx_ref = (hx, torch.randn(num_layers * directions, 4, 6)) \
        if torch_class is torch.nn.LSTM else hx

    if ragged:
        packed = pack_padded_sequence(x_ref, lengths, batch_first=True, enforce_sorted=False)
        out_packed, state_ref = reference(packed, hx_ref)
        out_ref, _ = torch.nn.utils.rnn.pad_packed_sequence(out_packed, batch_first=True,
                                                            total_length=7)
    else:
        out_ref, state_ref = reference(x_ref, hx_ref)
    out_ours, state_ours = ours(x_ours, hx_ref, lengths=lengths)

    torch.testing.assert_close(out_ours, out_ref, **TOLERANCE)
    for mine, theirs in zip(state_tensors(state_ours), state_tensors(state_ref)):
        torch.testing.assert_close(mine, theirs, **TOLERANCE)
    _loss(out_ref, state_ref).backward()
    _loss(out_ours, state_ours).backward()
    _assert_close_all(gradients(ours, x_ours), gradients(reference, x_ref))


@pytest.mark.parametrize("engine", ["reference", "native"])
@pytest.mark.parametrize("torch_class,rnnkit_class,kwargs", CONFIGS)
def test_packed_sequence_in_gives_packed_sequence_out(torch_class, rnnkit_class, kwargs, engine):
    reference, ours = _pair(torch_class, rnnkit_class, kwargs, engine, bidirectional=True)
    x = torch.randn(6, 3, 5)
    packed = pack_padded_sequence(x, torch.tensor([2, 6, 4]), enforce_sorted=False)
    out_ref, state_ref = reference(packed)
    out_ours, state_ours = ours(packed)
    assert isinstance(out_ours, torch.nn.utils.rnn.PackedSequence)
    torch.testing.assert_close(out_ours.data, out_ref.data, **TOLERANCE)
    torch.testing.assert_close(out_ours.batch_sizes, out_ref.batch_sizes)
    torch.testing.assert_close(out_ours.unsorted_indices, out_ref.unsorted_indices)
    for mine, theirs in zip(state_tensors(state_ours), state_tensors(state_ref)):
        torch.testing.assert_close(mine, theirs, **TOLERANCE)


@pytest.mark.parametrize("engine", ["reference", "native"])
@pytest.mark.parametrize("torch_class,rnnkit_class,kwargs", CONFIGS)
@pytest.mark.parametrize("batch_first", [False, True])
def test_unbatched_and_layout_match_torch(torch_class, rnnkit_class, kwargs, engine, batch_first):
    reference, ours = _pair(torch_class, rnnkit_class, kwargs, engine, num_layers=2,
                            batch_first=batch_first)
    unbatched = torch.randn(4, 5)
    for x in (unbatched, torch.randn(3, 4, 5)):
        out_ref, state_ref = reference(x)
        out_ours, state_ours = ours(x)
        assert out_ours.shape == out_ref.shape
        torch.testing.assert_close(out_ours, out_ref, **TOLERANCE)
        for mine, theirs in zip(state_tensors(state_ours), state_tensors(state_ref)):
            assert mine.shape == theirs.shape
            torch.testing.assert_close(mine, theirs, **TOLERANCE)


@pytest.mark.parametrize("torch_class,rnnkit_class,kwargs", CONFIGS)
def test_state_dict_round_trips_both_ways(torch_class, rnnkit_class, kwargs):
    reference = torch_class(5, 6, num_layers=2, bidirectional=True, **kwargs)
    ours = rnnkit_class(5, 6, num_layers=2, bidirectional=True, **kwargs)
    assert list(ours.state_dict()) == list(reference.state_dict())
    for name, tensor in ours.state_dict().items():
        assert tensor.shape == reference.state_dict()[name].shape, name
    back = torch_class(5, 6, num_layers=2, bidirectional=True, **kwargs)
    back.load_state_dict(ours.state_dict())
    for name, tensor in ours.state_dict().items():
        assert torch.equal(back.state_dict()[name], tensor)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_float64_layers_match_torch(dtype):
    reference = torch.nn.LSTM(5, 6, num_layers=2, dtype=dtype)
    ours = rnnkit.LSTM(5, 6, num_layers=2, dtype=dtype, engine="reference")
    ours.load_state_dict(reference.state_dict())
    x = torch.randn(4, 2, 5, dtype=dtype)
    torch.testing.assert_close(ours(x)[0], reference(x)[0], **TOLERANCE)


@pytest.mark.parametrize("torch_class,rnnkit_class,kwargs", [
    (torch.nn.LSTMCell, rnnkit.LSTMCell, {}),
    (torch.nn.GRUCell, rnnkit.GRUCell, {}),
    (torch.nn.RNNCell, rnnkit.RNNCell, {"nonlinearity": "tanh"}),
    (torch.nn.RNNCell, rnnkit.RNNCell, {"nonlinearity": "relu"}),
])
@pytest.mark.parametrize("batched,with_state", list(itertools.product([True, False], repeat=2)))
def test_cells_match_torch_cells(torch_class, rnnkit_class, kwargs, batched, with_state):
    reference = torch_class(5, 6, **kwargs)
    ours = rnnkit_class(5, 6, **kwargs)
    assert list(ours.state_dict()) == list(reference.state_dict())
    ours.load_state_dict(reference.state_dict())
    x = torch.randn(3, 5) if batched else torch.randn(5)
    shape = (3, 6) if batched else (6,)
    hx = None
    if with_state:
        hx = (torch.randn(shape), torch.randn(shape)) if torch_class is torch.nn.LSTMCell \
            else torch.randn(shape)
    for mine, theirs in zip(state_tensors(ours(x, hx)), state_tensors(reference(x, hx))):
        torch.testing.assert_close(mine, theirs, **TOLERANCE)


def test_dropout_between_layers_matches_torch_in_training():
    reference = torch.nn.LSTM(5, 6, num_layers=3, dropout=0.5)
    ours = rnnkit.LSTM(5, 6, num_layers=3, dropout=0.5, engine="native")
    ours.load_state_dict(reference.state_dict())
    x = torch.randn(4, 2, 5)
    torch.manual_seed(1)
    expected = reference(x)[0]
    torch.manual_seed(1)
    torch.testing.assert_close(ours(x)[0], expected, **TOLERANCE)
    ours.eval()
    reference.eval()
    torch.testing.assert_close(ours(x)[0], reference(x)[0], **TOLERANCE)


def test_reference_dropout_zeroes_between_layers_only_in_training():
    layer = rnnkit.GRU(5, 6, num_layers=2, dropout=0.999, engine="reference")
    x = torch.randn(4, 2, 5)
    without = rnnkit.GRU(5, 6, num_layers=2, engine="reference")
    without.load_state_dict(layer.state_dict())
    # The second layer's input is (almost surely) all zeros: its output no longer depends on x.
    out_a, _ = layer(x)
    out_b, _ = layer(torch.randn(4, 2, 5))
    torch.testing.assert_close(out_a, out_b)
    layer.eval()
    torch.testing.assert_close(layer(x)[0], without(x)[0])


@pytest.mark.parametrize("torch_class,rnnkit_class,kwargs", CONFIGS[:1] + CONFIGS[2:4])
@pytest.mark.parametrize("engine", ["auto", "reference"])
def test_weight_dropout_is_torch_with_one_mask_on_the_recurrent_weights(
        torch_class, rnnkit_class, kwargs, engine):
    """In training, outputs and gradients are torch's with ``weight_hh`` times one DropConnect
    mask for the whole call (drawn like ``F.dropout`` of it); in eval mode, torch's own."""
    p = 0.4
    reference, ours = _pair(torch_class, rnnkit_class, kwargs, engine, num_layers=2)
    ours.weight_dropout = p
    x = torch.randn(7, 3, 5)
    torch.manual_seed(3)
    output, state = ours(x)
    torch.manual_seed(3)
    masks = {name: torch.nn.functional.dropout(torch.ones_like(weight), p)
             for name, weight in reference.named_parameters() if name.startswith("weight_hh")}
    assert all(0 < float((mask == 0).float().mean()) < 1 for mask in masks.values())
    dropped = {name: weight * masks[name] if name in masks else weight
               for name, weight in reference.named_parameters()}
    expected, expected_state = torch.func.functional_call(reference, dropped, (x,))
    torch.testing.assert_close(output, expected, **TOLERANCE)
    for mine, theirs in zip(state_tensors(state), state_tensors(expected_state)):
        torch.testing.assert_close(mine, theirs, **TOLERANCE)
    _loss(output, state).backward()
    _loss(expected, expected_state).backward()
    for name, weight in reference.named_parameters():
        torch.testing.assert_close(getattr(ours, name).grad, weight.grad, **TOLERANCE)
    ours.eval()
    reference.eval()
    torch.testing.assert_close(ours(x)[0], reference(x)[0], **TOLERANCE)
