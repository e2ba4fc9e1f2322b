"""Validation of user input at the public call: one clear error naming the argument, what was
expected and what came, instead of an opaque failure deep inside."""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor


def check_size(name: str, value: object, minimum: int = 1) -> None:
    """Raise unless ``value`` is an int >= ``minimum`` (bool excluded)."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name}: expected an int, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {value}")


def check_probability(name: str, value: object, below_one: bool = False) -> float:
    """``value`` as a float if it is a probability in [0, 1] ([0, 1) with ``below_one``), else
    raise naming ``name`` (bool excluded)."""
    expected = f"a probability in [0, {'1)' if below_one else '1]'}"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name}: expected {expected}, got {value!r}")
    if not 0 <= value <= 1 or (below_one and value == 1):
        raise ValueError(f"{name}: expected {expected}, got {value!r}")
    return float(value)


def check_input_tensor(input: object, weight: Tensor, ranks: tuple[int, ...], what: str) -> None:
    """Raise unless ``input`` is a floating tensor of an allowed rank, dtype and device."""
    if not isinstance(input, Tensor):
        raise TypeError(f"input: expected a torch.Tensor {what}, got {type(input).__name__}")
    if not input.is_floating_point():
        raise TypeError(f"input: expected a floating-point tensor, got dtype {input.dtype}")
    if input.dim() not in ranks:
        raise ValueError(f"input: expected shape {what}, got {input.dim()}-D shape "
                         f"{tuple(input.shape)}")
    if input.dtype != weight.dtype:
        raise TypeError(f"input: dtype {input.dtype} does not match the parameters' dtype "
                        f"{weight.dtype}; convert one of them (e.g. layer.to({input.dtype}))")
    if input.device != weight.device:
        raise ValueError(f"input: on device {input.device} but the parameters are on "
                         f"{weight.device}")


def check_state(
    hx: object,
    names: tuple[str, ...],
    sizes: tuple[int, ...],
    leading: tuple[int, ...],
    batch: int,
    batched: bool,
    ref: Tensor,
    label: str | None = None,
) -> tuple[Tensor, ...]:
    """Validate a user state: one tensor, or a tuple with one tensor per name.

    Each tensor must have shape ``leading + (batch, size)`` (``leading + (size,)`` if unbatched)
    and the dtype and device of ``ref``.
    """
    if label is None:
        label = "hx" if len(names) == 1 else f"hx=({', '.join(names)})"
    if len(names) == 1:
        parts = (hx,)
    elif isinstance(hx, (tuple, list)) and len(hx) == len(names):
        parts = tuple(hx)
    else:
        raise TypeError(f"{label}: expected a tuple of {len(names)} tensors, got "
                        f"{type(hx).__name__}" + (f" of length {len(hx)}"
                                                  if isinstance(hx, (tuple, list)) else ""))
    checked = []
    for name, size, part in zip(names, sizes, parts):
        expected = leading + ((batch, size) if batched else (size,))
        if not isinstance(part, Tensor):
            raise TypeError(f"{label}: {name} must be a tensor of shape {expected}, got "
                            f"{type(part).__name__}")
        if tuple(part.shape) != expected:
            raise ValueError(f"{label}: {name} must have shape {expected}, got "
                             f"{tuple(part.shape)}")
        if part.dtype != ref.dtype:
            raise TypeError(f"{label}: {name} has dtype {part.dtype}, expected {ref.dtype} "
                            f"like the input")
        if part.device != ref.device:
            raise ValueError(f"{label}: {name} is on {part.device}, expected {ref.device} "
                             f"like the input")
        checked.append(part)
    return tuple(checked)


def check_lengths(lengths: object, batch: int, steps: int, check_values: bool = True) -> Tensor:
    """Validate ``lengths``: ``batch`` integers in [1, steps] (their range only with
    ``check_values``); returns a CPU int64 tensor."""
    if isinstance(lengths, Tensor):
        if lengths.is_floating_point() or lengths.is_complex() or lengths.dtype == torch.bool:
            raise TypeError(f"lengths: expected integers, got a tensor of dtype {lengths.dtype}")
        if lengths.dim() != 1:
            raise ValueError(f"lengths: expected a 1-D tensor of {batch} lengths, got shape "
                             f"{tuple(lengths.shape)}")
        values = lengths.detach().to("cpu", torch.int64)
    elif isinstance(lengths, np.ndarray):
        if lengths.dtype.kind not in "iu":
            raise TypeError(f"lengths: expected integers, got an array of dtype {lengths.dtype}")
        return check_lengths(torch.from_numpy(lengths), batch, steps, check_values)
    elif isinstance(lengths, Sequence) and not isinstance(lengths, str):
        bad = [v for v in lengths if not isinstance(v, numbers.Integral) or isinstance(v, bool)]
        if bad:
            raise TypeError(f"lengths: expected integers, got {bad[0]!r}")
        values = torch.tensor([int(v) for v in lengths], dtype=torch.int64)
    else:
        raise TypeError(f"lengths: expected a sequence or 1-D tensor of ints, got "
                        f"{type(lengths).__name__}")
    if values.numel() != batch:
        raise ValueError(f"lengths: expected {batch} lengths (one per sequence), got "
                         f"{values.numel()}")
    if check_values and batch and (values.min() < 1 or values.max() > steps):
        raise ValueError(f"lengths: each length must be in [1, {steps}] (the padded length), "
                         f"got min {int(values.min())} and max {int(values.max())}")
    return values
