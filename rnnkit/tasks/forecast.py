"""``rnnkit train --task forecast``: the next ``--horizon`` H values of a CSV series at once,
with prediction intervals, scored over many forecast origins against the usual baselines.

``--data`` is a bundled series (sunspots, airline, co2) or a CSV path; ``--column`` names the
value column, ``--covariates`` further columns the model reads (their values up to each
origin). The series is split in time order: the last n points are the test part, the n before
them the validation part (n = a tenth of the series, at least 2H). Seasons come from
``--season``, else the bundled series' own, else the timestamps' step (half-hourly: 48 and 336),
else the autocorrelation (:func:`rnnkit.data.seasons.detect_seasons`).

The model reads the ``--bptt`` L values before an origin (by default three of the shortest
seasons, at least 2H; for a season longer than the window, the values one season back as a
further channel) and outputs, for each horizon, corrections in three quantiles (10 %, 50 %,
90 %) to a naive forecast: at each horizon the last value or a seasonal naive, whichever was
better there inside the training part. It is trained with the pinball loss; the median is
the network's point forecast, the outer quantiles an 80 % interval. The network is a seed
ensemble: :data:`MEMBERS` forecasters from different initial weights, trained side by side on
the same batches, their quantiles averaged.

The run's forecast combines: of the network's median, exponential smoothing (fitted on the
training part) and the naive forecast the network corrects, the equal-weight average of one,
two or all three with the lowest MASE on the validation part
(:func:`~rnnkit.models.forecast_scores.choose_combination`); the network's interval moves
with it (its quantiles shifted by the combination's difference from its median). So a network
that cannot beat the classic forecasts on validation gives way to them, and one that is about
as good as they are is averaged with them. The best checkpoint is the one with the network's
lowest validation MASE (``model_mase``).

Evaluation uses every origin of a part whose H targets lie inside it (rolling origin; at
most 250, evenly spaced). Metrics of the run's forecast: MASE (divided by the in-sample
seasonal-naive error of the shortest season), sMAPE (%) and RMSE (series units) over all
horizons, MASE at horizons 1 and H, the 80 % interval's coverage and the pinball loss; the
network's own MASE, sMAPE and RMSE (``model_*``); the MASE of the naive forecast it corrects
(``naive_mase``) and of every average the combination chooses among (``model_ets_mase``, ...);
and MASE, sMAPE and RMSE of the last-value, seasonal-naive (each season) and
exponential-smoothing (statsmodels Holt-Winters) forecasts from the same origins. On the
validation part the combination is scored on the values that chose it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from rnnkit.data import CsvSeries, DataError, Normalizer, load_csv_series
from rnnkit.data.seasons import detect_seasons, timestamp_seasons
from rnnkit.data.timeseries import BUNDLED_SEASONS
from rnnkit.diagnostics import plot_forecast, write_csv
from rnnkit.models import Forecaster, ModelOutput, evaluation_mode
from rnnkit.models.forecast_scores import (
    Combination,
    ExponentialSmoothing,
    choose_combination,
    combinations,
    horizon_scores,
    interval_scores,
    mase_scale,
    mean_over_horizons,
    naive_forecasts,
    targets_at,
)
from rnnkit.models.state import State
from rnnkit.training.config import TrainConfig
from rnnkit.training.errors import RunError
from rnnkit.training.task import Batch, HeadAdapter, Task, build_model, head_settings, shuffled_rows

DESCRIPTION = "forecast the next --horizon values of a CSV series, with intervals (sunspots)"

DEFAULTS: dict[str, Any] = {
    "data": "sunspots", "hidden_size": 32, "bptt": None, "steps": 600, "warmup": 20,
    "eval_every": 25, "time_limit": None,
}
"""A small network validated often to keep the best of a fixed 600 steps; the window
(``bptt`` None) follows the series' seasons. No time limit, so that no machine's load cuts the
run short and the same command gives the same run (the former 300 s limit cut co2 at 467 of
600 steps on a busy machine, docs/results/forecast.md)."""

QUANTILES = (0.1, 0.5, 0.9)
"""The quantiles the model forecasts: the median and an 80 % interval."""

MEDIAN = len(QUANTILES) // 2
"""Index of the median among :data:`QUANTILES`."""

MEMBERS = 3
"""Forecasters in the network's seed ensemble."""

CANDIDATES = ("model", "ets", "naive")
"""The point forecasts the run's forecast combines: the network's median, exponential
smoothing, and the naive forecast the network corrects."""

CANDIDATE_NAMES = {"model": "the network", "ets": "exponential smoothing",
                   "naive": "the naive forecast"}
"""How messages name the candidates."""

MAX_ORIGINS = 250
"""At most this many forecast origins per evaluated part, evenly spaced."""


class QuantileForecaster(HeadAdapter):
    """:class:`Forecaster` as a task's model: ((window (B, L, C), naive (B, H)), state,
    next values (B, H)) -> (quantile forecasts (B, H, Q), None, pinball loss).

    With ``members`` K > 1 it is a seed ensemble: K forecasters (``net`` and ``others``), each
    from its own initial weights, read the same windows; the outputs are the mean of their
    corrections and the loss the mean of their own pinball losses, so each is trained as if
    alone.

    Channel 0 of the window is the series, the next ``lags`` channels the series one season
    back, the rest covariates. The series' channels are standardised by the window's own mean
    m and spread s (standard deviation of channel 0 + 0.1) before the forecaster reads them
    (reversible instance normalisation, Kim et al. 2022); its outputs are corrections to the
    naive forecast in units of s: forecast = naive + s * output. The head starts at zero, so
    an untrained model forecasts the naive forecast. The loss is the pinball loss of the
    corrections, so every window weighs the same whatever its spread.
    """

    head_class = Forecaster

    def __init__(self, settings: dict[str, Any]) -> None:
        """The head for ``settings`` with ``horizon`` H * Q outputs, and ``quantiles``,
        ``lags`` (series channels after the first) and ``members`` (default 1) among them."""
        settings = dict(settings)
        self.quantiles: tuple[float, ...] = tuple(settings.pop("quantiles"))
        self.lags: int = settings.pop("lags")
        self.members: int = settings.pop("members", 1)
        if self.members < 1:
            raise ValueError(f"members must be at least 1, got {self.members}")
        super().__init__(settings)
        self.others = nn.ModuleList(self.head_class(**settings)
                                    for _ in range(self.members - 1))
        self.settings = {**settings, "quantiles": list(self.quantiles), "lags": self.lags,
                         "members": self.members}
        for net in (self.net, *self.others):
            nn.init.zeros_(net.head.weight)
            nn.init.zeros_(net.head.bias)
        self.register_buffer("levels", torch.tensor(self.quantiles), persistent=False)

    def forward(self, inputs: tuple[Tensor, Tensor], state: State | None = None,
                targets: Tensor | None = None) -> ModelOutput:
        """Quantile forecasts after each window, and their pinball loss against ``targets``."""
        window, naive = inputs
        series = window[..., :1 + self.lags]
        mean = window[..., :1].mean(dim=1, keepdim=True)
        spread = window[..., :1].std(dim=1, keepdim=True) + 0.1 if window.shape[1] > 1 \
            else torch.ones_like(mean)
        normalised = torch.cat([(series - mean) / spread, window[..., 1 + self.lags:]], dim=-1)
        # window.shape[0], not len(window): len() makes the batch size a constant under export
        corrections = torch.stack([net(normalised).outputs.float().view(
            window.shape[0], -1, len(self.quantiles)) for net in (self.net, *self.others)])
        scale = spread[:, :, :1]
        predicted = naive[..., None] + scale * corrections.mean(dim=0)
        loss = None
        if targets is not None:
            miss = ((targets - naive) / scale[..., 0])[..., None] - corrections
            loss = torch.maximum(self.levels * miss, (self.levels - 1) * miss).mean()
        return ModelOutput(predicted, None, loss)


@dataclass
class PreparedSeries:
    """A series ready for the model: values, parts, seasons and the model's inputs.

    Parts: training ``[0, train_end)``, validation ``[train_end, test_start)``, test
    ``[test_start, N)``. ``channels`` (N, C) holds the standardised series then the
    standardised covariates; ``naive_seasons`` gives at each horizon 1 (last value) or the
    season whose naive forecast the model corrects; ``lags`` the seasons read as extra channels;
    ``first_origin`` the first origin with the history all of that needs.
    """

    series: CsvSeries
    horizon: int
    window: int
    train_end: int
    test_start: int
    seasons: list[int]
    season_source: str
    naive_seasons: list[int]
    lags: list[int]
    normalizer: Normalizer
    covariate_normalizer: Normalizer | None
    channels: Tensor
    first_origin: int
    scale: float = field(init=False)

    def __post_init__(self) -> None:
        """The MASE scale: the seasonal-naive error of the shortest season in training."""
        self.scale = mase_scale(self.series.values[:self.train_end],
                                self.seasons[0] if self.seasons else 1)

    @property
    def values(self) -> np.ndarray:
        """The series (N,), float64, in its units."""
        return self.series.values

    def inputs(self, origins: Sequence[int]) -> tuple[Tensor, Tensor]:
        """The model's inputs for ``origins``: windows (B, L, C + lags), standardised, and the
        naive forecasts (B, H), standardised."""
        index = torch.as_tensor(list(origins))[:, None]
        steps = index + torch.arange(-self.window, 0)
        series = self.channels[:, 0]
        parts = [series[steps][..., None]]
        parts += [series[steps - m][..., None] for m in self.lags]
        parts.append(self.channels[steps, 1:])
        return torch.cat(parts, dim=-1), series[index + naive_offsets(self.naive_seasons)]

    def targets(self, origins: Sequence[int]) -> Tensor:
        """The standardised values (B, H) each origin's forecast aims at."""
        index = torch.as_tensor(list(origins))[:, None] + torch.arange(self.horizon)
        return self.channels[index, 0]

    def span(self, split: str) -> tuple[int, int]:
        """The values ``[start, end)`` a part's forecasts aim at."""
        return {"val": (self.train_end, self.test_start),
                "test": (self.test_start, len(self.values)),
                "all": (self.first_origin, len(self.values))}[split]


def forecasting_task(config: TrainConfig, device: torch.device,
                     saved: dict[str, Any] | None = None) -> Task:
    """The forecasting task of ``config`` (see the module's docstring); ``saved`` (from a
    checkpoint) fixes the columns, window, horizon, seasons, scales and the model's sizes."""
    if saved is not None and "naive_seasons" not in saved:
        raise RunError("this forecast run was trained by an earlier rnnkit, whose model this "
                       "version does not read; train it again")
    prepared = prepare_series(config, saved)
    horizon = prepared.horizon
    settings = head_settings(config, saved, horizon=horizon * len(QUANTILES),
                             input_size=prepared.channels.shape[1] + len(prepared.lags),
                             quantiles=list(QUANTILES), lags=len(prepared.lags),
                             members=MEMBERS)
    model = build_model(QuantileForecaster, settings).to(device)
    train_origins = torch.arange(prepared.first_origin, prepared.train_end - horizon + 1)
    batch_size = config.batch_size
    baselines: dict[str, dict[str, float]] = {}
    smoothing: list[ExponentialSmoothing] = []

    def batch_at(step: int) -> Batch:
        origins = train_origins[shuffled_rows(len(train_origins), batch_size, step, config.seed)]
        window, naive = prepared.inputs(origins.tolist())
        return Batch((window.to(device), naive.to(device)),
                     prepared.targets(origins.tolist()).to(device), starts_sequences=True)

    def exponential_smoothing() -> ExponentialSmoothing:
        if not smoothing:
            try:
                smoothing.append(ExponentialSmoothing.fit(
                    prepared.values, prepared.train_end,
                    next((m for m in prepared.seasons if m <= 200), None)))
            except ImportError as err:
                raise RunError(f"--task forecast: {err}") from None
        return smoothing[0]

    def origins_of(split: str) -> list[int]:
        start, end = prepared.span(split)
        if split == "all":
            start = max(start, exponential_smoothing().start + 1)
        return rolling_origins(start, end, horizon)

    def baseline_scores(split: str) -> dict[str, float]:
        if split not in baselines:
            origins = origins_of(split)
            truth = targets_at(prepared.values, origins, horizon)
            guesses = {"last_value": naive_forecasts(prepared.values, origins, horizon)}
            guesses.update({f"snaive{m}": naive_forecasts(prepared.values, origins, horizon, m)
                            for m in prepared.seasons})
            guesses["ets"] = exponential_smoothing().forecasts(origins, horizon)
            baselines[split] = {
                f"{name}_{score}": value for name, guess in guesses.items()
                for score, value in mean_over_horizons(
                    horizon_scores(truth, guess, prepared.scale)).items()}
        return baselines[split]

    def evaluate(split: str) -> dict[str, float]:
        origins = origins_of(split)
        quantiles, candidates = candidate_forecasts(model, prepared, exponential_smoothing(),
                                                    origins)
        combination = (choose_combination(targets_at(prepared.values, origins, horizon),
                                          candidates, prepared.scale)[0] if split == "val"
                       else validation_choice(model, prepared, exponential_smoothing())[0])
        predicted = combined_forecasts(quantiles, candidates, combination)
        truth = targets_at(prepared.values, origins, horizon)
        scores = horizon_scores(truth, predicted[..., MEDIAN], prepared.scale)
        metrics = mean_over_horizons(scores)
        metrics.update({f"mase_h{h}": float(scores["mase"][h - 1])
                        for h in sorted({1, horizon})})
        metrics.update(interval_scores(truth, predicted, QUANTILES))
        metrics.update({f"model_{name}": value for name, value in mean_over_horizons(
            horizon_scores(truth, candidates["model"], prepared.scale)).items()})
        metrics.update({f"{other.name}_mase": float(horizon_scores(
            truth, other.apply(candidates), prepared.scale)["mase"].mean())
            for other in combinations(CANDIDATES) if other.name not in ("model", "ets")})
        return metrics | baseline_scores(split)

    def details(split: str) -> str:
        return horizon_table(prepared, split, model, exponential_smoothing(),
                             origins_of(split))

    def describe_split(split: str) -> str:
        start, end = prepared.span(split)
        return (f"{len(origins_of(split))} forecast origins, {horizon} steps each, over the "
                f"{end - start} values from {prepared.series.position(start)}")

    def showcase() -> str:
        values = prepared.values
        smoothing = exponential_smoothing()
        combination, chosen_on = validation_choice(model, prepared, smoothing)
        ahead = combined_forecasts(*candidate_forecasts(model, prepared, smoothing,
                                                        [len(values)]), combination)[0]
        series = prepared.series
        lines = [describe_setup(prepared, smoothing),
                 describe_combination(combination, chosen_on), details("test"),
                 f"forecast of {series.column!r} for the {horizon} steps after "
                 f"{series.position(len(values) - 1)}, median [80 % interval]:",
                 ", ".join(f"{m:.4g} [{lo:.4g}, {hi:.4g}]" for lo, m, hi in ahead.tolist())]
        return "\n".join(lines)

    return Task(
        model=model, batch_at=batch_at,
        steps_per_epoch=math.ceil(len(train_origins) / batch_size),
        evaluate=evaluate, metric="model_mase",
        metric_names=metric_names(horizon, prepared.seasons),
        saved={"model": model.settings, "normalizer": prepared.normalizer.to_dict(),
               "covariate_normalizer": (prepared.covariate_normalizer.to_dict()
                                        if prepared.covariate_normalizer else None),
               "column": prepared.series.column,
               "covariates": list(prepared.series.covariate_names),
               "window": prepared.window, "horizon": horizon, "seasons": prepared.seasons,
               "season_source": prepared.season_source,
               "naive_seasons": prepared.naive_seasons, "lags": prepared.lags},
        showcase=showcase, describe_split=describe_split, details=details,
        write_files=lambda folder: write_forecast_files(prepared, model,
                                                        exponential_smoothing(), folder),
        unit="windows",
    )


def held_out_size(length: int, horizon: int) -> int:
    """Points in each of the validation and test parts of a series of ``length`` points:
    a tenth of it, at least 2 * horizon (30 of the 309 sunspot years)."""
    return max(2 * horizon, length // 10)


def rolling_origins(start: int, end: int, horizon: int) -> list[int]:
    """Origins whose H targets all lie in ``[start, end)``: every one, or
    :data:`MAX_ORIGINS` evenly spaced from the first to the last."""
    last = end - horizon
    if last < start:
        return []
    count = last - start + 1
    if count <= MAX_ORIGINS:
        return list(range(start, last + 1))
    return sorted({round(x) for x in np.linspace(start, last, MAX_ORIGINS)})


def parse_seasons(text: str) -> list[int]:
    """``--season``: "48,336" -> [48, 336]; "none" or "0" -> []; anything else RunError."""
    if text.strip().lower() in ("none", "0", ""):
        return []
    try:
        seasons = sorted({int(part) for part in text.split(",")})
    except ValueError:
        raise RunError(f"--season: expected season lengths in steps separated by commas "
                       f"(such as 48,336) or none, got {text!r}") from None
    if seasons[0] < 2:
        raise RunError(f"--season: a season is at least 2 steps, got {text!r}")
    return seasons


def default_window(seasons: list[int], horizon: int, train_length: int) -> int:
    """Three of the shortest seasons (24 steps without a season), at least 2H, at most what
    leaves half the training part for the windows' origins."""
    window = max(3 * seasons[0] if seasons else 24, 2 * horizon)
    longest_lag = max((m for m in seasons if m >= window), default=0)
    return max(1, min(window, (train_length - horizon - longest_lag) // 2))


def better_naive(train: np.ndarray, seasons: list[int], horizon: int) -> list[int]:
    """At each horizon 1..H, 1 (last value) or the season whose naive forecast had the lowest
    mean absolute error there over the training part's origins (1 where there are too few)."""
    candidates = [1, *seasons]
    origins = range(max(candidates), len(train) - horizon + 1)
    if len(origins) < 1:
        return [1] * horizon
    truth = targets_at(train, origins, horizon)
    errors = np.stack([np.abs(naive_forecasts(train, origins, horizon, m) - truth).mean(axis=0)
                       for m in candidates])
    return [candidates[k] for k in errors.argmin(axis=0)]


def naive_offsets(seasons: Sequence[int]) -> Tensor:
    """Where, relative to an origin, the naive forecast at each horizon h = 1..H takes its
    value: ``h - 1 - m * ceil(h / m)`` for the horizon's season m (1: the last value)."""
    season = torch.as_tensor(list(seasons))
    ahead = torch.arange(1, len(season) + 1)
    return ahead - 1 - season * torch.ceil(ahead / season).long()


def prepare_series(config: TrainConfig, saved: dict[str, Any] | None) -> PreparedSeries:
    """Load ``--data`` (``--column``, ``--covariates``), split it in time order, find its
    seasons and scale it; unusable data or settings raise RunError."""
    column = saved["column"] if saved else config.column
    covariates = (saved["covariates"] if saved else
                  [c.strip() for c in config.covariates.split(",") if c.strip()]
                  if config.covariates else [])
    where = (f"--data {config.data}" + (f" --column {column}" if column else "")
             + (f" --covariates {','.join(covariates)}" if covariates else ""))
    try:
        series = load_csv_series(config.data, column=column, fill="interpolate",
                                 covariates=covariates)
    except DataError as err:
        raise RunError(f"{where} for --task forecast (expected a CSV series: "
                       f"sunspots, airline, co2 or a path, and a value column): {err}") from None
    horizon = saved["horizon"] if saved else config.horizon
    length = len(series)
    held_out = held_out_size(length, horizon)
    train_end, test_start = length - 2 * held_out, length - held_out
    if train_end < 2 * horizon + 2:
        raise RunError(f"{where}: {length} values are too few to hold out {held_out} for each "
                       f"of validation and test (2 x --horizon {horizon} at least) and keep a "
                       "training part; lower --horizon")
    train = series.values[:train_end]
    if saved:
        seasons, source = list(saved["seasons"]), saved["season_source"]
    elif config.season is not None:
        seasons, source = parse_seasons(config.season), "--season"
        too_long = [m for m in seasons if 2 * m > train_end]
        if too_long:
            raise RunError(f"--season {config.season}: the training part of {where} has "
                           f"{train_end} values, fewer than two seasons of {too_long[0]}")
    elif str(config.data).lower() in BUNDLED_SEASONS:
        seasons, source = BUNDLED_SEASONS[str(config.data).lower()], "the series' own"
    else:
        seasons = detect_seasons(train, series.dates)
        source = ("its timestamps" if seasons and series.dates
                  and timestamp_seasons(series.dates) else "its autocorrelation")
    window = (saved["window"] if saved else config.bptt
              or default_window(seasons, horizon, train_end))
    lags = saved["lags"] if saved else [m for m in seasons if m >= window]
    naive_seasons = (saved["naive_seasons"] if saved
                     else better_naive(train, seasons, horizon))
    first_origin = max(window + max(lags, default=0), -int(naive_offsets(naive_seasons).min()))
    if train_end - horizon + 1 - first_origin < 1:
        raise RunError(f"--bptt {window} / --horizon {horizon}: the training part of {where} "
                       f"has {train_end} values, fewer than a window of {window} (and "
                       f"{max(lags, default=0)} values before it for the seasons longer than "
                       f"the window) plus {horizon} targets need; lower --bptt or --horizon")
    normalizer = (Normalizer.from_dict(saved["normalizer"]) if saved
                  else Normalizer.fit(train))
    columns = [normalizer.transform(series.values[:, None])]
    covariate_normalizer = None
    if series.covariates is not None:
        covariate_normalizer = (Normalizer.from_dict(saved["covariate_normalizer"]) if saved
                                else Normalizer.fit(series.covariates[:train_end]))
        columns.append(covariate_normalizer.transform(series.covariates))
    channels = torch.as_tensor(np.concatenate(columns, axis=1), dtype=torch.float32)
    return PreparedSeries(series, horizon, window, train_end, test_start, seasons, source,
                          naive_seasons, lags, normalizer, covariate_normalizer, channels,
                          first_origin)


def quantile_forecasts(model: QuantileForecaster, prepared: PreparedSeries,
                       origins: Sequence[int]) -> np.ndarray:
    """Forecasts (origins, H, Q) in the series' units, quantiles in increasing order, each
    from the values before its origin."""
    device = next(model.parameters()).device
    outputs = []
    with evaluation_mode(model):
        for start in range(0, len(origins), 512):
            window, naive = prepared.inputs(origins[start:start + 512])
            outputs.append(model((window.to(device), naive.to(device))).outputs.float().cpu())
    scaled = torch.cat(outputs).double().numpy()
    mean, std = float(prepared.normalizer.mean[0]), float(prepared.normalizer.std[0])
    return np.sort(scaled * std + mean, axis=-1)


def candidate_forecasts(model: QuantileForecaster, prepared: PreparedSeries,
                        smoothing: ExponentialSmoothing, origins: Sequence[int]
                        ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The network's quantile forecasts (origins, H, Q) from ``origins``, and the point
    forecasts (origins, H) of :data:`CANDIDATES` by name: the network's median, exponential
    smoothing's, and the naive forecast the network corrects."""
    quantiles = quantile_forecasts(model, prepared, origins)
    index = np.asarray(origins)[:, None] + naive_offsets(prepared.naive_seasons).numpy()
    return quantiles, {"model": quantiles[..., MEDIAN],
                       "ets": smoothing.forecasts(origins, prepared.horizon),
                       "naive": prepared.values[index]}


def validation_choice(model: QuantileForecaster, prepared: PreparedSeries,
                      smoothing: ExponentialSmoothing) -> tuple[Combination, dict[str, float]]:
    """The combination of :data:`CANDIDATES` with the lowest MASE over the validation part's
    origins, and every combination's MASE there by name."""
    origins = rolling_origins(*prepared.span("val"), prepared.horizon)
    _, candidates = candidate_forecasts(model, prepared, smoothing, origins)
    return choose_combination(targets_at(prepared.values, origins, prepared.horizon),
                              candidates, prepared.scale)


def combined_forecasts(quantiles: np.ndarray, candidates: dict[str, np.ndarray],
                       combination: Combination) -> np.ndarray:
    """The run's quantile forecasts (origins, H, Q): the network's ``quantiles`` shifted so
    that their median is ``combination``'s point forecast (the interval keeps its widths)."""
    point = combination.apply(candidates)
    return quantiles + (point - quantiles[..., MEDIAN])[..., None]


def describe_combination(combination: Combination, scores: dict[str, float]) -> str:
    """One line on the forecast chosen on validation, with the MASE there of it and of the
    single forecasts."""
    chosen = " and ".join(CANDIDATE_NAMES[part] for part in combination.parts)
    what = (f"the average of {chosen}" if len(combination.parts) > 1 else chosen)
    others = ", ".join(f"{CANDIDATE_NAMES[name]} {scores[name]:.3f}" for name in CANDIDATES)
    return (f"the forecast: {what}, the lowest validation MASE ({scores[combination.name]:.3f}; "
            f"alone: {others}) of the averages of one, two or three of them")


def metric_names(horizon: int, seasons: list[int]) -> tuple[str, ...]:
    """The forecast task's metrics, in the order its ``evaluate`` gives them."""
    scores = ("mase", "smape", "rmse")
    baselines = ("last_value", *(f"snaive{m}" for m in seasons), "ets")
    blends = tuple(f"{other.name}_mase" for other in combinations(CANDIDATES)
                   if other.name not in ("model", "ets"))
    return (*scores, *(f"mase_h{h}" for h in sorted({1, horizon})), "coverage", "pinball",
            *(f"model_{score}" for score in scores), *blends,
            *(f"{name}_{score}" for name in baselines for score in scores))


def describe_setup(prepared: PreparedSeries, smoothing: ExponentialSmoothing) -> str:
    """Two lines on what the run found: seasons, the naive forecast corrected, the parts."""
    seasons = (", ".join(str(m) for m in prepared.seasons) if prepared.seasons else "none")
    runs: list[tuple[int, int, int]] = []  # (season, first h, last h)
    for h, m in enumerate(prepared.naive_seasons, start=1):
        if runs and runs[-1][0] == m:
            runs[-1] = (m, runs[-1][1], h)
        else:
            runs.append((m, h, h))
    naive = "the naive forecasts: " + ", ".join(
        ("last value" if m == 1 else f"season {m}") + (f" at h {a}" if a == b else
                                                        f" at h {a}-{b}")
        for m, a, b in runs)
    return (f"seasons: {seasons} (from {prepared.season_source}); the model corrects {naive}; "
            f"window {prepared.window}; exponential smoothing: {smoothing.describe()}\n"
            f"parts: training {prepared.train_end} values, validation "
            f"{prepared.test_start - prepared.train_end}, test "
            f"{len(prepared.values) - prepared.test_start} (from "
            f"{prepared.series.position(prepared.test_start)}); MASE divides by "
            f"{prepared.scale:.4g}, the in-sample error of the seasonal naive of season "
            f"{prepared.seasons[0] if prepared.seasons else 1}"
            + (f"; {prepared.series.missing_filled} missing values filled by linear "
               "interpolation" if prepared.series.missing_filled else ""))


def by_horizon(prepared: PreparedSeries, model: QuantileForecaster,
               smoothing: ExponentialSmoothing, origins: list[int]) -> dict[str, np.ndarray]:
    """Scores (H,) at each horizon over ``origins``: the run's forecast's ``mase``,
    ``smape``, ``rmse`` and ``coverage_80`` (share inside its 80 % interval), the network's
    MASE (``model_mase``) and each baseline's (``last_value_mase``, ``snaive{m}_mase``,
    ``ets_mase``)."""
    values, horizon = prepared.values, prepared.horizon
    truth = targets_at(values, origins, horizon)
    quantiles, candidates = candidate_forecasts(model, prepared, smoothing, origins)
    predicted = combined_forecasts(quantiles, candidates,
                                   validation_choice(model, prepared, smoothing)[0])
    scores = horizon_scores(truth, predicted[..., MEDIAN], prepared.scale)
    scores["coverage_80"] = ((truth >= predicted[..., 0])
                             & (truth <= predicted[..., -1])).mean(axis=0)
    rivals = {"model": candidates["model"], "last_value": naive_forecasts(values, origins,
                                                                           horizon)}
    rivals.update({f"snaive{m}": naive_forecasts(values, origins, horizon, m)
                   for m in prepared.seasons})
    rivals["ets"] = smoothing.forecasts(origins, horizon)
    scores.update({f"{name}_mase": horizon_scores(truth, guess, prepared.scale)["mase"]
                   for name, guess in rivals.items()})
    return scores


def horizon_table(prepared: PreparedSeries, split: str, model: QuantileForecaster,
                  smoothing: ExponentialSmoothing, origins: list[int]) -> str:
    """MASE of the run's forecast, the network and the baselines, and the forecast's sMAPE,
    RMSE and interval coverage, at each horizon (at most 12 rows, evenly spaced) over a part's
    origins."""
    horizon = prepared.horizon
    scores = by_horizon(prepared, model, smoothing, origins)
    columns = ["mase", *(name for name in scores if name.endswith("_mase") and name != "mase"),
               "smape", "rmse", "coverage_80"]
    shown = sorted({round(h) for h in np.linspace(1, horizon, min(horizon, 12))})
    header = ["h", *(f"{name}_%" if name == "smape" else name for name in columns)]
    rows = [[str(h), *(f"{scores[name][h - 1]:.4g}" if name == "rmse"
                       else f"{scores[name][h - 1]:.3f}" for name in columns)] for h in shown]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = [f"{split} part, {len(origins)} origins, by horizon h (steps ahead); mase: the "
             "run's forecast, model_mase: the network alone; units: MASE "
             f"in multiples of {prepared.scale:.4g} (the in-sample seasonal-naive error), sMAPE "
             f"in %, RMSE and pinball in those of {prepared.series.column!r}, coverage the "
             "share of values inside the 80 % interval:"]
    lines += [" ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True))
              for row in [header, *rows]]
    return "\n".join(lines)


def write_forecast_files(prepared: PreparedSeries, model: QuantileForecaster,
                         smoothing: ExponentialSmoothing, folder: Path) -> list[Path]:
    """Write ``forecast.png`` (the series' end, the forecast from the last test origin against
    what came, and the forecast beyond the end, with 80 % intervals), ``forecast.csv`` (the
    forecast beyond the end: step, date where known, quantiles) and ``test_by_horizon.csv``
    (the test part's scores at every horizon, the forecast's, the network's and the
    baselines' MASE)."""
    values, horizon = prepared.values, prepared.horizon
    last_origin = len(values) - horizon
    combination = validation_choice(model, prepared, smoothing)[0]
    backtest, future = combined_forecasts(*candidate_forecasts(
        model, prepared, smoothing, [last_origin, len(values)]), combination)
    series = prepared.series
    figure = plot_forecast(
        values, folder / "forecast.png", backtest_origin=last_origin, backtest=backtest,
        future=future, history=max(4 * horizon, 2 * prepared.window), dates=series.dates,
        title=f"{series.column} ({Path(series.path).name}): {horizon} steps ahead")
    rows = [{"step": h, "after": series.position(len(values) - 1),
             **{f"q{round(100 * q)}": float(v) for q, v in zip(QUANTILES, future[h - 1],
                                                                strict=True)}}
            for h in range(1, horizon + 1)]
    forecast_table = write_csv(rows, folder / "forecast.csv")
    origins = rolling_origins(prepared.test_start, len(values), horizon)
    scores = by_horizon(prepared, model, smoothing, origins)
    table = [{"h": h, **{name: float(score[h - 1]) for name, score in scores.items()}}
             for h in range(1, horizon + 1)]
    return [figure, forecast_table, write_csv(table, folder / "test_by_horizon.csv")]
