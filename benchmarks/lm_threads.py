"""The default language model's training step with 1 and with 2 CPU threads, interleaved.

Three rounds of four steps with each count (the first step of each block untimed: it adapts to
the new count); prints the median step time of each count. Forward, backward, gradient clipping
and the fused AdamW step, as the trainer runs them (without bfloat16 autocast, which the CPU
of the results page does not compute natively). Usage: ``python benchmarks/lm_threads.py``.
"""

import statistics
import time

import torch

from rnnkit.tasks import build_task, task_config
from rnnkit.training.trainer import clip_gradients, make_optimizer


def main() -> None:
    config = task_config("lm")
    torch.manual_seed(0)
    task = build_task(config, torch.device("cpu"), None)
    optimizer = make_optimizer(config, task.model)
    task.model.train()
    times: dict[int, list[float]] = {1: [], 2: []}
    for _ in range(3):
        for threads in times:
            torch.set_num_threads(threads)
            for step in range(4):
                batch = task.batch_at(step)
                started = time.perf_counter()
                _, _, loss = task.model(batch.inputs, None, batch.targets)
                optimizer.zero_grad()
                loss.backward()
                clip_gradients(task.model.parameters(), config.clip, config.clip_value)
                optimizer.step()
                if step:
                    times[threads].append(time.perf_counter() - started)
    for threads, seconds in times.items():
        print(f"{threads} thread(s): median {statistics.median(seconds) * 1000:.0f} ms per step "
              f"over {len(seconds)} steps")


if __name__ == "__main__":
    main()
