"""The reference engine: a plain PyTorch loop over time, for any cell on any device.

It is the ground truth the faster engines are tested against. The input projection of all steps is
one matrix product; each step then adds the recurrent part.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch._higher_order_ops.scan import scan

from rnnkit.cells.base import CellMath, Params, State, Traces


def step_mask(lengths: Tensor | None, steps: int, device: torch.device) -> Tensor | None:
    """(T, B, 1) boolean mask, True where step t lies inside sequence b; ``None`` if no lengths."""
    if lengths is None:
        return None
    time = torch.arange(steps, device=device).unsqueeze(1)
    return (time < lengths.to(device).unsqueeze(0)).unsqueeze(-1)


Zoneout = tuple[Tensor | float, ...]
"""Keep weights of zoneout for the states h and c (see ``RecurrentLayer.zoneout_hidden``):
each a (T, B, size) 0/1 mask, a rate, or 0.0 for none."""


def zoned(new_state: State, state: State, zoneout: Zoneout, t: int) -> State:
    """``new_state`` after zoneout at step ``t``: each state s_t = k s_{t-1} + (1 - k) s~_t
    with its keep weight k."""
    result = list(new_state)
    for index, keep in enumerate(zoneout):
        if isinstance(keep, Tensor):
            keep = keep[t]
        elif not keep:
            continue
        result[index] = torch.lerp(new_state[index], state[index], keep)
    return tuple(result)


def run_reference(
    cell_math: CellMath,
    params: Params,
    inputs: Tensor,
    state: State,
    lengths: Tensor | None,
    lower_cells: Tensor | None,
    want_traces: bool,
    start_step: int = 0,
    zoneout: Zoneout | None = None,
) -> tuple[Tensor, State, Traces | None]:
    """Run one cell over a sequence, one direction.

    Args:
        inputs: (T, B, I); sequence b occupies steps ``0 .. lengths[b] - 1``.
        state: initial state tensors, each (B, size).
        lengths: (B,) int64 or ``None`` when every sequence has T steps.
        lower_cells: (T, B, H) cell states of the layer below, for cells that read them.
        start_step: time index of the first step (the cell sees t = start_step, ...).
        zoneout: keep weights for h and c (see :data:`Zoneout`), or None; the traces ``h``
            and ``c`` are then the states after zoneout.

    Returns:
        outputs (T, B, output_size) with zeros after each sequence's end, the state at each
        sequence's last step, and (if asked) traces: name -> (T, B, size), zero after the end.
    """
    params = cell_math.prepare(params)
    projected = cell_math.project_input(params, inputs)
    steps = inputs.shape[0]
    mask = step_mask(lengths, steps, inputs.device)
    outputs: list[Tensor] = []
    trace_steps: dict[str, list[Tensor]] = {}
    for t in range(steps):
        lower = None if lower_cells is None else lower_cells[t]
        new_state, traces = cell_math.step(params, projected[t], state, start_step + t, lower,
                                              want_traces)
        if zoneout is not None:
            new_state = zoned(new_state, state, zoneout, t)
            if traces is not None:
                traces.update({name: value for name, value in zip(("h", "c"), new_state)
                               if name in traces})
        if mask is not None:
            inside = mask[t]
            new_state = tuple(torch.where(inside, new, old) for new, old in zip(new_state, state))
            outputs.append(new_state[0] * inside)
            if traces is not None:
                traces = {name: value * inside for name, value in traces.items()}
        else:
            outputs.append(new_state[0])
        if traces is not None:
            for name, value in traces.items():
                trace_steps.setdefault(name, []).append(value)
        state = new_state
    stacked = {name: torch.stack(values) for name, values in trace_steps.items()}
    return torch.stack(outputs), state, (stacked if want_traces else None)


def run_loop(
    cell_math: CellMath,
    params: Params,
    inputs: Tensor,
    state: State,
    lengths: Tensor | None,
    lower_cells: Tensor | None,
    want_traces: bool,
    start_step: int = 0,
    zoneout: Zoneout | None = None,
) -> tuple[Tensor, State, Traces | None]:
    """:func:`run_reference` with the loop over time in torch's ``scan`` operator: one graph
    for any number of steps, which ``torch.export`` keeps with a dynamic sequence length and
    the ONNX exporter writes as an ONNX ``Scan`` of standard operators. Same contract as
    :func:`run_reference`; the step's ``t`` is a 0-d int64 tensor."""
    params = cell_math.prepare(params)
    steps = inputs.shape[0]
    xs: dict[str, Tensor] = {
        "projected": cell_math.project_input(params, inputs),
        "time": torch.arange(steps, device=inputs.device) + start_step,
    }
    mask = step_mask(lengths, steps, inputs.device)
    if mask is not None:
        xs["inside"] = mask
    if lower_cells is not None:
        xs["lower"] = lower_cells
    keep = tuple(zoneout or ())
    xs.update({f"keep{index}": k for index, k in enumerate(keep) if isinstance(k, Tensor)})
    trace_names = cell_math.trace_names if want_traces else ()

    def step(carry: State, x: dict[str, Tensor]) -> tuple[State, tuple[Tensor, ...]]:
        new_state, traces = cell_math.step(params, x["projected"], carry, x["time"],
                                           x.get("lower"), want_traces)
        if keep:
            new_state = zoned(new_state, carry, tuple(
                x[f"keep{index}"].unsqueeze(0) if isinstance(k, Tensor) else k
                for index, k in enumerate(keep)), 0)
            if traces is not None:
                traces.update({name: value for name, value in zip(("h", "c"), new_state)
                               if name in traces})
        recorded = [new_state[0]] + [traces[name] for name in trace_names]
        if "inside" in x:
            inside = x["inside"]
            new_state = tuple(torch.where(inside, new, old) for new, old in zip(new_state, carry))
            recorded = [value * inside for value in recorded]
        # scan's outputs may alias neither its carry nor each other
        return tuple(new_state), tuple(value.clone() for value in recorded)

    # copies, never views: under torch.export scan compiles ``step`` once per process and
    # guards on the inputs' bases when they are views; a later export whose inputs are not
    # views then fails evaluating that guard (torch 2.13: "'NoneType' object has no attribute
    # 'size'", e.g. a seq2seq run exported as ONNX, then as pt2)
    xs = {name: value.clone() for name, value in xs.items()}
    final, recorded = scan(step, tuple(state), xs)
    traces = dict(zip(trace_names, recorded[1:])) if want_traces else None
    return recorded[0], tuple(final), traces
