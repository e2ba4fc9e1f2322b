"""Models with rnnkit layers as files that run without rnnkit: ONNX and torch.export's ``.pt2``.

Under ``torch.export`` (which the ONNX exporter runs first) every rnnkit layer runs its cell's
step inside torch's ``scan`` operator (:func:`rnnkit.engine.reference.run_loop`): one graph for
any batch size and sequence length, of standard operators only, which the ONNX exporter writes
as an ONNX ``Scan``. :func:`to_onnx` and :func:`to_pt2` check first that the model has an
export path (:func:`check_exportable`) and mark the named dimensions of the inputs dynamic.

Example::

    >>> from rnnkit.export import to_onnx
    >>> layer = rnnkit.GRU(3, 8).eval()
    >>> path = to_onnx(layer, (torch.randn(5, 2, 3),), tmp / "gru.onnx",
    ...                dims=({0: "steps", 1: "batch"},))  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

from rnnkit.data.cmudict import BOS
from rnnkit.engine import onnx_ops
from rnnkit.layers.base import RecurrentLayer
from rnnkit.layers.clockwork import ClockworkRNN
from rnnkit.models.base import valid_steps
from rnnkit.models.state import state_from_tensors, state_tensors

Dims = Sequence[Mapping[int, str] | None]
"""Per input of ``forward``, its dynamic dimensions by index and name (``{0: "steps", 1:
"batch"}``), or ``None`` for a static input; one name is one size across inputs."""


def check_exportable(model: nn.Module) -> None:
    """Raise ValueError naming the first option of ``model`` that has no export path: random
    masks drawn per call in training mode (``dropout``, ``weight_dropout``, ``zoneout_hidden``,
    ``zoneout_cell`` of a layer, or a ``torch.nn.Dropout``), or an engine that unrolls time
    or runs torch's kernels (``engine="native"``, ``"reference"`` or ``"scan"``)."""
    for name, module in model.named_modules():
        where = name or type(model).__name__
        if isinstance(module, RecurrentLayer):
            problem = module.export_problem()
            if problem:
                raise ValueError(f"{where}: {problem}")
        elif isinstance(module, nn.modules.dropout._DropoutNd) and module.training \
                and module.p:
            raise ValueError(f"{where}: dropout p={module.p} in training mode draws a random "
                             f"mask per call and has no export path; call model.eval() first")


def _dynamic_shapes(model: nn.Module, inputs: Sequence[object],
                    dims: Dims | None) -> tuple | None:
    """torch.export's ``dynamic_shapes`` for ``model.forward(*inputs)`` from ``dims``."""
    if dims is None:
        return None
    if len(dims) != len(inputs):
        raise ValueError(f"dims: expected one entry per input ({len(inputs)}), got {len(dims)}")
    named: dict[str, torch.export.Dim] = {}
    shapes = []
    for entry in dims:
        if entry is None:
            shapes.append(None)
            continue
        shapes.append({index: named.setdefault(label, torch.export.Dim(label, min=1))
                       for index, label in entry.items()})
    parameters = list(inspect.signature(model.forward).parameters.values())
    for index, parameter in enumerate(parameters):
        if parameter.kind is inspect.Parameter.VAR_POSITIONAL:  # forward(a, *tensors)
            return (*shapes[:index], tuple(shapes[index:]))
    return tuple(shapes)


def export_program(model: nn.Module, inputs: Sequence[object],
                   dims: Dims | None = None) -> torch.export.ExportedProgram:
    """``torch.export.export`` of ``model`` on example ``inputs`` with the ``dims`` dynamic,
    after :func:`check_exportable`."""
    check_exportable(model)
    inputs = tuple(inputs)
    return torch.export.export(model, inputs, dynamic_shapes=_dynamic_shapes(model, inputs, dims))


def to_pt2(model: nn.Module, inputs: Sequence[object], path: str | Path,
           dims: Dims | None = None) -> Path:
    """Save :func:`export_program` to ``path`` (``torch.export.load(path).module()`` runs it,
    without rnnkit); returns the path."""
    path = Path(path)
    torch.export.save(export_program(model, inputs, dims), path)
    return path


def to_onnx(model: nn.Module, inputs: Sequence[object], path: str | Path,
            dims: Dims | None = None, input_names: Sequence[str] | None = None,
            output_names: Sequence[str] | None = None, native: bool = True) -> Path:
    """Write ``model`` as ONNX (torch's dynamo exporter) to ``path``: inputs named
    ``input_names`` (default: as ``forward``'s arguments), the ``dims`` dynamic; returns the
    path. With ``native`` (the default), each layer whose cells ONNX computes exactly is ONNX's
    own ``LSTM``, ``GRU`` or ``RNN`` operator (see :mod:`rnnkit.engine.onnx_ops`), the others
    an ONNX ``Scan``; ``native=False`` writes every layer as a ``Scan``. Runs under
    ``torch.no_grad()``: torch 2.13's exporter fails on a ``scan`` that records gradients."""
    check_exportable(model)
    inputs = tuple(inputs)
    path = Path(path)
    emitting = onnx_ops.emitting_onnx_operators() if native else contextlib.nullcontext()
    with torch.no_grad(), emitting:
        program = torch.onnx.export(model, inputs, dynamo=True,
                                    dynamic_shapes=_dynamic_shapes(model, inputs, dims),
                                    input_names=list(input_names) if input_names else None,
                                    output_names=list(output_names) if output_names else None,
                                    custom_translation_table=onnx_translations(),
                                    verbose=False)
    program.save(str(path))
    return path


def onnx_translations() -> dict:
    """The ONNX exporter's ``custom_translation_table`` for rnnkit's ONNX-form operators
    (``rnnkit::onnx_lstm``, ``onnx_gru``, ``onnx_rnn``): each becomes the ONNX operator of the
    same arguments, ``sequence_lens`` as int32. Needs onnxscript (the ``export`` extra)."""
    from onnxscript import opset18 as op  # optional: only ONNX export needs it

    def lengths(sequence_lens):
        return None if sequence_lens is None else op.Cast(sequence_lens, to=6)  # int32

    def lstm(x, w, r, b, sequence_lens, initial_h, initial_c, p, direction, input_forget,
             hidden_size):
        return op.LSTM(x, w, r, b, lengths(sequence_lens), initial_h, initial_c, p,
                       direction=direction, hidden_size=hidden_size,
                       input_forget=input_forget)

    def gru(x, w, r, b, sequence_lens, initial_h, direction, linear_before_reset,
            hidden_size):
        return op.GRU(x, w, r, b, lengths(sequence_lens), initial_h, direction=direction,
                      hidden_size=hidden_size, linear_before_reset=linear_before_reset)

    def rnn(x, w, r, b, sequence_lens, initial_h, direction, activation, hidden_size):
        name = {"tanh": "Tanh", "relu": "Relu"}[activation]
        activations = [name, name] if direction == "bidirectional" else [name]
        return op.RNN(x, w, r, b, lengths(sequence_lens), initial_h, direction=direction,
                      hidden_size=hidden_size, activations=activations)

    return {torch.ops.rnnkit.onnx_lstm.default: lstm, torch.ops.rnnkit.onnx_gru.default: gru,
            torch.ops.rnnkit.onnx_rnn.default: rnn}


class TaskForward(nn.Module):
    """A task's model, ``forward(inputs, state, targets) -> ModelOutput``, as a function of
    tensors for export: ``forward(*inputs, *state) -> (outputs, *state)``. ``state_count``
    state tensors (the model's carried state, e.g. a language model's (h, c), each
    (layers * directions, B, size)) follow the inputs; 0 for models that carry none."""

    def __init__(self, model: nn.Module, input_count: int, state_count: int = 0) -> None:
        super().__init__()
        self.model, self.input_count, self.state_count = model, input_count, state_count

    def forward(self, *tensors: Tensor) -> tuple[Tensor, ...]:
        inputs = tensors[:self.input_count]
        state = tensors[self.input_count:] or None
        if state is not None and len(state) == 1:  # a one-tensor state is passed bare
            state = state[0]
        result = self.model(inputs[0] if len(inputs) == 1 else inputs, state, None)
        outputs = result.outputs
        outputs = (outputs,) if isinstance(outputs, Tensor) else tuple(outputs)
        if not self.state_count:
            return outputs
        return (*outputs, *state_tensors(result.state))


def export_task_model(model: nn.Module, inputs: Tensor | Sequence[Tensor], path: str | Path,
                      file_format: str, input_names: Sequence[str],
                      carries_state: bool = False) -> list[str]:
    """Write a task's model (see :class:`TaskForward`) in evaluation mode as ``file_format``
    ("onnx" or "pt2") to ``path``, given a batch's ``inputs`` (batch first; the first is the
    sequence, its dimension 1 the steps); returns the names of the file's inputs: the
    ``input_names``, then ``state0``, ``state1``, ... with ``carries_state`` (a zero state is
    the start of a sequence). Every batch size and length runs."""
    model.eval()
    inputs = (inputs,) if isinstance(inputs, Tensor) else tuple(inputs)
    # copies: a batch is often a view of a larger tensor (a language model's slice of the
    # text), whose base torch.export would trace too, binding the length to the base's
    inputs = tuple(tensor.clone() for tensor in inputs)
    if len(input_names) != len(inputs):
        raise ValueError(f"input_names: expected {len(inputs)} names, got {len(input_names)}")
    state: tuple[Tensor, ...] = ()
    if carries_state:
        with torch.no_grad():
            result = model(inputs[0] if len(inputs) == 1 else inputs, None, None)
        state = tuple(torch.zeros_like(part) for part in state_tensors(result.state))
    dims = [{0: "batch", 1: "steps"} if index == 0 and tensor.dim() >= 2 else {0: "batch"}
            for index, tensor in enumerate(inputs)] + [{1: "batch"}] * len(state)
    names = [*input_names, *(f"state{index}" for index in range(len(state)))]
    wrapper = TaskForward(model, len(inputs), len(state)).eval()
    if file_format == "onnx":
        outputs = ["outputs", *(f"next_state{index}" for index in range(len(state)))]
        to_onnx(wrapper, (*inputs, *state), path, dims, input_names=names,
                output_names=outputs)
    elif file_format == "pt2":
        to_pt2(wrapper, (*inputs, *state), path, dims)
    else:
        raise ValueError(f"file_format: expected 'onnx' or 'pt2', got {file_format!r}")
    return names


class Seq2SeqEncoder(nn.Module):
    """A :class:`~rnnkit.models.seq2seq.Seq2Seq`'s encoder for export: ``forward(source (B, S)
    int64, source_lengths (B,)) -> (memory (B, S, M), state0, ...)``, the memory the decoder
    attends to and the decoder's initial state (the bridged final state of the encoder, each
    (layers, B, size))."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, source: Tensor, source_lengths: Tensor) -> tuple[Tensor, ...]:
        memory, _, state = self.net.encode(source, source_lengths)
        return (memory, *state_tensors(state))


class Seq2SeqDecoderStep(nn.Module):
    """A :class:`~rnnkit.models.seq2seq.Seq2Seq`'s decoder for export, step by step:
    ``forward(tokens (B, T) int64, memory, source_lengths, state0, ...) -> (log_probs (B, T,
    V), next_state0, ...)``. The state carries the decoder from call to call (the encoder's
    state before the first token, BOS); each call attends to ``memory`` within each source's
    length. ``log_probs`` are those decoding ranks by (:meth:`Seq2Seq.output_log_probs`: PAD
    and BOS never come out), so the argmax of the last step is greedy decoding's next
    token."""

    def __init__(self, net: nn.Module, state_is_tuple: bool) -> None:
        super().__init__()
        self.net, self.state_is_tuple = net, state_is_tuple

    def forward(self, tokens: Tensor, memory: Tensor, source_lengths: Tensor,
                *state: Tensor) -> tuple[Tensor, ...]:
        mask = valid_steps(source_lengths, memory.shape[1], memory.device)
        logits, next_state = self.net.decode(
            tokens, state_from_tensors(list(state), self.state_is_tuple), memory, mask)
        return (self.net.output_log_probs(logits), *state_tensors(next_state))


def seq2seq_paths(path: str | Path) -> tuple[Path, Path]:
    """The encoder's and the decoder's files of an export to ``path``: ``NAME-encoder.EXT``
    and ``NAME-decoder.EXT`` beside it."""
    path = Path(path)
    return (path.with_name(f"{path.stem}-encoder{path.suffix}"),
            path.with_name(f"{path.stem}-decoder{path.suffix}"))


def export_seq2seq(net: nn.Module, source: Tensor, source_lengths: Tensor, path: str | Path,
                   file_format: str) -> dict[str, list[str]]:
    """Write a :class:`~rnnkit.models.seq2seq.Seq2Seq` in evaluation mode as two files of
    ``file_format`` ("onnx" or "pt2"), :func:`seq2seq_paths` of ``path``: the encoder
    (:class:`Seq2SeqEncoder`) and the decoder step (:class:`Seq2SeqDecoderStep`), for any
    batch size, source length and number of tokens per call, given a batch of ``source`` (B,
    S) and ``source_lengths`` (B,), B and S at least 2. Returns the input names of each file.
    A Clockwork decoder (whose step depends on its position) is refused."""
    if file_format not in ("onnx", "pt2"):
        raise ValueError(f"file_format: expected 'onnx' or 'pt2', got {file_format!r}")
    if isinstance(net.decoder, ClockworkRNN):
        raise ValueError("cell: a Clockwork decoder's step depends on its position in the "
                         "output, which the decoder step does not take; it has no export path")
    net.eval()
    source, source_lengths = source.clone(), source_lengths.clone()  # not views: see above
    encoder_path, decoder_path = seq2seq_paths(path)
    with torch.no_grad():
        memory, *state = Seq2SeqEncoder(net)(source, source_lengths)
    is_tuple = len(state) > 1
    state_names = [f"state{index}" for index in range(len(state))]
    tokens = torch.full((source.shape[0], 2), BOS, dtype=torch.long)
    batch = {0: "batch"}
    files = {
        "encoder": (Seq2SeqEncoder(net), (source, source_lengths), encoder_path,
                    ["source", "source_lengths"], ["memory", *state_names],
                    [{0: "batch", 1: "source_steps"}, batch]),
        "decoder": (Seq2SeqDecoderStep(net, is_tuple),
                    (tokens, memory, source_lengths, *state), decoder_path,
                    ["tokens", "memory", "source_lengths", *state_names],
                    ["log_probs", *(f"next_{name}" for name in state_names)],
                    [{0: "batch", 1: "steps"}, {0: "batch", 1: "source_steps"}, batch,
                     *([{1: "batch"}] * len(state))]),
    }
    names = {}
    for part, (module, inputs, file, input_names, output_names, dims) in files.items():
        module.eval()
        if file_format == "onnx":
            to_onnx(module, inputs, file, dims, input_names=input_names,
                    output_names=output_names)
        else:
            to_pt2(module, inputs, file, dims)
        names[part] = input_names
    return names
