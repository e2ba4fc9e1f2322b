"""``rnnkit train --compile``: the model's training step through ``torch.compile``, and the
seconds spent compiling, which the trainer leaves out of the time limit and the speed.

The layers run under ``torch.compile`` on the fused kernels as custom operators (see
:mod:`rnnkit.engine.fused`), so a compiled model computes what the eager one does; the first
step compiles for its sizes, a later step with other sizes once more with them dynamic
(torch's automatic dynamic shapes), and the backward pass when it first runs.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:
    from torch._dynamo.callback import CallbackArgs

BACKEND = "inductor"
"""torch.compile's backend for training (tests may take "aot_eager", which traces the same
graphs and autograd without generating code)."""

_seconds = 0.0
_began: float | None = None


def _start(args: CallbackArgs) -> None:
    global _began
    _began = time.perf_counter()


def _end(args: CallbackArgs) -> None:
    global _began, _seconds
    if _began is not None:
        _seconds += time.perf_counter() - _began
        _began = None


def compile_seconds() -> float:
    """Seconds ``torch.compile`` has spent compiling in this process (graphs, recompiles and
    lazily compiled backward passes) since the first :func:`compile_model`; torch reports the
    outermost compilation only, so nested ones are not counted twice."""
    return _seconds


def compile_model(model: nn.Module) -> nn.Module:
    """``torch.compile(model)`` (Inductor, dynamic shapes after the first recompile), its
    compilation time counted by :func:`compile_seconds`. The compiled module shares
    ``model``'s parameters: checkpoints and evaluation keep using ``model``."""
    from torch._dynamo.callback import callback_handler  # not at import: seconds of loading

    if _start not in callback_handler.start_callbacks:  # torch._dynamo.reset() removes them
        callback_handler.register_start_callback(_start)
        callback_handler.register_end_callback(_end)
    return torch.compile(model, backend=BACKEND)
