"""Every rnnkit cell against torch.nn.LSTM: inference and training time, GFLOP/s, peak memory.

For each shape (B, T, H) (input size H, one layer), the cells of ``rnnkit.CELL_NAMES`` and a
``torch.nn.LSTM`` of the same sizes are timed in one loop, interleaved, after warm-up: inference
is a forward pass under ``torch.no_grad()``, training a forward pass plus the backward pass of
``output.sum()``. Each cell runs on the engine ``auto`` picks on the CPU (torch's own kernels
for the LSTM, the fused kernels for the rest); the RNN and the GRU get a second row on torch's
kernels, ``name [native]``, and MinGRU and MinLSTM one on the parallel scan, ``name [scan]``.
Where installed (``pip install -e ".[bench]"``), other libraries' cells run in the same table:
torchrecurrent's PeepholeLSTM and OriginalLSTM (the 1997 LSTM without a forget gate) and
mingru-pytorch's minGRU.

Effective GFLOP/s counts the matrix products only: 2 T B flops per weight-matrix entry forward,
three times that for training (forward, input gradient, weight gradient), also where an engine
skips the input gradient because the input needs none, so the share of the peak (a 2048^3
float32 product timed in the same run, the faster of torch.mm and rnnkit's own kernels) can pass
100%. "flops vs LSTM" is a cell's matrix-product
work against the torch.nn.LSTM it is compared with: a cell with more work (the full gate
recurrence adds a 3H x 3H product per step) cannot match the LSTM's time at the same flop rate.
The depth-gated LSTM has two layers and is
compared with a two-layer torch.nn.LSTM.

Peak memory is the growth of the resident set during one training step (VmHWM after minus VmRSS
before, with the high-water mark reset through /proc/self/clear_refs), measured after one
warm-up step in a fresh child process per model in which glibc returns every allocation of 64 KiB
or more to the system when freed (MALLOC_MMAP_THRESHOLD_), so the resident set follows the live
tensors, torch's and oneDNN's alike. Below about 1 MB the figures are within the resolution of
the kernel's resident-set counters.

Two cases change what is timed, each written to its own section of docs/results/benchmarks.md:

* ``--bf16``: every model under CPU bfloat16 autocast (the trainer's ``--precision bf16``).
  Where oneDNN multiplies bfloat16 the fused kernels' products take bfloat16 operands and
  ``auto`` runs the LSTM on them on CPUs that compute bfloat16 natively (this run shows whether
  that pays: the rows ``lstm`` and ``lstm [native]``); elsewhere they compute in float32.
* ``--tokens``: for the one-layer cells whose fused kernels take token inputs (all but minGRU
  and minLSTM; the LSTM family's kernels read the rows step by step, the others get the
  gathered sequence), a language model's first layer: an embedding of a 65-token vocabulary
  (size H) followed by the layer, as ``name [embedded]``, against the same layer reading the
  rows of the table ``W_ih e + b_ih`` by token id (``forward(table, tokens=ids)``, what
  :class:`rnnkit.models.LanguageModel` does on the fused engine) as ``name [tokens]``.

Usage::

    python benchmarks/speed.py                 # every cell, every shape; writes the tables page
    python benchmarks/speed.py --quick         # B=32, T=100, H=256 and fewer repeats
    python benchmarks/speed.py --cells cifg-lstm,gru-cho --shapes 32x100x256,1x500x128
                                               # (these two: printed only, the page untouched)
    python benchmarks/speed.py --threads 1     # its own section of docs/results/benchmarks.md
    python benchmarks/speed.py --bf16          # under bfloat16 autocast
    python benchmarks/speed.py --tokens --shapes 32x64x640 --cells lstm,peephole-lstm
    RNNKIT_PRODUCTS=library python benchmarks/speed.py --threads 1
                                               # torch's products instead of rnnkit's own
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import torch
from report import (
    elapsed,
    gemm_peaks,
    load_average,
    machine_lines,
    markdown_table,
    rotated,
    threads_label,
    write_section,
)

import rnnkit
from rnnkit.engine import fused

SHAPES = ((32, 100, 128), (32, 100, 256), (32, 100, 512), (8, 200, 256), (1, 500, 128))
BASELINE = "torch.nn.LSTM"
# A depth gate links two layers: that cell runs with two, against a two-layer torch.nn.LSTM.
LAYERS = {"depth-gated-lstm": 2}


def baseline_name(layers: int) -> str:
    """The name of the torch.nn.LSTM row with ``layers`` layers."""
    return BASELINE if layers == 1 else f"{BASELINE} ({layers} layers)"


def baseline_for(name: str) -> str:
    """The torch.nn.LSTM row a cell is compared with (same number of layers)."""
    return baseline_name(LAYERS.get(name, 1))
TARGET_SHAPE, TARGET_RATIO, ANY_SHAPE_RATIO, MEMORY_RATIO = (32, 100, 256), 1.25, 1.5, 1.5
VOCABULARY = 65  # the --tokens case: the default language model's characters
# The cases of this run (--bf16, --tokens), also handed to the memory probes.
CASES = {"bf16": False, "tokens": False}


def autocast() -> contextlib.AbstractContextManager:
    """CPU bfloat16 autocast for the --bf16 case, else nothing."""
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=CASES["bf16"])
TORCH_CELL_RATIO = 1.05  # rnnkit's LSTM, GRU and RNN against torch's own kernel for them


def is_torch_cell(name: str) -> bool:
    """Whether the cell is one of torch's own (LSTM, GRU, RNN with torch's options)."""
    maths = rnnkit.build_layer(name, 2, 2, LAYERS.get(name, 1)).layer_maths
    return all(m.native_mode is not None for m in maths)


def engines_for(name: str) -> list[str]:
    """The engines a cell is benchmarked on: the one ``auto`` picks for float32 CPU inputs,
    then for comparison torch's own kernel where the cell is one of torch's and ``auto`` runs
    another (or the fused kernels where ``auto`` runs torch's), and the parallel scan for the
    cells that have one."""
    layer = rnnkit.build_layer(name, 2, 2, LAYERS.get(name, 1))
    with autocast():
        engines = [layer.engine_for(torch.zeros(1, 1, 2))]
    if engines[0] != "native" and is_torch_cell(name):
        engines.append("native")
    elif engines[0] == "native" and all(fused.fused_supports(m) for m in layer.layer_maths):
        engines.append("fused")
    if all(m.parallel_scan for m in layer.layer_maths):
        engines.append("scan")
    return engines


class BatchFirst(torch.nn.Module):
    """A batch-first sequence module behind the (T, B, H) -> (output, state) interface."""

    def __init__(self, module: torch.nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, inputs: torch.Tensor) -> tuple[torch.Tensor, None]:
        return self.module(inputs.transpose(0, 1)).transpose(0, 1), None


class TokenInputs(torch.nn.Module):
    """The --tokens case: an embedding of ``VOCABULARY`` tokens (size ``hidden``) and a fused
    layer over a fixed (T, B) batch of token ids (the float inputs it is called with only give
    their shape), either embedded first or read as rows of ``W_ih e + b_ih`` (``fold``)."""

    def __init__(self, name: str, hidden: int, fold: bool) -> None:
        super().__init__()
        self.embedding = torch.nn.Embedding(VOCABULARY, hidden)
        self.layer = rnnkit.build_layer(name, hidden, hidden, engine="fused")
        self.fold = fold
        self.ids: torch.Tensor | None = None

    def forward(self, inputs: torch.Tensor) -> tuple[torch.Tensor, object]:
        if self.ids is None or self.ids.shape != inputs.shape[:2]:
            self.ids = torch.randint(0, VOCABULARY, inputs.shape[:2])
        if self.fold:
            with torch.autocast("cpu", enabled=False):  # as the language model does
                table = self.layer.project_input(self.embedding.weight)
            return self.layer(table, tokens=self.ids)
        return self.layer(self.embedding(self.ids))


def reads_tokens(name: str) -> bool:
    """Whether a one-layer ``name`` takes token inputs on the fused kernels."""
    if LAYERS.get(name, 1) != 1:
        return False
    layer = rnnkit.build_layer(name, 2, 2, engine="fused")
    return layer.reads_token_table(torch.zeros(3, 2 * 4))


def build_peers(hidden: int) -> dict[str, tuple[str, torch.nn.Module]]:
    """Other libraries' cells that are installed (``pip install -e ".[bench]"``): row name ->
    (the rnnkit cell it is compared with, the module)."""
    peers: dict[str, tuple[str, torch.nn.Module]] = {}
    try:
        import torchrecurrent
    except ImportError:
        pass
    else:
        peers["torchrecurrent PeepholeLSTM"] = (
            "peephole-lstm", torchrecurrent.PeepholeLSTM(hidden, hidden))
        peers["torchrecurrent OriginalLSTM"] = (
            "nfg-lstm", torchrecurrent.OriginalLSTM(hidden, hidden))
    try:
        from minGRU_pytorch import minGRU
    except ImportError:
        pass
    else:
        peers["mingru-pytorch minGRU"] = ("mingru", BatchFirst(minGRU(hidden)))
    return peers


def label(name: str, engine: str) -> str:
    """A table row's name: the cell, with the engine when it is not the cell's first."""
    return name if engine == engines_for(name)[0] else f"{name} [{engine}]"


def build_models(names: list[str], hidden: int) -> dict[str, torch.nn.Module]:
    """The torch.nn.LSTM baselines, then each cell on each of its engines; input and hidden
    size ``hidden``."""
    models: dict[str, torch.nn.Module] = {}
    for layers in sorted({LAYERS.get(name, 1) for name in names}):
        models[baseline_name(layers)] = torch.nn.LSTM(hidden, hidden, layers)
    for name in names:
        if CASES["tokens"]:
            if reads_tokens(name):
                models[f"{name} [embedded]"] = TokenInputs(name, hidden, fold=False)
                models[f"{name} [tokens]"] = TokenInputs(name, hidden, fold=True)
            continue
        for engine in engines_for(name):
            models[label(name, engine)] = rnnkit.build_layer(
                name, hidden, hidden, LAYERS.get(name, 1), engine=engine)
    if CASES["tokens"]:
        return models
    for peer, (cell, module) in build_peers(hidden).items():
        if cell in names:
            models[peer] = module
    return models


def forward_flops(model: torch.nn.Module, steps: int, batch: int) -> int:
    """Matrix-product flops of one forward pass: 2 T B per entry of each weight matrix (an
    embedding table is looked up, not multiplied)."""
    tables = {id(m.weight) for m in model.modules() if isinstance(m, torch.nn.Embedding)}
    return 2 * steps * batch * sum(p.numel() for p in model.parameters()
                                   if p.dim() == 2 and id(p) not in tables)


def inference(model: torch.nn.Module, inputs: torch.Tensor) -> None:
    with torch.no_grad(), autocast():
        model(inputs)


def training_step(model: torch.nn.Module, inputs: torch.Tensor) -> None:
    model.zero_grad(set_to_none=True)
    with autocast():
        output, _ = model(inputs)
    output.float().sum().backward()


def time_models(models: dict[str, torch.nn.Module], shape: tuple[int, int, int], repeats: int,
                warmup: int) -> dict[str, tuple[float, float]]:
    """Median (inference, training) seconds per model, the models interleaved in each round in
    an order rotated from round to round."""
    batch, steps, hidden = shape
    inputs = torch.randn(steps, batch, hidden)
    for model in models.values():
        for _ in range(warmup):
            inference(model, inputs)
            training_step(model, inputs)
    samples: dict[str, tuple[list[float], list[float]]] = {n: ([], []) for n in models}
    for round_index in range(repeats):
        for name in rotated(list(models), round_index):
            model = models[name]
            samples[name][0].append(elapsed(lambda m=model: inference(m, inputs)))
            samples[name][1].append(elapsed(lambda m=model: training_step(m, inputs)))
    return {name: (statistics.median(inf), statistics.median(train))
            for name, (inf, train) in samples.items()}


def resident_bytes(field: str) -> int:
    """A field of /proc/self/status (VmRSS, VmHWM) in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def peak_memory_probe(names: list[str], row: str, shape: tuple[int, int, int]) -> int:
    """In this process: peak resident-set growth of one training step of the model of table
    row ``row`` (among those :func:`build_models` makes for ``names``), in bytes."""
    batch, steps, hidden = shape
    model = build_models(names, hidden)[row]
    inputs = torch.randn(steps, batch, hidden)
    training_step(model, inputs)  # warm-up: lazy initialisation, primitive caches
    model.zero_grad(set_to_none=True)
    gc.collect()
    before = resident_bytes("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current VmRSS
    training_step(model, inputs)
    return resident_bytes("VmHWM") - before


def peak_memory(names: list[str], rows: list[str],
                shape: tuple[int, int, int]) -> dict[str, int] | None:
    """:func:`peak_memory_probe` for each row, each in a fresh child process (in a heap that
    earlier models fragmented, freed blocks would hide allocations); ``None`` where it cannot
    run."""
    if not Path("/proc/self/clear_refs").exists():
        return None
    environment = {**os.environ, "MALLOC_MMAP_THRESHOLD_": str(64 * 1024)}
    peaks = {}
    for row in rows:
        probe = json.dumps([names, row, shape, CASES])
        command = [sys.executable, __file__, "--memory-probe", probe]
        done = subprocess.run(command, env=environment, capture_output=True, text=True)
        if done.returncode != 0:
            print(f"memory probe failed: {done.stderr.strip()[-300:]}", file=sys.stderr)
            return None
        peaks[row] = int(done.stdout.strip().splitlines()[-1])
    return peaks


def shape_rows(names: list[str], shape: tuple[int, int, int], repeats: int, warmup: int,
               peak: float) -> tuple[list[list[str]], dict[str, tuple[float, float | None]]]:
    """Table rows for one shape, and per cell (training ratio, memory ratio)."""
    batch, steps, hidden = shape
    models = build_models(names, hidden)
    times = time_models(models, shape, repeats, warmup)
    memory = peak_memory(names, list(models), shape)
    rows, ratios = [], {}
    for name, model in models.items():
        cell, _, engine = name.partition(" [")
        baseline = name if name.startswith(BASELINE) else baseline_for(cell)
        if engine in ("embedded]", "tokens]"):
            engine = "fused, " + engine
        base_inference, base_training = times[baseline]
        inference_time, training_time = times[name]
        flops = forward_flops(model, steps, batch)
        flops_ratio = flops / forward_flops(models[baseline], steps, batch)
        training_gflops = 3 * flops / training_time / 1e9
        memory_ratio = None
        memory_text = "n/a"
        if memory is not None:
            memory_ratio = memory[name] / memory[baseline]
            memory_text = f"{memory[name] / 2**20:.1f} ({memory_ratio:.2f}x)"
        if name.startswith(BASELINE):
            engine = "oneDNN"
        elif name in PEER_ENGINES:
            engine = PEER_ENGINES[name]
        else:
            engine = engine.rstrip("]") or engines_for(cell)[0]
        rows.append([name, engine, f"{flops_ratio:.2f}x",
                     f"{inference_time * 1e3:.2f}", f"{inference_time / base_inference:.2f}x",
                     f"{flops / inference_time / 1e9:.1f}",
                     f"{training_time * 1e3:.2f}", f"{training_time / base_training:.2f}x",
                     f"{training_gflops:.1f}", f"{100 * training_gflops / peak:.0f}%",
                     memory_text])
        ratios[name] = (training_time / base_training, inference_time / base_inference,
                        memory_ratio, flops_ratio)
    return rows, ratios


PEER_ENGINES = {"torchrecurrent PeepholeLSTM": "PyTorch loop",
                "torchrecurrent OriginalLSTM": "PyTorch loop",
                "mingru-pytorch minGRU": "log-space scan"}

HEADER = ["cell", "engine", "flops vs LSTM", "infer ms", "vs LSTM", "infer GFLOP/s", "train ms",
          "vs LSTM", "train GFLOP/s", "of GEMM peak", "train peak MB (vs LSTM)"]


def target_lines(all_ratios: dict[tuple[int, int, int], dict]) -> list[str]:
    """Which non-torch cells miss the time (training and inference) and memory targets, and by
    how much.

    Only the engine ``auto`` picks counts (rows named ``cell [engine]`` are for comparison); a
    cell that does more matrix-product work than the LSTM (``flops vs LSTM`` above 1) is told
    so."""
    misses = []
    for shape, ratios in all_ratios.items():
        limit = TARGET_RATIO if shape == TARGET_SHAPE else ANY_SHAPE_RATIO
        for name, (train_ratio, infer_ratio, memory_ratio, flops_ratio) in ratios.items():
            if name.startswith(BASELINE) or name in PEER_ENGINES or " [" in name:
                continue
            if is_torch_cell(name):  # its target: torch's own kernel for it, within 5%
                if f"{name} [native]" in ratios:
                    native = ratios[f"{name} [native]"]
                    for what, ours, theirs in (("training", train_ratio, native[0]),
                                               ("inference", infer_ratio, native[1])):
                        if ours > TORCH_CELL_RATIO * theirs:
                            misses.append(f"{name} at B,T,H={shape}: {what} {ours / theirs:.2f}x "
                                          f"torch's own kernel > {TORCH_CELL_RATIO}x")
                continue
            work = ""
            if flops_ratio > 1.05:
                work = f" (it has {flops_ratio:.2f}x the LSTM's matrix-product flops)"
            for what, ratio in (("training", train_ratio), ("inference", infer_ratio)):
                if ratio > limit:
                    misses.append(f"{name} at B,T,H={shape}: {what} {ratio:.2f}x > {limit}x"
                                  + work)
            if memory_ratio is not None and memory_ratio > MEMORY_RATIO:
                misses.append(f"{name} at B,T,H={shape}: memory {memory_ratio:.2f}x > "
                              f"{MEMORY_RATIO}x")
    summary = (f"Targets: torch's cells (lstm, gru, rnn) <= {TORCH_CELL_RATIO}x torch's own "
               f"kernel for them (the row `name [native]`; the lstm runs on it); the others, "
               f"training and inference vs torch.nn.LSTM: <= {TARGET_RATIO}x at "
               f"B,T,H={TARGET_SHAPE}, <= {ANY_SHAPE_RATIO}x elsewhere, peak memory <= "
               f"{MEMORY_RATIO}x.")
    return [summary, ""] + ([f"- missed: {m}" for m in misses] or ["- all met in this run"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="only B=32, T=100, H=256, 3 repeats after 1 warm-up")
    parser.add_argument("--cells", help="comma-separated cell names (default: all)")
    parser.add_argument("--shapes", help="comma-separated BxTxH, e.g. 32x100x256")
    parser.add_argument("--repeats", type=int, help="timed rounds per shape (default 7)")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument("--bf16", action="store_true", help="under CPU bfloat16 autocast")
    parser.add_argument("--tokens", action="store_true",
                        help="token inputs against embedded ones (cells that read tokens)")
    parser.add_argument("--memory-probe", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_probe:
        names, row, shape, cases = json.loads(args.memory_probe)
        CASES.update(cases)
        print(peak_memory_probe(names, row, tuple(shape)))
        return
    CASES.update(bf16=args.bf16, tokens=args.tokens)
    if args.bf16 and not fused.onednn_multiplies_bf16():
        parser.error("--bf16: oneDNN has no bfloat16 products on this CPU (torch's LSTM kernel "
                     "fails under bfloat16 autocast here, and rnnkit's compute in float32)")

    if args.threads:
        torch.set_num_threads(args.threads)
    names = args.cells.split(",") if args.cells else list(rnnkit.CELL_NAMES)
    unknown = set(names) - set(rnnkit.CELL_NAMES)
    if unknown:
        parser.error(f"unknown cells {sorted(unknown)}; choose from {rnnkit.CELL_NAMES}")
    if args.shapes:
        shapes = [tuple(int(v) for v in s.split("x")) for s in args.shapes.split(",")]
    else:
        shapes = [TARGET_SHAPE] if args.quick else list(SHAPES)
    repeats = args.repeats or (3 if args.quick else 7)
    warmup = 1 if args.quick else 2

    load_before = load_average()
    peaks = gemm_peaks()
    peak = max(peaks.values())
    tables, all_ratios = [], {}
    for shape in shapes:
        rows, all_ratios[shape] = shape_rows(names, shape, repeats, warmup, peak)
        table = [f"### B={shape[0]}, T={shape[1]}, H={shape[2]}", ""]
        table += markdown_table(HEADER, rows) + [""]
        print("\n".join(table), flush=True)
        tables += table
    targets = [] if any(CASES.values()) else target_lines(all_ratios)  # targets: float32
    print("\n".join(targets))
    if args.quick or args.cells or args.shapes:
        print("(a quick run or a selection: docs/results/benchmarks.md is left as it is)")
        return
    measured = ", ".join(f"{name} {value:.1f}" for name, value in peaks.items())
    case = "".join(f", {text}" for key, text in (("bf16", "bfloat16 autocast"),
                                                  ("tokens", "token inputs")) if CASES[key])
    products = os.environ.get("RNNKIT_PRODUCTS")
    case += f", RNNKIT_PRODUCTS={products}" if products else ""
    write_section(f"Speed{case}, {threads_label()}", machine_lines(load_before) + [
        f"- GEMM peak (2048^3 float32 product, same run; the best of {measured}): "
        f"{peak:.1f} GFLOP/s",
        f"- Median of {repeats} interleaved rounds after {warmup} warm-up; input size = H, "
        f"one layer", ""] + tables + targets)

if __name__ == "__main__":
    main()
