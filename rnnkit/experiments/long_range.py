"""Long-range dependencies: the adding problem and copy memory across sequence lengths.

A tanh RNN, an LSTM, a GRU, a CIFG-LSTM and a minGRU are trained on each task at each length with
the same budget. The adding problem asks for the sum of two marked values of a length-T sequence
(trivial answer: always 1, MSE 1/6); copy memory asks for 10 symbols back after T blanks (a
memoryless model gets 10 ln 8 / (T + 20) nats per step). A gradient-flow figure shows why the
gated cells win: ‖dL/dh_k‖ against k for the tanh RNN, the LSTM and the GRU on the adding
problem, before and after training.

Training (the same for every cell): AdamW at learning rate 1e-2 without weight decay (every
batch is fresh data), batches of 64, gradients clipped to norm 1, hidden size 32 (adding) or
64 (copy), LSTM-family forget-gate biases started at 1. The high learning rate and the forget
bias shorten the long plateau at the trivial loss that precedes the solution.
"""

from __future__ import annotations

import copy
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from rnnkit.data import adding_baseline, adding_problem, copy_memory, copy_memory_baseline
from rnnkit.diagnostics import gradient_flow, write_csv
from rnnkit.diagnostics.plots import plt, save_figure
from rnnkit.experiments.common import (
    SequenceModel,
    markdown_table,
    mean_std,
    run_jobs,
    seed_list,
    set_forget_bias,
    worker_count,
    write_report,
)

CELLS = ("rnn", "lstm", "gru", "cifg-lstm", "mingru")
QUICK_CELLS = ("rnn", "lstm", "gru")
FLOW_CELLS = ("rnn", "lstm", "gru")

ADDING_TRIVIAL_MSE = adding_baseline().mse
ADDING_SOLVED_MSE = 0.05
"""The adding problem counts as solved once the test MSE is below 0.05, 30 % of the trivial 1/6."""
ADDING_CONVERGED_MSE = 0.005
"""Training stops early once the test MSE is below this (3 % of the trivial 1/6)."""
COPY_SOLVED_FRACTION = 0.1
"""Copy memory counts as solved once the test cross-entropy is below 10 % of the memoryless
baseline, i.e. on average more than 81 % probability on each recalled symbol."""
COPY_CONVERGED_FRACTION = 0.01
"""Training stops early once the test cross-entropy is below 1 % of the memoryless baseline."""

COPY_CLASSES = 10  # blank, 8 symbols, delimiter
COPY_RECALLED = 10  # symbols to recall, at the last 10 steps
TEST_SIZE = 500
TEST_SEED = 987_654_321  # far from the training batches' seeds, (seed + 1) * 1_000_003 + step


@dataclass(frozen=True)
class Plan:
    """What one invocation trains: per task, the lengths and each length's step budget."""

    adding_steps: dict[int, int]
    copy_steps: dict[int, int]
    cells: tuple[str, ...]
    seeds: int
    flow_length: int
    eval_every: int = 100
    adding_hidden_size: int = 32
    copy_hidden_size: int = 64
    batch_size: int = 64
    workers: int | None = None
    """Training processes of one thread each (:func:`run_jobs`); None: one per available core.
    The results do not depend on it."""
    learning_rate: float = 1e-2
    clip_norm: float = 1.0
    forget_bias: float = 1.0


FULL = Plan(adding_steps={50: 1500, 100: 2000, 200: 2000, 400: 1000},
            copy_steps={50: 1000, 100: 1000, 200: 800, 400: 400}, cells=CELLS, seeds=2,
            flow_length=100)
"""The default run: the adding problem and copy memory at T = 50, 100, 200 and 400, five cells,
two seeds (about 24 minutes of one CPU thread: 12 of wall time on two cores)."""
QUICK = Plan(adding_steps={100: 1500}, copy_steps={10: 200}, cells=QUICK_CELLS, seeds=1,
             flow_length=100)
"""``--quick``: the adding problem at T = 100, copy memory at a short delay (T = 10), tanh RNN,
LSTM and GRU, one seed (under a minute)."""


@dataclass
class Run:
    """One training run: its final metrics, the step it first solved the task, its test curve."""

    task: str
    length: int
    cell: str
    seed: int
    steps: int = 0
    solved_step: int | None = None
    final: dict[str, float] = field(default_factory=dict)
    curve: list[tuple[int, float]] = field(default_factory=list)


def adding_loss(model: SequenceModel, inputs: torch.Tensor, targets: torch.Tensor):
    """Mean squared error of the read-out at the last step."""
    outputs = model(inputs).outputs
    return F.mse_loss(outputs[:, -1, 0], targets)


def copy_loss(model: SequenceModel, inputs: torch.Tensor, targets: torch.Tensor):
    """Cross-entropy per step over all T + 20 steps, as the baseline counts it; and the logits."""
    logits = model(inputs).outputs
    return F.cross_entropy(logits.reshape(-1, COPY_CLASSES), targets.reshape(-1)), logits


def train(task: str, cell: str, length: int, seed: int, steps: int, plan: Plan,
          keep_models: bool = False):
    """Train one cell on one task and length; returns the :class:`Run` (and, if asked, the
    model as initialised and as trained)."""
    torch.manual_seed(seed)
    if task == "adding":
        model = SequenceModel(cell, 2, plan.adding_hidden_size, 1)
        make_batch = adding_problem
        baseline = ADDING_TRIVIAL_MSE
        solved_at, converged_at = ADDING_SOLVED_MSE, ADDING_CONVERGED_MSE
    else:
        model = SequenceModel(cell, COPY_CLASSES, plan.copy_hidden_size, COPY_CLASSES,
                              one_hot=True)
        make_batch = copy_memory
        baseline = copy_memory_baseline(length).cross_entropy
        solved_at = COPY_SOLVED_FRACTION * baseline
        converged_at = COPY_CONVERGED_FRACTION * baseline
    set_forget_bias(model.layer, plan.forget_bias)
    initial = copy.deepcopy(model) if keep_models else None
    optimizer = torch.optim.AdamW(model.parameters(), lr=plan.learning_rate, weight_decay=0.0)
    test_inputs, test_targets = make_batch(TEST_SIZE, length, seed=TEST_SEED)
    run = Run(task, length, cell, seed)

    def evaluate() -> dict[str, float]:
        with torch.no_grad():
            if task == "adding":
                return {"test_mse": adding_loss(model, test_inputs, test_targets).item()}
            loss, logits = copy_loss(model, test_inputs, test_targets)
            recalled = logits[:, -COPY_RECALLED:].argmax(-1) == test_targets[:, -COPY_RECALLED:]
            return {"test_ce": loss.item(), "recall_accuracy": recalled.float().mean().item()}

    for step in range(1, steps + 1):
        inputs, targets = make_batch(plan.batch_size, length, seed=(seed + 1) * 1_000_003 + step)
        loss = adding_loss(model, inputs, targets) if task == "adding" \
            else copy_loss(model, inputs, targets)[0]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), plan.clip_norm)
        optimizer.step()
        if step % plan.eval_every == 0 or step == steps:
            run.final = evaluate()
            metric = next(iter(run.final.values()))
            run.curve.append((step, metric / baseline))
            run.steps = step
            if run.solved_step is None and metric < solved_at:
                run.solved_step = step
            if metric < converged_at:
                break
    return (run, initial, model) if keep_models else run


def flow_profiles(models: dict[str, tuple[SequenceModel, SequenceModel]], length: int):
    """‖dL/dh_k‖ for k = 0 .. T-1 of each (initial, trained) model on one fixed test batch."""
    inputs, targets = adding_problem(256, length, seed=TEST_SEED + 1)
    profiles = {}
    for cell, pair in models.items():
        profiles[cell] = [
            gradient_flow(model.layer, lambda m=model: adding_loss(m, inputs, targets),
                          jacobian=False).loss_gradient.tolist()
            for model in pair
        ]
    return profiles


def plot_flow(profiles: dict[str, list[list[float]]], length: int, path: Path) -> Path:
    figure, axes = plt.subplots(1, 2, figsize=(10, 4), dpi=120, sharey=True)
    for column, title in enumerate(("at initialisation", "after training")):
        for cell, before_after in profiles.items():
            axes[column].plot(range(length), before_after[column], label=cell)
        axes[column].set(title=f"adding problem, T = {length}: {title}",
                         xlabel="step k", yscale="log")
        axes[column].grid(True, alpha=0.3)
    axes[0].set_ylabel("‖dL/dh_k‖ (batch mean)")
    axes[1].legend(fontsize=8)
    return save_figure(figure, path)


def plot_curves(runs: list[Run], task: str, plan_lengths: list[int], cells: tuple[str, ...],
                path: Path) -> Path:
    """Test loss relative to the trivial baseline against step: one panel per length, one
    colour per cell, one line per seed."""
    figure, axes = plt.subplots(1, len(plan_lengths), figsize=(4.2 * len(plan_lengths), 3.8),
                                dpi=120, squeeze=False, sharey=True)
    colours = {cell: f"C{i}" for i, cell in enumerate(cells)}
    for axis, length in zip(axes[0], plan_lengths):
        labelled = set()
        for run in runs:
            if run.task != task or run.length != length:
                continue
            steps, values = zip(*run.curve)
            axis.plot(steps, values, color=colours[run.cell], lw=1.2, alpha=0.8,
                      label=None if run.cell in labelled else run.cell)
            labelled.add(run.cell)
        axis.axhline(1.0, color="grey", ls="--", lw=0.8)
        axis.set(title=f"T = {length}", xlabel="training step", yscale="log")
        axis.grid(True, alpha=0.3)
    what = "test MSE / trivial 1/6" if task == "adding" else "test CE / memoryless baseline"
    axes[0, 0].set_ylabel(what)
    axes[0, -1].legend(fontsize=8)
    figure.suptitle("adding problem" if task == "adding" else "copy memory")
    return save_figure(figure, path)


def summary_table(runs: list[Run], task: str, lengths: list[int], cells: tuple[str, ...]) -> str:
    """Per cell and length: the final test metric over seeds, how many seeds solved the task
    and the median step at which they did."""
    rows = []
    for cell in cells:
        row = [cell]
        for length in lengths:
            group = [r for r in runs if r.task == task and r.length == length and r.cell == cell]
            metric = [next(iter(r.final.values())) for r in group]
            solved = [r.solved_step for r in group if r.solved_step is not None]
            text = f"{mean_std(metric, 4 if task == 'adding' else 3)}; solved {len(solved)}/"
            text += f"{len(group)}" + (f" @ {int(statistics.median(solved))}" if solved else "")
            if task == "copy":
                ratio = statistics.fmean(metric) / copy_memory_baseline(length).cross_entropy
                accuracy = [r.final["recall_accuracy"] for r in group]
                text += f"; {ratio:.2f} × baseline; recall acc {mean_std(accuracy, 2)}"
            row.append(text)
        rows.append(row)
    return markdown_table(["cell"] + [f"T = {length}" for length in lengths], rows)


def run(out_dir: str | Path, quick: bool = False, seeds: int | list[int] | None = None,
        plan: Plan | None = None) -> Path:
    """Train every cell on the adding problem (and, in full mode, copy memory) at each length.

    Args:
        out_dir: where report.md, results.csv, curves.csv and the PNGs go (created).
        quick: one length of the adding problem (T = 100) and the tanh RNN, LSTM and GRU only.
        seeds: a count n (seeds 0 .. n-1) or a list; default 2 (full) or 1 (quick).
        plan: lengths, step budgets and cells; default :data:`FULL` or :data:`QUICK`.

    Returns:
        The path of report.md.
    """
    plan = plan or (QUICK if quick else FULL)
    seeds = seed_list(plan.seeds if seeds is None else seeds)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    jobs, costs = [], []
    for task, budgets in (("adding", plan.adding_steps), ("copy", plan.copy_steps)):
        for length, steps in budgets.items():
            for cell in plan.cells:
                for seed in seeds:
                    keep = (task == "adding" and length == plan.flow_length
                            and cell in FLOW_CELLS and seed == seeds[0])
                    jobs.append((task, cell, length, seed, steps, plan, keep))
                    costs.append(steps * (2 * (length + 20) if task == "copy" else length))
    workers = worker_count(plan.workers, len(jobs))
    results: list = [None] * len(jobs)
    for index, result in run_jobs(train, jobs, costs, workers):
        results[index] = result
        run = result[0] if jobs[index][-1] else result
        print(f"[long_range] {run.task} T={run.length} {run.cell} seed {run.seed}: "
              f"{run.final} after {run.steps} steps, solved at {run.solved_step} "
              f"({time.perf_counter() - started:.0f} s)", flush=True)
    runs: list[Run] = []
    flow_models = {}
    for job, result in zip(jobs, results, strict=True):
        if job[-1]:
            result, initial, trained = result
            flow_models[job[1]] = (initial, trained)
        runs.append(result)

    write_csv([{"task": r.task, "length": r.length, "cell": r.cell, "seed": r.seed,
                "steps_trained": r.steps, "solved_step": r.solved_step or "", **r.final}
               for r in runs if r.task == "adding"], out_dir / "adding_results.csv")
    if plan.copy_steps:
        write_csv([{"task": r.task, "length": r.length, "cell": r.cell, "seed": r.seed,
                    "steps_trained": r.steps, "solved_step": r.solved_step or "", **r.final}
                   for r in runs if r.task == "copy"], out_dir / "copy_results.csv")
    write_csv([{"task": r.task, "length": r.length, "cell": r.cell, "seed": r.seed, "step": s,
                "test_loss_over_baseline": v} for r in runs for s, v in r.curve],
              out_dir / "curves.csv")
    adding_lengths = list(plan.adding_steps)
    plot_curves(runs, "adding", adding_lengths, plan.cells, out_dir / "adding_curves.png")
    if plan.copy_steps:
        plot_curves(runs, "copy", list(plan.copy_steps), plan.cells, out_dir / "copy_curves.png")
    profiles = flow_profiles(flow_models, plan.flow_length)
    write_csv([{"cell": cell, "model": model, "step": k, "grad_norm": value}
               for cell, pair in profiles.items()
               for model, values in zip(("initial", "trained"), pair)
               for k, value in enumerate(values)], out_dir / "gradient_flow.csv")
    plot_flow(profiles, plan.flow_length, out_dir / "gradient_flow.png")

    budget = ", ".join(f"T = {t}: {s}" for t, s in plan.adding_steps.items())
    sections = [
        f"Mode: {'quick' if quick else 'full'}; seeds {seeds}; cells {', '.join(plan.cells)}. "
        f"AdamW lr {plan.learning_rate}, no weight decay, batch {plan.batch_size}, gradient "
        f"norm clipped to {plan.clip_norm}, LSTM-family forget bias {plan.forget_bias}; "
        f"test set of {TEST_SIZE} sequences evaluated every {plan.eval_every} steps.",
        "## Adding problem\n\n"
        f"Hidden size {plan.adding_hidden_size}. Step budget per length: {budget}. "
        f"Entries: final test MSE (mean ± std over seeds; trivial 1/6 = "
        f"{ADDING_TRIVIAL_MSE:.3f}); seeds that solved it (test MSE < {ADDING_SOLVED_MSE}) "
        f"and the median step at which they first did. A run stops early once its test MSE "
        f"is below {ADDING_CONVERGED_MSE}.\n\n"
        + summary_table(runs, "adding", adding_lengths, plan.cells),
    ]
    if plan.copy_steps:
        budget = ", ".join(f"T = {t}: {s}" for t, s in plan.copy_steps.items())
        baselines = ", ".join(f"T = {t}: {copy_memory_baseline(t).cross_entropy:.3f}"
                              for t in plan.copy_steps)
        sections.append(
            "## Copy memory\n\n"
            f"Hidden size {plan.copy_hidden_size}. Step budget per length: {budget}. "
            f"Entries: final test cross-entropy per step (memoryless baseline {baselines}); "
            f"seeds that solved it (below {COPY_SOLVED_FRACTION:.0%} of the baseline) and the "
            f"median step; accuracy on the {COPY_RECALLED} recalled symbols (chance 0.125). A "
            f"run stops early once its cross-entropy is below {COPY_CONVERGED_FRACTION:.0%} of "
            "the baseline.\n\n"
            + summary_table(runs, "copy", list(plan.copy_steps), plan.cells))
    sections.append(
        "## Gradient flow\n\n"
        f"‖dL/dh_k‖ on the adding problem at T = {plan.flow_length} (seed {seeds[0]}), for "
        f"the models of the table at initialisation and after training: "
        "`gradient_flow.png`, values in `gradient_flow.csv`.\n\n"
        + markdown_table(
            ["cell", "model", "‖dL/dh_0‖", f"‖dL/dh_{plan.flow_length - 1}‖", "ratio"],
            [[cell, model, f"{values[0]:.2e}", f"{values[-1]:.2e}",
              f"{values[0] / values[-1]:.1e}" if values[-1] else "n/a"]
             for cell, pair in profiles.items()
             for model, values in zip(("initial", "trained"), pair)]))
    sections.append("Figures: `adding_curves.png`"
                    + (", `copy_curves.png`" if plan.copy_steps else "")
                    + ", `gradient_flow.png`.")
    return write_report(out_dir, "Long-range dependencies: adding problem and copy memory",
                        sections, started, workers)
