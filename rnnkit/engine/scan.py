"""The scan engine: a parallel scan over time for cells that are linear in their state.

For minGRU and minLSTM (Feng et al. 2024) the gates depend on x_t only, so

    h_t = a_t * h_{t-1} + b_t,    a_t in (0, 1),  b_t > 0,

and every h_t follows from cumulative sums instead of a step-by-step loop (Heinsen 2023):

    log A_t = sum_{k<=t} log a_k
    h_t = exp(log A_t) * h_0 + exp(log A_t + logcumsumexp_{k<=t}(log b_k - log A_k)).

The sums run in chunks of :data:`CHUNK` steps, carrying h across chunks, so that the terms
``log b_k - log A_k`` stay small and float32 keeps its precision on long sequences.
"""

from __future__ import annotations

import torch
from torch import Tensor

from rnnkit.cells.base import CellMath, Params, State, Traces
from rnnkit.engine.reference import step_mask

CHUNK = 128


def linear_scan(log_a: Tensor, log_b: Tensor, h0: Tensor) -> Tensor:
    """Solve h_t = a_t h_{t-1} + b_t for all t.

    Args:
        log_a, log_b: (T, B, H) logs of the coefficients.
        h0: (B, H) initial state (any sign).

    Returns:
        (T, B, H) the states h_1 .. h_T.
    """
    chunks = []
    h = h0
    for start in range(0, log_a.shape[0], CHUNK):
        log_a_chunk = torch.cumsum(log_a[start : start + CHUNK], dim=0)
        log_b_chunk = log_b[start : start + CHUNK]
        decay = torch.exp(log_a_chunk)
        summed = torch.logcumsumexp(log_b_chunk - log_a_chunk, dim=0)
        states = decay * h + torch.exp(log_a_chunk + summed)
        chunks.append(states)
        h = states[-1]
    return torch.cat(chunks)


def run_scan(
    cell_math: CellMath,
    params: Params,
    inputs: Tensor,
    state: State,
    lengths: Tensor | None,
    want_traces: bool,
) -> tuple[Tensor, State, Traces | None]:
    """Run a scan-capable cell over a sequence, one direction (same contract as the reference).

    The recurrence is causal, so padding after a sequence's end does not change its valid steps:
    the scan runs over the padded length, then outputs are zeroed after each end and the final
    state is read at each sequence's last step.
    """
    params = cell_math.prepare(params)
    projected = cell_math.project_input(params, inputs)
    log_a, log_b, traces = cell_math.scan_coefficients(projected, want_traces)
    outputs = linear_scan(log_a, log_b, state[0])
    if want_traces:
        traces["h"] = outputs
    mask = step_mask(lengths, inputs.shape[0], inputs.device)
    if mask is None:
        final = outputs[-1]
    else:
        last = (lengths.to(inputs.device) - 1).view(1, -1, 1).expand(1, -1, outputs.shape[-1])
        final = outputs.gather(0, last).squeeze(0)
        outputs = outputs * mask
        if traces is not None:
            traces = {name: value * mask for name, value in traces.items()}
    return outputs, (final,), traces
