"""Inference speed of rnnkit layers compiled and exported, against torch.nn.LSTM: one process.

For each shape (B, T, H) (input size H, one layer) and each cell, in one interleaved loop after
warm-up (each round starts with another model), the median time of a forward pass of:

* ``eager``: the rnnkit layer under ``torch.no_grad()`` (the engine ``auto`` picks);
* ``compiled``: ``torch.compile(layer, fullgraph=True)`` of it (Inductor; the fused kernels as
  operators, torch's LSTM included);
* ``onnxruntime``: rnnkit's ONNX file (:func:`rnnkit.export.to_onnx`: ONNX's own ``LSTM``,
  ``GRU`` or ``RNN`` operator where it computes the cell, else the step in an ONNX ``Scan``) in
  onnxruntime on the CPU, with torch's thread count;
* ``onnxruntime Scan``: the same layer written as a ``Scan`` (``to_onnx(..., native=False)``);
* ``torch.nn.LSTM`` eager, and its ONNX from torch's legacy exporter (``dynamo=False``, ONNX's
  own ``LSTM`` operator) in onnxruntime, as the references.

Ratios are each time over the time of ``torch.nn.LSTM`` eager, and, for rnnkit's ONNX, over the
onnxruntime LSTM per matrix-product flop (the cell's weight entries over the LSTM's).

Usage::

    python benchmarks/export_speed.py --threads 1           # writes docs/results/export.md
    python benchmarks/export_speed.py --cells lstm,gru-cho --shapes 1x150x256 --repeats 5
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import warnings
from pathlib import Path

import onnxruntime
import torch
from report import elapsed, load_average, machine_lines, markdown_table, rotated, write_section

import rnnkit
from rnnkit.export import to_onnx

RESULTS = Path(__file__).resolve().parent.parent / "docs" / "results" / "export.md"
DEFAULT_SHAPES = ((1, 150, 256), (32, 100, 256))
DEFAULT_CELLS = ("lstm", "peephole-lstm", "cifg-lstm", "gru", "gru-cho", "rnn")
TITLE = "Inference of one layer"


def session(path: Path, threads: int) -> onnxruntime.InferenceSession:
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def matrix_entries(module: torch.nn.Module) -> int:
    """Entries of the weight matrices (the products' flops per step and sequence, halved)."""
    return sum(p.numel() for name, p in module.named_parameters() if p.dim() == 2)


def measure(cell: str, shape: tuple[int, int, int], repeats: int, folder: Path,
            threads: int, compiled_too: bool = True) -> dict[str, float]:
    batch, steps, hidden = shape
    torch.manual_seed(0)
    layer = rnnkit.build_layer(cell, hidden, hidden).eval()
    reference = torch.nn.LSTM(hidden, hidden).eval()
    x = torch.randn(steps, batch, hidden)
    dims = ({0: "steps", 1: "batch"},)
    rnnkit_onnx = session(to_onnx(layer, (x,), folder / f"{cell}.onnx", dims, input_names=["x"]),
                          threads)
    scan_onnx = session(to_onnx(layer, (x,), folder / f"{cell}-scan.onnx", dims,
                                input_names=["x"], native=False), threads)
    lstm_path = folder / "torch_lstm.onnx"
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(reference, (x,), str(lstm_path), dynamo=False, input_names=["x"],
                          dynamic_axes={"x": {0: "steps", 1: "batch"}})
    lstm_onnx = session(lstm_path, threads)
    torch._dynamo.reset()
    compiled = torch.compile(layer, fullgraph=True) if compiled_too else None
    feed = {"x": x.numpy()}
    models = {
        "eager": lambda: layer(x),
        "compiled": lambda: compiled(x),
        "onnxruntime": lambda: rnnkit_onnx.run(None, feed),
        "onnxruntime Scan": lambda: scan_onnx.run(None, feed),
        "torch.nn.LSTM": lambda: reference(x),
        "torch.nn.LSTM onnxruntime": lambda: lstm_onnx.run(None, feed),
    }
    if compiled is None:
        del models["compiled"]
    times: dict[str, list[float]] = {name: [] for name in models}
    with torch.no_grad():
        for model in models.values():  # warm-up (compiles)
            for _ in range(2):
                model()
        for round_ in range(repeats):
            for name in rotated(list(models), round_):
                times[name].append(elapsed(models[name]))
    result = {name: statistics.median(values) for name, values in times.items()}
    result["flops vs LSTM"] = matrix_entries(layer) / matrix_entries(reference)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", help="comma-separated cell names (default: "
                                        + ",".join(DEFAULT_CELLS) + ")")
    parser.add_argument("--shapes", help="comma-separated BxTxH (default 1x150x256,32x100x256)")
    parser.add_argument("--repeats", type=int, default=9, help="timed rounds (default 9)")
    parser.add_argument("--threads", type=int, default=1, help="threads (default 1)")
    parser.add_argument("--no-compile", action="store_true",
                        help="leave out torch.compile (its compilation takes minutes)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cells = args.cells.split(",") if args.cells else list(DEFAULT_CELLS)
    shapes = ([tuple(int(v) for v in s.split("x")) for s in args.shapes.split(",")]
              if args.shapes else list(DEFAULT_SHAPES))
    load_before = load_average()
    header = ["B x T x H", "cell", "eager ms", "compiled / eager", "onnxruntime / eager",
              "onnxruntime Scan / eager",
              "eager / LSTM", "compiled / LSTM", "onnxruntime / LSTM",
              "onnxruntime / LSTM onnxruntime per flop", "LSTM ms", "LSTM onnxruntime ms"]
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for shape in shapes:
            for cell in cells:
                t = measure(cell, shape, args.repeats, Path(folder), args.threads,
                            not args.no_compile)
                t.setdefault("compiled", float("nan"))
                lstm, lstm_ort = t["torch.nn.LSTM"], t["torch.nn.LSTM onnxruntime"]
                row = ["x".join(map(str, shape)), cell, f"{t['eager'] * 1e3:.2f}",
                       f"{t['compiled'] / t['eager']:.2f}",
                       f"{t['onnxruntime'] / t['eager']:.2f}",
                       f"{t['onnxruntime Scan'] / t['eager']:.2f}",
                       f"{t['eager'] / lstm:.2f}", f"{t['compiled'] / lstm:.2f}",
                       f"{t['onnxruntime'] / lstm:.2f}",
                       f"{t['onnxruntime'] / lstm_ort / t['flops vs LSTM']:.2f}",
                       f"{lstm * 1e3:.2f}", f"{lstm_ort * 1e3:.2f}"]
                rows.append(row)
                print(" | ".join(row), flush=True)
    if args.cells or args.shapes or args.no_compile:
        return
    lines = ["Forward passes of one layer (input size H), medians of "
             f"{args.repeats} interleaved rounds in one process (`benchmarks/export_speed.py`, "
             "whose docstring says what each column times); ratios below 1 are faster than "
             "the reference.", "",
             f"Command: `python benchmarks/export_speed.py --threads {args.threads}`", "",
             *markdown_table(header, rows), "",
             *machine_lines(load_before)]
    write_section(TITLE, lines, RESULTS, "# Compiled and exported inference")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
