"""The fused engine: whole sequences of the non-torch cells in C++, forward and backward.

For the LSTM family (every switch of :class:`~rnnkit.cells.lstm.LSTMMath`, and the Depth-Gated
LSTM), the GRU in both forms (Cho et al.'s and torch's), the Elman and Clockwork RNNs and
minGRU / minLSTM, one call runs a layer and direction over all steps: the input projection of all
steps is one matrix product, each step one more product into a preallocated buffer (none for
minGRU / minLSTM) and one vectorised pointwise pass, and the backward pass (written by hand,
through time) computes each weight gradient as one product over all steps. What it saves for the
backward pass (gate activations, cell states) is also where the traces come from.
Sequence-sized results of 16 MB or more come from a small per-thread pool of buffers, each handed
out again only once nothing holds it any more (``pooled_empty`` in ``csrc/recurrence.h``): fresh
memory of that size can cost more to fault in than the kernels take to fill it.

Matrix products: on processors with AVX-512F the float32 products run on rnnkit's own kernels
(``csrc/gemm.h``: weights packed once per sequence into column panels, 8 x 32 blocks of the
result in registers), because torch's MKL runs only its AVX2 code on some of those processors
(AMD's) and leaves half of each multiply-add unit idle. Elsewhere, and for float64, they are
torch's (``at::mm`` / ``addmm``), but for float32 weights of 2^20 elements or more, which are
packed once per sequence for oneDNN (through the operators torch registers for its own
compiled code): with large weights the LSTM family runs faster that way than with one
``at::mm`` per step (docs/results/benchmarks.md). ``RNNKIT_PRODUCTS=library`` (read once per
process) keeps every product on torch's libraries, for comparisons.

Under CPU autocast to bfloat16, on a CPU where oneDNN multiplies bfloat16
(:func:`onednn_multiplies_bf16`), the products take bfloat16 operands (``bf16_products`` in
``csrc/recurrence.h``; torch's products, which call oneDNN), while gates, states and saved tensors
stay float32. Where oneDNN has no bfloat16 products (AVX2 without AVX-512), the kernels compute in
float32 under that autocast.

Layers use it by default (engine "auto") for every cell but torch's LSTM (whose oneDNN kernel
it does not beat in float32), on CPU tensors of float32 or float64, for the LSTM too under
bfloat16 autocast on a CPU that computes bfloat16 natively or has no oneDNN bfloat16 products
(:func:`fused_first_under_autocast`), and when asked (``engine="fused"`` or
``RNNKIT_ENGINE=fused``); :mod:`rnnkit.engine.select` decides. The C++ sources in ``csrc/`` are
compiled by ``rnnkit build`` (the README's install command runs it), else on first use, with
``torch.utils.cpp_extension`` (a C++ compiler and ninja are needed; the result is kept in
torch's extensions directory, one directory per version of the sources; :func:`load_extension`).
A trace (``torch.compile``, ``torch.export``) never builds them. Where they cannot be built,
one warning is emitted and the reference loop (or the parallel scan) runs instead. The
backward pass is written by hand and is not itself differentiable: for second derivatives
(``create_graph=True``) choose ``engine="reference"``.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import cache
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from rnnkit.cells.base import CellMath, Params, State, Traces
from rnnkit.cells.minimal import positive
from rnnkit.engine.reference import Zoneout, step_mask

_SOURCES = ("pointwise.cpp", "gemm.cpp", "step_product.cpp", "lstm.cpp", "gru.cpp", "elman.cpp",
            "minimal.cpp", "bindings.cpp")
_DTYPES = (torch.float32, torch.float64)


_SOURCE_DIR = Path(__file__).parent / "csrc"
_CFLAGS = ("-O3", "-fopenmp", "-Wno-psabi")
_LDFLAGS = ("-fopenmp",)
_BUILT = "rnnkit.built"
"""The file a finished build leaves in its directory: the toolchain that built it."""

_outcome: list[object | None] = []
"""The kernels (or None: they cannot be built here) once this process has decided."""
_problem: list[str] = []
"""Why the kernels cannot be used, as warned (once per process)."""


def load_extension() -> object | None:
    """The compiled kernels, ``torch.ops.rnnkit_fused`` (built on the first call), or ``None``
    if they cannot be built.

    Each version of the sources (and of torch, and the compiler flags) builds in its own
    directory (:func:`build_directory`), so processes of two rnnkit versions never rebuild
    over each other. A finished build is loaded as it is, without asking ninja, unless the
    compiler found now is another than the one that built it: nothing is rebuilt but for a
    change of the sources or the toolchain (a fresh clone, a checkout that touched the
    files' times, another working directory do not rebuild). Builds are serialised by an
    ``flock`` that the kernel releases when its holder dies; whoever holds it removes
    torch's own lock file left by a killed build, which would otherwise make every later
    process wait for ever. A build says so on stderr first.

    Under tracing (``torch.compile``, ``torch.export``) nothing is built or waited for: a
    finished build is loaded, else this returns None for the trace (one warning; the trace
    runs the layers without the kernels) and the next call outside tracing builds. Where no
    C++ compiler or ninja is found, or the build fails, it returns None after one warning
    per process (:func:`build_problem` says why) and layers run on the other engines.
    """
    if _outcome:
        return _outcome[0]
    tracing = torch.compiler.is_compiling()
    started = time.monotonic()
    try:
        extension, problem = _load(build=not tracing)
    finally:
        _LOAD_SECONDS.append(time.monotonic() - started)
    if extension is None and problem is None:  # under tracing, not built yet: decide later
        _warn("rnnkit: the fused CPU kernels are not built yet, and a trace (torch.compile, "
              "torch.export) never builds them: this trace runs the layers without them; "
              "build them first with `rnnkit build` (or call the model once before tracing)")
        return None
    _outcome.append(extension)
    if problem is not None:
        _warn(problem)
    return extension


def build_problem() -> str | None:
    """Why the kernels are not in use in this process (the warning given), else None."""
    return _problem[0] if _problem else None


def _warn(message: str) -> None:
    """Warn with ``message``, the first time in this process only."""
    if _problem:
        return
    _problem.append(message)
    warnings.warn(message, RuntimeWarning, stacklevel=3)


def compiler() -> str | None:
    """The C++ compiler torch builds extensions with (``$CXX``, else ``c++``) as a path, or
    None where there is none."""
    from torch.utils.cpp_extension import get_cxx_compiler

    return shutil.which(get_cxx_compiler())


def can_build() -> bool:
    """Whether the tools to build the kernels are here: a C++ compiler and ninja."""
    from torch.utils.cpp_extension import is_ninja_available

    return compiler() is not None and is_ninja_available()


def _toolchain(path: str) -> str:
    """The compiler at ``path`` as a build records it: its real path and version line."""
    try:
        version = subprocess.run([path, "--version"], capture_output=True, text=True,
                                 timeout=60).stdout.partition("\n")[0]
    except (OSError, subprocess.SubprocessError):
        version = "?"
    return f"{os.path.realpath(path)} {version}".strip()


def build_directory() -> Path:
    """Where this version of the kernels is built: ``rnnkit_fused_<hash>`` in torch's
    extensions directory (``TORCH_EXTENSIONS_DIR``, else ``~/.cache/torch_extensions``)."""
    from torch.utils.cpp_extension import _get_build_directory

    name = f"rnnkit_fused_{_sources_digest(_SOURCE_DIR)}"
    return Path(_get_build_directory(name, verbose=False))


def _finished(build_dir: Path, toolchain: str | None) -> bool:
    """Whether ``build_dir`` holds a finished build, by ``toolchain`` if one is given (None:
    no compiler here, so any finished build will do)."""
    library = build_dir / f"{build_dir.name}.so"
    try:
        built_by = (build_dir / _BUILT).read_text()
    except OSError:
        return False
    return library.is_file() and (toolchain is None or built_by == toolchain)


def _load(build: bool) -> tuple[object | None, str | None]:
    """(the kernels, None), or (None, why they cannot be used), or (None, None) when they are
    not built and ``build`` is False (tracing)."""
    try:
        build_dir = build_directory()
        path = compiler()
        toolchain = _toolchain(path) if path is not None else None
        library = build_dir / f"{build_dir.name}.so"
        build_dir.mkdir(parents=True, exist_ok=True)
        with open(build_dir / "rnnkit.lock", "a") as lock:
            # Shared to load, exclusive to build; never waited for under tracing.
            try:
                fcntl.flock(lock, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                if not build:
                    return None, None
                print("rnnkit: waiting for another process that is compiling the fused CPU "
                      "kernels ...", file=sys.stderr, flush=True)
                fcntl.flock(lock, fcntl.LOCK_SH)
            if _finished(build_dir, toolchain):
                torch.ops.load_library(str(library))
                return torch.ops.rnnkit_fused, None
            if not build:
                return None, None
            if path is None:
                from torch.utils.cpp_extension import get_cxx_compiler

                return None, (f"rnnkit: no C++ compiler found (`{get_cxx_compiler()}` is not on "
                              "PATH), so the fused CPU kernels cannot be built: layers run on "
                              "torch's kernels where torch has the cell, else on the reference "
                              "loop, several times slower; install one (e.g. `apt install "
                              "g++`), then run `rnnkit build`")
            try:  # from shared to exclusive: other processes' loads end first
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                print("rnnkit: waiting for another process that is loading or compiling the "
                      "fused CPU kernels ...", file=sys.stderr, flush=True)
                fcntl.flock(lock, fcntl.LOCK_EX)
            if _finished(build_dir, toolchain):  # another process built it meanwhile
                torch.ops.load_library(str(library))
                return torch.ops.rnnkit_fused, None
            return _build(build_dir, toolchain), None
    except Exception as error:  # any build failure means: use the reference loop
        return None, (f"rnnkit: the fused engine could not be built ({_first_error(error)}); "
                      "using the reference loop")


def _build(build_dir: Path, toolchain: str | None) -> object:
    """Build the kernels in ``build_dir`` (holding its exclusive lock) and load them; record
    ``toolchain`` once the build is finished."""
    from torch.utils.cpp_extension import load

    (build_dir / _BUILT).unlink(missing_ok=True)
    (build_dir / "lock").unlink(missing_ok=True)  # torch's, from a killed build
    print("rnnkit: compiling the fused CPU kernels for this version (once; about two minutes "
          "on two cores) ...", file=sys.stderr, flush=True)
    load(
        name=build_dir.name,
        sources=[str(_SOURCE_DIR / source) for source in _SOURCES],
        extra_include_paths=[str(_SOURCE_DIR)],
        extra_cflags=list(_CFLAGS),
        extra_ldflags=list(_LDFLAGS),
        build_directory=str(build_dir),
        is_python_module=False,
    )
    written = build_dir / f"{_BUILT}.tmp"
    written.write_text(toolchain or "")
    written.replace(build_dir / _BUILT)
    return torch.ops.rnnkit_fused


_LOAD_SECONDS: list[float] = []
"""How long :func:`load_extension` took in this process (building, or waiting for a build)."""


def load_seconds() -> float:
    """Seconds this process has spent loading (building, or waiting for) the fused kernels:
    time a training run leaves out of its time limit and its speed."""
    return sum(_LOAD_SECONDS)


def _sources_digest(source_dir: Path) -> str:
    """12 hex digits of the SHA-256 of every source and header in ``source_dir``, torch's
    version and the compiler flags: what a build depends on besides the compiler."""
    digest = hashlib.sha256(f"{torch.__version__} {_CFLAGS} {_LDFLAGS}".encode())
    for path in sorted(source_dir.iterdir()):
        if path.suffix in (".cpp", ".h"):
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def _first_error(error: Exception) -> str:
    """The compiler's first error line if the message has one, else its first line."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()] or [""]
    errors = [line for line in lines if "error:" in line.lower()]
    return f"{type(error).__name__}: {(errors or lines)[0][:200]}"


def _kernel(cell_math: CellMath) -> str | None:
    """The kernel that runs this cell (:attr:`CellMath.fused_kernel`), with the GRU's two
    forms told apart: ``"gru"`` (Cho et al.'s) or ``"gru_after"`` (torch's, reset_after)."""
    kernel = cell_math.fused_kernel
    if kernel == "gru" and cell_math.reset_after:
        return "gru_after"
    return kernel


# Kernels that apply W_ih themselves: they cannot take inputs already projected (token tables).
_WEIGHTED_INPUT = ("mingru", "minlstm")


def fused_supports(cell_math: CellMath, zoneout: bool = False, projected: bool = False) -> bool:
    """Whether a fused kernel computes this cell (with ``zoneout``: one that applies zoneout,
    the LSTM family's; with ``projected``: one that takes inputs already multiplied by W_ih)."""
    kernel = cell_math.fused_kernel
    if kernel is None or (zoneout and kernel != "lstm"):
        return False
    return not (projected and kernel in _WEIGHTED_INPUT)


def _constant_under_compile(function):
    """``torch.compiler.assume_constant_result`` without importing ``torch._dynamo`` (seconds
    of import time for every process that loads rnnkit, most of which never compile): the
    same mark on ``function``, which torch.compile reads when it traces a call to it
    (tests/test_fused_engine.py checks that torch's decorator marks a function as this one
    does)."""
    function._dynamo_marked_constant = True
    return function


@cache
def own_products_run() -> bool:
    """Whether the kernels' float32 matrix products run on rnnkit's own kernels here
    (``csrc/gemm.h``: a CPU with AVX-512F, and ``RNNKIT_PRODUCTS`` not ``library``)."""
    extension = load_extension()
    probe = torch.ones(1, 1)
    return extension is not None and extension.own_matmul(probe, probe) is not None


@_constant_under_compile
def extension_built() -> bool:
    """Whether the kernels are built (building them on the first call outside tracing); a
    constant to torch.compile, which runs it once, while tracing: it then loads a finished
    build only (:func:`load_extension`)."""
    return load_extension() is not None


def fused_runs(inputs: Tensor) -> bool:
    """Whether the kernels take ``inputs`` (CPU, float32 or float64) and are built (building
    them on the first call)."""
    return inputs.device.type == "cpu" and inputs.dtype in _DTYPES and extension_built()


@_constant_under_compile
@cache
def onednn_multiplies_bf16() -> bool:
    """Whether torch's oneDNN multiplies bfloat16 on this CPU (it needs AVX-512 BW/VL/DQ,
    AVX-NE-CONVERT or AMX; on AVX2 alone it has no bfloat16 products)."""
    supported = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    return torch.backends.mkldnn.is_available() and supported is not None and bool(supported())


def bf16_products_wanted(inputs: Tensor) -> bool:
    """Whether kernels given ``inputs`` multiply in bfloat16: float32 inputs under CPU autocast
    to bfloat16, on a CPU where oneDNN multiplies bfloat16 (:func:`onednn_multiplies_bf16`).
    Elsewhere the kernels compute in float32 under that autocast. The gates, states and
    everything saved for the backward pass stay float32 either way."""
    return (inputs.dtype == torch.float32 and torch.is_autocast_enabled("cpu")
            and torch.get_autocast_dtype("cpu") == torch.bfloat16
            and onednn_multiplies_bf16())


@_constant_under_compile
@cache
def cpu_computes_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 in hardware (AMX or AVX512-BF16) and oneDNN does
    so here: where training under bfloat16 autocast pays off."""
    return onednn_multiplies_bf16() and any(
        getattr(torch.cpu, name, lambda: False)()
        for name in ("_is_amx_tile_supported", "_is_avx512_bf16_supported"))


def native_bf16_products_run(inputs: Tensor) -> bool:
    """Whether kernels given ``inputs`` multiply in bfloat16 on hardware made for it (building
    the kernels on the first call): under :func:`bf16_products_wanted`, on a CPU for which
    :func:`cpu_computes_bf16`."""
    return bf16_products_wanted(inputs) and fused_runs(inputs) and cpu_computes_bf16()


def fused_first_under_autocast(inputs: Tensor) -> bool:
    """Whether "auto" runs torch's own cells (the LSTM) on the fused kernels rather than on
    torch's kernel for a call with ``inputs`` (float32 under CPU bfloat16 autocast): where the
    kernels multiply in bfloat16 on hardware made for it (:func:`native_bf16_products_run`;
    there the fused LSTM trains faster than torch's oneDNN one, docs/results/benchmarks.md), and
    where oneDNN has no bfloat16 products at all (torch's LSTM kernel then fails under that
    autocast, while the fused kernels compute in float32)."""
    autocast = (inputs.dtype == torch.float32 and torch.is_autocast_enabled("cpu")
                and torch.get_autocast_dtype("cpu") == torch.bfloat16)
    return (autocast and fused_runs(inputs)
            and (not onednn_multiplies_bf16() or native_bf16_products_run(inputs)))


@contextmanager
def _products(extension, bf16: bool) -> Iterator[None]:
    """The kernels' matrix products in bfloat16 (``bf16``) or in the tensors' dtype while the
    block runs, on this thread."""
    if not bf16:
        yield
        return
    extension.set_bf16_products(True)
    try:
        yield
    finally:
        extension.set_bf16_products(False)


# The results of each family's kernel, by name (csrc/cells.h).

_RESULT_NAMES = {"lstm": ("gates", "cells", "hiddens"),
                 "gru": ("gates", "hiddens", "reset_hiddens"),
                 "gru_after": ("gates", "hiddens", "candidate_hiddens"),
                 "elman": ("hiddens",),
                 "mingru": ("gates", "outputs"),
                 "minlstm": ("gates", "outputs")}


def _result_names(family: str, names: Sequence[str]) -> tuple[str, ...]:
    """The names of the kernel's results, in the order the operator returns them."""
    result_names = _RESULT_NAMES[family]
    if "weight_hr" in names:
        result_names += ("unprojected",)
    if "weight_gr" in names:
        result_names += ("gate_states",)
    return result_names


def _forward(family: str, names: Sequence[str], tensors: Sequence[Tensor], options: tuple,
             bf16_products: bool) -> list[Tensor]:
    """One layer and direction of ``family`` over a sequence: the named inputs of csrc/cells.h
    in, its results (:func:`_result_names`) out."""
    extension = load_extension()
    # The kernels compute in the dtype of the tensors they are given (the layer checked that
    # it is the parameters'), with bfloat16 matrix products where asked.
    with torch.autocast("cpu", enabled=False), _products(extension, bf16_products):
        results = getattr(extension, f"{family}_forward")(dict(zip(names, tensors)), *options)
    return [results[name] for name in _result_names(family, names)]


def _backward(family: str, names: Sequence[str], tensors: Sequence[Tensor],
              results: Sequence[Tensor], grads: Sequence[Tensor | None],
              wanted: Sequence[bool], options: tuple, bf16_products: bool) -> list[Tensor]:
    """The gradients of the ``wanted`` inputs of :func:`_forward` (in their order), given its
    inputs, its results and the gradients of the results that reached them (``None`` where
    none did). Not itself differentiable."""
    extension = load_extension()
    result_names = _result_names(family, names)
    saved = dict(zip(names, tensors)) | dict(zip(result_names, results))
    named_grads = {name: grad.contiguous() for name, grad in zip(result_names, grads)
                   if grad is not None}
    sequence = "inputs" if "inputs" in names else "token_table"
    input_grad = wanted[names.index(sequence)]
    with torch.autocast("cpu", enabled=False), _products(extension, bf16_products):
        computed = getattr(extension, f"{family}_backward")(saved, named_grads, input_grad,
                                                            *options)
    return [computed[name] if name in computed else torch.zeros_like(tensor)
            for name, tensor, want in zip(names, tensors, wanted) if want]


class _FusedSequence(torch.autograd.Function):
    """The eager path to the kernels: one autograd node, without the operator dispatch of
    :func:`fused_forward` (which costs as much as the kernels on small layers)."""

    @staticmethod
    def forward(ctx, family: str, names: tuple[str, ...], options: tuple, bf16: bool,
                *tensors: Tensor) -> tuple[Tensor, ...]:
        results = _forward(family, names, tensors, options, bf16)
        ctx.family, ctx.names, ctx.options, ctx.bf16 = family, names, options, bf16
        ctx.save_for_backward(*tensors, *results)
        ctx.set_materialize_grads(False)
        return tuple(results)

    @staticmethod
    def backward(ctx, *grads: Tensor | None) -> tuple[Tensor | None, ...]:
        saved = ctx.saved_tensors
        count = len(ctx.names)
        wanted = ctx.needs_input_grad[4:]
        computed = iter(_backward(ctx.family, ctx.names, saved[:count], saved[count:], grads,
                                  wanted, ctx.options, ctx.bf16))
        return (None,) * 4 + tuple(next(computed) if want else None for want in wanted)


# The same as torch operators with typed schemas (torch.library), for torch.compile and
# torch.export: rnnkit::fused_forward and rnnkit::fused_backward, with fake implementations
# (the results' shapes) and the autograd formula registered. Tensor names are comma-separated;
# each family reads the options that concern it (the LSTM family: blocks .. hidden_zoneout;
# the Elman and Clockwork RNNs: relu and start_step).

def _family_options(family: str, blocks: str, coupled: bool, input_activation: bool,
                    output_activation: bool, cell_zoneout: float, hidden_zoneout: float,
                    relu: bool, start_step: int) -> tuple:
    """The options the family's kernel takes, in its order (bindings.cpp)."""
    if family == "lstm":
        return (blocks, coupled, input_activation, output_activation, cell_zoneout,
                hidden_zoneout)
    if family == "elman":
        return (relu, start_step)
    return ()


def _option_arguments(family: str, options: tuple) -> tuple:
    """The operators' option arguments from a family's options (the inverse of
    :func:`_family_options`)."""
    blocks, coupled, input_activation, output_activation = "", False, True, True
    cell_zoneout = hidden_zoneout = 0.0
    relu, start_step = False, 0
    if family == "lstm":
        blocks, coupled, input_activation, output_activation, cell_zoneout, hidden_zoneout = \
            options
    elif family == "elman":
        relu, start_step = options
    return (blocks, coupled, input_activation, output_activation, cell_zoneout, hidden_zoneout,
            relu, start_step)


@torch.library.custom_op("rnnkit::fused_forward", mutates_args=())
def fused_forward(family: str, names: str, tensors: list[Tensor], blocks: str,
                  coupled: bool, input_activation: bool, output_activation: bool,
                  cell_zoneout: float, hidden_zoneout: float, relu: bool, start_step: int,
                  bf16_products: bool) -> list[Tensor]:
    """:func:`_forward` as an operator."""
    options = _family_options(family, blocks, coupled, input_activation, output_activation,
                              cell_zoneout, hidden_zoneout, relu, start_step)
    return _forward(family, names.split(","), tensors, options, bf16_products)


@fused_forward.register_fake
def _fused_forward_fake(family, names, tensors, blocks, *options) -> list[Tensor]:
    names = names.split(",")
    named = dict(zip(names, tensors))
    hidden0 = named["hidden0"]
    steps = (named["tokens"] if "tokens" in named else named["inputs"]).shape[0]
    batch, hidden = hidden0.shape[0], hidden0.shape[1]
    if "cell0" in named:
        hidden = named["cell0"].shape[1]
    gate_blocks = {"lstm": len(blocks), "gru": 3, "gru_after": 3, "elman": 0, "mingru": 2,
                   "minlstm": 3}[family]
    sizes = {"gates": (steps, batch, gate_blocks * hidden),
             "cells": (steps + 1, batch, hidden),
             "hiddens": (steps + 1, batch, hidden0.shape[1]),
             "reset_hiddens": (steps, batch, hidden),
             "candidate_hiddens": (steps, batch, hidden),
             "outputs": (steps, batch, hidden),
             "unprojected": (steps, batch, hidden),
             "gate_states": (steps + 1, batch, named.get("gate_state0", hidden0).shape[-1])}
    return [hidden0.new_empty(sizes[name]) for name in _result_names(family, names)]


@torch.library.custom_op("rnnkit::fused_backward", mutates_args=())
def fused_backward(family: str, names: str, tensors: list[Tensor], results: list[Tensor],
                   grads: list[Tensor | None], wanted: list[bool], blocks: str, coupled: bool,
                   input_activation: bool, output_activation: bool, cell_zoneout: float,
                   hidden_zoneout: float, relu: bool, start_step: int,
                   bf16_products: bool) -> list[Tensor]:
    """:func:`_backward` as an operator."""
    options = _family_options(family, blocks, coupled, input_activation, output_activation,
                              cell_zoneout, hidden_zoneout, relu, start_step)
    return _backward(family, names.split(","), tensors, results, grads, wanted, options,
                     bf16_products)


@fused_backward.register_fake
def _fused_backward_fake(family, names, tensors, results, grads, wanted,
                         *options) -> list[Tensor]:
    return [torch.empty_like(tensor) for tensor, want in zip(tensors, wanted) if want]


def _setup_context(ctx, inputs: tuple, output: list[Tensor]) -> None:
    family, names, tensors, *options = inputs
    ctx.family, ctx.names, ctx.options, ctx.count = family, names, options, len(tensors)
    ctx.wanted = [tensor.requires_grad for tensor in tensors]
    ctx.save_for_backward(*tensors, *output)
    ctx.set_materialize_grads(False)


def _operator_backward(ctx, grads: list[Tensor | None]) -> tuple:
    saved = ctx.saved_tensors
    computed = iter(fused_backward(ctx.family, ctx.names, list(saved[:ctx.count]),
                                   list(saved[ctx.count:]), list(grads), ctx.wanted,
                                   *ctx.options))
    tensor_grads = [next(computed) if want else None for want in ctx.wanted]
    return (None, None, tensor_grads) + (None,) * len(ctx.options)


fused_forward.register_autograd(_operator_backward, setup_context=_setup_context)


def _run_kernel(family: str, options: tuple, tensors: dict[str, Tensor],
                bf16: bool) -> dict[str, Tensor]:
    """Apply the family's kernel to named tensors; returns its named results (csrc/cells.h):
    through the operator :func:`fused_forward` under torch.compile and torch.export, else
    straight (:class:`_FusedSequence`)."""
    names = tuple(tensors)
    values = [tensor.contiguous() for tensor in tensors.values()]
    if torch.compiler.is_compiling():
        results = fused_forward(family, ",".join(names), values,
                                *_option_arguments(family, options), bf16)
    else:
        results = _FusedSequence.apply(family, names, options, bf16, *values)
    return dict(zip(_result_names(family, names), results))


def _combined_bias(params: Params, rows: int, separate_rows: int = 0) -> Tensor | None:
    """b_ih + b_hh as one vector of ``rows``; b_hh (if any) covers the first rows when there
    are more, and its last ``separate_rows`` rows are left out (the kernel adds them
    elsewhere). Without ``weight_ih`` (projected inputs, which hold b_ih) it is b_hh alone."""
    bias_ih, bias_hh = params.get("bias_ih"), params.get("bias_hh")
    if "weight_ih" not in params:
        bias_ih = None
    elif bias_ih is None:
        return None
    if bias_hh is None:
        return bias_ih
    if separate_rows:
        bias_hh = bias_hh[:-separate_rows]
    bias_hh = F.pad(bias_hh, (0, rows - bias_hh.shape[0]))
    return bias_hh if bias_ih is None else bias_ih + bias_hh


# Per family: the kernel's options and named inputs beyond inputs, bias and last_step.

def _lstm_tensors(cell_math, params: Params, state: State, lower_cells: Tensor | None,
                  start_step: int) -> tuple[tuple, dict[str, Tensor]]:
    blocks = cell_math.blocks + ("d" if cell_math.uses_lower_cell else "")
    tensors = {"weight_hh": params["weight_hh"], "hidden0": state[0], "cell0": state[1]}
    renamed = {"weight_hr": "weight_hr", "weight_gr": "weight_gr", "weight_ci": "peep_input",
               "weight_cf": "peep_forget", "weight_co": "peep_output",
               "weight_cd": "depth_cell", "weight_ld": "depth_lower"}
    tensors.update({ours: params[theirs] for theirs, ours in renamed.items() if theirs in params})
    if cell_math.full_gate_recurrence:
        tensors["gate_state0"] = state[2]
    # The layer hands every layer the cells below when traces are on; only the depth gate reads
    # them.
    if cell_math.uses_lower_cell:
        tensors["lower"] = lower_cells
    options = (blocks, cell_math.coupled, cell_math.input_activation,
               cell_math.output_activation)
    return options, tensors


def _gru_tensors(cell_math, params: Params, state: State, lower_cells: Tensor | None,
                 start_step: int) -> tuple[tuple, dict[str, Tensor]]:
    tensors = {"weight_hh": params["weight_hh"], "hidden0": state[0]}
    if cell_math.reset_after and "bias_hh" in params:
        # r scales W_hn h + b_hn, so b_hn stays apart (_combined_bias leaves it out).
        tensors["candidate_bias"] = params["bias_hh"][2 * cell_math.hidden_size:]
    return (), tensors


def _elman_tensors(cell_math, params: Params, state: State, lower_cells: Tensor | None,
                   start_step: int) -> tuple[tuple, dict[str, Tensor]]:
    # The Elman RNN is a Clockwork RNN with one module of period 1.
    sizes = getattr(cell_math, "module_sizes", (cell_math.hidden_size,))
    periods = getattr(cell_math, "periods", (1,))
    begins = [0]
    for size in sizes:
        begins.append(begins[-1] + size)
    tensors = {"weight_hh": params["weight_hh"], "hidden0": state[0],
               "module_begin": torch.tensor(begins, dtype=torch.int64),
               "module_period": torch.tensor(periods, dtype=torch.int64)}
    return (cell_math.nonlinearity == "relu", start_step), tensors


def _minimal_tensors(cell_math, params: Params, state: State, lower_cells: Tensor | None,
                     start_step: int) -> tuple[tuple, dict[str, Tensor]]:
    return (), {"hidden0": state[0]}


_FAMILY_TENSORS = {"lstm": _lstm_tensors, "gru": _gru_tensors, "gru_after": _gru_tensors,
                   "elman": _elman_tensors, "mingru": _minimal_tensors,
                   "minlstm": _minimal_tensors}


def _blocks(gates: Tensor, names: str | tuple[str, ...], hidden_size: int) -> Traces:
    """(T, B, H) views of consecutive H-wide blocks of ``gates``, by name."""
    return {name: gates[..., k * hidden_size:(k + 1) * hidden_size]
            for k, name in enumerate(names)}


def _traces(family: str, cell_math, results: dict[str, Tensor], mask: Tensor | None) -> Traces:
    """The cell's traces from the kernel's results; ``mask`` (T, B, 1) zeroes padded steps of
    the traces computed here (the kernels already zero theirs)."""
    hidden_size = cell_math.hidden_size
    traces: Traces = {}
    derived = []  # traces computed here from the kernel's results
    if family == "lstm":
        blocks = cell_math.blocks + ("d" if cell_math.uses_lower_cell else "")
        traces = _blocks(results["gates"], blocks, hidden_size)
        if cell_math.coupled:
            traces["i"] = 1 - traces["f"]
            derived.append("i")
        traces["c"] = results["cells"][1:]
    elif family in ("gru", "gru_after"):
        traces = _blocks(results["gates"], "rzn", hidden_size)
    elif family == "mingru":
        traces = _blocks(results["gates"], ("z", "h_tilde"), hidden_size)
        traces["h_tilde"] = positive(traces["h_tilde"])  # the kernel keeps its pre-activation
        derived.append("h_tilde")
    elif family == "minlstm":
        # The kernel keeps the pre-activations; the normalised gates as MinLSTMMath computes
        # them, f' = sigmoid(-diff) and i' = sigmoid(diff) with diff = log i - log f.
        pre = _blocks(results["gates"], ("f", "i", "h_tilde"), hidden_size)
        diff = F.softplus(-pre["f"]) - F.softplus(-pre["i"])
        traces = {"f": torch.sigmoid(-diff), "i": torch.sigmoid(diff),
                  "h_tilde": positive(pre["h_tilde"])}
        derived.extend(traces)
    if mask is not None:
        traces.update({name: traces[name] * mask for name in derived})
    traces["h"] = _outputs(results)
    return traces


def _outputs(results: dict[str, Tensor]) -> Tensor:
    """[h_1, ..., h_T] (T, B, P): the kernel's ``outputs``, or ``hiddens`` without h_0."""
    return results["outputs"] if "outputs" in results else results["hiddens"][1:]


def _final_state(sequence: Tensor, last_step: Tensor | None, first: int = 1) -> Tensor:
    """The state at each sequence's last step from (first + T, B, size) = [s_{1 - first}, ...,
    s_T]: ``first`` is 1 for the kernels' [s_0, ..., s_T], 0 for their outputs [h_1, ...]."""
    if last_step is None:
        return sequence[-1]
    return sequence[last_step + first, torch.arange(sequence.shape[1], device=sequence.device)]


def run_fused(
    cell_math: CellMath,
    params: Params,
    inputs: Tensor,
    state: State,
    lengths: Tensor | None,
    lower_cells: Tensor | None,
    want_traces: bool,
    start_step: int = 0,
    tokens: Tensor | None = None,
    zoneout: Zoneout | None = None,
) -> tuple[Tensor, State, Traces | None]:
    """Run one cell over a sequence, one direction; same contract as ``run_reference``.

    Args:
        inputs: (T, B, I); sequence b occupies steps ``0 .. lengths[b] - 1``.
        state: initial state tensors, each (B, size).
        lengths: (B,) int64 or ``None`` when every sequence has T steps.
        lower_cells: (T, B, H) cell states of the layer below, for the Depth-Gated LSTM.
        start_step: time index of the first step (the Clockwork RNN's clock).

    Returns:
        outputs (T, B, output_size) with zeros after each sequence's end, the state at each
        sequence's last step, and (if asked) traces: name -> (T, B, size), zero after the end.
        The caller (see :func:`rnnkit.engine.select.choose_engine`) has checked that
        :func:`fused_supports` the cell and :func:`fused_runs` the inputs. ``params``
        without ``weight_ih`` mean that the inputs are already projected (W_ih x + b_ih, see
        ``CellMath.project_input``); the MinGRU and MinLSTM kernels do not take those.
        tokens: (T, B) int64 token ids, with ``inputs`` a table (V, rows) of projected inputs
        (and no ``weight_ih`` in ``params``): step t of sequence b reads row tokens[t, b]. The
        LSTM kernels gather the rows step by step; the others get the gathered sequence.
        zoneout: keep weights for h and c (see ``rnnkit.engine.reference.Zoneout``), or None;
            only the LSTM kernels apply them.
    """
    family = _kernel(cell_math)
    projected = "weight_ih" not in params  # the inputs are W_ih x + b_ih (see project_input)
    if not fused_supports(cell_math, zoneout is not None, projected):
        raise ValueError(f"no fused kernel for {type(cell_math).__name__} with these options")
    if tokens is not None and family != "lstm":  # only the LSTM kernels gather rows themselves
        inputs, tokens = F.embedding(tokens, inputs), None
    params = cell_math.prepare(params)
    steps, batch = (tokens if tokens is not None else inputs).shape[:2]
    last_step = None if lengths is None else lengths.to("cpu", torch.int64) - 1
    options, tensors = _FAMILY_TENSORS[family](cell_math, params, state, lower_cells,
                                               start_step)
    if family == "lstm":  # zoneout: the rates (cell, hidden), or masks where given (cells.h)
        hidden_keep, cell_keep = zoneout or (0.0, 0.0)
        options += tuple(0.0 if isinstance(keep, Tensor) else float(keep)
                         for keep in (cell_keep, hidden_keep))
        for name, keep in (("hidden_keep", hidden_keep), ("cell_keep", cell_keep)):
            if isinstance(keep, Tensor):
                tensors[name] = keep
    if not projected:
        tensors["weight_ih"] = params["weight_ih"]
    bias = _combined_bias(params, inputs.shape[-1] if projected else params["weight_ih"].shape[0],
                          cell_math.hidden_size if family == "gru_after" else 0)
    if bias is not None:
        tensors["bias"] = bias
    if tokens is not None:
        tensors["tokens"], tensors["token_table"] = tokens, inputs
    else:
        tensors["inputs"] = inputs
    tensors["last_step"] = (torch.full((batch,), steps - 1, dtype=torch.int64)
                            if last_step is None else last_step)
    bf16 = bf16_products_wanted(inputs)
    results = _run_kernel(family, options, tensors, bf16)

    final = tuple(_final_state(results[name], last_step, first=int(name != "outputs"))
                  for name in ("hiddens", "outputs", "cells", "gate_states") if name in results)
    outputs = _outputs(results)
    if not want_traces:
        return outputs, final, None
    mask = step_mask(lengths, steps, inputs.device)
    return outputs, final, _traces(family, cell_math, results, mask)
