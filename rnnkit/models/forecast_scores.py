"""Scoring multi-step forecasts over many origins, and the baselines a forecast must beat.

Forecasts are arrays (origins, H): row r holds the forecasts of the values at indices
``o, o+1, .., o+H-1`` made with the values before origin ``o = origins[r]`` known (rolling
origin: each origin sees all the history before it, nothing after).

* :func:`naive_forecasts` -- the last value (season 1) or the value one season back.
* :class:`ExponentialSmoothing` -- Holt-Winters exponential smoothing from statsmodels, fitted
  once on the training part and run over the rest with those parameters.
* :func:`horizon_scores` -- MASE, sMAPE and RMSE at each horizon; :func:`mase_scale` the
  in-sample seasonal-naive error that MASE divides by (Hyndman & Koehler 2006).
* :func:`interval_scores` -- the share of values inside a prediction interval, and the
  pinball loss of quantile forecasts.
* :func:`choose_combination` -- the equal-weight average of some of several forecasts
  (:class:`Combination`) with the lowest MASE on a validation part: forecast combination,
  robust where no single method wins everywhere (Makridakis et al. 2020, the M4 competition).
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "Combination", "ExponentialSmoothing", "choose_combination", "combinations",
    "horizon_scores", "interval_scores", "mase_scale", "mean_over_horizons", "naive_forecasts",
    "targets_at",
]

MISSING_STATSMODELS = ("the exponential-smoothing baseline needs statsmodels, a dependency of "
                       "rnnkit; install it with `pip install statsmodels`")


def targets_at(values: np.ndarray, origins: Sequence[int], horizon: int) -> np.ndarray:
    """The values each origin's forecast aims at: (origins, H), row r ``values[o:o+H]``."""
    index = np.asarray(origins)[:, None] + np.arange(horizon)
    return np.asarray(values, dtype=np.float64)[index]


def naive_forecasts(values: np.ndarray, origins: Sequence[int], horizon: int,
                    season: int = 1) -> np.ndarray:
    """Forecasts (origins, H) that repeat the last observed value (``season`` 1) or the value
    one season back: the value at ``t`` is forecast by ``y[t - season * ceil(h / season)]``
    at horizon h, the latest of its phase known at the origin."""
    steps = np.arange(1, horizon + 1)
    back = season * np.ceil(steps / season).astype(int)
    index = np.asarray(origins)[:, None] + steps - 1 - back
    if index.min() < 0:
        raise ValueError(f"an origin at {int(np.min(origins))} has too little history for a "
                         f"season of {season} at horizon {horizon}")
    return np.asarray(values, dtype=np.float64)[index]


def mase_scale(train: np.ndarray, season: int = 1) -> float:
    """Mean absolute error of the seasonal-naive forecast one step ahead inside ``train``,
    ``mean |y_t - y_{t-season}|``, what MASE divides by (the one-step naive's error when the
    series is shorter than two seasons; 1.0 for a constant series)."""
    train = np.asarray(train, dtype=np.float64)
    if len(train) <= season:
        season = 1
    scale = float(np.mean(np.abs(train[season:] - train[:-season]))) if len(train) > 1 else 0.0
    return scale if scale > 0 else 1.0


def horizon_scores(truth: np.ndarray, forecast: np.ndarray, scale: float
                   ) -> dict[str, np.ndarray]:
    """Scores (H,) at each horizon of point forecasts (origins, H) of ``truth`` (origins, H):

    * ``mase`` -- mean absolute error divided by ``scale`` (:func:`mase_scale`): below 1 is
      better than the seasonal-naive forecast one step ahead inside the training part;
    * ``smape`` -- symmetric mean absolute percentage error, ``200 |y - f| / (|y| + |f|)``
      in percent (0 where both are 0);
    * ``rmse`` -- root mean squared error, in the series' units.
    """
    error = forecast - truth
    denominator = np.abs(truth) + np.abs(forecast)
    ratio = np.divide(200.0 * np.abs(error), denominator, out=np.zeros_like(error),
                      where=denominator > 0)
    return {"mase": np.abs(error).mean(axis=0) / scale, "smape": ratio.mean(axis=0),
            "rmse": np.sqrt((error ** 2).mean(axis=0))}


def interval_scores(truth: np.ndarray, quantile_forecasts: np.ndarray,
                    quantiles: Sequence[float]) -> dict[str, float]:
    """How well quantile forecasts (origins, H, Q) of ``truth`` (origins, H) hold up:
    ``coverage`` is the share of values between the lowest and highest quantile (the
    interval's nominal level is ``quantiles[-1] - quantiles[0]``), ``pinball`` the mean
    pinball (quantile) loss over all quantiles, in the series' units."""
    levels = np.asarray(quantiles, dtype=np.float64)
    inside = (truth >= quantile_forecasts[..., 0]) & (truth <= quantile_forecasts[..., -1])
    miss = truth[..., None] - quantile_forecasts
    pinball = np.maximum(levels * miss, (levels - 1.0) * miss)
    return {"coverage": float(inside.mean()), "pinball": float(pinball.mean())}


@dataclass
class ExponentialSmoothing:
    """Holt-Winters exponential smoothing (additive damped trend; additive or multiplicative
    season) as a rolling-origin baseline.

    :meth:`fit` estimates the smoothing parameters and initial states on ``values[start:end]``
    by maximum likelihood (statsmodels), the seasonal form (additive, or multiplicative for a
    positive series) by the lower AICc; the states are then run over the rest of the series
    with those parameters, so the forecast from any later origin uses the values before it
    only, and comes from the closed form ``(l + (phi + .. + phi^h) b) (+ or *) s``.
    """

    season: int | None
    start: int = 0
    seasonal: str | None = None
    level: np.ndarray | None = None
    trend: np.ndarray | None = None
    seasonals: np.ndarray | None = None
    damping: float = 1.0

    @classmethod
    def fit(cls, values: np.ndarray, end: int, season: int | None,
            history: int = 2000) -> ExponentialSmoothing:
        """Fit on the ``history`` values before ``end`` (at least ten seasons) and run over
        all of ``values``; ``season`` None or one the fitting part does not hold twice fits
        no season. Needs statsmodels (ImportError naming the extra otherwise)."""
        try:  # here, not at import: seconds of loading for every process that loads rnnkit
            from statsmodels.tsa.holtwinters import ExponentialSmoothing as _HoltWinters
        except ImportError:  # pragma: no cover - statsmodels is a dependency
            raise ImportError(MISSING_STATSMODELS) from None
        values = np.asarray(values, dtype=np.float64)
        start = max(0, end - max(history, 10 * (season or 1)))
        part = values[start:end]
        if season is not None and (season < 2 or len(part) < 2 * season + 2):
            season = None
        forms: list[str | None] = [None]
        if season is not None:
            forms = ["add", "mul"] if (part > 0).all() else ["add"]
        best = None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence chatter of the optimiser
            for form in forms:
                fitted = _HoltWinters(part, trend="add", damped_trend=True, seasonal=form,
                                      seasonal_periods=season if form else None,
                                      initialization_method="estimated").fit()
                if best is None or fitted.aicc < best[1].aicc:
                    best = (form, fitted)
            assert best is not None
            form, fitted = best
            p = fitted.params
            rolled = _HoltWinters(
                values[start:], trend="add", damped_trend=True, seasonal=form,
                seasonal_periods=season if form else None, initialization_method="known",
                initial_level=p["initial_level"], initial_trend=p["initial_trend"],
                initial_seasonal=p["initial_seasons"] if form else None,
            ).fit(smoothing_level=p["smoothing_level"], smoothing_trend=p["smoothing_trend"],
                  smoothing_seasonal=p["smoothing_seasonal"] if form else None,
                  damping_trend=p["damping_trend"], optimized=False)
        return cls(season=season if form else None, start=start, seasonal=form,
                   level=np.asarray(rolled.level), trend=np.asarray(rolled.trend),
                   seasonals=np.asarray(rolled.season) if form else None,
                   damping=float(p["damping_trend"]))

    def forecasts(self, origins: Sequence[int], horizon: int) -> np.ndarray:
        """Forecasts (origins, H) from the states after the value before each origin."""
        assert self.level is not None and self.trend is not None
        at = np.asarray(origins) - 1 - self.start
        if at.min() < 0:
            raise ValueError(f"origin {int(np.min(origins))} is before the fitted part")
        steps = np.arange(1, horizon + 1)
        damped = np.cumsum(self.damping ** steps)
        level = self.level[at][:, None] + damped * self.trend[at][:, None]
        if self.seasonal is None or self.seasonals is None or self.season is None:
            return level
        season = self.season
        phase = at[:, None] + steps - season * (np.floor((steps - 1) / season).astype(int) + 1)
        seasonal = self.seasonals[phase]
        return level + seasonal if self.seasonal == "add" else level * seasonal

    def describe(self) -> str:
        """The fitted form, for messages: e.g. "damped trend, multiplicative season 12"."""
        if self.seasonal is None:
            return "damped trend, no season"
        kind = "additive" if self.seasonal == "add" else "multiplicative"
        return f"damped trend, {kind} season {self.season}"


def mean_over_horizons(scores: dict[str, np.ndarray]) -> dict[str, float]:
    """One number per score over all horizons: the mean MASE and sMAPE, and the RMSE of all
    errors together (the root of the mean squared error over horizons)."""
    return {"mase": float(scores["mase"].mean()), "smape": float(scores["smape"].mean()),
            "rmse": math.sqrt(float((scores["rmse"] ** 2).mean()))}


@dataclass(frozen=True)
class Combination:
    """The equal-weight average of the forecasts named ``parts`` (one name: that forecast)."""

    parts: tuple[str, ...]

    @property
    def name(self) -> str:
        """The parts joined by "_" ("model_ets"), as metric names carry it."""
        return "_".join(self.parts)

    def apply(self, forecasts: Mapping[str, np.ndarray]) -> np.ndarray:
        """The average of ``forecasts[part]`` over the parts, elementwise."""
        return np.mean([forecasts[part] for part in self.parts], axis=0)


def combinations(names: Sequence[str]) -> list[Combination]:
    """Every equal-weight average of one or more of ``names``: single forecasts first, then
    pairs, and so on, each size in the order of ``names``."""
    return [Combination(parts) for size in range(1, len(names) + 1)
            for parts in itertools.combinations(names, size)]


def choose_combination(truth: np.ndarray, forecasts: Mapping[str, np.ndarray], scale: float
                       ) -> tuple[Combination, dict[str, float]]:
    """The combination of ``forecasts`` (name -> (origins, H) forecasts of ``truth``) with
    the lowest MASE over all horizons (ties: the first of :func:`combinations`, so the fewer
    parts), and the MASE of every combination by its name."""
    if len(truth) == 0:
        raise ValueError("no origins to choose a combination of forecasts on")
    scores = {combination: float(horizon_scores(truth, combination.apply(forecasts),
                                                scale)["mase"].mean())
              for combination in combinations(list(forecasts))}
    best = min(scores, key=lambda combination: scores[combination])
    return best, {combination.name: value for combination, value in scores.items()}
