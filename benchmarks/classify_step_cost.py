"""The cost of a classify training step against what its default length's cost model predicts.

For each data set, the CPU time of the trainer's step (forward, backward, clipping, AdamW) of
the default classify model, one thread, over ROUNDS rounds of 10 steps after 3 to warm up,
the data sets interleaved round by round so that a change of load reaches all of them alike.
CPU time, not wall time: on a shared machine the load moves wall time far more, and the cost
model (``rnnkit.tasks.classify.step_cost``) needs only ratios. Sets named ``LxN`` are generated
(N noisy sine series of L points, three classes, UCR ``.tsv`` files in a temporary folder),
to reach lengths that are not bundled; other names are bundled data sets or paths.

Example::

    python benchmarks/classify_step_cost.py ItalyPowerDemand GunPoint 251x36 427x200 1500x40
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from rnnkit.engine.fused import load_extension
from rnnkit.tasks import build_task, classify, task_config
from rnnkit.training.trainer import clip_gradients, make_optimizer


def generated(name: str, folder: Path) -> str:
    """A generated data set "LxN": N series of L points; the path of its TRAIN file."""
    length, count = (int(part) for part in name.split("x"))
    rng = np.random.default_rng(0)
    for split in ("TRAIN", "TEST"):
        rows = []
        for i in range(count):
            values = (np.sin(np.linspace(0, 6 * (i % 3 + 1), length))
                      + 0.3 * rng.standard_normal(length))
            rows.append(f"{i % 3 + 1}\t" + "\t".join(f"{v:.4f}" for v in values))
        (folder / f"G{name}_{split}.tsv").write_text("\n".join(rows) + "\n")
    return str(folder / f"G{name}_TRAIN.tsv")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("data", nargs="+", help="bundled names, paths, or LxN to generate")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)
    load_extension()
    folder = Path(tempfile.mkdtemp())
    runs = {}
    for name in args.data:
        data = generated(name, folder) if "x" in name and name[0].isdigit() else name
        config = task_config("classify", data=data, threads=1, steps=1000)
        torch.manual_seed(0)
        task = build_task(config, torch.device("cpu"))
        task.model.train()
        runs[name] = (config, task, make_optimizer(config, task.model))

    def seconds_per_step(name: str, first: int, count: int) -> float:
        config, task, optimizer = runs[name]
        started = time.process_time()
        for step in range(first, first + count):
            batch = task.batch_at(step)
            _, _, loss = task.model(batch.inputs, None, batch.targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            clip_gradients(task.model.parameters(), config.clip, config.clip_value)
            optimizer.step()
        return (time.process_time() - started) / count

    for name in runs:
        seconds_per_step(name, 0, 3)
    times: dict[str, list[float]] = {name: [] for name in runs}
    for round_ in range(args.rounds):
        for name in runs:
            times[name].append(seconds_per_step(name, 3 + 10 * round_, 10))
    print("data set | series x points | default steps | modelled point-rows a step "
          "(training) | ms a step | ms per thousand modelled point-rows")
    for name, (config, task, _) in runs.items():
        train = classify.load_series(config)[0]
        longest, count = int(train.lengths.max()), len(train)
        steps = task.default_length[0]
        # The training step alone: its share of validation (count=0) is not timed here.
        cost = classify.step_cost(longest, 0, config.batch_size, config.eval_every)
        ms = statistics.median(times[name]) * 1000
        print(f"{name} | {count} x {longest} | {steps} | {cost:,.0f} | {ms:.1f} | "
              f"{ms / cost * 1000:.1f}")


if __name__ == "__main__":
    main()
