"""Remembering a key across a gap: "I grew up in France ... I speak fluent French".

Each sequence is a key token (one of 8, the "France"), a run of distractor tokens (the words in
between), and a query token (the "I speak fluent ..."), at which the model must name the key
(:func:`rnnkit.data.dependency_task`). For each maximum gap G, a model is trained on batches whose
gap is drawn uniformly from 0 .. G (one gap per batch), as the key word of a sentence lies at
varying distances; it is then tested with exactly G distractors, the hardest case it was trained
for. Chance is 1/8.

Training (the same for every cell): AdamW at learning rate 1e-2 without weight decay, batches of
64, gradients clipped to norm 1, hidden size 32, LSTM forget-gate bias started at 1.
"""

from __future__ import annotations

import random
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from rnnkit.data import dependency_baseline, dependency_task
from rnnkit.diagnostics import write_csv
from rnnkit.diagnostics.plots import plt, save_figure
from rnnkit.experiments.common import (
    SequenceModel,
    markdown_table,
    mean_std,
    seed_list,
    set_forget_bias,
    write_report,
)

KEYS, DISTRACTORS = 8, 8
VOCABULARY = KEYS + DISTRACTORS + 1  # keys, distractors, the query token
SOLVED_ACCURACY = 0.99
TEST_SEED = 987_654_321


@dataclass(frozen=True)
class Plan:
    """Maximum gaps, cells and training budget."""

    gaps: tuple[int, ...]
    cells: tuple[str, ...]
    steps: int
    seeds: int
    eval_every: int = 100
    hidden_size: int = 32
    batch_size: int = 64
    learning_rate: float = 1e-2
    clip_norm: float = 1.0
    forget_bias: float = 1.0
    test_size: int = 500


FULL = Plan(gaps=(5, 10, 20, 50, 100, 200), cells=("rnn", "lstm", "gru", "mingru"),
            steps=1000, seeds=3)
QUICK = Plan(gaps=(20, 100), cells=("rnn", "lstm", "gru"), steps=800, seeds=1, eval_every=200)


def train(cell: str, max_gap: int, seed: int, plan: Plan) -> dict:
    """Train one cell on gaps 0 .. ``max_gap``; test accuracy at gap ``max_gap`` and the first
    evaluated step at which it reached :data:`SOLVED_ACCURACY`."""
    torch.manual_seed(seed)
    model = SequenceModel(cell, VOCABULARY, plan.hidden_size, KEYS, one_hot=True)
    set_forget_bias(model.layer, plan.forget_bias)
    optimizer = torch.optim.AdamW(model.parameters(), lr=plan.learning_rate, weight_decay=0.0)
    test_inputs, test_keys = dependency_task(plan.test_size, max_gap, KEYS, DISTRACTORS,
                                             seed=TEST_SEED)
    gaps = random.Random(seed)
    accuracy, solved_step = 0.0, None
    for step in range(1, plan.steps + 1):
        inputs, keys = dependency_task(plan.batch_size, gaps.randint(0, max_gap), KEYS,
                                       DISTRACTORS, seed=(seed + 1) * 1_000_003 + step)
        loss = F.cross_entropy(model(inputs).outputs[:, -1], keys)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), plan.clip_norm)
        optimizer.step()
        if step % plan.eval_every == 0 or step == plan.steps:
            with torch.no_grad():
                predicted = model(test_inputs).outputs[:, -1].argmax(-1)
            accuracy = (predicted == test_keys).float().mean().item()
            if solved_step is None and accuracy >= SOLVED_ACCURACY:
                solved_step = step
    return {"cell": cell, "max_gap": max_gap, "seed": seed, "test_accuracy": accuracy,
            "solved_step": solved_step or ""}


def plot_accuracy(results: list[dict], plan: Plan, path: Path) -> Path:
    """Test accuracy at the maximum gap against the gap: mean over seeds, a dot per seed."""
    figure, axis = plt.subplots(figsize=(7, 4.2), dpi=120)
    for index, cell in enumerate(plan.cells):
        means = []
        for gap in plan.gaps:
            values = [r["test_accuracy"] for r in results
                      if r["cell"] == cell and r["max_gap"] == gap]
            means.append(statistics.fmean(values))
            axis.scatter([gap] * len(values), values, color=f"C{index}", s=10, alpha=0.6)
        # Distinct dashes and markers keep cells that score the same visible.
        axis.plot(plan.gaps, means, color=f"C{index}", ls=("-", "--", "-.", ":")[index % 4],
                  marker="osD^v"[index % 5], ms=5, label=cell)
    axis.axhline(dependency_baseline(KEYS).accuracy, color="grey", ls="--", lw=0.8,
                 label="chance")
    axis.set(xscale="log", xlabel="gap G (distractors between key and query)",
             ylabel="test accuracy at gap G", ylim=(-0.02, 1.02),
             title="Recalling a key across a gap")
    axis.set_xticks(plan.gaps, [str(g) for g in plan.gaps])
    axis.minorticks_off()
    axis.grid(True, alpha=0.3)
    axis.legend(fontsize=8)
    return save_figure(figure, path)


def run(out_dir: str | Path, quick: bool = False, seeds: int | list[int] | None = None,
        plan: Plan | None = None) -> Path:
    """Train each cell at each maximum gap and measure recall at that gap.

    Args:
        out_dir: where report.md, results.csv and dependency.png go (created).
        quick: gaps 20 and 100, the tanh RNN, LSTM and GRU, one seed.
        seeds: a count n (seeds 0 .. n-1) or a list; default 3 (full) or 1 (quick).
        plan: gaps, cells and budget; default :data:`FULL` or :data:`QUICK`.

    Returns:
        The path of report.md.
    """
    plan = plan or (QUICK if quick else FULL)
    seeds = seed_list(plan.seeds if seeds is None else seeds)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    results = []
    for gap in plan.gaps:
        for cell in plan.cells:
            for seed in seeds:
                results.append(train(cell, gap, seed, plan))
                print(f"[dependency] G={gap} {cell} seed {seed}: accuracy "
                      f"{results[-1]['test_accuracy']:.3f} "
                      f"({time.perf_counter() - started:.0f} s)", flush=True)
    write_csv(results, out_dir / "results.csv")
    plot_accuracy(results, plan, out_dir / "dependency.png")

    rows = []
    for cell in plan.cells:
        row = [cell]
        for gap in plan.gaps:
            group = [r for r in results if r["cell"] == cell and r["max_gap"] == gap]
            solved = [r["solved_step"] for r in group if r["solved_step"] != ""]
            row.append(f"{mean_std([r['test_accuracy'] for r in group], 2)}; solved "
                       f"{len(solved)}/{len(group)}"
                       + (f" @ {int(statistics.median(solved))}" if solved else ""))
        rows.append(row)
    sections = [
        f"Mode: {'quick' if quick else 'full'}; seeds {seeds}; {plan.steps} steps per model; "
        f"hidden size {plan.hidden_size}; AdamW lr {plan.learning_rate}, no weight decay, "
        f"batch {plan.batch_size}, gradient norm clipped to {plan.clip_norm}; LSTM forget bias "
        f"{plan.forget_bias}. {KEYS} keys, {DISTRACTORS} distractor tokens; chance accuracy "
        f"{dependency_baseline(KEYS).accuracy:.3f}.",
        "Entries: test accuracy with exactly G distractors, for the model trained on gaps "
        f"0 .. G (mean ± std over seeds); seeds whose accuracy reached {SOLVED_ACCURACY} and "
        f"the median step at which it first did (evaluated every {plan.eval_every} steps).",
        markdown_table(["cell"] + [f"G = {gap}" for gap in plan.gaps], rows),
        "Figure: `dependency.png`; per-seed values in `results.csv`.",
    ]
    return write_report(out_dir, "Recalling a key across a gap of distractors", sections, started)
