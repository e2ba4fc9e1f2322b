"""Every task's default run has a fixed length in steps or epochs (for those that once fitted it
to a time budget: what the reference machine fitted into it; for classify, a budget in steps
decided by the length and number of the series) and no time limit, so the same command gives
the same run under any load; ``--time-limit S`` without ``--steps`` or ``--epochs`` fits the
length to S seconds instead, as those defaults once did."""

import json

import pytest

from rnnkit import cli as cli_module
from rnnkit.tasks import classify, task_config
from rnnkit.training.config import LENGTH_FROM_DATA
from rnnkit.training.trainer import TrainResult

FIXED = {"lm": 5944, "translate": 3643, "handwriting": 4926, "seq2seq": 3206,
         "forecast": 600, "adding": 4000, "copy": 8000}
"""The steps of docs/results/language-model.md's, docs/results/translation.md's and
docs/results/handwriting.md's default runs on the idle 2-core AMD EPYC (580 s, 30 minutes and
540 s), of the G2P run of docs/results/index.md (780 s on a 2-core Intel Xeon), and the fixed
steps forecast, adding and copy always had (forecast without its former 300 s cap)."""


def test_every_task_has_a_fixed_default_length_and_no_time_limit():
    from rnnkit.tasks import TASKS
    assert LENGTH_FROM_DATA == ("classify", "speech")
    for task in TASKS:
        config = task_config(task)
        assert config.time_limit is None, task
        config.check()  # a length, or one its data gives
        assert (config.total_steps(steps_per_epoch=100) is None) == (task in LENGTH_FROM_DATA)


@pytest.mark.parametrize("length, count, batch, steps", [
    (251, 36, 16, 3523),  # ArrowHead: the idle reference machine's 240 s fitted about 3,500
    (427, 200, 16, 1986),  # OSULeaf: about 2,000
    (150, 50, 16, 5442),  # GunPoint
    (1500, 40, 16, 649),  # a step costs about 6x ArrowHead's: about 6x fewer steps
    (500, 3601, 16, 615),  # FordA: validating 3,601 series every 50 steps costs too
    (24, 67, 16, 10_000),  # ItalyPowerDemand: short series, at most MAX_STEPS
    (17_984, 128, 16, 52),  # EigenWorms, the longest UCR/UEA series: above MIN_STEPS
    (100_000, 10, 16, 50),  # at least MIN_STEPS
    (251, 36, 32, 1886),  # batches of 32 series: about half the steps
])
def test_classify_s_default_length_is_a_budget_for_the_length_and_number_of_series(
        length, count, batch, steps):
    assert classify.default_steps(length, count, batch, 50) == steps
    if classify.MIN_STEPS < steps < classify.MAX_STEPS:  # the budget: 240 s on the reference
        cost = steps * classify.step_cost(length, count, batch, 50)
        assert cost == pytest.approx(classify.BUDGET, rel=0.01)


def test_classify_s_default_length_is_in_the_run_s_config_and_said_at_its_start(
        cli, tmp_path, monkeypatch):
    monkeypatch.setattr(classify, "MAX_STEPS", 2)  # two steps, not the budget's 5,442
    code, out, err = cli("train", "--task", "classify", "--threads", "1", "--eval-every", "1",
                         "--out", tmp_path / "run")
    assert code == 0, err
    assert ("2 steps (the most): the default budget for 50 series of 150 points, batch 16; "
            "--steps, --epochs or --time-limit sets another length") in out + err
    saved = task_config("classify", **json.loads((tmp_path / "run/config.json").read_text()))
    assert (saved.steps, saved.epochs, saved.time_limit) == (2, None, None)  # resumed as is


@pytest.mark.parametrize("task", FIXED)
def test_the_default_length_is_fixed_and_no_time_limit_cuts_it(task):
    config = task_config(task)
    assert (config.steps, config.epochs, config.time_limit) == (FIXED[task], None, None)
    assert config.total_steps(steps_per_epoch=100) == FIXED[task]


@pytest.fixture
def configs(monkeypatch):
    """The configs ``rnnkit train`` would train (nothing is trained)."""
    seen = []

    def fake_train(config, run_path, ranks, build_task, resume=False, force=False):
        seen.append(config)
        return TrainResult("finished", "finished 0 steps", 0, config.steps, 0.0)

    monkeypatch.setattr(cli_module, "train", fake_train)
    return seen


@pytest.mark.parametrize("argv, length", [
    ([], (5944, None, None)),
    (["--time-limit", "300"], (None, None, 300.0)),  # fitted to the time limit
    (["--steps", "0", "--time-limit", "300"], (None, None, 300.0)),
    (["--steps", "100", "--time-limit", "300"], (100, None, 300.0)),  # stops at either
    (["--epochs", "2", "--time-limit", "300"], (5944, 2.0, 300.0)),  # the epochs win
    (["--time-limit", "0"], (5944, None, None)),
    (["--task", "translate"], (3643, None, None)),
    (["--task", "translate", "--time-limit", "600"], (None, None, 600.0)),
    (["--task", "speech"], (None, None, None)),  # its epochs for the data, in the trainer
    (["--task", "speech", "--time-limit", "60"], (None, None, 60.0)),  # over its epochs too
    (["--task", "speech", "--epochs", "3"], (None, 3.0, None)),
    (["--task", "classify"], (None, None, None)),  # the length its data gives, in the trainer
    (["--task", "classify", "--steps", "300"], (300, None, None)),  # the user's length wins
    (["--task", "classify", "--epochs", "5"], (None, 5.0, None)),
    (["--task", "classify", "--time-limit", "240"], (None, None, 240.0)),  # the former default
    (["--task", "seq2seq"], (3206, None, None)),
    (["--task", "handwriting"], (4926, None, None)),
    (["--task", "handwriting", "--time-limit", "540"], (None, None, 540.0)),
    (["--task", "forecast"], (600, None, None)),
    (["--task", "forecast", "--steps", "600", "--time-limit", "300"], (600, None, 300.0)),
])
def test_a_time_limit_alone_fits_the_length_to_it(configs, cli, tmp_path, argv, length):
    code, _, err = cli("train", *argv, "--out", tmp_path / "run")
    assert code == 0, err
    config = configs[-1]
    assert (config.steps, config.epochs, config.time_limit) == length


def test_an_auto_length_still_needs_a_time_limit(configs, cli):
    code, _, err = cli("train", "--steps", "0")
    assert code == 1 and "needs a --time-limit" in err
    assert not configs


@pytest.mark.parametrize("data, epochs", [("fsdd", 20), ("fsdd-strings", 60)])
def test_speech_s_default_length_is_its_epochs_for_isolated_digits_or_strings(data, epochs):
    from rnnkit.tasks import speech
    steps, note = speech.default_length(data, steps_per_epoch=15)
    assert speech.DEFAULT_EPOCHS[data] == epochs
    assert steps == 15 * epochs and f"{steps:,} steps" in note and data in note
