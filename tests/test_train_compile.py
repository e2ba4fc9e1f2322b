"""``rnnkit train --compile``: the compiled training step gives the eager one's losses, the
setting is saved in config.json, validated, and may change when a run resumes.

The runs compile with the "aot_eager" backend (Dynamo's graphs and AOTAutograd's forward and
backward, without Inductor's code generation, which takes minutes on two cores);
tests/test_export.py runs Inductor on a layer."""

import csv
import json

import pytest
import torch

from rnnkit.cli import main
from rnnkit.training import compiling
from rnnkit.training.config import TrainConfig
from rnnkit.training.errors import RunError

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = ["--task", "classify", "--data", "ItalyPowerDemand", "--hidden-size", "8",
        "--batch-size", "4", "--warmup", "0", "--time-limit", "0", "--device", "cpu",
        "--threads", "1", "--eval-every", "3"]


def _losses(run) -> list[float]:
    with open(run / "metrics.csv", newline="") as file:
        return [float(row["loss"]) for row in csv.DictReader(file)]


def _train(capsys, *argv) -> None:
    code = main([str(arg) for arg in argv])
    _, err = capsys.readouterr()
    assert code == 0, err


def test_compiled_training_matches_eager_and_the_setting_changes_on_resuming(
        tmp_path, capsys, monkeypatch, fused_extension):
    monkeypatch.setattr(compiling, "BACKEND", "aot_eager")
    torch._dynamo.reset()
    # 3 steps, then one more on resuming with the setting changed (the same lr schedule)
    _train(capsys, "train", *TINY, "--steps", "3", "--no-compile", "--out", tmp_path / "eager")
    _train(capsys, "train", *TINY, "--steps", "3", "--compile", "--out", tmp_path / "compiled")
    assert json.loads((tmp_path / "compiled" / "config.json").read_text())["compile"] is True
    _train(capsys, "train", "--resume", tmp_path / "eager", "--steps", "4", "--compile")
    _train(capsys, "train", "--resume", tmp_path / "compiled", "--steps", "4", "--no-compile")
    eager, compiled = _losses(tmp_path / "eager"), _losses(tmp_path / "compiled")
    assert len(eager) == len(compiled) == 4
    torch.testing.assert_close(torch.tensor(compiled), torch.tensor(eager), atol=1e-5,
                               rtol=1e-5)
    assert json.loads((tmp_path / "compiled" / "config.json").read_text())["compile"] is False


def test_compile_setting_is_validated_and_old_runs_train_eagerly():
    with pytest.raises(RunError, match=r"^--compile must be true or false, got 'yes'$"):
        TrainConfig(compile="yes").check()
    saved = TrainConfig().to_dict()
    del saved["compile"]  # a run saved before the setting existed
    assert TrainConfig.from_dict(saved).compile is False
