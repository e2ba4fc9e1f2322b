"""The native engine: torch's own fused RNN kernels (oneDNN on CPU, cuDNN on CUDA).

Used when every layer of a stack is exactly a torch cell (standard LSTM with optional projection,
GRU with ``reset_after=True``, Elman RNN) and no traces are asked for.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from rnnkit.cells.base import State

_FUNCTIONS = {
    "LSTM": torch.lstm,
    "GRU": torch.gru,
    "RNN_TANH": torch.rnn_tanh,
    "RNN_RELU": torch.rnn_relu,
}


def run_native(
    mode: str,
    flat_weights: list[Tensor],
    inputs: Tensor,
    state: State,
    lengths: Tensor | None,
    *,
    has_biases: bool,
    num_layers: int,
    dropout: float,
    training: bool,
    bidirectional: bool,
) -> tuple[Tensor, State]:
    """Run a whole stack with torch's kernel.

    Args:
        mode: ``"LSTM"``, ``"GRU"``, ``"RNN_TANH"`` or ``"RNN_RELU"``.
        flat_weights: per layer and direction ``w_ih, w_hh[, b_ih, b_hh][, w_hr]`` (torch's order).
        inputs: (T, B, I) padded, time-major.
        state: (h0,) or (h0, c0), each (num_layers * directions, B, size).
        lengths: (B,) int64 or ``None``.

    Returns:
        outputs (T, B, directions * H_out), zero after each sequence's end, and the final state.
    """
    function = _FUNCTIONS[mode]
    hx: Tensor | tuple[Tensor, Tensor] = (state[0], state[1]) if mode == "LSTM" else state[0]
    common = (flat_weights, has_biases, num_layers, dropout, training, bidirectional)
    if lengths is None:
        result = function(inputs, hx, *common, False)
        return result[0], tuple(result[1:])

    packed = pack_padded_sequence(inputs, lengths.cpu(), enforce_sorted=False)
    order, restore = packed.sorted_indices, packed.unsorted_indices
    if mode == "LSTM":
        hx = (hx[0].index_select(1, order), hx[1].index_select(1, order))
    else:
        hx = hx.index_select(1, order)
    result = function(packed.data, packed.batch_sizes, hx, *common)
    output = PackedSequence(result[0], packed.batch_sizes, order, restore)
    padded, _ = pad_packed_sequence(output, total_length=inputs.shape[0])
    return padded, tuple(s.index_select(1, restore) for s in result[1:])
