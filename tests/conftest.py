"""Shared fixtures: deterministic seeds, small helpers for comparing layers, tiny corpora."""

import random
import warnings

import pytest
import torch

from rnnkit.engine import fused


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture
def one_thread():
    """One torch thread while the test runs: training results that do not depend on how the
    work splits between threads, and no oversubscription when tests run beside each other."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def fused_extension():
    """The fused kernels (built on first use); the test is skipped where they cannot be built."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        extension = fused.load_extension()
    if extension is None:
        pytest.skip("the fused extension cannot be built here (no C++ compiler or ninja)")
    return extension


def state_tensors(state):
    """A layer's state as a tuple of tensors, whatever the cell."""
    return (state,) if isinstance(state, torch.Tensor) else tuple(state)


def gradients(module, *tensors):
    """Gradients of the module's parameters and of the given tensors, by parameter name."""
    found = {name: p.grad.clone() for name, p in module.named_parameters() if p.grad is not None}
    for index, tensor in enumerate(tensors):
        found[f"input{index}"] = tensor.grad.clone()
    return found


def write_word_corpus(path, words, seed, words_per_line, length=1200):
    """Write a ``length``-character text of random lines of ``words`` to ``path``; return it."""
    rng = random.Random(seed)
    text = ""
    while len(text) < length:
        text += " ".join(rng.choice(words) for _ in range(words_per_line)) + ".\n"
    path.write_text(text[:length])
    return path
