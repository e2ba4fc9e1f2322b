"""The forecast task: seasons, CSV columns, rolling-origin scores, the baselines, intervals,
the seed ensemble, the combination chosen on validation, and a short training run that beats
the naive forecasts."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from rnnkit.data import DataError, load_csv_series
from rnnkit.data.seasons import autocorrelation_season, detect_seasons, timestamp_seasons
from rnnkit.models.forecast_scores import (
    Combination,
    ExponentialSmoothing,
    choose_combination,
    combinations,
    horizon_scores,
    interval_scores,
    mase_scale,
    naive_forecasts,
    targets_at,
)
from rnnkit.tasks import task_config
from rnnkit.tasks.forecast import (
    CANDIDATES,
    MAX_ORIGINS,
    MEMBERS,
    QuantileForecaster,
    forecasting_task,
    held_out_size,
    parse_seasons,
    prepare_series,
    rolling_origins,
)
from rnnkit.training.errors import RunError

pytestmark = pytest.mark.usefixtures("one_thread")


def half_hourly_csv(path: Path, days: int = 42, seed: int = 0) -> Path:
    """Synthetic half-hourly demand: a daily shape, lower weekends, a temperature covariate."""
    rng = np.random.default_rng(seed)
    steps = np.arange(days * 48)
    hour = (steps % 48) / 2
    weekend = ((steps // 48) % 7) >= 5
    temperature = 10 + 5 * np.sin(2 * np.pi * steps / (48 * 30)) + rng.normal(0, 1, steps.size)
    demand = (100 + 30 * np.exp(-((hour - 18) / 3) ** 2) + 15 * np.exp(-((hour - 8) / 2) ** 2)
              - 20 * weekend + 0.8 * temperature + rng.normal(0, 2, steps.size))
    stamps = np.datetime64("2021-01-04T00:00") + steps * np.timedelta64(30, "m")
    lines = ["timestamp,demand,temperature"] + [
        f"{str(s).replace('T', ' ')},{d:.2f},{t:.2f}"
        for s, d, t in zip(stamps, demand, temperature, strict=True)]
    path.write_text("\n".join(lines) + "\n")
    return path


# --- seasons ----------------------------------------------------------------------------------


def test_timestamps_give_the_usual_seasons():
    assert timestamp_seasons(["2021-01-04 00:00", "2021-01-04 00:30", "2021-01-04 01:00"]) \
        == [48, 336]
    assert timestamp_seasons(["2021-01-04T00:00", "2021-01-04T01:00", "2021-01-04T02:00"]) \
        == [24, 168]
    assert timestamp_seasons(["1949-01", "1949-02", "1949-03", "1949-04"]) == [12]
    assert timestamp_seasons(["1958-03-29", "1958-04-05", "1958-04-12"]) == [52]
    assert timestamp_seasons(["1700", "1701", "1702"]) == []  # years are an index


def test_autocorrelation_finds_a_cycle_and_not_noise():
    rng = np.random.default_rng(0)
    steps = np.arange(240)
    cycle = np.sin(2 * np.pi * steps / 12) + 0.05 * steps + 0.3 * rng.normal(size=240)
    assert autocorrelation_season(cycle) == 12
    assert autocorrelation_season(rng.normal(size=240)) is None
    assert autocorrelation_season(np.cumsum(rng.normal(size=240))) is None
    assert detect_seasons(cycle[:20]) == []  # fewer than two seasons: none


def test_season_option_is_parsed_or_refused():
    assert parse_seasons("336,48") == [48, 336]
    assert parse_seasons("none") == []
    with pytest.raises(RunError, match=r"--season: expected .* got 'daily'"):
        parse_seasons("daily")


# --- CSV columns ------------------------------------------------------------------------------


def test_a_file_without_a_date_column_is_named_so(tmp_path):
    path = tmp_path / "plain.csv"
    path.write_text("a,b\n1,2\n3,4\n")
    with pytest.raises(DataError, match=r"several numeric columns \('a', 'b'\) and no date "
                                        r"column; choose the value column with --column"):
        load_csv_series(path)


def test_a_date_column_is_found_by_its_values_and_covariates_are_read(tmp_path):
    series = load_csv_series(half_hourly_csv(tmp_path / "d.csv", days=2),
                             covariates=["temperature"])
    assert series.date_column == "timestamp" and series.column == "demand"
    assert series.covariates.shape == (96, 1) and series.covariate_names == ("temperature",)
    assert series.position(1) == "2021-01-04 00:30 (timestamp)"


# --- scores and baselines ---------------------------------------------------------------------


def test_naive_forecasts_repeat_the_last_value_or_season():
    values = np.arange(20.0)
    assert naive_forecasts(values, [10], 3).tolist() == [[9.0, 9.0, 9.0]]
    assert naive_forecasts(values, [10], 5, season=4).tolist() == [[6, 7, 8, 9, 6]]


def test_mase_smape_rmse_and_interval_scores():
    assert mase_scale(np.array([1.0, 3.0, 2.0, 6.0]), 2) == pytest.approx(2.0)
    truth = np.array([[1.0, 2.0], [3.0, 4.0]])
    guess = np.array([[2.0, 2.0], [3.0, 0.0]])
    scores = horizon_scores(truth, guess, scale=0.5)
    assert scores["mase"].tolist() == pytest.approx([1.0, 4.0])
    assert scores["smape"].tolist() == pytest.approx([200 / 3 / 2, 100.0])
    assert scores["rmse"].tolist() == pytest.approx([math.sqrt(0.5), math.sqrt(8)])
    bands = np.stack([guess - 1, guess, guess + 1], axis=-1)
    scored = interval_scores(truth, bands, (0.1, 0.5, 0.9))
    assert scored["coverage"] == 0.75  # 4 is 4 above 0 + 1


def test_exponential_smoothing_from_its_fitting_end_is_statsmodels_forecast():
    from statsmodels.tsa.holtwinters import ExponentialSmoothing as HoltWinters

    values = load_csv_series("airline").values
    model = ExponentialSmoothing.fit(values, 96, 12)
    fitted = HoltWinters(values[:96], trend="add", damped_trend=True, seasonal=model.seasonal,
                         seasonal_periods=12, initialization_method="estimated").fit()
    np.testing.assert_allclose(model.forecasts([96], 12)[0], fitted.forecast(12), rtol=1e-8)
    assert model.forecasts([100, 120], 3).shape == (2, 3)


def test_combinations_are_every_equal_weight_average_fewest_parts_first():
    assert [c.name for c in combinations(["model", "ets", "naive"])] == [
        "model", "ets", "naive", "model_ets", "model_naive", "ets_naive", "model_ets_naive"]
    assert Combination(("a", "b")).apply({"a": np.ones(2), "b": np.zeros(2)}).tolist() \
        == [0.5, 0.5]


def test_the_combination_with_the_lowest_mase_is_chosen_and_ties_go_to_fewer_parts():
    truth = np.zeros((4, 2))
    # Errors of opposite sign cancel in the average; a forecast three times worse stays out.
    forecasts = {"high": truth + 1.0, "low": truth - 1.0, "far": truth + 3.0}
    chosen, scores = choose_combination(truth, forecasts, scale=2.0)
    assert chosen.parts == ("high", "low") and scores["high_low"] == 0.0
    assert scores["high"] == 0.5 and scores["far"] == 1.5
    assert scores["high_low_far"] == pytest.approx(0.5)
    exact = {"exact": truth.copy(), "also": truth.copy()}
    assert choose_combination(truth, exact, scale=1.0)[0].parts == ("exact",)


# --- the task ---------------------------------------------------------------------------------


def test_rolling_origins_cover_the_part_evenly():
    assert rolling_origins(10, 20, 3) == list(range(10, 18))
    many = rolling_origins(1000, 5000, 48)
    assert len(many) == MAX_ORIGINS and many[0] == 1000 and many[-1] == 5000 - 48


def test_an_ensemble_averages_its_members_and_trains_each_on_its_own_loss():
    torch.manual_seed(0)
    settings = {"cell": "lstm", "hidden_size": 5, "num_layers": 1, "bidirectional": False,
                "dropout": 0.0, "horizon": 2 * 3, "input_size": 1,
                "quantiles": [0.1, 0.5, 0.9], "lags": 0, "members": 3}
    model = QuantileForecaster(settings)
    nets = [model.net, *model.others]
    assert len(nets) == 3 and model.settings["members"] == 3
    first = [next(net.layer.parameters()) for net in nets]
    assert not torch.equal(first[0], first[1])  # each its own initial weights
    for net in nets:  # away from the naive forecast, differently for each member
        torch.nn.init.normal_(net.head.bias)
    window, naive, targets = torch.randn(4, 7, 1), torch.randn(4, 2), torch.randn(4, 2)
    predicted, _, loss = model((window, naive), None, targets)
    alone = []
    for net in nets:
        single = QuantileForecaster({**settings, "members": 1})
        single.net.load_state_dict(net.state_dict())
        alone.append(single((window, naive), None, targets))
    torch.testing.assert_close(predicted, torch.stack([a.outputs for a in alone]).mean(dim=0))
    torch.testing.assert_close(loss, torch.stack([a.loss for a in alone]).mean())


def test_quantile_forecaster_starts_at_the_naive_forecast_and_shifts_with_it():
    model = QuantileForecaster({"cell": "lstm", "hidden_size": 6, "num_layers": 1,
                                "bidirectional": False, "dropout": 0.0, "horizon": 3 * 3,
                                "input_size": 1, "quantiles": [0.1, 0.5, 0.9], "lags": 0})
    window, naive = torch.randn(2, 10, 1), torch.randn(2, 3)
    predicted, state, loss = model((window, naive), None, naive + 1.0)
    assert predicted.shape == (2, 3, 3) and state is None
    assert torch.equal(predicted, naive[..., None].expand(-1, -1, 3))
    # all misses +1 in units of the window's spread: pinball 0.5 on average over the quantiles
    spread = window.std(dim=1) + 0.1
    expected = (torch.tensor([0.1, 0.5, 0.9]).mean() / spread).mean()
    torch.testing.assert_close(loss, expected)


def test_the_task_scores_every_origin_of_the_test_part_against_each_baseline(tmp_path):
    config = task_config("forecast", data=str(half_hourly_csv(tmp_path / "d.csv")),
                         column="demand", horizon=48, hidden_size=4)
    task = forecasting_task(config, torch.device("cpu"))
    names = set(task.metric_names)
    assert {"mase", "smape", "rmse", "mase_h1", "mase_h48", "coverage", "pinball",
            "model_mase", "model_smape", "model_rmse", "naive_mase", "model_ets_mase",
            "model_naive_mase", "ets_naive_mase", "model_ets_naive_mase",
            "last_value_mase", "snaive48_mase", "snaive336_mase", "ets_mase"} <= names
    assert task.metric == "model_mase" and len(task.model.others) == MEMBERS - 1
    test = task.evaluate("test")
    assert set(test) == names
    # The untrained model forecasts the naive forecasts it corrects: those best in training.
    assert "the naive forecasts: last value at h 1, season 336 at h 2-48" in task.showcase()
    assert test["model_mase"] == pytest.approx(test["naive_mase"], rel=1e-5)
    values = load_csv_series(config.data, column="demand").values
    origins = rolling_origins(len(values) - held_out_size(len(values), 48), len(values), 48)
    naive = naive_forecasts(values, origins, 48, 336)
    naive[:, 0] = naive_forecasts(values, origins, 1)[:, 0]
    truth = targets_at(values, origins, 48)
    scale = mase_scale(values[:len(values) - 2 * held_out_size(len(values), 48)], 48)
    assert test["model_mase"] == pytest.approx(
        horizon_scores(truth, naive, scale)["mase"].mean(), rel=1e-5)
    assert "seasons: 48, 336 (from its timestamps)" in task.showcase()
    # The run's forecast is the average with the lowest validation MASE, scored on test.
    val = task.evaluate("val")
    chosen = min((c.name for c in combinations(CANDIDATES)), key=lambda n: val[f"{n}_mase"])
    assert val["mase"] == pytest.approx(val[f"{chosen}_mase"])
    assert test["mase"] == pytest.approx(test[f"{chosen}_mase"])


def test_a_network_worse_than_the_classic_forecasts_on_validation_gives_way(tmp_path):
    config = task_config("forecast", data=str(half_hourly_csv(tmp_path / "d.csv", days=28)),
                         column="demand", horizon=12, hidden_size=4)
    task = forecasting_task(config, torch.device("cpu"))
    for net in (task.model.net, *task.model.others):  # forecasts 3 spreads too high
        torch.nn.init.constant_(net.head.bias, 3.0)
    val, test = task.evaluate("val"), task.evaluate("test")
    assert val["model_mase"] > 2 * min(val["ets_mase"], val["naive_mase"])
    assert val["mase"] == min(val[f"{c.name}_mase"] for c in combinations(CANDIDATES)
                              if "model" not in c.parts)
    assert test["mase"] < test["model_mase"] / 2
    shown = task.showcase()
    assert "the forecast: " in shown and "the forecast: the network," not in shown


def test_a_short_run_beats_the_naive_forecasts(tmp_path, cli):
    run = tmp_path / "run"
    code, out, err = cli("train", "--task", "forecast", "--data", "airline",
                         "--horizon", "6", "--steps", "150", "--eval-every", "50",
                         "--hidden-size", "16", "--threads", "1", "--device", "cpu",
                         "--out", run)
    assert code == 0, err
    test = json.loads((run / "report.json").read_text())["test"]
    assert test["mase"] < test["last_value_mase"]
    assert test["mase"] < test["snaive12_mase"]
    assert test["model_mase"] < test["naive_mase"]  # the network improved on what it corrects
    assert 0.3 < test["coverage"] <= 1.0
    assert "forecast of 'Passengers' for the 6 steps after 1960-12 (Date)" in out
    assert (run / "forecast.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with (run / "forecast.csv").open() as handle:
        future = list(csv.DictReader(handle))
    assert [row["step"] for row in future] == ["1", "2", "3", "4", "5", "6"]
    assert all(float(r["q10"]) <= float(r["q50"]) <= float(r["q90"]) for r in future)
    with (run / "test_by_horizon.csv").open() as handle:
        by_horizon = list(csv.DictReader(handle))
    assert len(by_horizon) == 6
    assert np.mean([float(r["mase"]) for r in by_horizon]) == pytest.approx(test["mase"])
    code, out, err = cli("evaluate", run, "--device", "cpu")
    assert code == 0, err
    assert f"{test['mase']:.4f}" in out


def test_a_file_without_dates_names_rows_and_takes_a_given_season(tmp_path, cli):
    path = tmp_path / "plain.csv"
    values = 10 + np.sin(2 * np.pi * np.arange(120) / 10)
    lines = [f"{v:.4f}" for v in values]
    lines[30] = lines[31] = "NA"
    path.write_text("level\n" + "\n".join(lines) + "\n")
    code, out, err = cli("train", "--task", "forecast", "--data", path, "--horizon", "4",
                         "--season", "10", "--steps", "2", "--hidden-size", "4",
                         "--threads", "1", "--device", "cpu", "--out", tmp_path / "run")
    assert code == 0, err
    assert "seasons: 10 (from --season)" in out
    assert "for the 4 steps after row 120 of the data" in out
    assert "2 missing values filled by linear interpolation" in out


def test_a_season_longer_than_half_the_training_part_is_refused(tmp_path, cli):
    code, out, err = cli("train", "--task", "forecast", "--data", "airline",
                         "--season", "60", "--steps", "2", "--out", tmp_path / "run")
    assert code == 1 and err.count("\n") == 1
    assert "--season 60" in err and "fewer than two seasons of 60" in err
    assert not (tmp_path / "run").exists()


def test_covariates_are_read_up_to_the_origin_only(tmp_path):
    config = task_config("forecast", data=str(half_hourly_csv(tmp_path / "d.csv", days=21)),
                         column="demand", covariates="temperature", horizon=6)
    prepared = prepare_series(config, None)
    assert prepared.lags == [336] and prepared.channels.shape == (21 * 48, 2)
    origin = prepared.test_start
    window, naive = prepared.inputs([origin])
    assert window.shape == (1, prepared.window, 3)  # the series, a week back, temperature
    prepared.channels[origin:] = 1000.0  # nothing from the origin on is read
    later_window, later_naive = prepared.inputs([origin])
    assert torch.equal(window, later_window) and torch.equal(naive, later_naive)
    task = forecasting_task(config, torch.device("cpu"))
    assert task.model.net.layer.input_size == 3
    assert math.isfinite(task.evaluate("val")["mase"])
