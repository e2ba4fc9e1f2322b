"""Shared fixtures: deterministic seeds and small helpers for comparing layers."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def state_tensors(state):
    """A layer's state as a tuple of tensors, whatever the cell."""
    return (state,) if isinstance(state, torch.Tensor) else tuple(state)


def gradients(module, *tensors):
    """Gradients of the module's parameters and of the given tensors, by parameter name."""
    found = {name: p.grad.clone() for name, p in module.named_parameters() if p.grad is not None}
    for index, tensor in enumerate(tensors):
        found[f"input{index}"] = tensor.grad.clone()
    return found
