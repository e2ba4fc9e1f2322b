"""The one place that decides which engine runs a layer's cells.

An engine is asked for per layer (``engine=``), else by the process-wide default: the
``RNNKIT_ENGINE`` environment variable, read once on first use, or :func:`set_default_engine`.
``"auto"`` picks the fastest engine that runs the cells on the given tensors; any other name is
honoured or refused with an error that says why — never silently replaced by another engine.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
from torch import Tensor

from rnnkit.cells.base import CellMath
from rnnkit.engine import fused, onnx_ops

ENGINES = ("auto", "native", "fused", "scan", "reference")

FUSED_FIRST = ("RNN_TANH", "RNN_RELU", "GRU")
"""torch modes of the cells that ``auto`` runs on the fused kernels (where they run) rather than
on torch's own: on the CPU torch has oneDNN kernels for the LSTM only, and the fused Elman RNN
and GRU are faster than torch's (see the performance page of the docs)."""

_default: str | None = None


def check_engine(name: object, source: str = "engine") -> str:
    """``name`` if it is one of :data:`ENGINES`, else a ValueError naming ``source``."""
    if name not in ENGINES:
        raise ValueError(f"{source}: expected one of {ENGINES}, got {name!r}")
    return name


def default_engine() -> str:
    """The engine of layers built without ``engine=``: what :func:`set_default_engine` set,
    else ``RNNKIT_ENGINE`` (read on the first call only), else ``"auto"``."""
    global _default
    if _default is None:
        _default = check_engine(os.environ.get("RNNKIT_ENGINE", "auto"), "RNNKIT_ENGINE")
    return _default


def set_default_engine(name: str | None) -> str:
    """Set the engine of layers built without ``engine=`` for this process (``None``: back to
    ``RNNKIT_ENGINE`` or ``"auto"``); returns the previous default.

    Example::

        >>> previous = rnnkit.set_default_engine("reference")
        >>> _ = rnnkit.set_default_engine(previous)
    """
    global _default
    previous = default_engine()
    _default = None if name is None else check_engine(name)
    return previous


def choose_engine(
    maths: Sequence[CellMath],
    requested: str | None,
    inputs: Tensor | None,
    *,
    traces: bool = False,
    tokens: bool = False,
    zoneout: bool = False,
    layer_name: str = "layer",
) -> str:
    """The engine that runs a stack of cells (``maths``, one per layer) on ``inputs``.

    Args:
        requested: the layer's ``engine=`` or ``None`` for :func:`default_engine`.
        inputs: a tensor with the call's device and dtype (the autocast state counts too), or
            ``None`` to check only what the cells allow (when a layer is built).
        traces: the call asks for per-step traces (torch's kernels have none).
        tokens: the first layer reads rows of a table of projected inputs by token id.
        zoneout: the layer applies zoneout (the fused LSTM kernels and the reference loop do).

    Returns:
        ``"native"``, ``"fused"``, ``"scan"`` or ``"reference"``; ``"auto"`` gives ``"loop"``
        (:func:`rnnkit.engine.reference.run_loop`) under ``torch.export`` (``"onnx"``, ONNX's
        own operators, :mod:`rnnkit.engine.onnx_ops`, where they compute the cells and an
        ONNX export asks for them) and where
        ``torch.compile`` has neither the kernels nor a scan, and the fused kernels under
        ``torch.compile`` where they run (torch's own cells included). A requested engine that
        cannot run these cells on these tensors raises ValueError saying why.
    """
    source = "engine" if requested else "RNNKIT_ENGINE"
    name = requested or default_engine()
    mode = maths[0].native_mode
    native_ok = (mode is not None and all(m.native_mode == mode for m in maths)
                 and not (traces or tokens or zoneout))
    fused_ok = all(fused.fused_supports(m, zoneout=zoneout, projected=tokens) for m in maths)
    scan_ok = all(m.parallel_scan for m in maths) and not zoneout
    # "auto" under torch.export never runs the kernels, so it does not ask for them.
    fused_runs = (inputs is not None and fused_ok
                  and not (name == "auto" and torch.compiler.is_exporting())
                  and fused.fused_runs(inputs))
    if name == "native" and not native_ok:
        raise ValueError(f"{source}='native': {layer_name} with these options is not one of "
                         f"torch's own cells (or traces, token inputs or zoneout were asked "
                         f"for); use 'auto' or 'reference'")
    if name == "fused":
        if not fused_ok:
            raise ValueError(f"{source}='fused': no fused kernel for {layer_name} with these "
                             f"options (the kernels cover rnnkit's own cells, not a subclass "
                             f"that changes the step; zoneout only in the LSTM family; token "
                             f"inputs not for minGRU/minLSTM); use 'auto' or 'reference'")
        if inputs is not None and not fused_runs:
            raise ValueError(f"{source}='fused': the fused kernels run float32/float64 tensors "
                             f"on the CPU once built, got {inputs.dtype} on {inputs.device}"
                             + ("" if fused.load_extension() else
                                f" (they are not in use here: {fused.build_problem()})")
                             + "; use 'auto' or 'reference'")
    if name == "scan" and not scan_ok:
        raise ValueError(f"{source}='scan': {layer_name} is not linear in its state, or has "
                         f"zoneout; only MinGRU and MinLSTM without zoneout run as a parallel "
                         f"scan")
    if name != "auto":
        return name
    if torch.compiler.is_exporting():
        if onnx_ops.emitting() and onnx_ops.onnx_form(maths) and not (traces or tokens
                                                                      or zoneout):
            return "onnx"  # ONNX's own operator computes these cells (see onnx_ops)
        # One graph for any batch and length, of standard operators only (ONNX takes it too).
        return "loop"
    if torch.compiler.is_compiling():
        # The kernels are operators torch.compile sees through; torch's own cells are not
        # (it unrolls them over time, and recompiles for each length).
        return "fused" if fused_runs else ("scan" if scan_ok else "loop")
    # torch's LSTM kernel stays first (see FUSED_FIRST) but under bfloat16 autocast where the
    # CPU computes bfloat16 natively (the fused kernels train faster there) or where oneDNN has
    # no bfloat16 products at all (torch's LSTM kernel fails there; the fused ones compute in
    # float32): see fused.fused_first_under_autocast.
    if native_ok and mode not in FUSED_FIRST and not (
            fused_runs and fused.fused_first_under_autocast(inputs)):
        return "native"
    if fused_runs:
        return "fused"
    if native_ok:
        return "native"
    return "scan" if scan_ok else "reference"
