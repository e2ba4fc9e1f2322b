"""Bad input to the classify, forecast, seq2seq, adding and copy tasks: one line on stderr
naming the option, what was expected and what came; exit code 1; no run directory."""

import pytest

from rnnkit.cli import main

TINY = ["--hidden-size", "8", "--batch-size", "4", "--steps", "2", "--time-limit", "0",
        "--device", "cpu", "--threads", "1"]


pytestmark = pytest.mark.usefixtures("one_thread")


def write_ts(folder, name, labels):
    """NAME_TRAIN.ts and NAME_TEST.ts with one short series per label."""
    header = ("@problemName {name}\n@timeStamps false\n@univariate true\n@equalLength true\n"
              "@classLabel true {classes}\n@data\n")
    for split in ("TRAIN", "TEST"):
        rows = [f"{i},{i + 1},{i + 2},{i % 3}:{label}" for i, label in enumerate(labels)]
        (folder / f"{name}_{split}.ts").write_text(
            header.format(name=name, classes=" ".join(sorted(set(labels)))) + "\n".join(rows)
            + "\n")
    return folder / f"{name}_TRAIN.ts"


def write_csv(folder, rows=60):
    path = folder / "series.csv"
    path.write_text("year,value,other\n" + "\n".join(f"{1900 + i},{i % 7},{i}"
                                                     for i in range(rows)) + "\n")
    return path


def fails(capsys, tmp_path, *argv):
    """Train with ``argv``; assert a one-line error and no run directory; return the line."""
    out_dir = tmp_path / "run"
    try:
        code = main(["train", *(str(a) for a in argv), *TINY, "--out", str(out_dir)])
    except SystemExit as exit:
        code = exit.code
    out, err = capsys.readouterr()
    assert code == 1, err
    assert err.startswith("rnnkit train: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    assert not out_dir.exists()
    return err


def test_classify_refuses_data_that_is_not_a_ts_data_set(capsys, tmp_path):
    err = fails(capsys, tmp_path, "--task", "classify", "--data", "shakespeare")
    assert "--data shakespeare" in err and ".ts" in err and "GunPoint" in err


def test_classify_refuses_a_data_set_with_one_class(capsys, tmp_path):
    path = write_ts(tmp_path, "Single", ["a"] * 12)
    err = fails(capsys, tmp_path, "--task", "classify", "--data", path)
    assert "--data" in err and "at least 2 classes" in err and "found 1" in err


def test_classify_refuses_a_malformed_ts_file(capsys, tmp_path):
    path = write_ts(tmp_path, "Broken", ["a", "b"] * 6)
    path.write_text(path.read_text().replace("@data", "@dat"))
    err = fails(capsys, tmp_path, "--task", "classify", "--data", path)
    assert "--data" in err and "Broken_TRAIN.ts" in err


def test_forecast_refuses_a_column_that_does_not_exist(capsys, tmp_path):
    path = write_csv(tmp_path)
    err = fails(capsys, tmp_path, "--task", "forecast", "--data", path, "--column", "nope")
    assert "--column nope" in err and "'nope'" in err and "'value'" in err


def test_forecast_needs_a_column_when_there_are_several(capsys, tmp_path):
    err = fails(capsys, tmp_path, "--task", "forecast", "--data", write_csv(tmp_path))
    assert "several numeric columns" in err and "column" in err


def test_forecast_refuses_data_that_is_not_a_csv_series(capsys, tmp_path):
    err = fails(capsys, tmp_path, "--task", "forecast", "--data", "GunPoint")
    assert "--data GunPoint" in err and "CSV" in err


def test_forecast_refuses_a_window_longer_than_the_training_part(capsys, tmp_path):
    path = write_csv(tmp_path)
    err = fails(capsys, tmp_path, "--task", "forecast", "--data", path, "--column", "value",
                "--bptt", "100", "--horizon", "3")
    assert "--bptt 100" in err and "lower --bptt" in err


def test_forecast_refuses_a_horizon_too_long_for_the_series(capsys, tmp_path):
    err = fails(capsys, tmp_path, "--task", "forecast", "--data", write_csv(tmp_path),
                "--column", "value", "--horizon", "20")
    assert "60 values are too few" in err and "lower --horizon" in err


def test_forecast_refuses_a_zero_horizon(capsys, tmp_path):
    err = fails(capsys, tmp_path, "--task", "forecast", "--horizon", "0")
    assert "--horizon must be >= 1, got 0" in err


@pytest.mark.parametrize("task", ["adding", "copy"])
def test_synthetic_tasks_want_a_length_as_data(capsys, tmp_path, task):
    err = fails(capsys, tmp_path, "--task", task, "--data", "shakespeare")
    assert f"--data for --task {task}" in err and "whole number" in err
    assert "'shakespeare'" in err


def test_seq2seq_refuses_a_file_that_is_not_a_pronouncing_dictionary(capsys, tmp_path):
    path = tmp_path / "words.txt"
    path.write_text("hello world\n")
    err = fails(capsys, tmp_path, "--task", "seq2seq", "--data", path)
    assert "--data" in err and "ARPAbet" in err


@pytest.mark.parametrize("task", ["lm", "classify", "adding", "copy", "seq2seq", "handwriting"])
def test_column_is_only_for_forecast(capsys, tmp_path, task):
    err = fails(capsys, tmp_path, "--task", task, "--column", "value")
    assert "--column" in err and f"--task {task}" in err


@pytest.mark.parametrize("option", ["--season", "--covariates"])
def test_season_and_covariates_are_only_for_forecast(capsys, tmp_path, option):
    err = fails(capsys, tmp_path, "--task", "adding", "--data", "10", option, "12")
    assert option in err and "--task adding" in err


def test_unknown_cell_is_named(capsys, tmp_path):
    err = fails(capsys, tmp_path, "--task", "adding", "--data", "10", "--cell", "nope")
    assert "--cell" in err and "'nope'" in err


@pytest.mark.parametrize(("argv", "expected"), [
    (["--season", "abc"], ["--season", "'abc'", "48,336"]),
    (["--season", "1"], ["--season", "at least 2 steps"]),
    (["--season", "1000"], ["--season 1000", "fewer than two seasons"]),
    (["--covariates", "nope"], ["--covariates nope", "no covariate column 'nope'"]),
    (["--column", "year"], ["--column year", "date column"]),
    (["--horizon", "100"], ["--horizon 100", "lower --horizon"]),
    (["--horizon", "-2"], ["--horizon must be >= 1, got -2"]),
    (["--bptt", "0"], ["--bptt must be >= 1, got 0"]),
])
def test_forecast_options_each_give_one_line_naming_the_option(capsys, tmp_path, argv,
                                                               expected):
    err = fails(capsys, tmp_path, "--task", "forecast", "--data", write_csv(tmp_path, 200),
                "--horizon", "3", *(["--column", "value"] if "--column" not in argv else []),
                *argv)
    for text in expected:
        assert text in err, err


@pytest.mark.parametrize(("argv", "expected"), [
    (["--source", "xx"], ["--source", "'xx'", "de, en, fr"]),
    (["--source", "de", "--target", "de"], ["--source/--target", "'de'"]),
    (["--data", "multi30k:de"], ["--data multi30k:de", "multi30k:de-en"]),
])
def test_translate_options_each_give_one_line_naming_the_option(capsys, tmp_path, argv,
                                                                expected):
    err = fails(capsys, tmp_path, "--task", "translate", *argv)
    for text in expected:
        assert text in err, err


@pytest.mark.parametrize(("task", "data", "expected"), [
    ("handwriting", "abc", "digit-lines"),
    ("handwriting", "digit-lines-13", "digit-lines"),
    ("speech", "abc", "fsdd"),
    ("speech", "fsdd:nobody", "unknown speaker 'nobody'"),
    ("speech", "fsdd/loud", "unknown option 'loud'"),
    ("speech", "fsdd-strings/mixup", "mixup"),
    ("adding", "1", "whole number >= 2"),
    ("copy", "-4", "whole number >= 1"),
])
def test_each_tasks_data_is_checked_naming_data(capsys, tmp_path, task, data, expected):
    err = fails(capsys, tmp_path, "--task", task, "--data", data)
    assert "--data" in err and expected in err, err


@pytest.mark.parametrize("option", ["--activation-penalty", "--temporal-penalty"])
@pytest.mark.parametrize("task", ["classify", "forecast", "translate"])
def test_the_language_models_penalties_are_refused_by_other_tasks(capsys, tmp_path, task,
                                                                 option):
    err = fails(capsys, tmp_path, "--task", task, option, "0.5")
    assert f"{option}: only --task lm takes it, got --task {task}" in err
