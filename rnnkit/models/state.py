"""Recurrent state handled generically: a tensor (GRU, RNN, ...) or a tuple (LSTM: (h, c)).

Every tensor of a state has shape (num_layers * num_directions, batch, size), so batch rows
live on dimension 1. These helpers work for any cell without knowing which it is.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torch import Tensor

State = Tensor | tuple[Tensor, ...]
"""A recurrent state: a tensor (L*D, B, H) or a tuple of such tensors."""


def map_state(state: State, fn: Callable[[Tensor], Tensor]) -> State:
    """Apply ``fn`` to every tensor of ``state``, keeping its structure."""
    if isinstance(state, Tensor):
        return fn(state)
    return tuple(fn(part) for part in state)


def detach_state(state: State | None) -> State | None:
    """Cut the autograd history of a state carried from one BPTT chunk to the next."""
    return None if state is None else map_state(state, Tensor.detach)


def state_tensors(state: State) -> list[Tensor]:
    """The tensors of a state as a list (one element for a single-tensor state)."""
    return [state] if isinstance(state, Tensor) else list(state)


def state_from_tensors(tensors: Sequence[Tensor], is_tuple: bool) -> State:
    """Rebuild a state from :func:`state_tensors`' list; ``is_tuple`` says which form it had."""
    if is_tuple:
        return tuple(tensors)
    if len(tensors) != 1:
        raise ValueError(f"a single-tensor state needs exactly one tensor, got {len(tensors)}")
    return tensors[0]


def select_rows(state: State, start: int, stop: int) -> State:
    """Batch rows ``start:stop`` of every tensor of ``state`` (dimension 1)."""
    return map_state(state, lambda part: part[:, start:stop])
