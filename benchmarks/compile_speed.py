"""Training step time of each task's default model through torch.compile against eager: one
process.

For each task (its default settings, as ``rnnkit train --task NAME`` builds them), one model
and one optimizer; the eager model and ``compile_model(model)`` (``rnnkit train --compile``:
Inductor) each run ``--warmup`` training steps first (the compiled one compiles there, for the
first sizes and again with dynamic sizes), then ``--rounds`` interleaved rounds of ``--steps``
steps each (each round starts with the other mode), both on the same batches. A step is what
the trainer does: forward with the loss, backward, gradient clipping, the optimizer's step,
the carried state detached. The table gives the median step time of each and their ratio
(below 1: compiled is faster), the seconds spent compiling, and the 1-minute load average as
the task started (the machine may be shared).

Usage::

    python benchmarks/compile_speed.py --threads 1      # writes its section of export.md
    python benchmarks/compile_speed.py --tasks lm,copy --rounds 3
"""

from __future__ import annotations

import argparse
import statistics
import time
import traceback
from pathlib import Path

import torch
from report import load_average, machine_lines, markdown_table, write_section

from rnnkit.models.state import map_state
from rnnkit.tasks import TASKS, build_task, task_config
from rnnkit.training.compiling import compile_model, compile_seconds
from rnnkit.training.trainer import clip_gradients, make_optimizer, uses_bf16

RESULTS = Path(__file__).resolve().parent.parent / "docs" / "results" / "export.md"
TITLE = "Training step: torch.compile against eager"


class Trainer:
    """The trainer's step on one model, eager or compiled, with its own carried state."""

    def __init__(self, task, config, optimizer, forward) -> None:
        self.task, self.config, self.optimizer, self.forward = task, config, optimizer, forward
        self.state = None
        self.autocast = torch.autocast("cpu", dtype=torch.bfloat16,
                                       enabled=uses_bf16(config.precision, torch.device("cpu")))

    def step(self, index: int) -> float:
        """Run the training step on batch ``index``; return its wall time in seconds."""
        start = time.perf_counter()
        batch = self.task.batch_at(index)
        if batch.starts_sequences:
            self.state = None
        with self.autocast:
            _, state, loss = self.forward(batch.inputs, self.state, batch.targets)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        clip_gradients(self.task.model.parameters(), self.config.clip, self.config.clip_value)
        self.optimizer.step()
        if state is not None:
            self.state = map_state(state, lambda part: part.detach().float())
        return time.perf_counter() - start


def measure(name: str, warmup: int, rounds: int, steps: int) -> dict[str, float]:
    config = task_config(name, device="cpu")
    torch.manual_seed(0)
    task = build_task(config, torch.device("cpu"))
    task.model.train()
    optimizer = make_optimizer(config, task.model)
    torch._dynamo.reset()
    modes = {"eager": Trainer(task, config, optimizer, task.model),
             "compiled": Trainer(task, config, optimizer, compile_model(task.model))}
    compiling = compile_seconds()
    for index in range(warmup):
        for trainer in modes.values():
            trainer.step(index)
    compiling = compile_seconds() - compiling
    times: dict[str, list[float]] = {mode: [] for mode in modes}
    for round_ in range(rounds):
        order = list(modes) if round_ % 2 == 0 else list(reversed(modes))
        first = warmup + round_ * steps
        for mode in order:
            times[mode].append(sum(modes[mode].step(first + k) for k in range(steps)) / steps)
    return {"eager": statistics.median(times["eager"]),
            "compiled": statistics.median(times["compiled"]), "compile s": compiling,
            "cell": f"{config.cell} {config.layers}x{config.hidden_size}"
                    + (" bidirectional" if config.bidirectional else ""),
            "batch": config.batch_size}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", help="comma-separated tasks (default: all)")
    parser.add_argument("--warmup", type=int, default=4, help="steps before timing (default 4)")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds (default 5)")
    parser.add_argument("--steps", type=int, default=3, help="steps per round (default 3)")
    parser.add_argument("--threads", type=int, default=1, help="threads (default 1)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    names = args.tasks.split(",") if args.tasks else list(TASKS)
    load_before = load_average()
    header = ["task", "model", "batch", "eager ms/step", "compiled ms/step", "compiled / eager",
              "compiling s", "faster", "load"]
    rows = []
    for name in names:
        load = load_average().split()[0]  # 1-minute load average as the task starts
        try:
            t = measure(name, args.warmup, args.rounds, args.steps)
        except Exception as error:  # noqa: BLE001 - a task that does not compile is a result
            traceback.print_exc()
            rows.append([name, "", "", "", f"fails: {type(error).__name__}", "", "", "eager",
                         load])
            print(" | ".join(rows[-1]), flush=True)
            continue
        ratio = t["compiled"] / t["eager"]
        rows.append([name, t["cell"], str(t["batch"]), f"{t['eager'] * 1e3:.1f}",
                     f"{t['compiled'] * 1e3:.1f}", f"{ratio:.2f}", f"{t['compile s']:.0f}",
                     "compiled" if ratio < 1 else "eager", load])
        print(" | ".join(rows[-1]), flush=True)
    if args.tasks:
        return
    lines = [f"Each task's default model (`rnnkit train --task NAME`), one training step "
             f"(forward with the loss, backward, clipping, optimizer step), medians of "
             f"{args.rounds} interleaved rounds of {args.steps} steps after {args.warmup} "
             f"warm-up steps, in one process (`benchmarks/compile_speed.py`); below 1 the "
             f"compiled step is faster. `rnnkit train` compiles by default where it is.", "",
             f"Command: `python benchmarks/compile_speed.py --threads {args.threads}`", "",
             *markdown_table(header, rows), "", *machine_lines(load_before)]
    write_section(TITLE, lines, RESULTS, "# Compiled and exported inference")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
