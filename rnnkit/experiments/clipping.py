"""Exploding gradients and gradient-norm clipping (Pascanu, Mikolov & Bengio 2013).

A tanh RNN whose recurrent matrix starts with spectral radius 1.5 (a random orthogonal matrix times
1.5; above 1 is Pascanu et al.'s necessary condition for gradients to explode) is trained on the
adding problem twice from the same initialisation and the same batches: once with the gradient
rescaled to norm 1 whenever it is longer (clipping), once without.

The optimiser is plain SGD at learning rate 0.1, as in Pascanu et al.: its step is the gradient
itself, so an exploding gradient becomes an exploding step. Adam-type optimisers divide each
coordinate by a running RMS of its gradients, which bounds the step and hides the effect.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

import rnnkit
from rnnkit.data import adding_baseline, adding_problem
from rnnkit.diagnostics import write_csv
from rnnkit.diagnostics.plots import plt, save_figure
from rnnkit.experiments.common import (
    SequenceModel,
    markdown_table,
    mean_std,
    seed_list,
    write_report,
)
from rnnkit.training.trainer import clip_gradients

MODES = {"clipped": 1.0, "unclipped": None}
"""Run name -> the gradient-norm threshold (None: never clip)."""
EXPLODING_FACTOR = 10
"""A step counts as exploding when its gradient norm is above 10 × the clipping threshold."""
TEST_SEED = 987_654_321


@dataclass(frozen=True)
class Plan:
    """Task, model and optimiser settings."""

    steps: int
    seeds: int
    length: int = 10
    hidden_size: int = 64
    spectral_radius: float = 1.5
    batch_size: int = 32
    learning_rate: float = 0.1
    test_size: int = 1000


FULL = Plan(steps=3000, seeds=3)
QUICK = Plan(steps=500, seeds=2)


@dataclass
class Run:
    """One training run: per-step gradient norms (before clipping) and losses, and the outcome."""

    mode: str
    seed: int
    grad_norms: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    diverged_step: int | None = None
    test_mse: float = math.nan


def build_model(seed: int, plan: Plan) -> SequenceModel:
    """The tanh RNN with its recurrent matrix set to ``spectral_radius`` × a random orthogonal."""
    torch.manual_seed(seed)
    layer = rnnkit.RNN(2, plan.hidden_size, batch_first=True)
    orthogonal, _ = torch.linalg.qr(torch.randn(plan.hidden_size, plan.hidden_size))
    with torch.no_grad():
        layer.weight_hh_l0.copy_(plan.spectral_radius * orthogonal)
    return SequenceModel(layer, 2, plan.hidden_size, 1)


def train(mode: str, seed: int, plan: Plan) -> Run:
    """Train with SGD, clipping as ``mode`` says; stops at the first non-finite loss or norm."""
    model = build_model(seed, plan)
    optimizer = torch.optim.SGD(model.parameters(), lr=plan.learning_rate)
    run = Run(mode, seed)
    for step in range(1, plan.steps + 1):
        inputs, targets = adding_problem(plan.batch_size, plan.length,
                                         seed=(seed + 1) * 1_000_003 + step)
        loss = F.mse_loss(model(inputs).outputs[:, -1, 0], targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        norm = clip_gradients(model.parameters(), MODES[mode], clip_value=None)
        run.grad_norms.append(norm)
        run.losses.append(loss.item())
        if not (math.isfinite(norm) and math.isfinite(loss.item())):
            run.diverged_step = step
            return run
        optimizer.step()
    inputs, targets = adding_problem(plan.test_size, plan.length, seed=TEST_SEED)
    with torch.no_grad():
        run.test_mse = F.mse_loss(model(inputs).outputs[:, -1, 0], targets).item()
    return run


def exploding_steps(run: Run) -> int:
    """Steps whose gradient norm is above :data:`EXPLODING_FACTOR` × the threshold, or not
    finite."""
    limit = EXPLODING_FACTOR * MODES["clipped"]
    return sum(not norm <= limit for norm in run.grad_norms)


def plot_runs(runs: list[Run], path: Path) -> Path:
    """Training loss and gradient norm (log scale) against step; x marks a divergence."""
    figure, axes = plt.subplots(1, 2, figsize=(11, 4), dpi=120)
    colours = {"clipped": "C0", "unclipped": "C3"}
    for column, (key, label) in enumerate((("losses", "training loss (MSE)"),
                                            ("grad_norms", "gradient norm before clipping"))):
        labelled = set()
        for run in runs:
            values = getattr(run, key)
            finite = [(i + 1, v) for i, v in enumerate(values) if math.isfinite(v)]
            if not finite:
                continue
            steps, shown = zip(*finite)
            axes[column].plot(steps, shown, color=colours[run.mode], lw=0.8, alpha=0.8,
                              label=None if run.mode in labelled else run.mode)
            labelled.add(run.mode)
            if run.diverged_step is not None:
                axes[column].plot(steps[-1], shown[-1], "x", color=colours[run.mode], ms=9)
        # Log steps: the divergence takes about 20 steps, the clipped run goes on to the end.
        axes[column].set(xlabel="training step", ylabel=label, xscale="log", yscale="log")
        axes[column].grid(True, alpha=0.3)
    axes[0].axhline(adding_baseline().mse, color="grey", ls="--", lw=0.8)
    axes[1].axhline(MODES["clipped"], color="grey", ls="--", lw=0.8)
    axes[1].legend(fontsize=8)
    figure.suptitle("tanh RNN, spectral radius 1.5, SGD lr 0.1: with and without clipping "
                    "(x: loss or gradient no longer finite)")
    return save_figure(figure, path)


def run(out_dir: str | Path, quick: bool = False, seeds: int | list[int] | None = None,
        plan: Plan | None = None) -> Path:
    """Train the same tanh RNN with and without gradient-norm clipping, per seed.

    Args:
        out_dir: where report.md, results.csv, steps.csv and clipping.png go (created).
        quick: 500 steps instead of 3000, two seeds.
        seeds: a count n (seeds 0 .. n-1) or a list; default 3 (full) or 2 (quick).
        plan: task, model and optimiser settings; default :data:`FULL` or :data:`QUICK`.

    Returns:
        The path of report.md.
    """
    plan = plan or (QUICK if quick else FULL)
    seeds = seed_list(plan.seeds if seeds is None else seeds)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    runs = []
    for seed in seeds:
        for mode in MODES:
            runs.append(train(mode, seed, plan))
            print(f"[clipping] {mode} seed {seed}: max gradient norm "
                  f"{max(runs[-1].grad_norms):.3g}, diverged at {runs[-1].diverged_step}, test "
                  f"MSE {runs[-1].test_mse:.4f} ({time.perf_counter() - started:.0f} s)",
                  flush=True)
    results = [{"mode": r.mode, "seed": r.seed, "steps_run": len(r.grad_norms),
                "diverged_step": r.diverged_step or "",
                "max_finite_grad_norm": max(n for n in r.grad_norms if math.isfinite(n)),
                "median_grad_norm": statistics.median(r.grad_norms),
                "exploding_steps": exploding_steps(r), "test_mse": r.test_mse} for r in runs]
    write_csv(results, out_dir / "results.csv")
    write_csv([{"mode": r.mode, "seed": r.seed, "step": step + 1, "grad_norm": norm,
                "loss": loss} for r in runs
               for step, (norm, loss) in enumerate(zip(r.grad_norms, r.losses))],
              out_dir / "steps.csv")
    plot_runs(runs, out_dir / "clipping.png")

    rows = []
    for mode in MODES:
        group = [r for r in results if r["mode"] == mode]
        diverged = [r["diverged_step"] for r in group if r["diverged_step"] != ""]
        finished = [r["test_mse"] for r in group if r["diverged_step"] == ""]
        rows.append([
            mode,
            f"{len(diverged)}/{len(group)}" + (f" (steps {', '.join(map(str, diverged))})"
                                               if diverged else ""),
            f"{max(r['max_finite_grad_norm'] for r in group):.3g}",
            mean_std([r["exploding_steps"] for r in group], 1),
            mean_std(finished, 4) if finished else "— (diverged)",
        ])
    table = markdown_table(["run", "diverged (loss or gradient not finite)",
                            "largest finite gradient norm",
                            f"exploding steps (norm > {EXPLODING_FACTOR})",
                            "final test MSE"], rows)
    sections = [
        f"Mode: {'quick' if quick else 'full'}; seeds {seeds}. Adding problem at T = "
        f"{plan.length}; tanh RNN, hidden size {plan.hidden_size}, recurrent matrix "
        f"{plan.spectral_radius} × a random orthogonal matrix; plain SGD, learning rate "
        f"{plan.learning_rate}, batch {plan.batch_size}, {plan.steps} steps. Clipped: the "
        f"gradient is rescaled to norm {MODES['clipped']} when longer. A diverged run stops at "
        f"its first non-finite loss or gradient. Trivial test MSE (always predict 1): "
        f"{adding_baseline().mse:.3f}.",
        table,
        "Figure: `clipping.png`; per-run outcome in `results.csv`, every step's gradient norm "
        "and loss in `steps.csv`.",
    ]
    return write_report(out_dir, "Exploding gradients: training with and without gradient-norm "
                        "clipping", sections, started)
