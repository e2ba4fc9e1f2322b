"""Token inputs: ``layer(table, state, tokens=ids)`` equals ``layer(embedding(ids), state)``.

The table holds the first layer's input projection of each token's embedding
(``layer.project_input(embedding.weight)``); the fused LSTM kernels read its rows step by step,
every other engine and family gets the gathered sequence. Held to the float64 reference loop run
on the embeddings, as in test_fused_engine.py."""

import copy

import pytest
import torch
from conftest import state_tensors
from torch import nn

import rnnkit
from rnnkit.models import LanguageModel, LanguageModelConfig

TOLERANCE = dict(rtol=1e-5, atol=1e-5)

# One of each family and of the LSTM switches the gather path has to get right.
CONFIGS = {
    "lstm": ("lstm", {}),
    "lstm-proj": ("lstm", {"proj_size": 7}),
    "peepholes": ("peephole-lstm", {}),
    "cifg": ("cifg-lstm", {}),
    "fgr": ("fgr-lstm", {}),
    "depth-gated": ("depth-gated-lstm", {}),
    "gru": ("gru", {}),
    "gru-cho": ("gru-cho", {}),
    "gru-no-bias": ("gru", {"bias": False}),
    "rnn": ("rnn", {}),
    "clockwork": ("clockwork", {"periods": (1, 2, 3)}),
    "mingru": ("mingru", {}),
    "minlstm": ("minlstm", {}),
}


pytestmark = pytest.mark.usefixtures("fused_extension")


def _state(layer, batch, dtype):
    stacked = layer.num_layers * layer.num_directions
    sizes = layer.layer_maths[0].state_sizes()
    return tuple(torch.randn(stacked, batch, size, dtype=dtype) for size in sizes)


def _given(state):
    return state[0] if len(state) == 1 else state


def _loss(output, state, scale=1.0):
    total = (output * torch.linspace(-1, 1, output.numel()).view_as(output)).sum()
    for tensor in state_tensors(state):
        total = total + (tensor * torch.linspace(1, 2, tensor.numel()).view_as(tensor)).sum()
    return total * scale


def _run(layer, embedding, ids, hx, folded, scale=1.0):
    """Outputs, final state and the gradients of layer, embedding and initial state."""
    embedding.zero_grad()
    layer.zero_grad()
    hx = tuple(s.detach().clone().requires_grad_() for s in hx)
    if folded:
        output, state = layer(layer.project_input(embedding.weight), _given(hx), tokens=ids)
    else:
        output, state = layer(embedding(ids), _given(hx))
    _loss(output, state, scale).backward()
    grads = {name: p.grad.clone() for name, p in layer.named_parameters()}
    grads["embedding"] = embedding.weight.grad.clone()
    grads.update({f"hx{k}": s.grad for k, s in enumerate(hx)})
    return output, state_tensors(state), grads


def _assert_folded_equals_exact(config, input_size=5, hidden_size=20, batch=3, steps=7,
                                vocab=9, scale=1.0, **kwargs):
    name, options = CONFIGS[config]
    # minGRU/minLSTM's kernels apply W_ih themselves: token inputs run on the scan there.
    engine = "auto" if name in ("mingru", "minlstm") else "fused"
    layer = rnnkit.build_layer(name, input_size, hidden_size, engine=engine,
                               **{**options, **kwargs})
    embedding = nn.Embedding(vocab, input_size)
    exact_layer = copy.deepcopy(layer).double()
    exact_layer.engine = "reference"
    exact_embedding = copy.deepcopy(embedding).double()
    shape = (batch, steps) if layer.batch_first else (steps, batch)
    ids = torch.randint(0, vocab, shape)
    hx = _state(layer, batch, torch.float32)
    exact = _run(exact_layer, exact_embedding, ids, tuple(s.double() for s in hx), folded=False,
                 scale=scale)
    ours = _run(layer, embedding, ids, hx, folded=True, scale=scale)
    torch.testing.assert_close(ours[0], exact[0].float(), **TOLERANCE)
    for mine, theirs in zip(ours[1], exact[1], strict=True):
        torch.testing.assert_close(mine, theirs.float(), **TOLERANCE)
    assert ours[2].keys() == exact[2].keys()
    for key in ours[2]:
        torch.testing.assert_close(ours[2][key], exact[2][key].float(), **TOLERANCE, msg=key)


@pytest.mark.parametrize("config", list(CONFIGS))
def test_token_inputs_equal_the_embedded_sequence_on_the_reference_in_float64(config):
    _assert_folded_equals_exact(config, num_layers=2)


@pytest.mark.parametrize("name", ["mingru", "minlstm"])
def test_token_inputs_on_the_fused_engine_are_refused_where_the_kernel_applies_w_ih(name):
    layer = rnnkit.build_layer(name, 5, 20, engine="fused")
    table = layer.project_input(torch.randn(9, 5))
    assert not layer.reads_token_table(table)
    with pytest.raises(ValueError, match="engine='fused'.*token inputs not for minGRU"):
        layer(table, tokens=torch.zeros(4, 2, dtype=torch.int64))


@pytest.mark.parametrize("config", ["lstm", "peepholes", "gru", "rnn"])
def test_token_inputs_with_batch_first(config):
    _assert_folded_equals_exact(config, batch_first=True)


@pytest.mark.parametrize("config", ["lstm", "fgr", "gru"])
def test_token_inputs_when_threads_split_the_gather_and_the_scatter(config):
    # 4 * 300 = 1200 table columns: several column chunks per step; batch 64 with ids repeated
    # across the batch, so that a row's gradient sums several steps and positions. The loss is
    # the batch mean, as in training, so that the gradients stay of order 1 as in the tests
    # above (summed over the batch they reach ~200, where float32 rounding alone is ~1e-5).
    _assert_folded_equals_exact(config, input_size=8, hidden_size=300, batch=64, steps=4, vocab=5,
                                scale=1 / 64)


def test_unbatched_token_inputs_equal_the_batched_call():
    layer = rnnkit.build_layer("lstm", 5, 6, engine="fused")
    table = torch.randn(9, 24)
    ids = torch.randint(0, 9, (7,))
    output, (h, c) = layer(table, tokens=ids)
    batched, (hb, cb) = layer(table, tokens=ids.unsqueeze(1))
    torch.testing.assert_close(output, batched.squeeze(1), rtol=0, atol=0)
    torch.testing.assert_close(h, hb.squeeze(1), rtol=0, atol=0)
    assert output.shape == (7, 6) and h.shape == (1, 6)


@pytest.mark.parametrize("config", ["lstm", "lstm-proj", "peepholes", "depth-gated", "gru",
                                    "rnn", "mingru"])
def test_token_inputs_gradcheck_in_float64(config):
    name, options = CONFIGS[config]
    if "proj_size" in options:
        options = {**options, "proj_size": 2}
    engine = "auto" if name == "mingru" else "fused"  # minGRU: token inputs run on the scan
    layer = rnnkit.build_layer(name, 3, 4, num_layers=2, engine=engine, dtype=torch.float64,
                               **options)
    names = [n for n, _ in layer.named_parameters()]
    params = [p.detach().clone().requires_grad_() for p in layer.parameters()]
    table = torch.randn(5, layer.weight_ih_l0.shape[0], dtype=torch.float64, requires_grad=True)
    ids = torch.tensor([[0, 4], [2, 2], [4, 1], [0, 0]])
    hx = tuple(s.requires_grad_() for s in _state(layer, 2, torch.float64))

    def run(table, *values):
        state = values[len(names):]
        out, final = torch.func.functional_call(layer, dict(zip(names, values[:len(names)])),
                                                (table, _given(state)), {"tokens": ids})
        return (out,) + state_tensors(final)

    assert torch.autograd.gradcheck(run, (table, *params, *hx), eps=1e-6, atol=1e-5)


@pytest.mark.parametrize("engine", ["fused", "reference"])
def test_token_inputs_run_on_the_engines_that_take_them(engine):
    layer = rnnkit.build_layer("lstm", 5, 6, engine=engine)
    embedding = nn.Embedding(9, 5)
    ids = torch.randint(0, 9, (7, 2))
    folded, _ = layer(layer.project_input(embedding.weight), tokens=ids)
    unfolded, _ = layer(embedding(ids))
    torch.testing.assert_close(folded, unfolded, **TOLERANCE)
    assert layer.engine_for(embedding.weight, tokens=True) == engine


def test_auto_does_not_pick_torch_kernels_for_token_inputs():
    layer = rnnkit.build_layer("lstm", 5, 6)
    table = torch.randn(9, 24)
    assert layer.engine_for(table) == "native"
    assert layer.engine_for(table, tokens=True) != "native"
    native = rnnkit.build_layer("lstm", 5, 6, engine="native")
    with pytest.raises(ValueError, match="engine='native'.*token inputs"):
        native(table, tokens=torch.zeros(3, 1, dtype=torch.int64))


@pytest.mark.parametrize("table_shape, tokens, layer_options, message", [
    ((9, 23), torch.zeros(3, 2, dtype=torch.int64), {},
     r"input: expected a table of 24 columns .* got shape \(9, 23\)"),
    ((9, 24, 1), torch.zeros(3, 2, dtype=torch.int64), {}, "input: expected"),
    ((9, 24), [[0, 1]], {}, "tokens: expected an int64 torch.Tensor, got list"),
    ((9, 24), torch.zeros(3, 2), {}, "tokens: expected an int64 tensor .* got dtype torch.float32"),
    ((9, 24), torch.zeros(3, 2, 1, dtype=torch.int64), {}, r"got .* shape \(3, 2, 1\)"),
    ((9, 24), torch.tensor([[0, 9]]), {}, r"tokens: expected ids in \[0, 9\) .* \[0, 9\]"),
    ((9, 24), torch.tensor([[-1, 2]]), {}, r"tokens: expected ids in \[0, 9\) .* \[-1, 2\]"),
    ((9, 24), torch.zeros(3, 2, dtype=torch.int64), {"bidirectional": True},
     "tokens: only for a single-direction layer"),
])
def test_bad_token_inputs_get_a_clear_error(table_shape, tokens, layer_options, message):
    layer = rnnkit.build_layer("lstm", 5, 6, engine="fused", **layer_options)
    table = torch.randn(*table_shape)
    with pytest.raises((ValueError, TypeError), match=message):
        layer(table, tokens=tokens)


def test_token_inputs_refuse_lengths():
    layer = rnnkit.build_layer("lstm", 5, 6, engine="fused")
    with pytest.raises(ValueError, match="tokens: only for a single-direction layer without "
                                         "lengths"):
        layer(torch.randn(9, 24), tokens=torch.zeros(3, 2, dtype=torch.int64), lengths=[3, 2])


def test_language_model_folds_its_embedding_where_the_layer_runs_fused():
    # The GRU runs on the fused kernels on the CPU: the model reads the table, and its logits
    # and gradients are those of the embedded sequence.
    config = LanguageModelConfig(vocab_size=11, embedding_size=6, hidden_size=8, cell="gru",
                                 num_layers=2)
    model = LanguageModel(config).eval()
    assert model.layer.engine_for(model.embedding.weight) == "fused"
    calls = []
    model.embedding.register_forward_hook(lambda *_: calls.append(1))
    ids = torch.randint(0, 11, (3, 10))
    logits = model(ids).outputs
    logits.square().sum().backward()
    folded_grads = {name: p.grad.clone() for name, p in model.named_parameters()}
    assert not calls
    model.zero_grad()
    outputs, _ = model.layer(model.embedding(ids))
    unfolded = model.head(outputs)
    unfolded.square().sum().backward()
    torch.testing.assert_close(logits, unfolded, **TOLERANCE)
    for name, p in model.named_parameters():
        torch.testing.assert_close(folded_grads[name], p.grad, **TOLERANCE, msg=name)
