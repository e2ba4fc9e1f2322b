"""Every cell through torch.compile(fullgraph=True), torch.export with a dynamic batch and length,
and ONNX in onnxruntime; the fused kernels as torch.library operators.

Compiling and exporting are slow, so each test puts many layers into one module and traces
it once: one compile (on AOTAutograd, which checks the operators' fake and autograd
registrations; Inductor once, on one layer), one export, one ONNX export. By default the
layers are one cell of each kernel family (:data:`CELLS`; the export path is the same for every
cell, the step in torch's scan, and ONNX gets two); ``RNNKIT_EXPORT_TESTS=all`` runs every cell
of the catalogue in each.
"""

import json
import os

import pytest
import torch
from torch import nn
from torch._dynamo.utils import counters

from rnnkit.catalog import CELL_NAMES, build_layer
from rnnkit.engine import fused
from rnnkit.models.state import state_tensors

pytestmark = pytest.mark.usefixtures("one_thread")

INPUT, HIDDEN = 3, 4
EVERY_CELL = os.environ.get("RNNKIT_EXPORT_TESTS") == "all"
CELLS = CELL_NAMES if EVERY_CELL else (
    "lstm", "gru", "gru-cho", "clockwork", "minlstm", "depth-gated-lstm")
ONNX_CELLS = CELL_NAMES if EVERY_CELL else ("lstm", "clockwork")  # a projection: a Scan


def _variant(index: int, name: str) -> dict:
    """Options that vary over the cells: two layers, both directions, a projection."""
    options = {"num_layers": 2} if index % 2 or name == "depth-gated-lstm" else {}
    if index % 3 == 0:
        options["bidirectional"] = True
    if name == "lstm":
        options["proj_size"] = 2
    return options


class EveryCell(nn.Module):
    """Layers of the ``names`` cells on the same input; the odd ones with ``lengths``."""

    def __init__(self, names=CELLS) -> None:
        super().__init__()
        self.layers = nn.ModuleList(build_layer(name, INPUT, HIDDEN, **_variant(index, name))
                                    for index, name in enumerate(names))

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, ...]:
        results = []
        for index, layer in enumerate(self.layers):
            outputs, state = layer(x, lengths=lengths if index % 2 else None)
            results += [outputs, *state_tensors(state)]
        return tuple(results)


def _inputs(steps: int, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.randn(steps, batch, INPUT)
    lengths = torch.randint(1, steps + 1, (batch,))
    lengths[0] = steps
    return x, lengths


def _gradients(model: nn.Module, function, x: torch.Tensor, lengths: torch.Tensor) -> list:
    """Outputs of ``function`` and the gradients of a sum of them, input's and parameters'."""
    x = x.clone().requires_grad_()
    model.zero_grad()
    results = function(x, lengths)
    sum(result.square().sum() for result in results).backward()
    return [*results, x.grad, *(p.grad for p in model.parameters())]


def test_compile_fullgraph_every_cell_matches_eager_without_recompiling(fused_extension):
    torch._dynamo.reset()
    counters.clear()
    model = EveryCell()
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    for steps, batch in ((5, 2), (6, 3), (4, 5)):
        x, lengths = _inputs(steps, batch)
        expected = _gradients(model, model, x, lengths)
        got = _gradients(model, compiled, x, lengths)
        for want, have in zip(expected, got, strict=True):
            torch.testing.assert_close(have, want, atol=1e-5, rtol=1e-5)
    # a static graph, then one with dynamic batch and length for every later size
    assert counters["stats"]["unique_graphs"] == 2


def test_compile_inductor_runs_the_fused_operator(fused_extension):
    torch._dynamo.reset()
    layer = build_layer("peephole-lstm", INPUT, HIDDEN)
    compiled = torch.compile(layer, fullgraph=True, dynamic=True)
    x, lengths = _inputs(5, 2)
    expected = _gradients(layer, lambda x, lengths: state_tensors(layer(x, lengths=lengths)[1]),
                          x, lengths)
    got = _gradients(layer, lambda x, lengths: state_tensors(compiled(x, lengths=lengths)[1]),
                     x, lengths)
    for want, have in zip(expected, got, strict=True):
        torch.testing.assert_close(have, want, atol=1e-5, rtol=1e-5)
    graph = torch._dynamo.explain(layer)(x, lengths=lengths)
    assert graph.graph_break_count == 0


def test_fused_operators_pass_opcheck(fused_extension):
    layer = build_layer("gru-cho", INPUT, HIDDEN)
    params = layer.cell_parameters(0)
    x = torch.randn(4, 2, INPUT, dtype=torch.float64)
    tensors = {"weight_hh": params["weight_hh"].detach().double().requires_grad_(),
               "hidden0": torch.randn(2, HIDDEN, dtype=torch.float64, requires_grad=True),
               "weight_ih": params["weight_ih"].detach().double().requires_grad_(),
               "inputs": x.requires_grad_(),
               "last_step": torch.tensor([3, 1])}
    arguments = ("gru", ",".join(tensors), list(tensors.values()), "", False, True, True, 0.0,
                 0.0, False, 0, False)
    torch.library.opcheck(fused.fused_forward, arguments,
                          test_utils=("test_schema", "test_faketensor",
                                      "test_autograd_registration"))


def test_export_dynamic_batch_and_length_matches_eager_at_other_sizes():
    model = EveryCell().eval()
    batch, steps = torch.export.Dim("batch", min=1), torch.export.Dim("steps", min=1)
    program = torch.export.export(model, _inputs(5, 2),
                                  dynamic_shapes=({0: steps, 1: batch}, {0: batch}))
    exported = program.module()
    for size in ((9, 3), (1, 1), (4, 6)):
        x, lengths = _inputs(*size)
        with torch.no_grad():
            for want, have in zip(model(x, lengths), exported(x, lengths), strict=True):
                torch.testing.assert_close(have, want, atol=1e-5, rtol=1e-5)


def test_export_keeps_traces():
    class Traced(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layer = build_layer("gru-cho", INPUT, HIDDEN, num_layers=2)

        def forward(self, x):
            _, _, traces = self.layer(x, return_traces=True)
            return traces[1]["z"], traces[0]["h"]

    model = Traced().eval()
    batch, steps = torch.export.Dim("batch", min=1), torch.export.Dim("steps", min=1)
    program = torch.export.export(model, (torch.randn(5, 2, INPUT),),
                                  dynamic_shapes=({0: steps, 1: batch},))
    x = torch.randn(7, 3, INPUT)
    for want, have in zip(model(x), program.module()(x), strict=True):
        torch.testing.assert_close(have, want, atol=1e-5, rtol=1e-5)


def test_onnx_runs_in_onnxruntime_at_other_sizes(tmp_path):
    onnxruntime = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from rnnkit.export import to_onnx

    model = EveryCell(ONNX_CELLS).eval()
    path = to_onnx(model, _inputs(5, 2), tmp_path / "cells.onnx",
                   dims=({0: "steps", 1: "batch"}, {0: "batch"}))
    assert "Scan" in _operators(path)
    _check_onnxruntime(onnxruntime, path, model)


def _operators(path) -> list[str]:
    import onnx

    return [node.op_type for node in onnx.load(str(path)).graph.node]


def _check_onnxruntime(onnxruntime, path, model) -> None:
    """The ONNX file at ``path`` gives ``model``'s outputs at other batch sizes and lengths."""
    session = onnxruntime.InferenceSession(str(path))
    for size in ((9, 3), (2, 1)):
        x, lengths = _inputs(*size)
        got = session.run(None, {"x": x.numpy(), "lengths": lengths.numpy()})
        with torch.no_grad():
            for want, have in zip(model(x, lengths), got, strict=True):
                torch.testing.assert_close(torch.from_numpy(have), want, atol=1e-4, rtol=1e-4)


NATIVE = (  # cell, options, with lengths: every operator, form and switch ONNX has for them
    ("lstm", {"num_layers": 2, "bidirectional": True}, True),
    ("peephole-lstm", {}, True),
    ("cifg-lstm", {"peepholes": "fo", "bidirectional": True}, True),
    ("gru", {}, False),
    ("gru-cho", {"num_layers": 2, "bidirectional": True}, True),
    ("rnn", {"bias": False}, True),
    ("rnn-relu", {"bidirectional": True}, False),
)


class NativeCells(nn.Module):
    """Layers of every cell that ONNX has an operator for."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.ModuleList(build_layer(name, INPUT, HIDDEN, **options)
                                    for name, options, _ in NATIVE)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, ...]:
        results = []
        for layer, (_, _, ragged) in zip(self.layers, NATIVE, strict=True):
            outputs, state = layer(x, lengths=lengths if ragged else None)
            results += [outputs, *state_tensors(state)]
        return tuple(results)


def test_onnx_has_the_native_operators_and_runs_in_onnxruntime(tmp_path):
    onnxruntime = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from rnnkit.export import to_onnx

    model = NativeCells().eval()
    path = to_onnx(model, _inputs(5, 2), tmp_path / "native.onnx",
                   dims=({0: "steps", 1: "batch"}, {0: "batch"}))
    operators = _operators(path)
    # one operator per layer of each stack, both directions in one; no loop left
    assert (operators.count("LSTM"), operators.count("GRU"), operators.count("RNN")) == (4, 3, 2)
    assert "Scan" not in operators and "Loop" not in operators
    _check_onnxruntime(onnxruntime, path, model)


def test_onnx_form_operators_compute_the_layers():
    """The operators' own implementations (ONNX's equations) on the weights arranged as the
    export arranges them give the layers' outputs; their fake implementations agree."""
    from rnnkit.engine.onnx_ops import onnx_lstm, run_onnx_operators

    model = NativeCells().eval()
    x, lengths = _inputs(6, 3)
    for layer, (_, _, ragged) in zip(model.layers, NATIVE, strict=True):
        used = lengths if ragged else None
        params = [[layer.cell_parameters(index, direction)
                   for direction in range(layer.num_directions)]
                  for index in range(layer.num_layers)]
        stacked = layer.num_layers * layer.num_directions
        state = tuple(torch.randn(stacked, 3, HIDDEN) for _ in layer.layer_maths[0].state_names)
        with torch.no_grad():
            want_outputs, want_state = layer(x, state[0] if len(state) == 1 else state,
                                             lengths=used)
            outputs, final = run_onnx_operators(layer.layer_maths, params, x, state, used)
        torch.testing.assert_close(outputs, want_outputs, atol=1e-5, rtol=1e-5)
        for have, want in zip(final, state_tensors(want_state), strict=True):
            torch.testing.assert_close(have, want, atol=1e-5, rtol=1e-5)
    w, r = torch.randn(2, 4 * HIDDEN, INPUT), torch.randn(2, 4 * HIDDEN, HIDDEN)
    h0 = torch.randn(2, 3, HIDDEN)
    arguments = (x, w, r, torch.randn(2, 8 * HIDDEN), lengths, h0, h0.clone(),
                 torch.randn(2, 3 * HIDDEN), "bidirectional", 1, HIDDEN)
    torch.library.opcheck(onnx_lstm, arguments, test_utils=("test_schema", "test_faketensor"))


@pytest.mark.parametrize(("options", "named"), [
    ({"zoneout_hidden": 0.1}, "zoneout_hidden"),
    ({"dropout": 0.2, "num_layers": 2}, "dropout"),
    ({"engine": "reference"}, "engine"),
])
def test_export_without_a_path_fails_at_the_call_naming_the_option(options, named):
    layer = build_layer("lstm", INPUT, HIDDEN, **options)  # in training mode
    with pytest.raises(ValueError, match=rf"^LSTM: {named}="):
        torch.export.export(layer, (torch.randn(5, 2, INPUT),))
    from rnnkit.export import check_exportable

    with pytest.raises(ValueError, match=rf"^model: {named}="):
        check_exportable(nn.ModuleDict({"model": layer}))


def test_export_refuses_training_mode_dropout_modules():
    from rnnkit.export import to_pt2

    model = nn.Sequential(nn.Dropout(0.5), nn.Linear(3, 3))
    with pytest.raises(ValueError, match=r"^0: dropout p=0.5 in training mode"):
        to_pt2(model, (torch.randn(2, 3),), "unused.pt2")


def _cli(capsys, *argv):
    from rnnkit.cli import main

    code = main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


def _restored_task(run):
    from rnnkit.tasks import build_task
    from rnnkit.training.checkpoint import load_checkpoint
    from rnnkit.training.run_dir import RunDirectory

    directory = RunDirectory.open(run)
    checkpoint = load_checkpoint(directory.checkpoint_for_use())
    task = build_task(directory.read_config(), torch.device("cpu"), checkpoint.info["task"])
    checkpoint.restore_model(task.model)
    return task.model.eval()


TINY_RUN = ["--hidden-size", "8", "--batch-size", "4", "--steps", "2", "--warmup", "0",
            "--time-limit", "0", "--device", "cpu", "--threads", "1"]


def test_cli_exports_a_language_model_that_onnxruntime_runs_step_by_step(tmp_path, capsys):
    onnxruntime = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("shall i compare thee to a summers day\n" * 40)
    run = tmp_path / "lm"
    _cli(capsys, "train", "--data", corpus, "--cell", "gru-cho", "--embedding-size", "8",
         "--bptt", "8", *TINY_RUN, "--out", run)
    out = _cli(capsys, "export", run)
    assert f"{run / 'model.onnx'} (onnx; inputs ids, state0" in out
    assert json.loads((run / "model.json").read_text())["vocab"]["type"] == "char"
    model = _restored_task(run)
    session = onnxruntime.InferenceSession(str(run / "model.onnx"))
    ids = torch.randint(0, model.embedding.num_embeddings, (3, 7))
    state = None
    for chunk in (ids[:, :5], ids[:, 5:6], ids[:, 6:]):  # a prompt, then one step at a time
        with torch.no_grad():
            expected = model(chunk, state)
        feed = {"ids": chunk.numpy()} | {
            "state0": (state if state is not None else torch.zeros_like(expected.state)).numpy()}
        logits, next_state = session.run(None, feed)
        torch.testing.assert_close(torch.from_numpy(logits), expected.outputs, atol=1e-4,
                                   rtol=1e-4)
        state = torch.from_numpy(next_state)
        torch.testing.assert_close(state, expected.state, atol=1e-4, rtol=1e-4)


def test_cli_exports_a_classifier_as_pt2_for_other_batch_sizes_and_lengths(tmp_path, capsys):
    run = tmp_path / "classify"
    _cli(capsys, "train", "--task", "classify", "--data", "ItalyPowerDemand", *TINY_RUN,
         "--out", run)
    _cli(capsys, "export", run, "--format", "pt2", "--out", tmp_path / "classifier.pt2")
    exported = torch.export.load(tmp_path / "classifier.pt2").module()
    model = _restored_task(run)
    series = torch.randn(5, 17, model.net.layer.input_size)
    lengths = torch.tensor([17, 3, 9, 17, 1])
    with torch.no_grad():
        expected = model((series, lengths)).outputs
    torch.testing.assert_close(exported(series, lengths)[0], expected, atol=1e-5, rtol=1e-5)


def test_cli_export_names_the_tasks_it_writes(tmp_path, capsys):
    from rnnkit.cli import main

    run = tmp_path / "adding"
    _cli(capsys, "train", "--task", "adding", "--data", "6", *TINY_RUN, "--out", run)
    assert main(["export", str(run)]) == 1
    assert ("rnnkit export writes --task lm, classify, forecast, handwriting, speech, "
            "seq2seq, translate runs") in capsys.readouterr().err


# -- the other tasks: CTC recognisers and encoder-decoders ----------------------------------


def _load(path, file_format):
    """A file's model as a function of numpy arrays (in the file's input order) -> arrays."""
    if file_format == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path))
        names = [item.name for item in session.get_inputs()]
        return lambda *arrays: session.run(None, dict(zip(names, arrays, strict=True)))
    module = torch.export.load(path).module()

    def run(*arrays):
        with torch.no_grad():
            return [t.numpy() for t in module(*map(torch.from_numpy, arrays))]
    return run


@pytest.mark.parametrize(("task", "file_format"), [("handwriting", "onnx"), ("speech", "pt2")])
def test_cli_exports_a_recogniser_that_reads_as_rnnkit_does(task, file_format, tmp_path,
                                                            capsys):
    if file_format == "onnx":
        pytest.importorskip("onnxruntime")
        pytest.importorskip("onnxscript")
    run = tmp_path / task
    # speech's default run length is in epochs (which win over --steps): one step
    data = ["--data", "fsdd:nicolas", "--epochs", "0.001"] if task == "speech" else []
    _cli(capsys, "train", "--task", task, *data, *TINY_RUN, "--eval-every", "2", "--out", run)
    out = _cli(capsys, "export", run, "--format", file_format)
    assert f"{run / f'model.{file_format}'} ({file_format}; inputs" in out
    exported = _load(run / f"model.{file_format}", file_format)
    model = _restored_task(run)
    from rnnkit.tasks import build_task
    from rnnkit.training.run_dir import RunDirectory

    config = RunDirectory.open(run).read_config()
    features, lengths = build_task(config, torch.device("cpu")).batch_at(3).inputs
    assert len(set(lengths.tolist())) > 1  # ragged: the exported file takes the lengths
    with torch.no_grad():
        expected = model((features, lengths)).outputs
    got = torch.from_numpy(exported(features.numpy(), lengths.numpy())[0])
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)
    if task == "handwriting":  # the readings, by best path, are rnnkit's
        from rnnkit.models.ctc import greedy_decode

        assert greedy_decode(got, lengths) == greedy_decode(expected, lengths)
    else:
        assert got.argmax(-1).tolist() == expected.argmax(-1).tolist()


def _greedy(encoder, decoder, source, lengths, max_length):
    """Greedy decoding with the exported encoder and decoder step, in numpy alone."""
    import numpy as np

    memory, *state = encoder(source, lengths)
    tokens = np.full((source.shape[0], 1), 1, dtype=np.int64)  # BOS
    emitted = []
    for _ in range(max_length):
        log_probs, *state = decoder(tokens, memory, lengths, *state)
        tokens = log_probs[:, -1].argmax(-1)[:, None]
        emitted.append(tokens)
        if (np.concatenate(emitted, 1) == 2).any(1).all():  # EOS everywhere
            break
    rows = np.concatenate(emitted, 1).tolist()
    return [row[: row.index(2)] if 2 in row else row for row in rows]


@pytest.mark.parametrize(("task", "file_format"), [("seq2seq", "onnx"), ("translate", "pt2")])
def test_cli_exports_an_encoder_and_decoder_step_that_decode_as_rnnkit_does(
        task, file_format, tmp_path, capsys):
    if file_format == "onnx":
        pytest.importorskip("onnxruntime")
        pytest.importorskip("onnxscript")
    from rnnkit.data.cmudict import BOS, PAD

    if task == "seq2seq":
        from rnnkit.data import bundled_path

        entries = [line for line in bundled_path("cmudict/cmudict.dict").read_text()
                   .splitlines() if line and not line.startswith(";;;")][:200]
        data = tmp_path / "dict.txt"
        data.write_text("\n".join(entries) + "\n")
    else:
        words = ["ein", "hund", "katze", "sieht", "rot", "klein", "mann", "frau"]
        data = tmp_path / "pairs.tsv"
        # distinct sources: the split into train/val/test hashes each source sentence
        data.write_text("".join(f"{words[i % 8]} {words[(3 * i) % 8]} {i} .\t"
                                f"a {words[(5 * i) % 8]} {words[i % 8]} {i} .\n"
                                for i in range(400)))
    run = tmp_path / task
    _cli(capsys, "train", "--task", task, "--data", data, *TINY_RUN, "--embedding-size", "8",
         "--eval-every", "2", "--out", run)
    out = _cli(capsys, "export", run, "--format", file_format)
    encoder_file, decoder_file = (run / f"model-{part}.{file_format}"
                                  for part in ("encoder", "decoder"))
    assert f"{encoder_file} ({file_format}; inputs source, source_lengths)" in out
    assert f"{decoder_file} ({file_format}; inputs tokens, memory, source_lengths, state0" in out
    facts = json.loads((run / "model.json").read_text())
    assert facts["inputs"]["decoder"][:3] == ["tokens", "memory", "source_lengths"]
    net = _restored_task(run).net
    encoder, decoder = _load(encoder_file, file_format), _load(decoder_file, file_format)
    vocabulary = net.source_embedding.num_embeddings
    source = torch.randint(3, vocabulary, (3, 7))
    lengths = torch.tensor([7, 2, 5])
    source[1, 2:] = PAD
    source[2, 5:] = PAD
    # teacher-forced log-probabilities of a whole target in one call
    target = torch.cat([torch.full((3, 1), BOS), torch.randint(3, vocabulary, (3, 4))], 1)
    memory, *state = encoder(source.numpy(), lengths.numpy())
    log_probs = decoder(target.numpy(), memory, lengths.numpy(), *state)[0]
    with torch.no_grad():
        expected = net.output_log_probs(net(source, lengths, target).outputs)
    torch.testing.assert_close(torch.from_numpy(log_probs), expected, atol=1e-4, rtol=1e-4)
    # greedy decoding, one step per call carrying the state, is rnnkit's
    assert (_greedy(encoder, decoder, source.numpy(), lengths.numpy(), 8)
            == net.greedy_decode(source, lengths, max_length=8))
