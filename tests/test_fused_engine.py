"""The fused engine equals the reference loop: outputs, states, traces and every gradient.

The reference loop runs in float64, so what the float32 kernels are held to is the exact result
(to far below float32 rounding), not another float32 computation: two float32 computations that
sum in different orders (rnnkit's own matrix products against MKL's, say) can each be within
rounding of the exact result and still differ from each other by more than that."""

import copy
import os
import subprocess
import sys
import warnings

import pytest
import torch
from conftest import state_tensors

import rnnkit
import rnnkit.engine.select
from rnnkit.cells.gru import GRUMath
from rnnkit.engine import fused

# Each supported cell and LSTM switch: (catalog name, extra layer arguments).
CONFIGS = {
    "lstm": ("lstm", {}),
    "lstm-proj": ("lstm", {"proj_size": 7}),
    "peepholes": ("peephole-lstm", {}),
    "peephole-f": ("lstm", {"peepholes": "f"}),
    "peepholes-io": ("lstm", {"peepholes": "io"}),
    "cifg": ("cifg-lstm", {}),
    "cifg-peepholes": ("cifg-lstm", {"peepholes": True}),
    "nfg": ("nfg-lstm", {}),
    "nig": ("nig-lstm", {"peepholes": "o"}),
    "nog": ("nog-lstm", {"proj_size": 7}),
    "niaf": ("niaf-lstm", {}),
    "noaf": ("noaf-lstm", {}),
    "fgr": ("fgr-lstm", {}),
    "fgr-cifg-peepholes": ("fgr-lstm", {"coupled": True, "peepholes": True}),
    "fgr-nog": ("fgr-lstm", {"output_gate": False}),
    "gru": ("gru", {}),
    "gru-no-bias": ("gru", {"bias": False}),
    "gru-cho": ("gru-cho", {}),
    "rnn": ("rnn", {}),
    "rnn-relu": ("rnn-relu", {}),
    "clockwork": ("clockwork", {"periods": (1, 2, 3)}),
    "depth-gated": ("depth-gated-lstm", {}),
    "depth-gated-peepholes": ("depth-gated-lstm", {"peepholes": True}),
    "mingru": ("mingru", {}),
    "minlstm": ("minlstm", {}),
}

# Float32 against the exact result: equality to rounding; the absolute part only matters for
# entries near zero.
TOLERANCE = dict(rtol=1e-5, atol=1e-5)


pytestmark = pytest.mark.usefixtures("fused_extension")


def _pair(config, input_size=5, hidden_size=20, **kwargs):
    """The same layer twice, with equal parameters: reference engine, then fused engine."""
    name, options = CONFIGS[config]
    kwargs = {**options, **kwargs}
    reference = rnnkit.build_layer(name, input_size, hidden_size, engine="reference", **kwargs)
    ours = rnnkit.build_layer(name, input_size, hidden_size, engine="fused", **kwargs)
    ours.load_state_dict(reference.state_dict())
    return reference, ours


def _random_state(layer, batch, dtype=torch.float32):
    stacked = layer.num_layers * layer.num_directions
    sizes = layer.layer_maths[0].state_sizes()
    state = tuple(torch.randn(stacked, batch, size, dtype=dtype) for size in sizes)
    return state[0] if len(state) == 1 else state


def _loss(output, state, traces=()):
    """A scalar touching every output, state and trace entry with distinct weights."""
    total = (output * torch.linspace(-1, 1, output.numel()).view_as(output)).sum()
    for tensor in state_tensors(state) + tuple(traces):
        total = total + (tensor * torch.linspace(1, 2, tensor.numel()).view_as(tensor)).sum()
    return total


def _run_both(reference, ours, x, hx, **call):
    """Outputs, states, traces and gradients of both layers on copies of the same inputs; the
    reference runs in float64, so its results are exact to far below float32 rounding."""
    results = []
    exact = copy.deepcopy(reference).double()
    for layer, dtype in ((exact, torch.float64), (ours, x.dtype)):
        x_copy = x.detach().to(dtype).requires_grad_()
        hx_copy = tuple(s.detach().to(dtype).requires_grad_() for s in state_tensors(hx))
        given = hx_copy[0] if len(hx_copy) == 1 else hx_copy
        output, state, *traces = layer(x_copy, given, **call)
        flat_traces = [v for trace in (traces[0] if traces else []) for v in trace.values()]
        _loss(output, state, flat_traces).backward()
        grads = {name: p.grad for name, p in layer.named_parameters()}
        grads.update(input=x_copy.grad, **{f"hx{k}": s.grad for k, s in enumerate(hx_copy)})
        results.append((output, state_tensors(state), traces, grads))
    return _rounded(results[0], x.dtype), results[1]


def _rounded(result, dtype):
    """The tensors of a _run_both result converted to `dtype`."""
    output, state, traces, grads = result
    traces = [[{k: v.to(dtype) for k, v in step.items()} for step in trace] for trace in traces]
    return (output.to(dtype), tuple(s.to(dtype) for s in state), traces,
            {k: None if v is None else v.to(dtype) for k, v in grads.items()})


def _assert_same(reference, ours):
    (ref_out, ref_state, ref_traces, ref_grads), (out, state, traces, grads) = reference, ours
    torch.testing.assert_close(out, ref_out, **TOLERANCE)
    for mine, theirs in zip(state, ref_state, strict=True):
        torch.testing.assert_close(mine, theirs, **TOLERANCE)
    for mine, theirs in zip(traces[0] if traces else [], ref_traces[0] if ref_traces else [],
                            strict=True):
        assert mine.keys() == theirs.keys()
        for name in mine:
            torch.testing.assert_close(mine[name], theirs[name], **TOLERANCE, msg=name)
    assert grads.keys() == ref_grads.keys()
    for name in grads:
        torch.testing.assert_close(grads[name], ref_grads[name], **TOLERANCE, msg=name)


@pytest.mark.parametrize("config", list(CONFIGS))
def test_fused_equals_reference_with_lengths_both_directions_and_two_layers(config):
    layers = 3 if config.startswith("depth-gated") else 2
    reference, ours = _pair(config, num_layers=layers, bidirectional=True, batch_first=True)
    x = torch.randn(4, 9, 5)
    hx = _random_state(reference, batch=4)
    results = _run_both(reference, ours, x, hx, lengths=torch.tensor([9, 3, 6, 1]))
    _assert_same(*results)


@pytest.mark.parametrize("config", list(CONFIGS))
def test_fused_traces_and_their_gradients_equal_the_reference(config):
    reference, ours = _pair(config, num_layers=2)
    x = torch.randn(6, 3, 5)
    hx = _random_state(reference, batch=3)
    results = _run_both(reference, ours, x, hx, lengths=[6, 2, 4], return_traces=True)
    _assert_same(*results)


@pytest.mark.parametrize("config", ["mingru", "minlstm"])
def test_fused_equals_reference_over_several_backward_blocks(config):
    # Backward takes the input-projection gradients in blocks of 2048 rows (steps x batch):
    # with 64 sequences a block is 32 steps, so 70 steps make three blocks, the last partial.
    reference, ours = _pair(config, bidirectional=True)
    x = torch.randn(70, 64, 5)
    hx = _random_state(reference, batch=64)
    lengths = torch.randint(1, 71, (64,))
    results = _run_both(reference, ours, x, hx, lengths=lengths, return_traces=True)
    _assert_same(*results)


@pytest.mark.parametrize("config, input_size, hidden_size", [
    ("peepholes", 512, 512), ("fgr", 512, 512), ("depth-gated", 512, 512), ("gru", 600, 600),
    ("mingru", 1024, 512)])
def test_fused_equals_reference_with_large_weights(config, input_size, hidden_size):
    # Weights of 2^20 elements and more (W_hh and W_ih of the LSTM family and the GRU, W_ih of
    # minGRU): products whose library calls split the work differently from small ones (see the
    # RNNKIT_PRODUCTS=library test below for the path through torch's products).
    reference, ours = _pair(config, input_size=input_size, hidden_size=hidden_size,
                            num_layers=2 if config == "depth-gated" else 1, bidirectional=True)
    x = torch.randn(5, 6, input_size)
    hx = _random_state(reference, batch=6)
    results = _run_both(reference, ours, x, hx, lengths=[5, 2, 4, 5, 1, 3])
    _assert_same(*results)


@pytest.mark.parametrize("config", ["peepholes", "fgr-cifg-peepholes", "lstm-proj", "gru-cho",
                                    "clockwork", "depth-gated-peepholes", "mingru",
                                    "minlstm"])
def test_fused_equals_reference_when_threads_split_a_step(config):
    # B * H above the threshold where a step's pointwise pass is split by columns, with H not a
    # multiple of the vector width so that each thread's last chunk is partial.
    reference, ours = _pair(config, input_size=8, hidden_size=300, num_layers=2)
    x = torch.randn(4, 64, 8)
    hx = _random_state(reference, batch=64)
    lengths = torch.randint(1, 5, (64,))
    _assert_same(*_run_both(reference, ours, x, hx, lengths=lengths))


@pytest.mark.parametrize("config", list(CONFIGS))
def test_fused_gradcheck_in_float64(config):
    name, options = CONFIGS[config]
    if "proj_size" in options:
        options = {**options, "proj_size": 2}
    layers = 2 if config.startswith("depth-gated") else 1
    layer = rnnkit.build_layer(name, 3, 4, num_layers=layers, bidirectional=config == "lstm",
                               engine="fused", dtype=torch.float64, **options)
    names = [n for n, _ in layer.named_parameters()]
    params = [p.detach().clone().requires_grad_() for p in layer.parameters()]
    x = torch.randn(4, 2, 3, dtype=torch.float64, requires_grad=True)
    hx = tuple(s.requires_grad_() for s in state_tensors(_random_state(layer, 2, torch.float64)))

    def run(x, *values):
        state = values[len(names):]
        out, final = torch.func.functional_call(
            layer, dict(zip(names, values[:len(names)])),
            (x, state[0] if len(state) == 1 else state), {"lengths": torch.tensor([4, 2])})
        return (out,) + state_tensors(final)

    assert torch.autograd.gradcheck(run, (x, *params, *hx), eps=1e-6, atol=1e-5)


def test_fused_handles_no_bias_learned_initial_state_and_float64():
    for kwargs in ({"bias": False}, {"learn_initial_state": True}, {"dtype": torch.float64}):
        reference, ours = _pair("cifg-peepholes", num_layers=2, bidirectional=True, **kwargs)
        with torch.no_grad():
            for parameter in reference.parameters():
                parameter.uniform_(-0.5, 0.5)  # learned initial states become non-zero too
        ours.load_state_dict(reference.state_dict())
        x = torch.randn(5, 2, 5, dtype=kwargs.get("dtype", torch.float32))
        results = []
        for layer in (reference, ours):
            output, state = layer(x, lengths=[5, 3])
            _loss(output.float(), tuple(s.float() for s in state)).backward()
            results.append((output,) + state + tuple(p.grad for p in layer.parameters()))
        for mine, theirs in zip(results[1], results[0], strict=True):
            torch.testing.assert_close(mine, theirs, **TOLERANCE)


def test_fused_clockwork_continues_a_sequence_with_start_step():
    _, layer = _pair("clockwork")
    x = torch.randn(8, 2, 5)
    whole, _ = layer(x)
    first, state = layer(x[:3])
    second, _ = layer(x[3:], state, start_step=3)
    torch.testing.assert_close(torch.cat([first, second]), whole)


def test_fused_unbatched_input_matches_batched():
    _, layer = _pair("gru-cho")
    x = torch.randn(6, 5)
    output, state = layer(x)
    batched_output, batched_state = layer(x.unsqueeze(1))
    torch.testing.assert_close(output, batched_output.squeeze(1))
    torch.testing.assert_close(state, batched_state.squeeze(1))


def test_fused_is_chosen_by_name_and_refused_for_cells_without_a_kernel(monkeypatch):
    monkeypatch.setattr(rnnkit.engine.select, "_default", "fused")
    assert rnnkit.LSTM(3, 4, coupled=True).engine_for(None) == "fused"
    assert rnnkit.ClockworkRNN(3, 4).engine_for(None, return_traces=True) == "fused"
    assert rnnkit.GRU(3, 4).engine_for(None) == "fused"  # both GRU forms have kernels

    class TweakedGRU(GRUMath):  # a subclass may change the step: the kernels do not know it
        pass

    layer = rnnkit.GRU(3, 4)
    layer.layer_maths = [TweakedGRU(4)]
    with pytest.raises(ValueError, match="no fused kernel"):
        layer(torch.randn(2, 1, 3))


def test_a_failed_build_warns_once_then_auto_runs_the_reference_and_fused_is_refused(
        monkeypatch):
    def failing_build(*args, **kwargs):
        raise RuntimeError("Error building extension\nlstm.cpp:1:1: error: no compiler\nmore")

    # A process that finds no finished build and fails to build one.
    monkeypatch.setattr(fused, "_finished", lambda *args: False)
    monkeypatch.setattr(fused, "_build", failing_build)
    monkeypatch.setattr(fused, "_outcome", [])
    monkeypatch.setattr(fused, "_problem", [])
    with pytest.warns(RuntimeWarning) as caught:
        assert fused.load_extension() is None
    [warning] = caught
    message = str(warning.message)
    assert "\n" not in message and "error: no compiler" in message
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert fused.load_extension() is None  # decided for the process: no second warning
    layer = rnnkit.LSTM(3, 4, peepholes=True, engine="auto")
    reference = rnnkit.LSTM(3, 4, peepholes=True, engine="reference")
    reference.load_state_dict(layer.state_dict())
    x = torch.randn(5, 2, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert layer.engine_for(x) == "reference"
        torch.testing.assert_close(layer(x)[0], reference(x)[0])
        layer.engine = "fused"
        with pytest.raises(ValueError, match="engine='fused'.*could not be built"):
            layer(x)


def test_auto_picks_the_fused_kernels_for_every_cell_they_run_on_cpu(monkeypatch):
    monkeypatch.setattr(rnnkit.engine.select, "_default", "auto")
    x = torch.randn(4, 2, 3)
    for config, (name, options) in CONFIGS.items():
        layers = 2 if name == "depth-gated-lstm" else 1
        layer = rnnkit.build_layer(name, 3, 9, layers, **options)
        expected = "native" if config in ("lstm", "lstm-proj") else "fused"
        assert layer.engine_for(x) == expected, config
        assert layer.engine_for(x, return_traces=True) == "fused", config  # traces: fast path
    # The Elman RNN and the GRU run on the fused kernels where they run, else on torch's own.
    assert rnnkit.RNN(3, 4).engine_for(x.to(torch.bfloat16)) == "native"
    assert rnnkit.GRU(3, 4).engine_for(x.to(torch.bfloat16)) == "native"
    peephole = rnnkit.LSTM(3, 4, peepholes=True)
    assert peephole.engine_for(x.to(torch.bfloat16)) == "reference"
    assert rnnkit.MinGRU(3, 4).engine_for(x.to(torch.bfloat16)) == "scan"


def test_auto_uses_the_loop_or_the_scan_when_the_kernels_cannot_be_built(monkeypatch):
    monkeypatch.setattr(rnnkit.engine.select, "_default", "auto")
    monkeypatch.setattr(fused, "load_extension", lambda: None)
    x = torch.randn(4, 2, 3)
    assert rnnkit.LSTM(3, 4, coupled=True).engine_for(x) == "reference"
    assert rnnkit.MinGRU(3, 4).engine_for(x) == "scan"


def _relative(got, exact):
    return ((got.double() - exact).norm() / exact.norm()).item()


# bfloat16 keeps 8 significant bits: each operand of a product is off by up to 2^-9 of itself.
# Over the few steps and layers here, outputs and gradients stay within 8 such roundings.
BF16_ROUNDING = 8 * 2.0**-9
BF16_CONFIGS = ["lstm", "lstm-proj", "peepholes", "cifg", "nog", "fgr", "gru", "gru-cho", "rnn",
                "clockwork", "depth-gated", "mingru", "minlstm"]


def _bf16_autocast_run(config):
    """(layer, exact float64 copy, x, float32 output without autocast, output and x.grad under
    CPU bfloat16 autocast); the exact copy has its gradients of the same loss."""
    name, options = CONFIGS[config]
    layers = 2 if name == "depth-gated-lstm" else 1
    reference = rnnkit.build_layer(name, 16, 32, layers, engine="reference", **options)
    layer = rnnkit.build_layer(name, 16, 32, layers, engine="fused", **options)
    layer.load_state_dict(reference.state_dict())
    exact_layer = copy.deepcopy(reference).double()
    x = torch.randn(12, 4, 16)
    exact_x = x.double().requires_grad_()
    exact_out = exact_layer(exact_x)[0]
    _loss(exact_out, ()).backward()
    float32_before = layer(x)[0].detach()
    x_given = x.clone().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        output = layer(x_given)[0]
    assert output.dtype == torch.float32
    _loss(output, ()).backward()
    return layer, exact_layer, x, exact_x, exact_out, float32_before, output, x_given


@pytest.mark.parametrize("where", ["this cpu", "forced"])
@pytest.mark.parametrize("config", BF16_CONFIGS)
def test_fused_kernels_multiply_in_bfloat16_under_cpu_bf16_autocast(config, where, monkeypatch):
    # Where oneDNN multiplies bfloat16, the kernels' matrix products take bfloat16 operands under
    # bfloat16 autocast, while the gates, states and results stay float32: outputs and gradients
    # are within bfloat16 rounding of the exact ones (and not the float32 ones), and calls
    # without autocast afterwards are float32 again. "forced" runs the same bfloat16 path on a
    # CPU without them (torch's slower bfloat16 products), so that every CPU checks it.
    if where == "this cpu" and not fused.onednn_multiplies_bf16():
        pytest.skip("oneDNN has no bfloat16 products on this CPU (the float32 test covers it; "
                    "the 'forced' case checks the bfloat16 path)")
    if where == "forced":
        monkeypatch.setattr(fused, "onednn_multiplies_bf16", lambda: True)
    layer, exact_layer, x, exact_x, exact_out, float32_before, output, x_given = (
        _bf16_autocast_run(config))
    assert 1e-4 < _relative(output, exact_out) < BF16_ROUNDING
    assert _relative(float32_before, exact_out) < 1e-5
    assert _relative(x_given.grad, exact_x.grad) < BF16_ROUNDING
    for (name_, p), exact_p in zip(layer.named_parameters(), exact_layer.parameters(),
                                   strict=True):
        assert _relative(p.grad, exact_p.grad) < BF16_ROUNDING, name_
    torch.testing.assert_close(layer(x)[0], float32_before, rtol=0, atol=0)


@pytest.mark.parametrize("config", BF16_CONFIGS)
def test_fused_kernels_stay_float32_under_bf16_autocast_where_onednn_has_no_bf16(config):
    # On a CPU where oneDNN has no bfloat16 products (AVX2 without AVX-512) the kernels compute
    # in float32 under bfloat16 autocast: the same outputs and gradients as without it.
    if fused.onednn_multiplies_bf16():
        pytest.skip("oneDNN multiplies bfloat16 on this CPU (the bfloat16 test covers it)")
    layer, _, x, _, _, float32_before, output, x_given = _bf16_autocast_run(config)
    torch.testing.assert_close(output.detach(), float32_before, rtol=0, atol=0)
    grads = {n: p.grad.clone() for n, p in layer.named_parameters()}
    layer.zero_grad()
    x_float32 = x.clone().requires_grad_()
    _loss(layer(x_float32)[0], ()).backward()
    torch.testing.assert_close(x_given.grad, x_float32.grad, rtol=0, atol=0)
    for n, p in layer.named_parameters():
        torch.testing.assert_close(grads[n], p.grad, rtol=0, atol=0, msg=n)


@pytest.mark.parametrize("config", ["gru", "lstm"])
def test_fused_kernels_stay_float32_under_float16_autocast(config):
    name, options = CONFIGS[config]
    layer = rnnkit.build_layer(name, 5, 8, engine="fused", **options)
    x = torch.randn(6, 3, 5)
    expected = layer(x)[0]
    with torch.autocast("cpu", dtype=torch.float16):
        output = layer(x)[0]
    torch.testing.assert_close(output, expected, rtol=0, atol=0)


def test_auto_runs_the_lstm_on_the_fused_kernels_under_bf16_autocast_where_it_pays_or_must(
        monkeypatch):
    monkeypatch.setattr(rnnkit.engine.select, "_default", "auto")
    x = torch.randn(4, 2, 3)
    lstm = rnnkit.LSTM(3, 4)
    expected = lstm(x)[0]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        here = fused.cpu_computes_bf16() or not fused.onednn_multiplies_bf16()
        assert lstm.engine_for(x) == ("fused" if here else "native")
        if not fused.onednn_multiplies_bf16():  # torch's LSTM kernel would fail here
            torch.testing.assert_close(lstm(x)[0], expected)  # float32, not bfloat16
        # a CPU that multiplies bfloat16 in hardware, through oneDNN: the fused kernels are faster
        monkeypatch.setattr(fused, "onednn_multiplies_bf16", lambda: True)
        monkeypatch.setattr(fused, "cpu_computes_bf16", lambda: True)
        assert lstm.engine_for(x) == "fused"
        assert lstm.engine_for(x.double()) == "native"  # float64: no bfloat16 products
        # oneDNN's bfloat16 products without hardware for them: torch's kernel
        monkeypatch.setattr(fused, "cpu_computes_bf16", lambda: False)
        assert lstm.engine_for(x) == "native"
        # no bfloat16 products in oneDNN (AVX2 alone): the fused kernels, in float32
        monkeypatch.setattr(fused, "onednn_multiplies_bf16", lambda: False)
        assert lstm.engine_for(x) == "fused"
    assert lstm.engine_for(x) == "native"


@pytest.mark.parametrize("config", ["peepholes", "fgr", "gru-cho", "clockwork", "rnn",
                                    "depth-gated", "mingru", "minlstm"])
def test_inference_reusing_pooled_projections_equals_a_graph_building_call(config):
    # Without a graph (no_grad) nothing keeps the input projection of all steps, so its pooled
    # buffer (16 MB and more: 65,536 rows of at least 64 units) is reused by the next call;
    # calls of other sizes in between must not change what a call returns.
    name, options = CONFIGS[config]
    layers = 2 if name == "depth-gated-lstm" else 1
    layer = rnnkit.build_layer(name, 5, 64, layers, engine="fused", bidirectional=True,
                               **options)
    x, longer = torch.randn(256, 256, 5), torch.randn(300, 256, 5)
    lengths = torch.randint(1, 257, (256,))
    expected = layer(x, lengths=lengths)
    with torch.no_grad():
        layer(longer)
        first = layer(x, lengths=lengths)
        layer(longer[:200])
        second = layer(x, lengths=lengths)
    for got in (first, second):
        torch.testing.assert_close(got[0], expected[0], rtol=0, atol=0)
        for mine, theirs in zip(state_tensors(got[1]), state_tensors(expected[1]), strict=True):
            torch.testing.assert_close(mine, theirs, rtol=0, atol=0)


@pytest.mark.parametrize("config", ["rnn", "clockwork"])
def test_elman_backward_does_not_read_the_reused_projection_buffer(config):
    # The Elman kernels keep no input projection for the backward pass, in training too, so its
    # pooled buffer (65,536 rows of 64 units: 16 MB) is free for the next call; a later forward
    # call overwrites it before the first call's backward, which must not notice.
    name, options = CONFIGS[config]
    layer = rnnkit.build_layer(name, 5, 64, engine="fused", **options)
    x, other = torch.randn(256, 256, 5), torch.randn(256, 256, 5)
    layer(x)[0].pow(2).sum().backward()
    expected = {n: p.grad.clone() for n, p in layer.named_parameters()}
    layer.zero_grad()
    loss = layer(x)[0].pow(2).sum()
    layer(other)  # overwrites the buffer
    loss.backward()
    for n, p in layer.named_parameters():
        torch.testing.assert_close(p.grad, expected[n], rtol=0, atol=0, msg=n)


@pytest.mark.parametrize("config", ["mingru", "minlstm", "peepholes", "lstm-proj", "fgr",
                                    "depth-gated", "gru", "gru-cho", "rnn"])
def test_pooled_sequence_buffers_are_reused_only_once_nothing_holds_them(config):
    # Sequence-sized results of 16 MB or more come from a pool of buffers (T=1024, B=16, 256
    # units: the states of all steps are 16 MB). A buffer still held by an autograd graph, an
    # output or a view must not be handed out to a later call.
    name, options = CONFIGS[config]
    layers = 2 if name == "depth-gated-lstm" else 1
    layer = rnnkit.build_layer(name, 16, 256, layers, engine="fused", **options)
    x, other = torch.randn(1024, 16, 16, requires_grad=True), torch.randn(1024, 16, 16)

    def gradients(output):
        output.pow(2).sum().backward()
        grads = [x.grad.clone()] + [p.grad.clone() for p in layer.parameters()]
        x.grad, _ = None, layer.zero_grad()
        return grads

    expected_output = layer(x)[0]
    kept = expected_output.detach().clone()
    expected = gradients(expected_output)
    del expected_output
    output = layer(x)[0]  # the graph holds this call's buffers until backward
    view = layer(other)[0][:5]
    layer(other)  # dropped at once: its buffers may be reused
    torch.testing.assert_close(output.detach(), kept, rtol=0, atol=0)
    for got, want in zip(gradients(output), expected, strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=0)
    reference = rnnkit.build_layer(name, 16, 256, layers, engine="fused", **options)
    reference.load_state_dict(layer.state_dict())
    torch.testing.assert_close(view, reference(other)[0][:5], rtol=0, atol=0)


# (m, k, n): rows below, at and above the register block (8) and the panel width (32), a depth
# above one pass (512), and the empty cases.
OWN_SHAPES = [(1, 1, 1), (3, 7, 5), (8, 32, 32), (9, 33, 31), (17, 100, 70), (32, 256, 1024),
              (64, 600, 48), (5, 1100, 17), (0, 4, 4), (4, 0, 6), (4, 6, 0)]


@pytest.mark.parametrize("m, k, n", OWN_SHAPES)
@pytest.mark.parametrize("layout", ["plain", "a transposed", "b transposed", "both strided"])
def test_own_matrix_products_equal_the_exact_product(m, k, n, layout):
    if not fused.own_products_run():
        pytest.skip("rnnkit's own matrix products do not run here (no AVX-512F)")
    a, b = torch.randn(m, k), torch.randn(k, n)
    if layout in ("a transposed", "both strided"):
        a = a.t().contiguous().t()
    if layout in ("b transposed", "both strided"):
        b = b.t().contiguous().t()
    if layout == "both strided":  # every other column of wider tensors
        a = torch.randn(m, 2 * k)[:, ::2].copy_(a) if k else a
        b = torch.randn(n, 2 * k).t()[::2].copy_(b) if k else b
    got = torch.ops.rnnkit_fused.own_matmul(a, b)
    exact = (a.double() @ b.double()).float()
    assert got.shape == (m, n)
    # float32 sums of k products: each term rounded once, errors growing like k
    scale = (a.abs().double() @ b.abs().double()).float()
    assert ((got - exact).abs() <= 4e-7 * max(k, 1) * scale + 1e-30).all()


def test_library_products_equal_the_reference_where_own_kernels_run():
    # Where rnnkit's own kernels run, the path through torch's products (RNNKIT_PRODUCTS=library,
    # read once per process) is checked by the same tests in a second process.
    if not fused.own_products_run():
        pytest.skip("the library products are what the other tests check here")
    selection = "several_backward_blocks or large_weights or threads_split_a_step"
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rs", __file__, "-k",
               selection]
    done = subprocess.run(command, env={**os.environ, "RNNKIT_PRODUCTS": "library"},
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:]
    assert " passed" in done.stdout and "skipped" not in done.stdout


def test_the_constant_mark_is_torch_compiles_own_and_loading_rnnkit_skips_dynamo():
    """fused.py marks its build probes constant for torch.compile as
    ``torch.compiler.assume_constant_result`` does, without importing ``torch._dynamo``
    (seconds for every process that loads rnnkit; see test_export.py for a compile that
    reads the mark)."""

    def mine():
        return True

    def torchs():
        return True

    fused._constant_under_compile(mine)
    torch.compiler.assume_constant_result(torchs)
    assert set(vars(mine)) == set(vars(torchs)) == {"_dynamo_marked_constant"}
    assert vars(mine) == vars(torchs)
    for probe in (fused.extension_built, fused.onednn_multiplies_bf16, fused.cpu_computes_bf16):
        assert vars(probe).get("_dynamo_marked_constant") is True, probe.__name__
    code = ("import sys, rnnkit.cli; "
            "print(sorted(m for m in ('torch._dynamo', 'statsmodels') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, timeout=300)
    assert done.stdout.strip() == "[]"
