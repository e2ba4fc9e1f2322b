"""Combination rules for the forecast task compared on validation only, from trained runs.

    python benchmarks/forecast_rules.py RUN [RUN ...]

For each forecast run: the best checkpoint's network median, exponential smoothing (fitted on
the training part) and the naive forecast at every validation and test origin. Each rule
chooses weights over those three on one half of the validation origins (in time) and is scored
on the other half, both ways; printed: that MASE per run and rule, its geometric mean relative
to the network alone, and each rule's test MASE with the weights chosen on all of validation
(for the record, not for choosing).
"""

from __future__ import annotations

import itertools
import sys

import numpy as np
import torch

from rnnkit.models.forecast_scores import ExponentialSmoothing, targets_at
from rnnkit.tasks import TASKS, build_task
from rnnkit.tasks.forecast import candidate_forecasts, prepare_series, rolling_origins
from rnnkit.training.checkpoint import load_checkpoint
from rnnkit.training.run_dir import RunDirectory

NAMES = ("model", "ets", "naive")
AVERAGES = [c for k in (1, 2, 3) for c in itertools.combinations(NAMES, k)]


def mase(truth: np.ndarray, forecast: np.ndarray, scale: float) -> float:
    """Mean absolute error over origins and horizons, in units of ``scale``."""
    return float(np.abs(forecast - truth).mean() / scale)


def equal(parts: tuple[str, ...]) -> np.ndarray:
    """Equal weights over ``parts``."""
    return np.array([1.0 / len(parts) if n in parts else 0.0 for n in NAMES])


def best_average(truth, forecasts, scale, allowed) -> np.ndarray:
    """Weights of the equal-weight average among ``allowed`` with the lowest MASE."""
    return equal(min(allowed, key=lambda c: mase(truth, np.mean([forecasts[n] for n in c], 0),
                                                 scale)))


def inverse(truth, forecasts, scale, power) -> np.ndarray:
    """Weights proportional to 1 / MASE ** power."""
    weights = np.array([mase(truth, forecasts[n], scale) ** -power for n in NAMES])
    return weights / weights.sum()


RULES = {
    "network alone": lambda t, f, s: equal(("model",)),
    "best of all seven (default)": lambda t, f, s: best_average(t, f, s, AVERAGES),
    "best single": lambda t, f, s: best_average(t, f, s, AVERAGES[:3]),
    "best of two or three": lambda t, f, s: best_average(t, f, s, AVERAGES[3:]),
    "best with the network": lambda t, f, s: best_average(
        t, f, s, [c for c in AVERAGES if "model" in c]),
    "network + ETS": lambda t, f, s: equal(("model", "ets")),
    "all three": lambda t, f, s: equal(NAMES),
    "1 / MASE": lambda t, f, s: inverse(t, f, s, 1),
    "1 / MASE^2": lambda t, f, s: inverse(t, f, s, 2),
}


def candidates(path: str) -> dict[str, np.ndarray]:
    """Truth and the three forecasts at the validation and test origins of a run's best
    checkpoint, and the MASE scale."""
    run = RunDirectory.open(path)
    config = run.read_config(TASKS)
    checkpoint = load_checkpoint(run.checkpoint_for_use())
    saved = checkpoint.info["task"]
    task = build_task(config, torch.device("cpu"), saved)
    checkpoint.restore_model(task.model)
    prepared = prepare_series(config, saved)
    smoothing = ExponentialSmoothing.fit(prepared.values, prepared.train_end,
                                         next((m for m in prepared.seasons if m <= 200), None))
    out = {"scale": np.float64(prepared.scale)}
    for split in ("val", "test"):
        origins = rolling_origins(*prepared.span(split), prepared.horizon)
        _, forecasts = candidate_forecasts(task.model, prepared, smoothing, origins)
        out[f"{split}_truth"] = targets_at(prepared.values, origins, prepared.horizon)
        out.update({f"{split}_{name}": value for name, value in forecasts.items()})
    return out


def main(paths: list[str]) -> None:
    """Print the comparison for the runs at ``paths``."""
    torch.set_num_threads(1)
    nested = {rule: [] for rule in RULES}
    tests = {rule: [] for rule in RULES}
    for path in paths:
        data = candidates(path)
        scale, truth = float(data["scale"]), data["val_truth"]
        val = {n: data[f"val_{n}"] for n in NAMES}
        halves = (slice(0, len(truth) // 2), slice(len(truth) // 2, len(truth)))
        for name, rule in RULES.items():
            score = 0.0
            for fit, held in (halves, halves[::-1]):
                weights = rule(truth[fit], {n: v[fit] for n, v in val.items()}, scale)
                score += mase(truth[held], sum(w * val[n][held] for w, n in
                                               zip(weights, NAMES, strict=True)), scale) / 2
            nested[name].append(score)
            weights = rule(truth, val, scale)
            tests[name].append(mase(data["test_truth"], sum(
                w * data[f"test_{n}"] for w, n in zip(weights, NAMES, strict=True)), scale))
        print(path, " ".join(f"{name}={nested[name][-1]:.3f}" for name in RULES))
    alone = np.array(nested["network alone"])
    print("validation halves, geometric mean of MASE relative to the network alone:")
    for name in RULES:
        print(f"  {name:28s} {np.exp(np.mean(np.log(np.array(nested[name]) / alone))):.3f}")
    print("test MASE, weights chosen on all of validation:")
    for name in RULES:
        print(f"  {name:28s} " + " ".join(f"{x:.3f}" for x in tests[name]))


if __name__ == "__main__":
    main(sys.argv[1:])
