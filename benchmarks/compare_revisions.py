"""Training and inference step times of rnnkit's layers at two git revisions, on one machine.

The base revision is checked out into a git worktree beside the repository (reused on later
runs); each revision gets its own torch extensions directory, so the two fused extensions do not
rebuild each other. Rounds alternate between the revisions, each round a fresh process per
revision that times every cell and shape (after warm-up) and reports its median step; the table
gives, per cell and shape, the median over rounds of each revision and the ratio head / base
(below 1: the head is faster). Use it to check that a change costs no speed.

Usage::

    python benchmarks/compare_revisions.py --base 7ba0e6e
    python benchmarks/compare_revisions.py --base HEAD~3 --cells lstm,gru --shapes 32x100x256 \\
        --rounds 5 --threads 2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, statistics, sys, time
sys.path.insert(0, sys.argv[1])
import torch
import rnnkit
torch.set_num_threads(int(sys.argv[2]))
cells, shapes, repeats = sys.argv[3].split(","), sys.argv[4].split(","), int(sys.argv[5])
assert rnnkit.__file__.startswith(sys.argv[1]), rnnkit.__file__
results = {}
for shape in shapes:
    batch, steps, hidden = map(int, shape.split("x"))
    for cell in cells:
        torch.manual_seed(0)
        layers = 2 if cell == "depth-gated-lstm" else 1
        layer = rnnkit.build_layer(cell, hidden, hidden, layers)
        x = torch.randn(steps, batch, hidden)
        def train():
            layer.zero_grad(set_to_none=True)
            output = layer(x)[0]
            output.sum().backward()
        def infer():
            with torch.no_grad():
                layer(x)
        for name, step in (("train", train), ("infer", infer)):
            for _ in range(3):
                step()
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                step()
                times.append(time.perf_counter() - start)
            results[f"{cell} {shape} {name}"] = statistics.median(times)
print(json.dumps(results))
"""


def worktree(revision: str) -> Path:
    """A checkout of ``revision`` beside the repository, made once."""
    commit = subprocess.run(["git", "rev-parse", "--short", revision], cwd=ROOT, check=True,
                            capture_output=True, text=True).stdout.strip()
    path = Path(tempfile.gettempdir()) / f"rnnkit-{commit}"
    if not path.exists():
        subprocess.run(["git", "worktree", "add", "--detach", str(path), commit], cwd=ROOT,
                       check=True, capture_output=True)
    return path


def run_child(tree: Path, args: argparse.Namespace) -> dict[str, float]:
    extensions = Path(tempfile.gettempdir()) / f"torch-extensions-{tree.name}"
    env = {**os.environ, "TORCH_EXTENSIONS_DIR": str(extensions)}
    done = subprocess.run([sys.executable, "-c", CHILD, str(tree), str(args.threads), args.cells,
                           args.shapes, str(args.repeats)], env=env, check=True,
                          capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", required=True, help="git revision to compare against")
    parser.add_argument("--cells", default="lstm,peephole-lstm,cifg-lstm,gru,gru-cho,rnn,"
                        "clockwork,depth-gated-lstm,mingru,minlstm")
    parser.add_argument("--shapes", default="32x100x256,8x50x64",
                        help="comma-separated BxTxH (input size H)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=10, help="timed steps per process")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    trees = {"base": worktree(args.base), "head": ROOT}
    times: dict[str, dict[str, list[float]]] = {"base": {}, "head": {}}
    for round_ in range(args.rounds):
        order = ("base", "head") if round_ % 2 == 0 else ("head", "base")
        for side in order:
            for key, value in run_child(trees[side], args).items():
                times[side].setdefault(key, []).append(value)
        print(f"round {round_ + 1}/{args.rounds} done", file=sys.stderr)
    print(f"| case | base {args.base} (ms) | head (ms) | head / base |")
    print("|---|---:|---:|---:|")
    for key in times["base"]:
        base = statistics.median(times["base"][key]) * 1e3
        head = statistics.median(times["head"][key]) * 1e3
        print(f"| {key} | {base:.2f} | {head:.2f} | {head / base:.3f} |")


if __name__ == "__main__":
    main()
