"""``rnnkit train --task forecast``: the next ``--horizon`` H values of a CSV series at once
from the ``--bptt`` L values before them.

``--data`` is sunspots, airline or a CSV path; ``--column`` names the value column. The series
is split in time order: the last n points are the test part, the n before them the validation
part (n = a tenth of the series, at most 30, at least H). Training windows have inputs and
targets inside the training part; a held-out point t is forecast h steps ahead from the L
values before t - h (observed history). Metrics, in the series' units: RMSE over all horizons,
at horizon 1 and at H, and the same for the last-value forecast (y[t-h]) and, for series with
a known season s (sunspots 11 years, airline 12 months), the seasonal-naive forecast
y[t - s*ceil(h/s)].
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from rnnkit.data import (
    ChronologicalSplit,
    CsvSeries,
    DataError,
    Normalizer,
    chronological_split,
    load_csv_series,
    make_windows,
)
from rnnkit.models import Forecaster, ModelOutput, evaluation_mode
from rnnkit.models.state import State
from rnnkit.training.config import TrainConfig
from rnnkit.training.errors import RunError
from rnnkit.training.task import (
    Batch,
    HeadAdapter,
    Task,
    build_model,
    head_settings,
    shuffled_rows,
)

DESCRIPTION = "forecast the next --horizon values of a CSV series (sunspots, airline)"

DEFAULTS: dict[str, Any] = {
    "data": "sunspots", "hidden_size": 32, "bptt": 33, "steps": 600, "warmup": 20,
    "eval_every": 25, "time_limit": 300.0,
}
"""A window of 33 values (three sunspot cycles) into a small network, validated often to keep
the best of a few hundred steps."""

SEASONS = {"sunspots": 11, "airline": 12}
"""Season length of the bundled series, for the seasonal-naive baseline."""


class ForecasterAdapter(HeadAdapter):
    """:class:`Forecaster` as a task's model: (window (B, L, 1), state, next values
    (B, horizon)) -> (forecast (B, horizon), None, mean squared error).

    Each window is standardised by its own mean m and spread s (standard deviation + 0.1)
    before the forecaster reads it, and the forecast is scaled back (``m + s * output``), so
    cycles of a height never seen in training are forecast on a familiar scale (the
    "reversible instance normalisation" of Kim et al. 2022). The loss is that of the forecast
    scaled back.
    """

    head_class = Forecaster

    def forward(self, inputs: Tensor, state: State | None = None,
                targets: Tensor | None = None) -> ModelOutput:
        """The forecast after each window, and its loss against ``targets``."""
        mean = inputs.mean(dim=1, keepdim=True)
        spread = (inputs.std(dim=1, keepdim=True) + 0.1 if inputs.shape[1] > 1
                  else torch.ones_like(mean))
        predicted = self.net((inputs - mean) / spread).outputs * spread[..., 0] + mean[..., 0]
        loss = None if targets is None else F.mse_loss(predicted.float(), targets)
        return ModelOutput(predicted, None, loss)


@dataclass
class PreparedSeries:
    """A series ready for the forecaster: its values, split, and the scale the model reads.

    ``scaled`` is the standardised series (of its square root when ``root``: a series that
    never goes below zero, such as counts, has a spread less dependent on its level there).
    """

    series: CsvSeries
    split: ChronologicalSplit
    root: bool
    normalizer: Normalizer
    scaled: Tensor


def forecasting_task(config: TrainConfig, device: torch.device,
                     saved: dict[str, Any] | None = None) -> Task:
    """The forecasting task of ``config`` (see the module's docstring); ``saved`` (from a
    checkpoint) fixes the column, window, horizon, scale and the model's sizes."""
    horizon, window = ((saved["model"]["horizon"], saved["window"]) if saved
                       else (config.horizon, config.bptt))
    prepared = prepare_series(config, saved, window, horizon)
    values = prepared.series.values
    train_inputs, train_targets = make_windows(prepared.scaled[:prepared.split.val_start],
                                               window, horizon)
    season = saved["season"] if saved else SEASONS.get(str(config.data).lower())
    settings = head_settings(config, saved, horizon=horizon, input_size=1)
    model = build_model(ForecasterAdapter, settings).to(device)
    batch_size = config.batch_size

    def batch_at(step: int) -> Batch:
        rows = shuffled_rows(len(train_targets), batch_size, step, config.seed)
        return Batch(train_inputs[rows].to(device), train_targets[rows].to(device),
                     starts_sequences=True)

    def evaluate(split_name: str) -> dict[str, float]:
        start, end = {"val": (prepared.split.val_start, prepared.split.test_start),
                      "test": (prepared.split.test_start, len(values)),
                      "all": (window + horizon, len(values))}[split_name]
        predicted = forecasts(model, prepared, window, range(start - horizon + 1, end + 1))
        return forecast_metrics(values, predicted, start, end, horizon, season)

    def showcase() -> str:
        ahead = forecasts(model, prepared, window, [len(values)])[0].tolist()
        series = prepared.series
        last = series.dates[-1] if series.dates else f"value {len(values)}"
        return (f"forecast of {series.column!r} for the {horizon} steps after {last}: "
                + ", ".join(f"{v:.1f}" for v in ahead))

    return Task(
        model=model, batch_at=batch_at,
        steps_per_epoch=math.ceil(len(train_targets) / batch_size),
        evaluate=evaluate, metric="rmse", metric_names=metric_names(horizon, season),
        saved={"model": settings, "normalizer": prepared.normalizer.to_dict(),
               "column": prepared.series.column, "sqrt": prepared.root, "window": window,
               "season": season},
        showcase=showcase,
    )


def held_out_size(length: int, horizon: int) -> int:
    """Points in each of the validation and test parts of a series of ``length`` points:
    a tenth of it, at most 30 and at least the horizon (30 for the sunspots)."""
    return max(horizon, min(30, length // 10))


def prepare_series(config: TrainConfig, saved: dict[str, Any] | None, window: int,
                   horizon: int) -> PreparedSeries:
    """Load ``--data`` (``--column``), split it in time order and scale it; unusable data
    or a window too long for the training part raise RunError."""
    where = f"--data {config.data}" + (f" --column {config.column}" if config.column else "")
    try:
        series = load_csv_series(config.data, column=saved["column"] if saved else config.column)
    except DataError as err:
        raise RunError(f"{where} for --task forecast (expected a CSV series: sunspots, airline "
                       f"or a path, and a value column): {err}") from None
    values = series.values
    held_out = held_out_size(len(values), horizon)
    try:
        split = chronological_split(values, test_size=held_out, val_size=held_out)
    except ValueError:
        raise RunError(f"{where}: {len(values)} values are too few to hold out {held_out} "
                       "for validation and test and keep a training part") from None
    if len(split.train) < window + horizon + 1:
        raise RunError(f"--bptt {window} / --horizon {horizon}: the training part of {where} "
                       f"has {len(split.train)} values, fewer than a window of {window} plus "
                       f"{horizon} targets needs; lower --bptt or --horizon")
    root = saved["sqrt"] if saved else bool((split.train >= 0).all())
    if root and (values < 0).any():
        raise RunError(f"{where}: the model works on the square root of this series, which has "
                       "negative values; use a series without them")
    stable = np.sqrt(values) if root else values
    normalizer = (Normalizer.from_dict(saved["normalizer"]) if saved
                  else Normalizer.fit(stable[:split.val_start]))
    scaled = torch.as_tensor(normalizer.transform(stable[:, None])[:, 0], dtype=torch.float32)
    return PreparedSeries(series, split, root, normalizer, scaled)


def forecasts(model: ForecasterAdapter, prepared: PreparedSeries, window: int,
              origins: Sequence[int]) -> Tensor:
    """Forecasts (len(origins), H) in the series' units of the values at indices o .. o+H-1,
    each from the ``window`` values before its origin o."""
    device = next(model.parameters()).device
    scaled = prepared.scaled
    windows = torch.stack([scaled[o - window:o] for o in origins]).unsqueeze(-1)
    with evaluation_mode(model):
        predicted = model(windows.to(device)).outputs.float().cpu().double()
    predicted = prepared.normalizer.inverse_transform(predicted.numpy()[..., None])[..., 0]
    return torch.as_tensor(np.maximum(predicted, 0.0) ** 2 if prepared.root else predicted)


def metric_names(horizon: int, season: int | None) -> tuple[str, ...]:
    """The forecast task's metrics, in the order :func:`forecast_metrics` gives them."""
    horizons = sorted({1, horizon})
    return ("rmse", *(f"rmse_h{h}" for h in horizons),
            *(f"last_value_rmse_h{h}" for h in horizons),
            *((f"seasonal_naive_rmse_h{h}" for h in horizons) if season else ()))


def forecast_metrics(values: np.ndarray, predicted: Tensor, start: int, end: int, horizon: int,
                     season: int | None) -> dict[str, float]:
    """RMSEs of the forecasts of the points ``start .. end-1``, next to the baselines'.

    Row r of ``predicted`` is the forecast made with the values before index
    ``start - horizon + 1 + r`` known (see :func:`forecasts`).
    """
    truth = torch.as_tensor(values, dtype=torch.float64)
    targets = truth[start:end]

    def rmse(guess: Tensor) -> float:
        return math.sqrt(float(((guess - targets) ** 2).mean()))

    def at(h: int) -> Tensor:  # forecasts of the targets made h steps ahead
        rows = torch.arange(start, end) - h + 1 - (start - horizon + 1)
        return predicted[rows, h - 1]

    horizons = sorted({1, horizon})
    metrics = {"rmse": math.sqrt(sum(rmse(at(h)) ** 2 for h in range(1, horizon + 1))
                                 / horizon)}
    metrics.update({f"rmse_h{h}": rmse(at(h)) for h in horizons})
    metrics.update({f"last_value_rmse_h{h}": rmse(truth[start - h:end - h]) for h in horizons})
    if season:
        for h in horizons:
            back = season * math.ceil(h / season)
            metrics[f"seasonal_naive_rmse_h{h}"] = rmse(truth[start - back:end - back])
    return metrics
