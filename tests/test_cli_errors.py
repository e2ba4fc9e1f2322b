"""Bad input: every case is one line on stderr, a non-zero exit code, no traceback, and no
run data lost or overwritten."""

import dataclasses
import errno
import json
import math
import os
import shutil

import pytest
import safetensors.torch
import torch
from conftest import write_word_corpus

from rnnkit.cli import main
from rnnkit.training.checkpoint import load_checkpoint
from rnnkit.training.config import RULES, TrainConfig

WORDS = "once more unto the breach dear friends once more or close the wall up".split()
TINY = ["--steps", "4", "--embedding-size", "8", "--hidden-size", "16", "--batch-size", "4",
        "--bptt", "16", "--eval-every", "4", "--warmup", "2", "--time-limit", "0",
        "--device", "cpu", "--threads", "1"]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_word_corpus(tmp_path_factory.mktemp("data") / "corpus.txt", WORDS, seed=0,
                             words_per_line=6, length=1500)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, corpus):
    run = tmp_path_factory.mktemp("trained") / "run"
    assert main(["train", "--data", str(corpus), *TINY, "--steps", "4", "--out", str(run)]) == 0
    return run


def snapshot(folder):
    """Every file under ``folder`` with its bytes."""
    return {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def fails_with_one_line(capsys, argv, *expected):
    """Run the CLI, check it failed with exactly one line on stderr containing ``expected``."""
    try:
        code = main(argv)
    except SystemExit as exit:
        code = exit.code
    err = capsys.readouterr().err
    assert code not in (0, None)
    assert err.count("\n") == 1 and err.endswith("\n"), err
    assert "Traceback" not in err
    for text in expected:
        assert text in err, err
    return err


def test_unknown_cell(capsys, corpus, tmp_path):
    fails_with_one_line(capsys, ["train", "--data", str(corpus), "--cell", "lsmt", *TINY,
                                 "--out", str(tmp_path / "run")], "unknown cell 'lsmt'",
                        "rnnkit list")
    assert not (tmp_path / "run").exists()


def test_unknown_task(capsys, tmp_path):
    fails_with_one_line(capsys, ["train", "--task", "poetry", "--out", str(tmp_path / "run")],
                        "unknown task 'poetry'", "lm")
    assert not (tmp_path / "run").exists()


def test_unknown_option(capsys):
    fails_with_one_line(capsys, ["train", "--hiden-size", "8"], "unrecognized arguments",
                        "rnnkit train --help")


def test_unknown_command(capsys):
    fails_with_one_line(capsys, ["fit"], "invalid choice", "rnnkit --help")


def test_bad_option_value(capsys):
    fails_with_one_line(capsys, ["train", "--lr", "fast"], "--lr", "invalid float value")


@pytest.mark.parametrize(("option", "value", "expected"), [
    ("--dropout", "1.5", "--dropout must be in [0, 1)"),
    ("--weight-dropout", "1", "--weight-dropout must be in [0, 1)"),
    ("--zoneout-hidden", "-0.1", "--zoneout-hidden must be in [0, 1)"),
    ("--zoneout-cell", "1", "--zoneout-cell must be in [0, 1)"),
    ("--ema", "1", "--ema must be in (0, 1), or 0 for no average, got 1.0"),
    ("--activation-penalty", "-1", "--activation-penalty must be >= 0 and finite, got -1.0"),
    ("--temporal-penalty", "-0.5", "--temporal-penalty must be >= 0 and finite, got -0.5"),
])
def test_out_of_range_option(capsys, tmp_path, option, value, expected):
    fails_with_one_line(capsys, ["train", option, value, "--out", str(tmp_path / "r")], expected)
    assert not (tmp_path / "r").exists()


BAD_OPTIONS = {
    "task": [("--task", "poetry")],
    "data": [("--data", "")],
    "column": [("--column", " ")],
    "horizon": [("--horizon", "0")],
    "season": [("--season", "")],
    "covariates": [("--covariates", "")],
    "source": [("--source", "")],
    "target": [("--target", "")],
    "cell": [("--cell", "lsmt")],
    "embedding_size": [("--embedding-size", "0")],
    "hidden_size": [("--hidden-size", "-1"), ("--hidden-size", "1.5")],
    "layers": [("--layers", "0")],
    "dropout": [("--dropout", "nan"), ("--dropout", "inf")],
    "weight_dropout": [("--weight-dropout", "nan")],
    "activation_penalty": [("--activation-penalty", "nan"), ("--activation-penalty", "inf")],
    "temporal_penalty": [("--temporal-penalty", "nan"), ("--temporal-penalty", "inf")],
    "zoneout_hidden": [("--zoneout-hidden", "nan")],
    "zoneout_cell": [("--zoneout-cell", "nan")],
    "batch_size": [("--batch-size", "0")],
    "bptt": [("--bptt", "0")],
    "optimizer": [("--optimizer", "adam")],
    "lr": [("--lr", "nan"), ("--lr", "inf"), ("--lr", "0")],
    "min_lr_ratio": [("--min-lr-ratio", "nan"), ("--min-lr-ratio", "1.5")],
    "warmup": [("--warmup", "-1")],
    "weight_decay": [("--weight-decay", "nan"), ("--weight-decay", "inf"),
                     ("--weight-decay", "-0.1")],
    "momentum": [("--momentum", "nan"), ("--momentum", "1"), ("--momentum", "-0.5")],
    "ema": [("--ema", "nan"), ("--ema", "-0.5")],
    "clip": [("--clip", "nan"), ("--clip", "inf"), ("--clip", "-1")],
    "clip_value": [("--clip-value", "nan"), ("--clip-value", "inf")],
    "steps": [("--steps", "-3")],
    "epochs": [("--epochs", "nan"), ("--epochs", "inf"), ("--epochs", "0")],
    "time_limit": [("--time-limit", "nan"), ("--time-limit", "inf"), ("--time-limit", "-5")],
    "eval_every": [("--eval-every", "0")],
    "patience": [("--patience", "0")],
    "seed": [("--seed", "-1"), ("--seed", str(2**40))],
    "device": [("--device", "tpu")],
    "threads": [("--threads", "-2")],
    "precision": [("--precision", "fp8")],
}
"""Bad values of the option of every TrainConfig field that takes a value on the command
line (the flags --bidirectional and --compile take none)."""
FLAG_FIELDS = {"bidirectional", "compile"}


def test_every_setting_has_bad_values_tried():
    fields = {field.name for field in dataclasses.fields(TrainConfig)}
    assert fields <= set(BAD_OPTIONS) | FLAG_FIELDS
    assert fields <= set(RULES)


@pytest.mark.parametrize(("option", "value"), [case for cases in BAD_OPTIONS.values()
                                               for case in cases])
def test_a_bad_value_of_any_option_is_one_line_before_anything_is_created(capsys, tmp_path,
                                                                         option, value):
    out = tmp_path / "run"
    err = fails_with_one_line(capsys, ["train", "--steps", "2", option, value,
                                       "--out", str(out)], option)
    # The value as given (a number as Python prints it), and what was expected.
    shown = [value, repr(value)]
    if value.lstrip("-").replace(".", "").isdigit() or value in ("nan", "inf"):
        shown.append(str(float(value)))
    assert any(f"got {text}" in err or f"'{text}'" in err for text in shown), err
    assert "must be" in err or "unknown" in err or "invalid" in err, err
    assert "lower --lr or set --clip" not in err
    assert not out.exists()


def test_momentum_nan_is_refused_also_where_adamw_ignores_it(capsys, tmp_path):
    fails_with_one_line(capsys, ["train", "--optimizer", "adamw", "--momentum", "nan",
                                 "--out", str(tmp_path / "r")], "--momentum must be in [0, 1)",
                        "got nan")
    assert not (tmp_path / "r").exists()


def test_adamw_weight_decay_that_would_flip_the_weights(capsys, tmp_path):
    fails_with_one_line(capsys, ["train", "--lr", "0.01", "--weight-decay", "200",
                                 "--out", str(tmp_path / "r")], "--weight-decay",
                        "lr * weight decay <= 1", "0.01 * 200 = 2", "lower --weight-decay")
    assert not (tmp_path / "r").exists()


def test_a_model_too_large_for_memory(capsys, corpus, tmp_path):
    fails_with_one_line(capsys, ["train", "--data", str(corpus), *TINY, "--hidden-size",
                                 str(10**8), "--out", str(tmp_path / "r")],
                        "hidden_size 100000000", "do not fit in memory", "--hidden-size")
    assert not (tmp_path / "r").exists()


def wrong_values(name):
    """Values of the wrong type for setting ``name``, as JSON in a config.json could hold."""
    rule = RULES[name]
    values = {str: [5, ["a"]], int: ["abc", 1.5, True, [1]], float: ["abc", True, [0.1]],
              bool: ["yes", 1, None]}[rule.kind]
    if not rule.optional and None not in values:
        values = [*values, None]
    if rule.kind is float:
        values = [*values, math.nan]
    return values


CONFIG_CASES = [(field.name, value) for field in dataclasses.fields(TrainConfig)
                for value in wrong_values(field.name)]


@pytest.mark.parametrize(("key", "value"), CONFIG_CASES,
                         ids=[f"{key}={value!r}" for key, value in CONFIG_CASES])
def test_a_bad_value_in_a_runs_config_names_the_file_and_key(capsys, trained_run, tmp_path,
                                                           key, value):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    config_path = run / "config.json"
    values = json.loads(config_path.read_text())
    values[key] = value
    config_path.write_text(json.dumps(values))
    before = snapshot(run)
    for command in (["train", "--resume", str(run), "--steps", "8"], ["evaluate", str(run)],
                    ["sample", str(run)], ["export", str(run)]):
        fails_with_one_line(capsys, command, str(config_path), f'"{key}"',
                            f"got {json.dumps(value)}", "correct it in the file")
    assert snapshot(run) == before


@pytest.mark.parametrize(("option", "value", "expected"), [
    ("--temperature", "nan", "--temperature must be >= 0 and finite"),
    ("--temperature", "inf", "--temperature must be >= 0 and finite"),
    ("--temperature", "-1", "--temperature must be >= 0 and finite"),
    ("--length", "-1", "--length must be >= 0"),
    ("--top-k", "0", "--top-k must be >= 1"),
    ("--prompt", "", "--prompt must not be empty"),
])
def test_bad_sample_options(capsys, trained_run, option, value, expected):
    fails_with_one_line(capsys, ["sample", str(trained_run), option, value], expected,
                        f"got {value}" if value else "")


def test_unknown_and_missing_settings_in_a_runs_config_name_the_file(capsys, trained_run,
                                                                     tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    config_path = run / "config.json"
    values = json.loads(config_path.read_text())
    config_path.write_text(json.dumps({**values, "colour": "red"}))
    fails_with_one_line(capsys, ["train", "--resume", str(run), "--steps", "8"],
                        str(config_path), "unknown settings in the run's config: colour")
    del values["hidden_size"]
    config_path.write_text(json.dumps(values))
    fails_with_one_line(capsys, ["evaluate", str(run)], str(config_path),
                        "lacks the settings hidden_size")
    config_path.write_text(json.dumps({**values, "hidden_size": 16, "task": "poetry"}))
    fails_with_one_line(capsys, ["evaluate", str(run)], str(config_path), '"task"',
                        "unknown task 'poetry'")
    config_path.write_text("[1, 2]")
    fails_with_one_line(capsys, ["sample", str(run)], str(config_path),
                        "expected a JSON object of settings, got list")


def test_resume_checks_the_options_it_may_change(capsys, trained_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    before = snapshot(run)
    fails_with_one_line(capsys, ["train", "--resume", str(run), "--time-limit", "inf"],
                        "--time-limit must be > 0 and finite, or 0 for no limit, got inf")
    assert snapshot(run) == before


def test_weight_dropout_of_a_cell_without_recurrent_weights(capsys, corpus, tmp_path):
    fails_with_one_line(capsys, ["train", "--data", str(corpus), "--cell", "mingru",
                                 "--weight-dropout", "0.2", *TINY, "--out", str(tmp_path / "r")],
                        "--weight-dropout", "mingru", "no recurrent weights")
    assert not (tmp_path / "r").exists()


def test_cell_zoneout_of_a_cell_without_a_cell_state(capsys, corpus, tmp_path):
    fails_with_one_line(capsys, ["train", "--data", str(corpus), "--cell", "gru",
                                 "--zoneout-cell", "0.2", *TINY, "--out", str(tmp_path / "r")],
                        "--zoneout-cell", "gru", "no cell state")
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("option", ["--activation-penalty", "--temporal-penalty"])
def test_output_penalties_outside_the_language_model(capsys, tmp_path, option):
    fails_with_one_line(capsys, ["train", "--task", "adding", option, "1", "--steps", "2",
                                 "--out", str(tmp_path / "r")],
                        f"{option}: only --task lm takes it, got --task adding")
    assert not (tmp_path / "r").exists()


def test_bidirectional_language_model(capsys, corpus, tmp_path):
    fails_with_one_line(capsys, ["train", "--data", str(corpus), "--bidirectional", *TINY,
                                 "--out", str(tmp_path / "run")], "--bidirectional")


@pytest.mark.parametrize(("content", "expected"), [
    (b"", "empty"),
    (b"\n \n", "empty"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary"),
    (b"caf\xe9 au lait", "not valid UTF-8"),
    ("to be or not to be\n".encode("utf-16"), "is UTF-16 text"),
    ("to be or not to be\n".encode("utf-16-le"), "convert it"),
    ("to be or not to be\n".encode("utf-32"), "is UTF-32 text"),
])
def test_unusable_text(capsys, tmp_path, content, expected):
    data = tmp_path / "data.txt"
    data.write_bytes(content)
    fails_with_one_line(capsys, ["train", "--data", str(data), *TINY,
                                 "--out", str(tmp_path / "run")], str(data), expected)
    assert not (tmp_path / "run").exists()


def test_missing_data_file(capsys, tmp_path):
    fails_with_one_line(capsys, ["train", "--data", str(tmp_path / "nope.txt")], "no such file")


def test_text_too_short_for_the_batch(capsys, tmp_path):
    data = tmp_path / "short.txt"
    data.write_text("to be or not to be, that is the question\n")
    fails_with_one_line(capsys, ["train", "--data", str(data), *TINY,
                                 "--out", str(tmp_path / "run")], "too short")


def test_existing_run_directory_is_refused_and_kept(capsys, corpus, trained_run):
    before = snapshot(trained_run)
    fails_with_one_line(capsys, ["train", "--data", str(corpus), *TINY,
                                 "--out", str(trained_run)], "already exists", "--resume",
                        "--force")
    assert snapshot(trained_run) == before


def test_resume_refuses_a_changed_setting(capsys, trained_run):
    before = snapshot(trained_run)
    fails_with_one_line(capsys, ["train", "--resume", str(trained_run), "--hidden-size", "32"],
                        "--hidden-size cannot change when resuming")
    assert snapshot(trained_run) == before


def test_a_run_without_checkpoints(capsys, trained_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    shutil.rmtree(run / "checkpoints")
    fails_with_one_line(capsys, ["train", "--resume", str(run), "--steps", "8"],
                        "has no checkpoint to resume from", "--force")
    fails_with_one_line(capsys, ["sample", str(run)], "no such checkpoint")
    fails_with_one_line(capsys, ["evaluate", str(run)], "no such checkpoint")


def test_a_folder_that_is_not_a_run(capsys, tmp_path):
    fails_with_one_line(capsys, ["sample", str(tmp_path)], "not a run directory")
    fails_with_one_line(capsys, ["evaluate", str(tmp_path / "missing")], "no such run directory")


@pytest.mark.parametrize("command", [["sample"], ["evaluate"], ["train", "--steps", "8",
                                                                 "--resume"]])
def test_truncated_checkpoint(capsys, trained_run, tmp_path, command):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    for name in ("best.safetensors", "last.safetensors"):
        path = run / "checkpoints" / name
        path.write_bytes(path.read_bytes()[:1000])
    before = snapshot(run)
    fails_with_one_line(capsys, [*command, str(run)], "checkpoint")
    assert snapshot(run) == before


def test_foreign_checkpoint(capsys, trained_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    safetensors.torch.save_file({"w": torch.zeros(3)}, run / "checkpoints" / "best.safetensors")
    fails_with_one_line(capsys, ["sample", str(run)], "not an rnnkit checkpoint")


def test_checkpoint_of_another_model(capsys, corpus, trained_run, tmp_path):
    other = tmp_path / "other"
    assert main(["train", "--data", str(corpus), *TINY, "--steps", "4", "--hidden-size", "12",
                 "--out", str(other)]) == 0
    capsys.readouterr()
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    shutil.copy(other / "checkpoints" / "last.safetensors", run / "checkpoints")
    fails_with_one_line(capsys, ["train", "--resume", str(run), "--steps", "8"],
                        "different model")


def test_unknown_device(capsys, tmp_path):
    fails_with_one_line(capsys, ["train", "--device", "tpu", "--out", str(tmp_path / "r")],
                        "--device")


def test_a_full_disk_while_saving_keeps_the_run(capsys, monkeypatch, trained_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    before = snapshot(run)

    def disk_full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", disk_full)
    fails_with_one_line(capsys, ["train", "--resume", str(run), "--steps", "8"],
                        "not enough disk space", "--resume")
    assert snapshot(run) == before


def test_a_diverging_run_stops_with_one_line_and_keeps_its_checkpoint(capsys, corpus, tmp_path):
    run = tmp_path / "run"
    fails_with_one_line(capsys, ["train", "--data", str(corpus), *TINY, "--cell", "rnn-relu",
                                 "--optimizer", "sgd", "--lr", "1e4", "--clip", "0",
                                 "--eval-every", "1", "--steps", "12", "--out", str(run)],
                        "the loss became nan", "the last good checkpoint (step 1)", "lower --lr")
    checkpoint = load_checkpoint(run / "checkpoints" / "last.safetensors")
    assert checkpoint.info["step"] == 1
    assert json.loads((run / "report.json").read_text())["stop_reason"] == "nan"


def test_a_diverging_run_that_clips_already_is_not_told_to_clip(capsys, corpus, tmp_path):
    err = fails_with_one_line(capsys, ["train", "--data", str(corpus), *TINY, "--cell",
                                       "rnn-relu", "--optimizer", "sgd", "--lr", "1e5",
                                       "--momentum", "0", "--clip", "1", "--eval-every", "1",
                                       "--steps", "12", "--out", str(tmp_path / "run")],
                              "lower --lr (now 100000)")
    assert "--clip" not in err


def test_an_out_folder_under_a_file(capsys, corpus, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    fails_with_one_line(capsys, ["train", "--data", str(corpus), *TINY,
                                 "--out", str(blocker / "run")], str(blocker), "--out")
    assert blocker.read_text() == "not a folder"


def test_a_full_disk_at_a_later_checkpoint_keeps_the_earlier_one(capsys, monkeypatch, corpus,
                                                                 tmp_path):
    from rnnkit.training import checkpoint

    run = tmp_path / "run"
    real_fsync, saves = os.fsync, []

    def fsync_until_the_disk_fills(fd):
        # The first save of last.safetensors (step 2) succeeds; the disk is full at the next.
        if os.readlink(f"/proc/self/fd/{fd}").split("/")[-1].startswith(".last.safetensors."):
            saves.append(fd)
            if len(saves) > 1:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    monkeypatch.setattr(checkpoint.os, "fsync", fsync_until_the_disk_fills)
    fails_with_one_line(capsys, ["train", "--data", str(corpus), *TINY, "--eval-every", "2",
                                 "--out", str(run)],
                        "not enough disk space", "the previous one is intact", "--resume")
    assert load_checkpoint(run / "checkpoints" / "last.safetensors").info["step"] == 2
    monkeypatch.setattr(checkpoint.os, "fsync", real_fsync)
    assert main(["train", "--resume", str(run)]) == 0
    assert load_checkpoint(run / "checkpoints" / "last.safetensors").info["step"] == 4


def test_a_full_disk_before_the_first_checkpoint_says_to_start_again(capsys, monkeypatch,
                                                                     corpus, tmp_path):
    from rnnkit.training import checkpoint

    real_fsync = os.fsync

    def no_space_for_checkpoints(fd):
        if ".safetensors." in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    monkeypatch.setattr(checkpoint.os, "fsync", no_space_for_checkpoints)
    fails_with_one_line(capsys, ["train", "--data", str(corpus), *TINY,
                                 "--out", str(tmp_path / "run")],
                        "not enough disk space", "start the run again")


def test_metrics_that_cannot_be_appended(capsys, monkeypatch, corpus, tmp_path):
    from rnnkit.training.run_dir import MetricsLog

    def disk_full(self, step, values):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    original = MetricsLog.write
    monkeypatch.setattr(MetricsLog, "write", lambda self, step, values: (
        disk_full(self, step, values) if step > 2 else original(self, step, values)))
    fails_with_one_line(capsys, ["train", "--data", str(corpus), *TINY,
                                 "--out", str(tmp_path / "run")], "No space left on device")
