"""Shared fixtures: deterministic seeds, small helpers for comparing layers, tiny corpora."""

import os
import random
import warnings

import pytest
import torch

from rnnkit.cli import main
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


def in_ci() -> bool:
    """Whether the tests run in CI (``CI`` set, as CI services do), where a C++ compiler is."""
    return os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


@pytest.fixture
def cli(capsys):
    """``cli(*argv)`` runs the command line in this process and gives (exit code, stdout,
    stderr); arguments may be paths or numbers."""

    def run(*argv):
        try:
            code = main([str(arg) for arg in argv])
        except SystemExit as exit:
            code = exit.code
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture(scope="module")
def fused_extension():
    """The fused kernels (built on first use). Where they are not built the test FAILS if this
    machine has the tools to build them (a C++ compiler and ninja) or is CI: a broken build
    must not pass as skipped tests and as "auto" quietly running the reference loop. It is
    skipped only where no compiler is found, outside CI."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        extension = fused.load_extension()
    if extension is None:
        if fused.can_build() or in_ci():
            pytest.fail(f"the fused kernels are not built although this machine can build "
                        f"them: {fused.build_problem()}", pytrace=False)
        pytest.skip(f"the fused kernels cannot be built here: {fused.build_problem()}")
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
