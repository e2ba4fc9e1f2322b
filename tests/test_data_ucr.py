"""Tests for rnnkit.data.ucr: the .ts reader, bundled UCR sets, padding, splits, scaling."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from rnnkit.data import (
    DataError,
    fill_missing,
    fit_channel_normalizer,
    load_ucr,
    load_ucr_splits,
    pad_series,
    parse_ts_file,
    parse_tsv_file,
    stratified_validation_split,
    ucr_file,
)

HEADER = """# a comment
@problemName Toy
@timeStamps false
@missing true
@univariate {univariate}
@dimensions {dims}
@equalLength false
@classLabel true a b c
@data
"""


def write_ts(
    tmp_path: Path, body: str, name: str = "Toy_TRAIN.ts", dims: int = 2, header: str | None = None
) -> Path:
    text = (header if header is not None else HEADER).format(
        univariate="true" if dims == 1 else "false", dims=dims
    )
    path = tmp_path / name
    path.write_text(text + body)
    return path


# --- bundled data sets, facts from the UCR/UEA archive -------------------------------------


@pytest.mark.parametrize("split, count", [("train", 50), ("test", 150)])
def test_gunpoint_has_50_train_150_test_series_of_length_150(split: str, count: int) -> None:
    data = load_ucr("GunPoint", split)
    assert len(data) == count
    assert data.n_channels == 1
    assert set(data.lengths.tolist()) == {150}
    assert data.n_classes == 2 and set(data.labels.tolist()) == {0, 1}


@pytest.mark.parametrize("split, count", [("train", 67), ("test", 1029)])
def test_italy_power_demand_has_67_train_1029_test_days_of_24_hours(split: str, count: int) -> None:
    data = load_ucr("ItalyPowerDemand", split)
    assert len(data) == count
    assert set(data.lengths.tolist()) == {24}
    assert data.n_classes == 2


@pytest.mark.parametrize("split, count", [("train", 270), ("test", 370)])
def test_japanese_vowels_has_12_channels_lengths_7_to_29_and_9_speakers(
    split: str, count: int
) -> None:
    data = load_ucr("JapaneseVowels", split)
    assert len(data) == count
    assert data.n_channels == 12
    assert all(s.shape == (length, 12) for s, length in zip(data.series, data.lengths, strict=True))
    assert data.lengths.min() >= 7 and data.lengths.max() <= 29
    assert data.class_names == [str(k) for k in range(1, 10)]


def test_japanese_vowels_train_has_30_utterances_per_speaker() -> None:
    labels = load_ucr("JapaneseVowels", "train").labels
    assert np.bincount(labels).tolist() == [30] * 9


def test_japanese_vowels_lengths_span_7_to_29_over_both_splits() -> None:
    lengths = np.concatenate([load_ucr("JapaneseVowels", s).lengths for s in ("train", "test")])
    assert lengths.min() == 7 and lengths.max() == 29


def test_bundled_names_are_case_insensitive() -> None:
    assert len(load_ucr("gunpoint", "train")) == 50


def test_bundled_series_contain_no_nan() -> None:
    for name in ("GunPoint", "ItalyPowerDemand", "JapaneseVowels"):
        data = load_ucr(name, "test")
        assert all(np.isfinite(s).all() for s in data.series)


def test_unknown_split_is_rejected() -> None:
    with pytest.raises(ValueError, match="split"):
        load_ucr("GunPoint", "validation")


# --- reading .ts files -----------------------------------------------------------------------


def test_reads_multichannel_unequal_length_lines(tmp_path: Path) -> None:
    path = write_ts(tmp_path, "1,2,3:4,5,6:a\n7,8:9,10:c\n")
    data = parse_ts_file(path)
    assert [s.shape for s in data.series] == [(3, 2), (2, 2)]
    np.testing.assert_array_equal(data.series[0][:, 1], [4, 5, 6])
    assert data.labels.tolist() == [0, 2]
    assert data.class_names == ["a", "b", "c"]
    assert data.name == "Toy"


def test_train_path_finds_the_test_file_by_name(tmp_path: Path) -> None:
    train = write_ts(tmp_path, "1,2:3,4:a\n", name="Toy_TRAIN.ts")
    write_ts(tmp_path, "5,6:7,8:b\n9,9:9,9:c\n", name="Toy_TEST.ts")
    test = load_ucr(train, "test")
    assert len(test) == 2 and test.labels.tolist() == [1, 2]


def test_missing_partner_file_is_named(tmp_path: Path) -> None:
    train = write_ts(tmp_path, "1,2:3,4:a\n", name="Solo_TRAIN.ts")
    with pytest.raises(DataError, match="Solo_TEST.ts: no such file"):
        load_ucr(train, "test")


def test_plain_path_is_read_as_the_training_split_only(tmp_path: Path) -> None:
    path = write_ts(tmp_path, "1,2:3,4:a\n", name="toy.ts")
    assert len(load_ucr(path, "train")) == 1
    with pytest.raises(DataError, match="toy.ts: cannot find its test split"):
        load_ucr(path, "test")


def test_a_folder_stands_for_its_train_and_test_pair(tmp_path: Path) -> None:
    write_ts(tmp_path, "1,2:3,4:a\n", name="Toy_TRAIN.ts")
    write_ts(tmp_path, "5,6:7,8:b\n9,9:9,9:c\n", name="Toy_TEST.ts")
    assert len(load_ucr(tmp_path, "train")) == 1 and len(load_ucr(str(tmp_path), "test")) == 2
    assert ucr_file(tmp_path, "test") == tmp_path / "Toy_TEST.ts"


def test_a_folder_without_one_pair_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no NAME_TRAIN.ts or NAME_TRAIN.tsv file"):
        load_ucr(tmp_path)
    write_ts(tmp_path, "1,2:3,4:a\n", name="A_TRAIN.ts")
    write_ts(tmp_path, "1,2:3,4:a\n", name="B_TRAIN.ts")
    with pytest.raises(DataError, match=r"several data sets in this folder \(A_TRAIN, B_TRAIN\)"):
        load_ucr(tmp_path)


def test_reads_ucr_2018_tsv_files_with_unequal_lengths_and_missing_values(tmp_path: Path) -> None:
    (tmp_path / "Toy_TRAIN.tsv").write_text("2\t1.0\t2.0\tNaN\t4.0\n10\t5\t6\tNaN\tNaN\n"
                                           "2\t7\t8\t9\t10\n")
    (tmp_path / "Toy_TEST.tsv").write_text("10\t1\t2\n")
    train = load_ucr(tmp_path, "train")
    assert train.class_names == ["2", "10"]  # numeric labels in numeric order
    assert train.labels.tolist() == [0, 1, 0]
    assert [len(series) for series in train.series] == [4, 2, 4]  # trailing NaNs end a series
    np.testing.assert_array_equal(train.series[0][:, 0], [1, 2, 3, 4])
    assert train.missing_filled == 1 and train.n_channels == 1
    assert load_ucr(tmp_path / "Toy_TRAIN.tsv", "test").labels.tolist() == [0]


def test_tsv_non_numeric_value_names_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "Toy_TRAIN.tsv"
    path.write_text("1\t1\t2\n1\t3\tx\n")
    with pytest.raises(DataError, match=r"Toy_TRAIN.tsv: line 2: 'x' is not a number"):
        parse_tsv_file(path)


def test_missing_values_are_interpolated_within_a_channel(tmp_path: Path) -> None:
    path = write_ts(tmp_path, "1,?,3,NaN:?,2,?,4:a\n")
    data = parse_ts_file(path)
    np.testing.assert_allclose(data.series[0][:, 0], [1, 2, 3, 3])
    np.testing.assert_allclose(data.series[0][:, 1], [2, 2, 3, 4])
    assert data.missing_filled == 4


def test_all_missing_channel_becomes_zeros(tmp_path: Path) -> None:
    path = write_ts(tmp_path, "?,?,?:1,2,3:b\n")
    series = parse_ts_file(path).series[0]
    np.testing.assert_array_equal(series[:, 0], [0, 0, 0])
    assert not np.isnan(series).any()


def test_fill_missing_keeps_observed_values_and_leaves_no_nan() -> None:
    values = np.array([[np.nan, 1.0], [2.0, np.nan], [np.nan, np.nan], [8.0, 4.0]])
    filled = fill_missing(values)
    np.testing.assert_allclose(filled, [[2, 1], [2, 2], [5, 3], [8, 4]])
    assert np.isnan(values).sum() == 4  # the input is not modified


def test_class_label_false_gives_unlabelled_series(tmp_path: Path) -> None:
    header = "@problemName U\n@univariate true\n@classLabel false\n@data\n"
    path = tmp_path / "u.ts"
    path.write_text(header + "1,2,3\n4,5\n")
    data = parse_ts_file(path)
    assert data.labels.tolist() == [-1, -1] and data.class_names == []


# --- malformed files: DataError with file name and line number ------------------------------


def test_wrong_number_of_dimensions_names_the_line(tmp_path: Path) -> None:
    path = write_ts(tmp_path, "1,2:3,4:a\n1,2,3:b\n")
    with pytest.raises(DataError, match=r"Toy_TRAIN.ts: line 11: expected 2 dimension"):
        parse_ts_file(path)


def test_label_not_in_class_list_names_the_line_and_label(tmp_path: Path) -> None:
    path = write_ts(tmp_path, "1,2:3,4:z\n")
    with pytest.raises(DataError, match=r"Toy_TRAIN.ts: line 10: class label 'z' is not in"):
        parse_ts_file(path)


def test_non_numeric_value_names_the_line_and_value(tmp_path: Path) -> None:
    path = write_ts(tmp_path, "1,2:3,4:a\n1,2:3,x4:b\n")
    with pytest.raises(DataError, match=r"Toy_TRAIN.ts: line 11: 'x4' in dimension 2"):
        parse_ts_file(path)


def test_empty_value_names_the_line(tmp_path: Path) -> None:
    path = write_ts(tmp_path, "1,,2:3,4,5:a\n")
    with pytest.raises(DataError, match=r"line 10: an empty value in dimension 1"):
        parse_ts_file(path)


def test_missing_data_line_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "nodata.ts"
    path.write_text("@problemName X\n@univariate true\n@classLabel true 1 2\n")
    with pytest.raises(DataError, match="nodata.ts: no @data line"):
        parse_ts_file(path)


def test_no_series_after_data_is_reported(tmp_path: Path) -> None:
    path = write_ts(tmp_path, "")
    with pytest.raises(DataError, match="Toy_TRAIN.ts: no series after the @data line"):
        parse_ts_file(path)


def test_data_before_header_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "early.ts"
    path.write_text("@problemName X\n1,2,3:1\n@data\n")
    with pytest.raises(DataError, match=r"early.ts: line 2: data before the @data line"):
        parse_ts_file(path)


def test_unknown_header_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "typo.ts"
    path.write_text("@problemName X\n@clasLabel true 1 2\n@data\n1,2:1\n")
    with pytest.raises(DataError, match=r"typo.ts: line 2: unknown header @clasLabel"):
        parse_ts_file(path)


def test_bad_boolean_header_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bool.ts"
    path.write_text("@univariate maybe\n@classLabel true 1\n@data\n1,2:1\n")
    with pytest.raises(DataError, match=r"bool.ts: line 1: @univariate must be 'true' or 'false'"):
        parse_ts_file(path)


def test_series_length_mismatch_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "len.ts"
    path.write_text(
        "@univariate true\n@seriesLength 3\n@classLabel true 1\n@data\n1,2,3:1\n1,2:1\n"
    )
    with pytest.raises(DataError, match=r"len.ts: line 6: series has 2 values but @seriesLength"):
        parse_ts_file(path)


def test_unequal_channel_lengths_name_the_line(tmp_path: Path) -> None:
    path = write_ts(tmp_path, "1,2,3:4,5:a\n")
    with pytest.raises(DataError, match=r"line 10: dimension 2 has 2 values but dimension 1 has 3"):
        parse_ts_file(path)


def test_data_before_class_label_header_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "nolabel.ts"
    path.write_text("@univariate true\n@data\n1,2:1\n")
    with pytest.raises(DataError, match=r"nolabel.ts: line 2: @data before @classLabel"):
        parse_ts_file(path)


def test_timestamps_are_rejected_with_the_line(tmp_path: Path) -> None:
    path = tmp_path / "stamps.ts"
    path.write_text("@timeStamps true\n@classLabel true 1\n@data\n(0,1):1\n")
    with pytest.raises(DataError, match=r"stamps.ts: line 1: @timeStamps true is not supported"):
        parse_ts_file(path)


def test_empty_ts_file_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "Empty_TRAIN.ts"
    path.write_text("")
    with pytest.raises(DataError, match="Empty_TRAIN.ts: the file is empty"):
        load_ucr(path, "train")


# --- padding, validation split, normalisation -------------------------------------------------


def test_pad_series_pads_to_the_longest_and_returns_lengths() -> None:
    series = [np.ones((3, 2)), 2 * np.ones((5, 2)), 3 * np.ones((1, 2))]
    batch, lengths = pad_series(series)
    assert batch.shape == (3, 5, 2) and batch.dtype == torch.float32
    assert lengths.tolist() == [3, 5, 1]
    for i, s in enumerate(series):
        assert torch.equal(batch[i, : len(s)], torch.as_tensor(s, dtype=torch.float32))
        assert torch.all(batch[i, len(s) :] == 0)


def test_pad_series_treats_1d_series_as_one_channel() -> None:
    batch, lengths = pad_series([np.arange(4.0), np.arange(2.0)])
    assert batch.shape == (2, 4, 1) and lengths.tolist() == [4, 2]


def test_pad_series_rejects_mixed_channel_counts() -> None:
    with pytest.raises(ValueError, match="same C"):
        pad_series([np.ones((3, 2)), np.ones((3, 3))])


def test_validation_split_is_stratified_disjoint_and_from_train() -> None:
    train = load_ucr("JapaneseVowels", "train")
    kept, val = stratified_validation_split(train, fraction=0.2, seed=0)
    assert len(kept) + len(val) == len(train)
    assert np.bincount(val.labels).tolist() == [6] * 9  # 20% of 30 per speaker
    kept_ids = {s.tobytes() for s in kept.series}
    assert not any(s.tobytes() in kept_ids for s in val.series)


def test_validation_split_is_fixed_for_a_seed_and_changes_with_it() -> None:
    train = load_ucr("GunPoint", "train")
    a = stratified_validation_split(train, 0.2, seed=3)[1]
    b = stratified_validation_split(train, 0.2, seed=3)[1]
    c = stratified_validation_split(train, 0.2, seed=4)[1]
    assert all(np.array_equal(x, y) for x, y in zip(a.series, b.series, strict=True))
    assert not all(np.array_equal(x, y) for x, y in zip(a.series, c.series, strict=True))


def test_normalizer_statistics_come_from_the_training_split_only() -> None:
    splits = load_ucr_splits("JapaneseVowels", val_fraction=0.2, seed=0)
    raw = load_ucr_splits("JapaneseVowels", val_fraction=0.2, seed=0, normalize=False)
    stacked = np.concatenate(raw.train.series)
    np.testing.assert_allclose(splits.normalizer.mean, stacked.mean(axis=0))
    np.testing.assert_allclose(splits.normalizer.std, stacked.std(axis=0))
    np.testing.assert_allclose(
        splits.test.series[0], (raw.test.series[0] - stacked.mean(0)) / stacked.std(0)
    )


def test_normalised_training_split_has_zero_mean_unit_std_per_channel() -> None:
    train = load_ucr("JapaneseVowels", "train")
    scaled = train.normalized(fit_channel_normalizer(train))
    stacked = np.concatenate(scaled.series)
    np.testing.assert_allclose(stacked.mean(axis=0), 0.0, atol=1e-9)
    np.testing.assert_allclose(stacked.std(axis=0), 1.0, atol=1e-9)


def test_load_ucr_splits_keeps_test_untouched_in_size() -> None:
    splits = load_ucr_splits("GunPoint")
    assert len(splits.test) == 150
    assert len(splits.train) + len(splits.val) == 50
    assert splits.val.n_classes == 2 and set(splits.val.labels.tolist()) == {0, 1}


def test_dataset_padded_returns_inputs_lengths_labels() -> None:
    inputs, lengths, labels = load_ucr("JapaneseVowels", "test").padded()
    assert inputs.shape == (370, 29, 12)
    assert lengths.shape == labels.shape == (370,)
    assert labels.dtype == torch.long and int(labels.max()) == 8
