"""The classify, forecast, seq2seq, adding and copy tasks: adapters, batching, and each task
trained, evaluated and resumed from the command line on tiny settings."""

import csv
import dataclasses
import json
import math
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rnnkit.cli import main
from rnnkit.data import bundled_path
from rnnkit.tasks import TASKS, task_config
from rnnkit.tasks.classify import ClassifierAdapter, framed
from rnnkit.tasks.g2p import Seq2SeqAdapter
from rnnkit.tasks.synthetic import RegressorAdapter, TokenTaggerAdapter
from rnnkit.training.config import TrainConfig
from rnnkit.training.task import shuffled_rows

# A constant learning rate, so that 4 steps resumed to 6 follow the schedule of 6 steps.
TINY = ["--hidden-size", "8", "--embedding-size", "8", "--batch-size", "4", "--warmup", "0",
        "--min-lr-ratio", "1", "--time-limit", "0", "--device", "cpu", "--threads", "1",
        "--precision", "fp32"]
# Each task on its smallest data: a short adding/copy sequence, a 300-word dictionary.
TASK_ARGS = {
    "classify": ["--data", "ItalyPowerDemand"],
    "forecast": ["--data", "airline", "--bptt", "12", "--horizon", "3"],
    "seq2seq": [],  # --data: a dictionary file written by the fixture
    "adding": ["--data", "12"],
    "copy": ["--data", "4"],
}


pytestmark = pytest.mark.usefixtures("one_thread")


def small_dictionary(path, words=300):
    """The first ``words`` entries of the bundled CMUdict, in its format."""
    lines = [line for line in bundled_path("cmudict/cmudict.dict").read_text().splitlines()
             if line and not line.startswith(";;;")]
    path.write_text("\n".join(lines[:words]) + "\n")
    return path


def task_args(task, folder):
    args = ["--task", task, *TASK_ARGS[task], *TINY]
    if task == "seq2seq":
        args += ["--data", small_dictionary(folder / "dict.txt")]
    return args


def losses(run):
    with open(run / "metrics.csv") as file:
        return [float(row["loss"]) for row in csv.DictReader(file)]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Each task trained for 4 steps (validated at 2 and 4) from the command line."""
    folder = tmp_path_factory.mktemp("tasks")
    made = {}
    for task in TASK_ARGS:
        run = folder / task
        code = main(["train", *(str(a) for a in task_args(task, folder))]
                    + ["--steps", "4", "--eval-every", "2", "--out", str(run)])
        assert code == 0, task
        made[task] = run
    return made


# ----------------------------------------------------------------------------------------
# The pieces.


def test_every_task_is_registered_with_defaults_and_listed(cli):
    assert {"lm", "classify", "forecast", "seq2seq", "adding", "copy"} <= set(TASKS)
    for task in TASKS:
        task_config(task).check()
    code, out, _ = cli("list")
    assert code == 0
    for task in ("classify", "forecast", "seq2seq", "adding", "copy"):
        assert any(line.split()[:1] == [task] for line in out.splitlines())


# Each task's settings where they differ from TrainConfig's own defaults: those every run of
# the task has had, so that a task's default run, and its results, stay the same.
TASK_SETTINGS = {
    "lm": {"data": "shakespeare", "hidden_size": 640, "dropout": 0.35,
           "activation_penalty": 2.0, "temporal_penalty": 1.0, "lr": 0.02,
           "weight_decay": 0.1, "ema": 0.999, "steps": 5944, "time_limit": None,
           "precision": "auto"},
    "classify": {"data": "GunPoint", "hidden_size": 64, "dropout": 0.8, "batch_size": 16,
                 "lr": 1e-3, "warmup": 20, "time_limit": None, "eval_every": 50},
    "forecast": {"data": "sunspots", "hidden_size": 32, "bptt": None, "warmup": 20,
                 "steps": 600, "time_limit": None, "eval_every": 25},
    "seq2seq": {"data": "cmudict", "hidden_size": 256, "bidirectional": True, "dropout": 0.1,
                "batch_size": 128, "steps": 3206, "time_limit": None},
    "adding": {"data": "100", "batch_size": 64, "steps": 4000, "eval_every": 250,
               "time_limit": None},
    "copy": {"data": "20", "batch_size": 64, "steps": 8000, "time_limit": None},
    "handwriting": {"data": "digit-lines", "hidden_size": 96, "bidirectional": True,
                    "dropout": 0.25, "weight_decay": 0.1, "steps": 4926, "time_limit": None},
    "speech": {"data": "fsdd", "cell": "gru", "layers": 2, "bidirectional": True,
               "dropout": 0.2, "warmup": 50, "weight_decay": 0.01, "eval_every": 100,
               "time_limit": None},
    "translate": {"data": "multi30k", "cell": "gru", "embedding_size": 256, "hidden_size": 256,
                  "bidirectional": True, "dropout": 0.2, "batch_size": 64, "lr": 0.002,
                  "warmup": 200, "steps": 3643, "time_limit": None},
}
NEUTRAL = {"cell": "lstm", "embedding_size": 64, "hidden_size": 128, "layers": 1,
           "dropout": 0.0, "batch_size": 32, "bptt": 64, "lr": 3e-3, "warmup": 100,
           "weight_decay": 0.0, "ema": None, "clip": 1.0, "steps": None,
           "time_limit": 540.0, "eval_every": 500, "precision": "fp32",
           "activation_penalty": 0.0, "temporal_penalty": 0.0}


def test_each_task_keeps_its_own_settings_over_task_neutral_defaults():
    neutral = TrainConfig()
    assert {name: getattr(neutral, name) for name in NEUTRAL} == NEUTRAL
    assert set(TASK_SETTINGS) == set(TASKS)
    for task, settings in TASK_SETTINGS.items():
        config = task_config(task)
        differs = {name: value for name, value in dataclasses.asdict(config).items()
                   if value != getattr(neutral, name) and name != "task"}
        assert differs == settings, task
        assert task_config(task, hidden_size=7).hidden_size == 7  # the user's settings win


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_adapters_map_inputs_and_state_to_outputs_and_no_state(cell):
    common = {"cell": cell, "hidden_size": 6, "num_layers": 1, "bidirectional": True,
              "dropout": 0.0}
    series, lengths = torch.randn(3, 7, 2), torch.tensor([7, 5, 1])
    labels = torch.tensor([0, 3, 1])
    scores, state, loss = ClassifierAdapter({**common, "input_size": 2, "num_outputs": 4,
                                             "pooling": "last"})((series, lengths), None, labels)
    assert scores.shape == (3, 4) and state is None
    torch.testing.assert_close(loss, F.cross_entropy(scores, labels))
    sums = torch.randn(3)
    values, state, loss = RegressorAdapter({**common, "input_size": 2, "num_outputs": 1,
                                            "pooling": "last"})(series, None, sums)
    assert values.shape == (3,) and state is None
    torch.testing.assert_close(loss, F.mse_loss(values, sums))
    source, target = torch.randint(3, 10, (3, 6)), torch.randint(3, 12, (3, 4))
    logits, state, loss = Seq2SeqAdapter({**common, "source_vocab_size": 10,
                                          "target_vocab_size": 12, "embedding_size": 5,
                                          "attention": "general"})(
        (source, torch.tensor([6, 3, 1]), target), None, target)
    assert logits.shape == (3, 4, 12) and state is None and loss.dim() == 0
    tokens = torch.randint(0, 10, (3, 8))
    logits, state, loss = TokenTaggerAdapter({**common, "input_size": 10, "num_outputs": 10})(
        tokens, None, tokens)
    assert logits.shape == (3, 8, 10) and state is None
    torch.testing.assert_close(loss, F.cross_entropy(logits.flatten(0, 1), tokens.flatten()))


def test_classifier_ignores_steps_after_each_series_end():
    model = ClassifierAdapter({"cell": "lstm", "hidden_size": 6, "num_layers": 1,
                               "bidirectional": True, "dropout": 0.0, "input_size": 2,
                               "num_outputs": 3, "pooling": "last"}).eval()
    series, lengths = torch.randn(2, 9, 2), torch.tensor([9, 4])
    noisy = series.clone()
    noisy[1, 4:] = 100.0
    assert torch.allclose(model((series, lengths))[0], model((noisy, lengths))[0], atol=1e-6)
    alone = model((series[1:, :4], lengths[1:]))[0]
    assert torch.allclose(model((series, lengths))[0][1:], alone, atol=1e-6)


def test_framed_series_keep_every_value_in_order():
    series = [np.arange(10.0).reshape(5, 2), np.arange(6.0).reshape(3, 2)]
    inputs, lengths = framed(series, 2)
    assert inputs.shape == (2, 3, 4) and lengths.tolist() == [3, 2]
    assert inputs[0].reshape(-1, 2)[:5].tolist() == series[0].tolist()
    assert inputs[0, 2, 2:].tolist() == [8.0, 9.0]  # the last frame completed with the last value
    assert inputs[1].reshape(-1, 2)[:3].tolist() == series[1].tolist()


@pytest.mark.parametrize("count, batch", [(10, 4), (3, 8), (7, 7)])
def test_shuffled_rows_see_every_row_once_per_epoch_and_repeat_exactly(count, batch):
    stream = torch.cat([shuffled_rows(count, batch, step, seed=3) for step in range(6)])
    assert all(len(shuffled_rows(count, batch, step, 3)) == batch for step in range(6))
    for epoch in range(len(stream) // count):
        assert sorted(stream[epoch * count:(epoch + 1) * count].tolist()) == list(range(count))
    assert torch.equal(shuffled_rows(count, batch, 4, 3), shuffled_rows(count, batch, 4, 3))
    assert not all(torch.equal(shuffled_rows(count, batch, s, 3), shuffled_rows(count, batch, s, 4))
                   for s in range(6))


# ----------------------------------------------------------------------------------------
# The command line.


@pytest.mark.parametrize("task", list(TASK_ARGS))
def test_each_task_trains_and_evaluate_reproduces_its_test_metrics(runs, task, cli):
    run = runs[task]
    report = json.loads((run / "report.json").read_text())
    assert report["steps"] == 4 and report["test"] and report["sample"]
    assert all(math.isfinite(value) for value in report["test"].values())
    code, out, err = cli("evaluate", run, "--device", "cpu")
    assert code == 0, err
    lines = out.splitlines()[1:]
    metrics_end = next((i for i, line in enumerate(lines) if not line.startswith("  ")),
                       len(lines))  # a classifier's confusion matrix follows its metrics
    metric_lines = [line.split() for line in lines[:metrics_end]]
    printed = {words[0]: float(words[1]) for words in metric_lines}
    accuracy = printed.pop("accuracy", None)
    assert printed == pytest.approx({k: round(v, 4) for k, v in report["test"].items()},
                                    abs=2e-4)
    if "error_rate" in printed:  # classify: the accuracy first
        assert metric_lines[0][0] == "accuracy"
        assert accuracy == pytest.approx(1 - printed["error_rate"], abs=2e-4)


def test_evaluate_of_a_classifier_names_the_test_file_and_prints_its_confusion(runs, cli):
    code, out, err = cli("evaluate", runs["classify"], "--device", "cpu")
    assert code == 0, err
    header, *_ = out.splitlines()
    assert "ItalyPowerDemand_TEST.ts, 1029 series" in header
    assert "test confusion (rows: true class, columns: predicted), 1029 series:" in out
    rows = out.split("1029 series:\n")[1].splitlines()[1:]
    assert sum(int(count) for row in rows for count in row.split()[1:]) == 1029


@pytest.mark.parametrize("task", ["classify", "forecast", "adding"])
def test_resuming_a_task_continues_the_same_loss_curve(runs, task, tmp_path, cli):
    resumed = tmp_path / "resumed"
    shutil.copytree(runs[task], resumed)
    code, _, err = cli("train", "--resume", resumed, "--steps", "6")
    assert code == 0, err
    straight = tmp_path / "straight"
    code, _, err = cli("train", *task_args(task, tmp_path), "--steps", "6",
                       "--eval-every", "2", "--out", straight)
    assert code == 0, err
    assert losses(resumed) == pytest.approx(losses(straight), rel=1e-5)
    assert len(losses(resumed)) == 6


def test_evaluate_takes_other_data_of_the_same_kind(runs, cli):
    code, out, err = cli("evaluate", runs["adding"], "--data", "30", "--split", "val")
    assert code == 0, err
    assert "val split of 30" in out and "mse" in out


def test_classify_reads_a_ucr_2018_folder_whose_test_file_lacks_a_class(tmp_path, cli):
    rng = np.random.default_rng(0)
    folder = tmp_path / "Waves"
    folder.mkdir()
    for split, labels in (("TRAIN", [1, 2, 3] * 4), ("TEST", [3, 1] * 3)):
        lines = ["\t".join([str(label)] + [f"{v:.3f}" for v in
                           np.sin(np.arange(30) * label / 5) + 0.1 * rng.standard_normal(30)])
                 for label in labels]
        (folder / f"Waves_{split}.tsv").write_text("\n".join(lines) + "\n")
    run = tmp_path / "run"
    code, _, err = cli("train", "--task", "classify", "--data", folder, *TINY,
                       "--steps", "2", "--out", run)
    assert code == 0, err
    code, out, err = cli("evaluate", run, "--device", "cpu")
    assert code == 0, err
    assert f"{folder / 'Waves_TEST.tsv'}, 6 series" in out.splitlines()[0]


def test_sample_refuses_a_run_that_is_not_a_language_model(runs, cli):
    code, out, err = cli("sample", runs["classify"])
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and "--task classify" in err and "--task lm" in err


def test_forecast_reads_a_named_column_and_a_bidirectional_window(tmp_path, cli):
    path = tmp_path / "two.csv"
    rng = np.random.default_rng(0)
    rows = [f"{day},{math.sin(day / 3):.4f},{rng.normal():.4f}" for day in range(120)]
    path.write_text("day,wave,noise\n" + "\n".join(rows) + "\n")
    code, out, err = cli("train", "--task", "forecast", "--data", path, "--column",
                         "wave", "--bptt", "8", "--horizon", "2", "--bidirectional", *TINY,
                         "--steps", "2", "--eval-every", "2", "--out", tmp_path / "run")
    assert code == 0, err
    assert "mase_h2" in out and "forecast of 'wave'" in out
