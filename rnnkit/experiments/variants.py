"""The LSTM variants of Greff et al. 2017 ("LSTM: A Search Space Odyssey") on a task that needs
forgetting: next-symbol prediction on the continual embedded Reber grammar.

Embedded Reber strings (B, then T or P, then a Reber string, then the same T or P again, then E)
follow each other without a break, and the network never has its state reset: it must carry the
second symbol across the inner string to predict the second-last one, and then let it go before the
next string (Gers, Schmidhuber & Cummins 2000, "Learning to Forget"). Training is truncated
backpropagation through time on 32 parallel streams, the state carried from chunk to chunk.

Variants, each one change from the vanilla LSTM with peepholes (V): no input gate (NIG), no forget
gate (NFG), no output gate (NOG), no input activation function (NIAF), no output activation
function (NOAF), no peepholes (NP), coupled input and forget gate (CIFG), full gate recurrence
(FGR). Training: AdamW at learning rate 1e-2 without weight decay, gradients clipped to norm 1,
hidden size 32, the cells' default initialisation.
"""

from __future__ import annotations

import math
import random
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

import rnnkit
from rnnkit.diagnostics import write_csv
from rnnkit.diagnostics.plots import plt, save_figure
from rnnkit.experiments.common import (
    SequenceModel,
    markdown_table,
    mean_std,
    seed_list,
    write_report,
)

REBER_SYMBOLS = "BTPSXVE"
REBER_GRAPH = {
    1: (("T", 2), ("P", 3)),
    2: (("S", 2), ("X", 4)),
    3: (("T", 3), ("V", 5)),
    4: (("X", 3), ("S", 6)),
    5: (("P", 4), ("V", 6)),
}
"""The Reber grammar: node -> its two equally likely (symbol, next node) edges; node 6 ends the
string with E."""

VARIANTS: dict[str, dict] = {
    "V": {"peepholes": True},
    "NIG": {"peepholes": True, "input_gate": False},
    "NFG": {"peepholes": True, "forget_gate": False},
    "NOG": {"peepholes": True, "output_gate": False},
    "NIAF": {"peepholes": True, "input_activation": False},
    "NOAF": {"peepholes": True, "output_activation": False},
    "NP": {},
    "CIFG": {"peepholes": True, "coupled": True},
    "FGR": {"peepholes": True, "full_gate_recurrence": True},
}
"""Greff et al.'s names -> the ``rnnkit.LSTM`` switches; peepholes wherever the gate exists."""


def embedded_reber_string(rng: random.Random) -> str:
    """One embedded Reber string, e.g. ``BTBPVVETE``."""
    branch = rng.choice("TP")
    symbols, node = ["B", branch, "B"], 1
    while node != 6:
        symbol, node = rng.choice(REBER_GRAPH[node])
        symbols.append(symbol)
    return "".join(symbols) + "E" + branch + "E"


@dataclass(frozen=True)
class ReberStream:
    """A continual stream of embedded Reber strings as next-symbol prediction.

    ``inputs[i]`` is symbol i and ``targets[i]`` symbol i + 1 (ids into :data:`REBER_SYMBOLS`).
    ``determined[i]`` says the target follows from the history with certainty (the B that starts
    every string, the inner B, the inner E, the second-last symbol and the last E); every other
    target is one of two equally likely symbols. ``long_range[i]`` marks the second-last symbols,
    which repeat the second symbol of their string.
    """

    inputs: torch.Tensor
    targets: torch.Tensor
    determined: torch.Tensor
    long_range: torch.Tensor

    @property
    def optimal_cross_entropy(self) -> float:
        """The best possible cross-entropy per symbol: ln 2 at each two-way choice."""
        return float((~self.determined).float().mean()) * math.log(2)


def reber_stream(n: int, seed: int) -> ReberStream:
    """``n`` prediction steps of a continual embedded Reber stream drawn with ``seed``."""
    rng = random.Random(seed)
    symbols: list[str] = []
    determined: list[bool] = []
    long_range: list[bool] = []
    while len(symbols) < n + 1:
        string = embedded_reber_string(rng)
        last = len(string) - 1
        symbols += string
        determined += [j in (0, 2, last - 2, last - 1, last) for j in range(len(string))]
        long_range += [j == last - 1 for j in range(len(string))]
    ids = torch.tensor([REBER_SYMBOLS.index(s) for s in symbols[: n + 1]])
    # Flags describe symbol j as a target, so they shift by one against the inputs; the very first
    # symbol of the stream is never predicted.
    return ReberStream(ids[:-1], ids[1:], torch.tensor(determined[1: n + 1]),
                       torch.tensor(long_range[1: n + 1]))


@dataclass(frozen=True)
class Plan:
    """Training budget and sizes."""

    steps: int
    seeds: int
    eval_every: int
    batch_size: int = 32
    chunk_length: int = 50
    hidden_size: int = 32
    learning_rate: float = 1e-2
    clip_norm: float = 1.0
    test_streams: int = 16
    test_length: int = 1000


FULL = Plan(steps=600, seeds=3, eval_every=100)
QUICK = Plan(steps=200, seeds=1, eval_every=200)
TEST_SEED = 987_654_321


def evaluate(model: SequenceModel, stream: ReberStream, rows: int) -> dict[str, float]:
    """Run the model over ``rows`` test streams from a zero state, never resetting it."""
    inputs, targets = stream.inputs.view(rows, -1), stream.targets.view(rows, -1)
    logits, state = [], None
    with torch.no_grad():
        for chunk in inputs.split(100, dim=1):
            output, state, _ = model(chunk, state)
            logits.append(output)
    logits = torch.cat(logits, dim=1).reshape(-1, len(REBER_SYMBOLS))
    correct = logits.argmax(-1) == targets.reshape(-1)
    cross_entropy = F.cross_entropy(logits, targets.reshape(-1)).item()
    return {
        "excess_cross_entropy": cross_entropy - stream.optimal_cross_entropy,
        "determined_accuracy": correct[stream.determined].float().mean().item(),
        "long_range_accuracy": correct[stream.long_range].float().mean().item(),
    }


def train(variant: str, seed: int, plan: Plan, test: ReberStream):
    """Train one variant; returns its final metrics and its curve of (step, excess CE)."""
    torch.manual_seed(seed)
    layer = rnnkit.LSTM(len(REBER_SYMBOLS), plan.hidden_size, batch_first=True,
                        **VARIANTS[variant])
    model = SequenceModel(layer, len(REBER_SYMBOLS), plan.hidden_size, len(REBER_SYMBOLS),
                          one_hot=True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=plan.learning_rate, weight_decay=0.0)
    symbols_per_row = plan.steps * plan.chunk_length
    stream = reber_stream(plan.batch_size * symbols_per_row, seed=seed)
    inputs = stream.inputs.view(plan.batch_size, symbols_per_row)
    targets = stream.targets.view(plan.batch_size, symbols_per_row)
    state, curve, metrics = None, [], {}
    for step in range(1, plan.steps + 1):
        window = slice((step - 1) * plan.chunk_length, step * plan.chunk_length)
        logits, state, _ = model(inputs[:, window], state)
        # Truncated BPTT: the state goes on into the next chunk, its history does not.
        state = tuple(s.detach() for s in state)
        loss = F.cross_entropy(logits.reshape(-1, len(REBER_SYMBOLS)),
                               targets[:, window].reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), plan.clip_norm)
        optimizer.step()
        if step % plan.eval_every == 0:
            metrics = evaluate(model, test, plan.test_streams)
            curve.append((step, metrics["excess_cross_entropy"]))
    return metrics, curve


def plot_bars(results: list[dict], path: Path) -> Path:
    """Excess cross-entropy and long-range accuracy per variant: mean bar, one dot per seed."""
    figure, axes = plt.subplots(1, 2, figsize=(11, 4), dpi=120)
    names = list(VARIANTS)
    panels = ((axes[0], "excess_cross_entropy",
               "test cross-entropy above the optimum (nats/symbol)"),
              (axes[1], "long_range_accuracy", "accuracy on the second-last symbol"))
    for axis, key, label in panels:
        values = [[r[key] for r in results if r["variant"] == name] for name in names]
        axis.bar(names, [statistics.fmean(v) for v in values],
                 color=["C0" if name == "V" else "C7" for name in names], alpha=0.8)
        for index, seed_values in enumerate(values):
            axis.scatter([index] * len(seed_values), seed_values, color="k", s=10, zorder=3)
        axis.set(ylabel=label)
        axis.grid(True, axis="y", alpha=0.3)
    axes[0].set_yscale("log")
    axes[1].axhline(0.5, color="grey", ls="--", lw=0.8)
    figure.suptitle("LSTM variants on the continual embedded Reber grammar")
    return save_figure(figure, path)


def run(out_dir: str | Path, quick: bool = False, seeds: int | list[int] | None = None,
        plan: Plan | None = None) -> Path:
    """Train the nine variants of Greff et al. 2017 on the continual embedded Reber grammar.

    Args:
        out_dir: where report.md, results.csv, curves.csv and variants.png go (created).
        quick: a shorter budget (200 steps) and one seed.
        seeds: a count n (seeds 0 .. n-1) or a list; default 3 (full) or 1 (quick).
        plan: budget and sizes; default :data:`FULL` or :data:`QUICK`.

    Returns:
        The path of report.md.
    """
    plan = plan or (QUICK if quick else FULL)
    seeds = seed_list(plan.seeds if seeds is None else seeds)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    test = reber_stream(plan.test_streams * plan.test_length, seed=TEST_SEED)
    started = time.perf_counter()
    results, curves = [], []
    for variant in VARIANTS:
        for seed in seeds:
            metrics, curve = train(variant, seed, plan, test)
            results.append({"variant": variant, "seed": seed, **metrics})
            curves += [{"variant": variant, "seed": seed, "step": step,
                        "excess_cross_entropy": value} for step, value in curve]
            print(f"[variants] {variant} seed {seed}: {metrics} "
                  f"({time.perf_counter() - started:.0f} s)", flush=True)
    write_csv(results, out_dir / "results.csv")
    write_csv(curves, out_dir / "curves.csv")
    plot_bars(results, out_dir / "variants.png")

    vanilla = statistics.fmean(r["excess_cross_entropy"] for r in results if r["variant"] == "V")
    rows = []
    for variant in VARIANTS:
        group = [r for r in results if r["variant"] == variant]
        excess = [r["excess_cross_entropy"] for r in group]
        rows.append([variant, mean_std(excess), f"{statistics.fmean(excess) / vanilla:.1f}",
                     mean_std([r["determined_accuracy"] for r in group]),
                     mean_std([r["long_range_accuracy"] for r in group])])
    table = markdown_table(["variant", "excess CE (nats/symbol)", "× V", "accuracy, determined",
                            "accuracy, second-last"], rows)
    sections = [
        f"Mode: {'quick' if quick else 'full'}; seeds {seeds}; {plan.steps} steps of "
        f"{plan.batch_size} streams × {plan.chunk_length} symbols; hidden size "
        f"{plan.hidden_size}; AdamW lr {plan.learning_rate}, no weight decay, gradient norm "
        f"clipped to {plan.clip_norm}.",
        f"Test: {plan.test_streams} continual streams of {plan.test_length} symbols, never "
        f"reset (optimal cross-entropy {test.optimal_cross_entropy:.3f} nats/symbol). Excess "
        "CE = test cross-entropy minus that optimum (mean ± std over seeds); × V = relative to "
        "the vanilla LSTM; accuracies of the most likely symbol on the targets that are "
        "determined by the history, and on the second-last symbol of each string alone (the "
        "long-range one; 0.5 for a guess).",
        table,
        "Figure: `variants.png`; per-seed values in `results.csv`, test curves in `curves.csv`.",
    ]
    return write_report(out_dir, "LSTM variants (Greff et al. 2017) on the continual embedded "
                        "Reber grammar", sections, started)
