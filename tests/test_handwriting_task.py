"""Tests for the handwriting task: `rnnkit train --task handwriting`, evaluate, recognize,
the CTC figure, and reading pictures of digit lines (good and bad).

One tiny run (a few seconds: lines of 1-3 digits, a small model, 30 steps) serves the tests
of the command line's plumbing; it is far too short to read well. That a fully trained
default run reads the test suite's own picture of held-out digits is checked by
``test_a_trained_run_reads_the_held_out_picture`` when ``RNNKIT_HANDWRITING_RUN`` names such
a run (the README's results were measured that way).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from rnnkit.cli import main
from rnnkit.data import load_mnist5000
from rnnkit.data.handwriting import LINE_HEIGHT, digit_split
from rnnkit.inspection import inspect_ctc
from rnnkit.tasks import TASKS, build_task, task_config
from rnnkit.tasks.handwriting import (
    HandwritingError,
    handwriting_task,
    read_line_image,
    recognize_image,
)
from rnnkit.training.config import TrainConfig
from rnnkit.training.errors import RunError
from rnnkit.training.run_dir import RunDirectory

HELD_OUT_DIGITS = [3, 0, 7]
TINY = ["--data", "digit-lines-3", "--hidden-size", "16", "--embedding-size", "16",
        "--batch-size", "8", "--warmup", "5", "--threads", "1", "--time-limit", "0"]


def held_out_line(digits: list[int]) -> np.ndarray:
    """uint8 (28, W): ink 255 on 0, the first test-split image of each digit, 2 px apart."""
    images, labels = load_mnist5000()
    test = digit_split()["test"]
    pieces = []
    for digit in digits:
        pieces += [images[test[labels[test] == digit][0]], np.zeros((28, 2), np.uint8)]
    return np.concatenate(pieces, axis=1)


def write_held_out_png(path: Path, digits: list[int] = HELD_OUT_DIGITS) -> Path:
    """A dark-on-light PNG of held-out test digits, as someone's scan would be."""
    Image.fromarray(255 - held_out_line(digits)).save(path)
    return path


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("handwriting") / "run"
    assert main(["train", "--task", "handwriting", *TINY, "--steps", "30", "--eval-every", "15",
                 "--out", str(run)]) == 0
    return run


@pytest.fixture
def line_png(tmp_path) -> Path:
    return write_held_out_png(tmp_path / "line.png")


# --- the task in the general trainer ---------------------------------------------------------


def test_task_defaults_are_a_bidirectional_lstm_of_a_fixed_length() -> None:
    defaults = TASKS["handwriting"].defaults
    assert defaults["bidirectional"] is True and defaults["data"] == "digit-lines"
    config = task_config("handwriting")
    assert config.cell == "lstm" and (config.steps, config.time_limit) == (4926, None)


def test_train_writes_a_run_with_checkpoints_metrics_and_test_scores(tiny_run) -> None:
    config = json.loads((tiny_run / "config.json").read_text())
    assert config["task"] == "handwriting" and config["bidirectional"] is True
    assert (tiny_run / "checkpoints" / "best.safetensors").is_file()
    assert (tiny_run / "checkpoints" / "last.safetensors").is_file()
    report = json.loads((tiny_run / "report.json").read_text())
    assert report["steps"] == 30
    assert set(report["test"]) == {"cer", "line_error"}
    header = (tiny_run / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"loss", "val_cer", "val_line_error"} <= set(header)


def test_batches_are_padded_lines_with_their_widths_and_labels() -> None:
    task = build_task(task_config("handwriting", batch_size=4), torch.device("cpu"))
    batch = task.batch_at(7)
    (columns, lengths), (labels, label_lengths) = batch.inputs, batch.targets
    assert columns.shape[0] == 4 and columns.shape[2] == LINE_HEIGHT
    assert int(lengths.max()) == columns.shape[1]
    assert 1 <= int(label_lengths.min()) and int(label_lengths.max()) <= 12
    assert int(labels.max()) <= 10 and batch.starts_sequences
    again = task.batch_at(7)  # the same step always reads the same lines (exact resume)
    assert torch.equal(again.inputs[0], columns) and torch.equal(again.targets[0], labels)
    log_probs, state, loss = task.model(batch.inputs, None, batch.targets)
    assert state is None and log_probs.shape == (*columns.shape[:2], 11)
    assert loss.dim() == 0 and torch.isfinite(loss)


def test_a_run_resumes_where_it_stopped(tmp_path, cli) -> None:
    run = tmp_path / "run"
    code, _, _ = cli("train", "--task", "handwriting", *TINY, "--eval-every", "4",
                     "--steps", "4", "--out", str(run))
    before = (run / "metrics.csv").read_text().splitlines()
    code, out, _ = cli("train", "--resume", str(run), "--steps", "8")
    assert code == 0 and "finished 8 steps" in out
    after = (run / "metrics.csv").read_text().splitlines()
    assert after[:5] == before and [row.split(",")[0] for row in after[1:]] == [
        str(step) for step in range(1, 9)]
    assert json.loads((run / "report.json").read_text())["steps"] == 8


def test_task_metrics_are_error_rates_of_the_held_out_lines(tiny_run) -> None:
    config = RunDirectory.open(tiny_run).read_config()
    task = handwriting_task(config, torch.device("cpu"))
    metrics = task.evaluate("val")
    assert task.metric == "cer" and set(metrics) == {"cer", "line_error"}
    assert 0.0 <= metrics["line_error"] <= 1.0 and metrics["cer"] >= 0.0


@pytest.mark.parametrize("cell", ["gru", "mingru", "peephole-lstm"])
def test_any_cell_trains_either_way(tmp_path, cli, cell: str) -> None:
    code, out, _ = cli("train", "--task", "handwriting", *TINY, "--cell", cell,
                       "--no-bidirectional", "--steps", "2", "--eval-every", "2",
                       "--out", str(tmp_path / cell))
    assert code == 0 and "finished 2 steps" in out
    assert json.loads((tmp_path / cell / "config.json").read_text())["cell"] == cell


def test_list_names_the_task(cli) -> None:
    code, out, _ = cli("list")
    assert code == 0 and "handwriting" in out


# --- evaluate, recognize, the figure ------------------------------------------------------


def test_evaluate_prints_error_rate_and_line_accuracy_of_the_test_lines(tiny_run,
                                                                        cli) -> None:
    code, out, _ = cli("evaluate", str(tiny_run))
    assert code == 0 and "test split" in out
    values = {line.split()[0]: float(line.split()[1]) for line in out.splitlines()[1:]}
    assert set(values) == {"cer", "line_error", "line_accuracy"}
    assert values["line_accuracy"] == pytest.approx(1.0 - values["line_error"], abs=1e-4)


def test_recognize_prints_the_digits_the_model_reads(tiny_run, line_png, cli) -> None:
    for extra in ([], ["--beam", "4"]):
        code, out, err = cli("recognize", str(tiny_run), str(line_png), *extra)
        assert code == 0 and err == ""
        reading = out.strip()
        assert reading == "" or reading.isdigit()
        assert reading == recognize_image(tiny_run, line_png, beam_size=extra and 4 or None)


def test_the_ctc_figure_draws_a_test_line_and_a_picture(tiny_run, line_png, tmp_path,
                                                         cli) -> None:
    for source in ("3", str(line_png)):
        out = inspect_ctc(tiny_run, source, tmp_path / "figures")
        assert out == tmp_path / "figures" / "ctc.png"
        with Image.open(out) as picture:
            assert picture.format == "PNG" and picture.width > 400
    code, out, err = cli("inspect", str(tiny_run), "--ctc", "500",
                         "--out", str(tmp_path / "none"))
    assert code == 1 and "test line 500 does not exist" in err and err.count("\n") == 1


def test_a_trained_run_reads_the_held_out_picture(tmp_path) -> None:
    run = os.environ.get("RNNKIT_HANDWRITING_RUN")
    if not run:
        pytest.skip("set RNNKIT_HANDWRITING_RUN to a trained default handwriting run")
    path = write_held_out_png(tmp_path / "line.png")
    assert recognize_image(run, path) == "307"
    inverted = tmp_path / "inverted.png"
    Image.fromarray(held_out_line(HELD_OUT_DIGITS)).save(inverted)
    assert recognize_image(run, inverted, beam_size=8) == "307"


# --- reading pictures -----------------------------------------------------------------------


def test_light_on_dark_reads_like_dark_on_light(line_png, tmp_path) -> None:
    inverted = tmp_path / "inverted.png"
    Image.fromarray(held_out_line(HELD_OUT_DIGITS)).save(inverted)
    expected = read_line_image(line_png)
    assert expected.shape[0] == LINE_HEIGHT and expected.max() == pytest.approx(1.0)
    assert np.allclose(read_line_image(inverted), expected, atol=1e-6)


def test_a_larger_scan_is_scaled_to_the_line_height(line_png, tmp_path) -> None:
    image = Image.open(line_png)
    large = tmp_path / "large.png"
    image.resize((image.width * 3, image.height * 3), Image.Resampling.BICUBIC).save(large)
    expected, scaled = read_line_image(line_png), read_line_image(large)
    assert scaled.shape[0] == LINE_HEIGHT and abs(scaled.shape[1] - expected.shape[1]) <= 2
    width = min(scaled.shape[1], expected.shape[1])
    assert np.abs(scaled[:, :width] - expected[:, :width]).mean() < 0.05


def test_colour_and_transparent_pictures_read_like_greyscale(line_png, tmp_path) -> None:
    grey = Image.open(line_png)
    ink = 255 - np.asarray(grey)
    rgba = np.zeros(ink.shape + (4,), np.uint8)
    rgba[..., 2] = 120  # dark blue strokes on a transparent background
    rgba[..., 3] = ink
    Image.merge("RGB", [grey, grey, grey]).save(tmp_path / "rgb.png")
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    expected = read_line_image(line_png)
    assert np.allclose(read_line_image(tmp_path / "rgb.png"), expected, atol=1e-6)
    assert np.abs(read_line_image(tmp_path / "rgba.png") - expected).max() < 0.1


# --- bad input: one line on stderr, exit code 1, no traceback ---------------------------------


def bad_pictures(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    empty = tmp_path / "empty.png"
    empty.touch()
    notes = tmp_path / "notes.png"
    notes.write_text("4071\n")
    blank = tmp_path / "blank.png"
    Image.new("L", (200, 60), 255).save(blank)
    strip = np.full((100, 10), 255, np.uint8)
    strip[20:80, 4:6] = 0
    Image.fromarray(strip).save(tmp_path / "strip.png")
    tiny = np.full((5, 5), 255, np.uint8)
    tiny[2, 2] = 0
    Image.fromarray(tiny).save(tmp_path / "dot.png")
    return {
        "missing": (tmp_path / "nope.png", "no such file"),
        "folder": (tmp_path, "is a folder"),
        "empty": (empty, "empty (0 bytes)"),
        "not a picture": (notes, "not a picture"),
        "blank": (blank, "no ink"),
        "narrow": (tmp_path / "strip.png", "narrower than one digit"),
        "tiny": (tmp_path / "dot.png", "narrower than one digit"),
    }


def test_bad_pictures_are_one_line_errors(tiny_run, tmp_path, cli) -> None:
    for case, (path, words) in bad_pictures(tmp_path).items():
        with pytest.raises(HandwritingError, match=re.escape(words)):
            read_line_image(path)
        code, out, err = cli("recognize", str(tiny_run), str(path))
        assert code == 1 and out == "", case
        assert err.count("\n") == 1 and words in err and "Traceback" not in err, case
        assert err.startswith("rnnkit recognize: error: "), case
    code, _, err = cli("recognize", str(tiny_run), str(tmp_path / "blank.png"),
                       "--beam", "0")
    assert code == 1 and "--beam must be >= 1" in err


def test_runs_of_another_task_or_none_are_one_line_errors(tmp_path, line_png, cli) -> None:
    run = RunDirectory(tmp_path / "lm-run")
    run.create()
    run.write_config(TrainConfig())
    for argv in (["recognize", str(run.path), str(line_png)],
                 ["recognize", str(tmp_path / "absent"), str(line_png)],
                 ["inspect", str(run.path), "--ctc", "3"]):
        code, out, err = cli(*argv)
        assert code == 1 and err.count("\n") == 1 and "Traceback" not in err, argv
    assert "not handwriting" in cli("recognize", str(run.path), str(line_png))[2]


def test_bad_task_settings_are_one_line_errors(tmp_path, cli) -> None:
    for data in ("shakespeare", "digit-lines-13", "digit-lines-0"):
        with pytest.raises(RunError, match="--data"):
            handwriting_task(TrainConfig(task="handwriting", data=data), torch.device("cpu"))
    code, _, err = cli("train", "--task", "handwriting", "--data", "digits",
                       "--out", str(tmp_path / "bad"))
    assert code == 1 and "--data 'digits'" in err and not (tmp_path / "bad").exists()
    code, _, err = cli("train", "--task", "handwriting", "--cell", "nope",
                       "--out", str(tmp_path / "bad"))
    assert code == 1 and "unknown cell" in err
