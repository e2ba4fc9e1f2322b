"""Every input form a layer accepts, turned into one time-major form and back.

A layer takes padded (T, B, I) or batch-first (B, T, I) tensors, unbatched (T, I) ones, a
``PackedSequence``, ragged batches with ``lengths=``, or token ids with a table of projected
inputs (``tokens=``). :func:`read_sequence` checks the input and brings it to (T, B, ...) with
the lengths apart; :func:`restore_layout` gives the outputs, states and traces the input's form
again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from rnnkit.cells.base import State, Traces
from rnnkit.checks import check_input_tensor, check_lengths
from rnnkit.engine.reference import step_mask


@dataclass
class SequenceInput:
    """A layer's input in time-major form.

    Attributes:
        inputs: (T, B, input_size), padding zeroed; with ``tokens``, the table (V, rows) of
            projected inputs instead.
        tokens: (T, B) int64 token ids, or ``None``.
        lengths: (B,) int64 CPU tensor, or ``None`` when every sequence has T steps.
        batched: the input had a batch dimension.
        packed: the input ``PackedSequence``, to pack the outputs alike, or ``None``.
    """

    inputs: Tensor
    tokens: Tensor | None
    lengths: Tensor | None
    batched: bool
    packed: PackedSequence | None

    @property
    def steps(self) -> int:
        return (self.tokens if self.tokens is not None else self.inputs).shape[0]

    @property
    def batch(self) -> int:
        return (self.tokens if self.tokens is not None else self.inputs).shape[1]


def read_sequence(
    input: object,
    lengths: Tensor | Sequence[int] | None,
    tokens: object,
    *,
    weight: Tensor,
    input_size: int,
    batch_first: bool,
    bidirectional: bool,
) -> SequenceInput:
    """Check a layer's ``input`` (with ``lengths`` and ``tokens`` as ``forward`` takes them)
    against its first input weight ``weight`` and bring it to time-major form."""
    packed = input if isinstance(input, PackedSequence) else None
    if tokens is not None:
        table, tokens, batched = _read_tokens(input, tokens, lengths, weight, batch_first,
                                              bidirectional)
        sequence = SequenceInput(table, tokens, None, batched, None)
    elif packed is not None:
        if lengths is not None:
            raise ValueError("lengths: must be None for PackedSequence input, which carries "
                             "its own lengths")
        check_input_tensor(packed.data, weight, ranks=(2,), what="(sum of lengths, features)")
        inputs, lengths = pad_packed_sequence(packed)
        sequence = SequenceInput(inputs, None, lengths, True, packed)
    else:
        check_input_tensor(input, weight, ranks=(2, 3),
                           what="(T, B, input_size), (B, T, input_size) with batch_first, or "
                                "unbatched (T, input_size)")
        batched = input.dim() == 3
        if not batched and lengths is not None:
            raise ValueError(f"lengths: only for batched (3-D) input, got unbatched input of "
                             f"shape {tuple(input.shape)}, which is used whole")
        if not batched:
            inputs = input.unsqueeze(1)
        else:
            inputs = input.transpose(0, 1) if batch_first else input
        sequence = SequenceInput(inputs, None, lengths, batched, None)
    if tokens is None and sequence.inputs.shape[-1] != input_size:
        shape = tuple(input.shape if packed is None else packed.data.shape)
        raise ValueError(f"input: expected feature size input_size={input_size}, got shape "
                         f"{shape}")
    steps = sequence.steps
    if steps == 0:
        raise ValueError("input: expected at least one time step, got 0")
    if sequence.lengths is not None:
        # Under torch.compile and torch.export the values of lengths are not known (checking
        # them would stop the graph), and lengths that are all T take the ragged path too.
        tracing = torch.compiler.is_compiling()
        sequence.lengths = check_lengths(sequence.lengths, sequence.batch, steps,
                                         check_values=not tracing)
        if not tracing and bool((sequence.lengths == steps).all()):
            sequence.lengths = None
        else:
            # Padding may hold anything (NaN for missing data): zero it so that nothing, not
            # even a NaN times a zero mask, reaches the outputs or the gradients.
            mask = step_mask(sequence.lengths, steps, sequence.inputs.device)
            sequence.inputs = sequence.inputs.masked_fill(~mask, 0)
    return sequence


def _read_tokens(table: object, tokens: object, lengths: object, weight: Tensor,
                 batch_first: bool, bidirectional: bool) -> tuple[Tensor, Tensor, bool]:
    """Check a table of projected inputs and the token ids that index it; returns the table,
    the ids as (T, B) and whether the call is batched."""
    rows = weight.shape[0]
    check_input_tensor(table, weight, ranks=(2,),
                       what=f"a table (V, {rows}) of projected inputs, given tokens")
    if table.shape[1] != rows:
        raise ValueError(f"input: expected a table of {rows} columns (the rows of "
                         f"weight_ih_l0), got shape {tuple(table.shape)}")
    if not isinstance(tokens, Tensor):
        raise TypeError(f"tokens: expected an int64 torch.Tensor, got {type(tokens).__name__}")
    if tokens.dtype != torch.int64 or tokens.dim() not in (1, 2):
        raise ValueError(f"tokens: expected an int64 tensor (T, B), (B, T) with batch_first "
                         f"or (T,), got dtype {tokens.dtype} and shape {tuple(tokens.shape)}")
    if tokens.device != table.device:
        raise ValueError(f"tokens: expected device {table.device}, got {tokens.device}")
    if lengths is not None or bidirectional:
        raise ValueError("tokens: only for a single-direction layer without lengths")
    batched = tokens.dim() == 2
    if not batched:
        tokens = tokens.unsqueeze(1)
    elif batch_first:
        tokens = tokens.t()
    if (not torch.compiler.is_compiling() and tokens.numel()
            and not (0 <= int(tokens.min()) and int(tokens.max()) < table.shape[0])):
        raise ValueError(f"tokens: expected ids in [0, {table.shape[0]}) (the table's rows), "
                         f"got values in [{int(tokens.min())}, {int(tokens.max())}]")
    return table, tokens.contiguous(), batched


def restore_layout(
    sequence: SequenceInput, outputs: Tensor, final: State, traces: list[Traces] | None,
    batch_first: bool,
) -> tuple[Tensor | PackedSequence, State, list[Traces] | None]:
    """Outputs (T, B, F), final states (L*D, B, size) and traces (T, B, size) in the layout of
    the input that ``sequence`` came from."""
    if sequence.packed is not None:
        output = _repack(outputs, sequence.packed, sequence.lengths)
    elif not sequence.batched:
        output = outputs.squeeze(1)
    else:
        output = outputs.transpose(0, 1) if batch_first else outputs
    if not sequence.batched:
        final = tuple(s.squeeze(1) for s in final)
        traces = traces and [{k: v.squeeze(1) for k, v in t.items()} for t in traces]
    elif batch_first:
        traces = traces and [{k: v.transpose(0, 1) for k, v in t.items()} for t in traces]
    return output, final, traces


def reverse_padded(sequence: Tensor, lengths: Tensor | None) -> Tensor:
    """Reverse each sequence within its own length: (T, B, ...) -> (T, B, ...).

    Steps after a sequence's end stay where they are, so applying it twice is the identity.
    """
    if lengths is None:
        return sequence.flip(0)
    steps = sequence.shape[0]
    time = torch.arange(steps, device=sequence.device).unsqueeze(1)
    ends = lengths.to(sequence.device).unsqueeze(0)
    index = torch.where(time < ends, ends - 1 - time, time)
    index = index.view(steps, -1, *([1] * (sequence.dim() - 2))).expand_as(sequence)
    return sequence.gather(0, index)


def _repack(outputs: Tensor, packed: PackedSequence, lengths: Tensor | None) -> PackedSequence:
    """Pack padded (T, B, F) outputs in the batch order of the input ``packed``."""
    if packed.sorted_indices is None:
        order = torch.arange(outputs.shape[1], device=outputs.device)
    else:
        order = packed.sorted_indices.to(outputs.device)
    if lengths is None:
        lengths = torch.full((outputs.shape[1],), outputs.shape[0], dtype=torch.int64)
    repacked = pack_padded_sequence(outputs.index_select(1, order),
                                    lengths.index_select(0, order.cpu()), enforce_sorted=True)
    return PackedSequence(repacked.data, repacked.batch_sizes, packed.sorted_indices,
                          packed.unsorted_indices)
