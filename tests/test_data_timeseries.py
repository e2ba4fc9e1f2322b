"""Tests for rnnkit.data.timeseries: CSV series, Normalizer, splits and forecasting windows."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from rnnkit.data import DataError, chronological_split, load_csv_series, make_windows
from rnnkit.data.timeseries import Normalizer


def write_csv(tmp_path: Path, text: str, name: str = "series.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# --- bundled series ---------------------------------------------------------------------------


def test_sunspots_are_309_yearly_values_from_1700_to_2008() -> None:
    series = load_csv_series("sunspots")
    assert len(series) == 309
    assert series.column == "sunspots"
    assert series.dates[0] == "1700" and series.dates[-1] == "2008"
    assert [int(d) for d in series.dates] == list(range(1700, 2009))
    assert (series.values >= 0).all()


def test_airline_is_144_monthly_values_from_1949_to_1960() -> None:
    series = load_csv_series("airline")
    assert len(series) == 144
    assert series.column == "Passengers"
    assert series.dates[0] == "1949-01" and series.dates[-1] == "1960-12"
    assert series.values[0] == 112  # Box & Jenkins series G starts at 112 (thousands)


def test_sunspot_task_tests_on_the_last_30_years() -> None:
    series = load_csv_series("sunspots")
    split = chronological_split(series.values, test_size=30, val_size=30)
    test_years = series.dates[split.test_start :]
    assert test_years[0] == "1979" and test_years[-1] == "2008"
    assert len(split.train) == 249 and split.val_start == 249


# --- reading CSV files ----------------------------------------------------------------------


def test_column_is_chosen_by_name(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "date,a,b\n2000,1,10\n2001,2,20\n")
    series = load_csv_series(path, column="b")
    assert series.values.tolist() == [10.0, 20.0] and series.column == "b"


def test_default_column_is_the_single_numeric_non_date_column(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "when,label,value\nmon,x,1.5\ntue,y,2.5\n")
    series = load_csv_series(path, date_column="when")
    assert series.column == "value" and series.dates == ["mon", "tue"]


def test_several_numeric_columns_need_a_choice_and_are_listed(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "year,a,b\n2000,1,10\n")
    with pytest.raises(DataError, match=r"series.csv: several numeric columns.*'a', 'b'"):
        load_csv_series(path)


def test_unknown_column_error_lists_the_columns(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "year,a\n2000,1\n")
    with pytest.raises(
        DataError,
        match=r"series.csv: no value column 'z'; the columns are "
        r"'year', 'a'",
    ):
        load_csv_series(path, column="z")


def test_unknown_date_column_error_lists_the_columns(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "year,a\n2000,1\n")
    with pytest.raises(DataError, match=r"no date column 'when'; the columns are 'year', 'a'"):
        load_csv_series(path, date_column="when")


def test_non_numeric_value_names_the_line_and_column(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "year,a\n2000,1\n2001,2\n2002,lots\n")
    with pytest.raises(DataError, match=r"series.csv: line 4: 'lots' in column 'a' is not a"):
        load_csv_series(path)


def test_missing_value_names_the_line_and_suggests_fill(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "year,a\n2000,1\n2001,\n2002,3\n")
    with pytest.raises(
        DataError,
        match=r"series.csv: line 3: missing value in column 'a'.*"
        r"fill='interpolate'",
    ):
        load_csv_series(path)


def test_fill_interpolate_fills_gaps_linearly(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "year,a\n2000,NA\n2001,1\n2002,\n2003,NaN\n2004,4\n")
    series = load_csv_series(path, fill="interpolate")
    assert series.values.tolist() == [1.0, 1.0, 2.0, 3.0, 4.0]
    assert series.missing_filled == 3


def test_row_with_wrong_field_count_names_the_line(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "year,a\n2000,1\n2001,2,3\n")
    with pytest.raises(DataError, match=r"series.csv: line 3: 3 field\(s\) but the header has 2"):
        load_csv_series(path)


def test_infinite_value_names_the_line(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "year,a\n2000,1\n2001,inf\n")
    with pytest.raises(DataError, match=r"line 3: 'inf' in column 'a' is not finite"):
        load_csv_series(path)


def test_header_without_rows_is_reported(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "year,a\n")
    with pytest.raises(DataError, match="series.csv: has a header but no data rows"):
        load_csv_series(path)


def test_missing_csv_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"gone.csv: no such file.*sunspots"):
        load_csv_series(tmp_path / "gone.csv")


def test_unknown_fill_policy_is_rejected() -> None:
    with pytest.raises(ValueError, match="fill"):
        load_csv_series("sunspots", fill="zero")


# --- Normalizer -------------------------------------------------------------------------------


def test_normalizer_standardises_the_training_part() -> None:
    values = load_csv_series("sunspots").values
    split = chronological_split(values, test_size=30)
    normalizer = Normalizer.fit(split.train)
    scaled = normalizer.transform(split.train)
    assert abs(scaled.mean()) < 1e-9 and abs(scaled.std() - 1) < 1e-9
    assert normalizer.mean[0] == pytest.approx(split.train.mean())


def test_normalizer_inverse_transform_undoes_transform() -> None:
    values = load_csv_series("airline").values
    normalizer = Normalizer.fit(values[:100])
    np.testing.assert_allclose(normalizer.inverse_transform(normalizer.transform(values)), values)


def test_normalizer_works_on_tensors_of_any_leading_shape() -> None:
    normalizer = Normalizer.fit(np.array([1.0, 2.0, 3.0]))
    windows = torch.full((4, 5, 1), 2.0)
    assert torch.allclose(normalizer.transform(windows), torch.zeros(4, 5, 1))
    assert normalizer.inverse_transform(torch.zeros(3)).tolist() == [2.0, 2.0, 2.0]


def test_normalizer_survives_json_round_trip() -> None:
    normalizer = Normalizer.fit(np.random.default_rng(0).normal(5, 2, size=(50, 3)))
    restored = Normalizer.from_dict(json.loads(json.dumps(normalizer.to_dict())))
    np.testing.assert_array_equal(restored.mean, normalizer.mean)
    np.testing.assert_array_equal(restored.std, normalizer.std)


def test_normalizer_of_constant_channel_only_shifts() -> None:
    normalizer = Normalizer.fit(np.full(10, 7.0))
    assert normalizer.std[0] == 1.0
    assert normalizer.transform(np.array([8.0]))[0] == 1.0


def test_normalizer_rejects_wrong_channel_count() -> None:
    normalizer = Normalizer.fit(np.zeros((5, 2)))
    with pytest.raises(ValueError, match="channels"):
        normalizer.transform(np.zeros((5, 3)))


# --- chronological split and windows ---------------------------------------------------------


def test_chronological_split_keeps_time_order() -> None:
    values = np.arange(100.0)
    split = chronological_split(values, test_size=10, val_size=15)
    assert np.array_equal(np.concatenate([split.train, split.val, split.test]), values)
    assert split.train.max() < split.val.min() and split.val.max() < split.test.min()
    assert split.test_start == 90 and split.val_start == 75


def test_chronological_split_rejects_sizes_leaving_no_training_part() -> None:
    with pytest.raises(ValueError, match="keep a training part"):
        chronological_split(np.arange(10.0), test_size=5, val_size=5)


def test_windows_have_the_documented_shapes_and_count() -> None:
    inputs, targets = make_windows(np.arange(50.0), input_length=12, horizon=3)
    assert inputs.shape == (50 - 12 - 3 + 1, 12, 1)
    assert targets.shape == (36, 3)
    assert inputs.dtype == targets.dtype == torch.float32


def test_window_targets_follow_their_inputs() -> None:
    inputs, targets = make_windows(np.arange(40.0), input_length=5, horizon=4)
    for x, y in zip(inputs, targets, strict=True):
        sequence = torch.cat([x[:, 0], y])
        assert torch.equal(sequence, sequence[0] + torch.arange(9.0))


def test_test_windows_target_only_the_held_out_tail() -> None:
    values = np.arange(309.0)
    split = chronological_split(values, test_size=30)
    inputs, targets = make_windows(
        values, input_length=20, horizon=5, first_target=split.test_start, stride=5
    )
    assert targets.shape == (6, 5)
    assert torch.equal(targets.reshape(-1), torch.arange(279.0, 309.0))
    assert inputs[0, 0, 0] == 259.0  # history reaches back before the test part


def test_series_too_short_for_a_window_is_rejected() -> None:
    with pytest.raises(ValueError, match="no window"):
        make_windows(np.arange(5.0), input_length=4, horizon=2)


def test_first_target_without_enough_history_is_rejected() -> None:
    with pytest.raises(ValueError, match="history"):
        make_windows(np.arange(50.0), input_length=10, horizon=2, first_target=5)
