"""The training loop: run directory, exact resume, stopping rules, clipping, schedule."""

import csv
import dataclasses
import json
import math
import signal

import pytest
import torch
from conftest import write_word_corpus

from rnnkit.layers import RecurrentLayer
from rnnkit.models import ModelOutput
from rnnkit.tasks import build_task, task_config
from rnnkit.training import trainer
from rnnkit.training.checkpoint import load_checkpoint
from rnnkit.training.config import TrainConfig
from rnnkit.training.distributed import Ranks
from rnnkit.training.errors import RunError
from rnnkit.training.trainer import (
    clip_gradients,
    learning_rate,
    make_optimizer,
    uses_bf16,
)

ONE_RANK = Ranks(rank=0, world_size=1, device=torch.device("cpu"))
WORDS = "to be or not that is the question whether tis nobler in the mind to suffer".split()


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def corpus(tmp_path):
    """A 1,200-character text: 8 streams of 16-character chunks give 8 chunks per pass."""
    return write_word_corpus(tmp_path / "corpus.txt", WORDS, seed=0, words_per_line=7)


def tiny_config(corpus, **changes) -> TrainConfig:
    """The language model task's settings, made tiny."""
    settings = dict(data=str(corpus), embedding_size=8, hidden_size=16, batch_size=8, bptt=16,
                    steps=12, eval_every=4, warmup=2, time_limit=None, device="cpu",
                    threads=1)
    return task_config("lm", **{**settings, **changes})


def train(config, run_path, ranks, build=build_task, **options):
    """:func:`rnnkit.training.train` of the registered tasks (or of ``build``)."""
    return trainer.train(config, run_path, ranks, build, **options)


def losses(run_path) -> list[float]:
    with open(run_path / "metrics.csv", newline="") as file:
        return [float(row["loss"]) for row in csv.DictReader(file)]


def validations(run_path) -> dict[int, float]:
    """Step -> validation metric (of the averaged weights, by default)."""
    with open(run_path / "metrics.csv", newline="") as file:
        return {int(row["step"]): float(row["val_cross_entropy"])
                for row in csv.DictReader(file) if row["val_cross_entropy"]}


def changed_tasks(change):
    """A task builder that gives the real task as modified by ``change(task) -> task``."""
    return lambda *args: change(build_task(*args))


def test_a_run_writes_config_metrics_checkpoints_and_report(corpus, tmp_path):
    result = train(tiny_config(corpus), tmp_path / "run", ONE_RANK)
    run = tmp_path / "run"
    assert result.stop_reason == "finished" and result.steps == 12
    assert json.loads((run / "config.json").read_text())["hidden_size"] == 16
    with open(run / "metrics.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    assert list(rows[0]) == ["step", "loss", "grad_norm", "lr", "tokens_per_s",
                             "val_cross_entropy", "val_bits_per_char", "val_unknown_chars"]
    assert [int(r["step"]) for r in rows] == list(range(1, 13))
    assert [int(r["step"]) for r in rows if r["val_cross_entropy"]] == [4, 8, 12]
    assert load_checkpoint(run / "checkpoints" / "last.safetensors").info["step"] == 12
    assert (run / "checkpoints" / "best.safetensors").is_file()
    report = json.loads((run / "report.json").read_text())
    assert report["stop_reason"] == "finished"
    assert set(report["test"]) == {"cross_entropy", "bits_per_char", "unknown_chars"}
    assert "## Sample" in (run / "report.md").read_text()
    assert any((run / "tensorboard").iterdir())


def test_an_existing_run_directory_is_refused_and_left_untouched(corpus, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "notes.txt").write_text("keep me")
    with pytest.raises(RunError, match="already exists"):
        train(tiny_config(corpus), run, ONE_RANK)
    assert [p.name for p in run.iterdir()] == ["notes.txt"]


def test_force_replaces_only_the_run_files(corpus, tmp_path):
    run = tmp_path / "run"
    train(tiny_config(corpus, steps=4), run, ONE_RANK)
    (run / "notes.txt").write_text("keep me")
    train(tiny_config(corpus, steps=8), run, ONE_RANK, force=True)
    assert len(losses(run)) == 8 and (run / "notes.txt").read_text() == "keep me"


def press_ctrl_c_before(step_index: int):
    """A task change that presses Ctrl-C while the batch of ``step_index`` is fetched."""

    def change(task):
        batch_at = task.batch_at

        def batch(step):
            if step == step_index:
                signal.raise_signal(signal.SIGINT)
            return batch_at(step)

        return dataclasses.replace(task, batch_at=batch)

    return change


@pytest.mark.parametrize(("optimizer", "precision"), [("adamw", "bf16"), ("sgd", "fp32")])
def test_resume_after_ctrl_c_continues_exactly(corpus, tmp_path, optimizer, precision):
    # Dropout (of outputs and of recurrent weights) and zoneout make the random generators
    # matter; 12 steps cross the end of a pass (8 chunks).
    config = tiny_config(corpus, dropout=0.2, weight_dropout=0.3, zoneout_hidden=0.1,
                         zoneout_cell=0.3, optimizer=optimizer, precision=precision)
    train(config, tmp_path / "whole", ONE_RANK)
    first = train(config, tmp_path / "split", ONE_RANK, changed_tasks(press_ctrl_c_before(5)))
    assert first.stop_reason == "interrupted" and first.steps == 6
    assert "--resume" in first.message
    second = train(config, tmp_path / "split", ONE_RANK, resume=True)
    assert second.stop_reason == "finished"
    assert losses(tmp_path / "split") == losses(tmp_path / "whole")
    # The interrupted run also validated where it stopped (step 6).
    assert validations(tmp_path / "split").items() >= validations(tmp_path / "whole").items()


def test_resume_after_a_crash_drops_the_rows_after_the_checkpoint(corpus, tmp_path):
    config = tiny_config(corpus)
    train(config, tmp_path / "whole", ONE_RANK)

    def crash_at_step_10(task):
        batch_at = task.batch_at

        def batch(step):
            if step == 9:
                raise RuntimeError("power cut")
            return batch_at(step)

        return dataclasses.replace(task, batch_at=batch)

    with pytest.raises(RuntimeError, match="power cut"):
        train(config, tmp_path / "crashed", ONE_RANK, changed_tasks(crash_at_step_10))
    assert len(losses(tmp_path / "crashed")) == 9  # the last checkpoint is at step 8
    train(config, tmp_path / "crashed", ONE_RANK, resume=True)
    assert losses(tmp_path / "crashed") == losses(tmp_path / "whole")
    assert validations(tmp_path / "crashed") == validations(tmp_path / "whole")


def test_resuming_a_finished_run_asks_for_more_steps(corpus, tmp_path):
    train(tiny_config(corpus, steps=4), tmp_path / "run", ONE_RANK)
    with pytest.raises(RunError, match="larger --steps"):
        train(tiny_config(corpus, steps=4), tmp_path / "run", ONE_RANK, resume=True)


def test_the_state_is_carried_between_chunks_and_reset_where_a_pass_restarts(corpus, tmp_path):
    received = []

    def record_states(task):
        forward = task.model.forward

        def recording_forward(ids, state=None, targets=None):
            received.append(state)
            return forward(ids, state, targets)

        task.model.forward = recording_forward
        return task

    train(tiny_config(corpus, steps=10, eval_every=100), tmp_path / "run", ONE_RANK,
          changed_tasks(record_states))
    training_calls = [s for s in received if s is None or s[0].shape[1] == 8][:10]
    assert [s is None for s in training_calls] == [i % 8 == 0 for i in range(10)]
    assert all(not part.requires_grad for s in training_calls if s is not None for part in s)


def test_the_time_limit_stops_with_a_checkpoint(corpus, tmp_path):
    result = train(tiny_config(corpus, time_limit=1e-6), tmp_path / "run", ONE_RANK)
    assert result.stop_reason == "time_limit" and result.steps == 1
    assert "rnnkit train --resume" in result.message
    assert load_checkpoint(tmp_path / "run" / "checkpoints" / "last.safetensors").info["step"] == 1


def test_early_stopping_after_patience_validations_without_improvement(corpus, tmp_path):
    constant = changed_tasks(lambda task: dataclasses.replace(
        task, evaluate=lambda split: {"cross_entropy": 2.0, "bits_per_char": 2.0 / math.log(2)}))
    result = train(tiny_config(corpus, patience=2, steps=40), tmp_path / "run", ONE_RANK,
                   constant)
    assert result.stop_reason == "early_stopping"
    assert result.steps == 12 and result.best_step == 4


def test_a_task_that_does_not_select_keeps_its_final_weights(corpus, tmp_path):
    scores = iter([1.0, 2.0, 3.0, 4.0])  # validation worsens at every step 4, 8, 12 (and test)
    final = changed_tasks(lambda task: dataclasses.replace(
        task, evaluate=lambda split: {"cross_entropy": next(scores)}, selects_best=False))
    result = train(tiny_config(corpus), tmp_path / "run", ONE_RANK, final)
    assert result.best_step == 12 and result.validation == {"cross_entropy": 3.0}
    best = load_checkpoint(tmp_path / "run" / "checkpoints" / "best.safetensors")
    assert best.info["step"] == 12


def test_a_nan_loss_stops_and_keeps_the_last_good_checkpoint(corpus, tmp_path):
    calls = []

    def nan_from_step_7(task):
        forward = task.model.forward

        def losing_forward(ids, state=None, targets=None):
            out = forward(ids, state, targets)
            if targets is None:  # evaluation
                return out
            calls.append(1)
            return out._replace(loss=out.loss * math.nan) if len(calls) >= 7 else out

        task.model.forward = losing_forward
        return task

    result = train(tiny_config(corpus), tmp_path / "run", ONE_RANK,
                   changed_tasks(nan_from_step_7))
    assert result.stop_reason == "nan" and result.steps == 6
    assert "\n" not in result.message and "nan" in result.message
    assert "step 4" in result.message
    checkpoint = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.safetensors")
    assert checkpoint.info["step"] == 4
    last_row = (tmp_path / "run" / "metrics.csv").read_text().splitlines()[-1]
    assert last_row.startswith("7,nan,")
    weights = checkpoint.section("model").values()
    assert all(torch.isfinite(weight).all() for weight in weights)


def test_the_logged_gradient_norm_is_measured_before_clipping(corpus, tmp_path):
    train(tiny_config(corpus, clip=1e-6), tmp_path / "run", ONE_RANK)
    with open(tmp_path / "run" / "metrics.csv", newline="") as file:
        norms = [float(row["grad_norm"]) for row in csv.DictReader(file)]
    assert min(norms) > 1e-3


def test_clip_gradients_returns_the_norm_before_clipping_by_norm_and_value():
    weight = torch.nn.Parameter(torch.zeros(4))
    weight.grad = torch.tensor([3.0, 4.0, 0.0, 0.0])
    assert clip_gradients([weight], clip=1.0, clip_value=None) == pytest.approx(5.0)
    assert weight.grad.norm().item() == pytest.approx(1.0)
    weight.grad = torch.tensor([3.0, -4.0, 0.5, 0.0])
    assert clip_gradients([weight], clip=None, clip_value=1.0) == pytest.approx(math.sqrt(25.25))
    assert weight.grad.tolist() == [1.0, -1.0, 0.5, 0.0]


def test_learning_rate_warms_up_linearly_then_decays_by_cosine():
    config = TrainConfig(lr=1.0, warmup=10, min_lr_ratio=0.1)
    assert learning_rate(0, 100, config) == pytest.approx(0.1)
    assert learning_rate(9, 100, config) == pytest.approx(1.0)
    assert learning_rate(10, 100, config) == pytest.approx(1.0)
    middle = 10 + (99 - 10) / 2
    assert learning_rate(int(middle), 100, config) == pytest.approx(0.55, abs=0.02)
    assert learning_rate(99, 100, config) == pytest.approx(0.1)


def test_warmup_is_capped_at_a_tenth_of_a_short_run():
    config = TrainConfig(lr=1.0, warmup=100)
    assert learning_rate(1, 20, config) == pytest.approx(1.0)


def test_sgd_and_adamw_are_available():
    model = torch.nn.Linear(2, 2)
    sgd = make_optimizer(TrainConfig(optimizer="sgd", lr=0.5, momentum=0.8), model)
    assert isinstance(sgd, torch.optim.SGD) and sgd.param_groups[0]["momentum"] == 0.8
    assert isinstance(make_optimizer(TrainConfig(), model), torch.optim.AdamW)


def test_epochs_set_the_length_of_the_run(corpus, tmp_path):
    result = train(tiny_config(corpus, epochs=1.5), tmp_path / "run", ONE_RANK)
    assert result.total_steps == 12 and result.steps == 12


def test_precision_names_choose_autocast():
    cpu = torch.device("cpu")
    assert uses_bf16("bf16", cpu) and not uses_bf16("fp32", cpu)


def test_an_auto_length_run_fits_its_steps_to_the_time_limit_and_keeps_them(corpus, tmp_path,
                                                                          monkeypatch):
    # A clock that advances 0.05 s per step, whatever the machine's speed or load: the pace
    # measured over steps 10..60 fits 60 + (5 - 3 - SPARE * 5) / 0.05 = 96 steps in 5 s.
    clock = {"now": 0.0}

    def ticking(task):
        def batch_at(step):
            clock["now"] += 0.05
            return task.batch_at(step)

        return dataclasses.replace(task, batch_at=batch_at)

    monkeypatch.setattr(trainer.time, "monotonic", lambda: clock["now"])
    config = tiny_config(corpus, steps=None, time_limit=5.0, eval_every=10**6)
    first = train(config, tmp_path / "run", ONE_RANK,
                  changed_tasks(lambda task: press_ctrl_c_before(79)(ticking(task))))
    assert first.stop_reason == "interrupted" and first.steps == 80
    assert first.total_steps == 60 + int((5.0 - 3.0 - trainer.SPARE * 5.0) / 0.05) == 96
    checkpoint = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.safetensors")
    assert checkpoint.info["total_steps"] == first.total_steps
    second = train(config, tmp_path / "run", ONE_RANK, changed_tasks(ticking), resume=True)
    assert second.stop_reason == "finished"
    assert second.total_steps == second.steps == first.total_steps  # kept, not fitted again


def test_steps_that_fit_keep_a_share_of_the_whole_time_limit_spare():
    spare = trainer.SPARE * 500.0
    assert 0 < spare < 100.0
    fitted = trainer.steps_that_fit(60, seconds_per_step=0.1, seconds_left=100.0,
                                    time_limit=500.0)
    assert fitted == 60 + int((100.0 - spare) / 0.1)
    # Near the end the spare is still there, and a run always gets one more step.
    assert trainer.steps_that_fit(900, 0.1, spare + 1.0, 500.0) == 910
    assert trainer.steps_that_fit(900, 0.1, spare / 2, 500.0) == 901


def test_an_auto_length_run_sets_its_length_again_at_each_validation(corpus, tmp_path,
                                                                     monkeypatch):
    # A clock that makes steps slow down after the first fit: the length set at PACE_TO no
    # longer fits at the next validation, and the run shortens itself to finish on time.
    clock = {"now": 0.0}
    config = tiny_config(corpus, steps=None, time_limit=100.0, eval_every=70)
    lengths = []
    original_fit = trainer.fit_length

    def recorded_fit(*args):
        length = original_fit(*args)
        lengths.append(length[0])
        return length

    def slow_batches(task):
        def batch_at(step):
            clock["now"] += 0.2 if step < 60 else 0.4  # seconds per step
            return task.batch_at(step)

        return dataclasses.replace(task, batch_at=batch_at)

    monkeypatch.setattr(trainer.time, "monotonic", lambda: clock["now"])
    monkeypatch.setattr(trainer, "fit_length", recorded_fit)
    result = train(config, tmp_path / "run", ONE_RANK, changed_tasks(slow_batches))
    assert len(lengths) >= 2 and lengths[1] < lengths[0]
    assert result.stop_reason == "finished" and result.steps == lengths[-1]
    assert clock["now"] <= config.time_limit


def test_an_undecided_run_length_keeps_the_peak_rate_after_warmup():
    config = TrainConfig(lr=1.0, warmup=10)
    assert learning_rate(4, None, config) == pytest.approx(0.5)
    assert learning_rate(50, None, config) == 1.0


def test_an_auto_length_needs_a_time_limit(corpus, tmp_path):
    with pytest.raises(RunError, match="needs a --time-limit"):
        train(tiny_config(corpus, steps=None, time_limit=None), tmp_path / "run", ONE_RANK)


def test_weight_dropout_reaches_every_recurrent_layer_of_the_model(corpus):
    task = build_task(tiny_config(corpus, weight_dropout=0.3, layers=2), torch.device("cpu"))
    layers = [m for m in task.model.modules() if isinstance(m, RecurrentLayer)]
    assert layers and all(layer.weight_dropout == 0.3 for layer in layers)
    task.model.train()
    batch = task.batch_at(0)
    torch.manual_seed(0)
    dropped = task.model(batch.inputs, None, batch.targets).loss
    layers[0].weight_dropout = 0.0
    torch.manual_seed(0)
    assert task.model(batch.inputs, None, batch.targets).loss != dropped


def test_zoneout_reaches_every_recurrent_layer_of_the_model(corpus):
    task = build_task(tiny_config(corpus, zoneout_hidden=0.1, zoneout_cell=0.5, layers=2),
                      torch.device("cpu"))
    layers = [m for m in task.model.modules() if isinstance(m, RecurrentLayer)]
    assert layers and all(layer.zoneout_hidden == 0.1
                          and layer.zoneout_cell == 0.5 for layer in layers)
    batch = task.batch_at(0)
    task.model.eval()
    zoned = task.model(batch.inputs, None, batch.targets).loss
    for layer in layers:
        layer.zoneout_hidden = layer.zoneout_cell = 0.0
    assert task.model(batch.inputs, None, batch.targets).loss != zoned


def test_the_trainer_minimises_the_loss_the_model_returns(corpus, tmp_path):
    # A model whose loss is doubled logs twice the loss of the same run: the trainer adds
    # nothing of its own (the language model's AR and TAR are in its returned loss).
    config = tiny_config(corpus, steps=2, eval_every=2, activation_penalty=2.0,
                         temporal_penalty=1.0)
    train(config, tmp_path / "plain", ONE_RANK)

    def doubled(task):
        forward = task.model.forward

        def doubling_forward(ids, state=None, targets=None):
            out = forward(ids, state, targets)
            return out if out.loss is None else ModelOutput(out.outputs, out.state, 2 * out.loss)

        task.model.forward = doubling_forward
        return task

    train(config, tmp_path / "doubled", ONE_RANK, changed_tasks(doubled))
    assert losses(tmp_path / "doubled")[0] == pytest.approx(2 * losses(tmp_path / "plain")[0])


def test_a_config_saved_before_the_output_penalties_continues_without_them(corpus):
    saved = tiny_config(corpus).to_dict()
    del saved["activation_penalty"], saved["temporal_penalty"]
    config = TrainConfig.from_dict(saved)
    assert config.activation_penalty == config.temporal_penalty == 0.0
    assert TrainConfig.from_dict(tiny_config(corpus, temporal_penalty=3.0).to_dict()
                                 ).temporal_penalty == 3.0


def test_a_config_saved_by_the_first_version_loads_as_it_was(corpus):
    # The settings of the first saved runs: every later setting takes its "off" value, and
    # the language model's settings stay those in the file whatever TrainConfig's defaults.
    first = {"task": "lm", "data": str(corpus), "cell": "lstm", "embedding_size": 64,
             "hidden_size": 512, "layers": 1, "bidirectional": False, "dropout": 0.2,
             "batch_size": 32, "bptt": 64, "optimizer": "adamw", "lr": 0.01,
             "min_lr_ratio": 0.05, "warmup": 100, "weight_decay": 0.1, "momentum": 0.9,
             "clip": 1.0, "clip_value": None, "steps": None, "epochs": None,
             "time_limit": 570.0, "eval_every": 500, "patience": None, "seed": 0,
             "device": "auto", "threads": None, "precision": "auto"}
    config = TrainConfig.from_dict(first)
    assert {name: getattr(config, name) for name in first} == first
    assert config.ema is None and config.weight_dropout == config.zoneout_cell == 0.0
    assert config.column is None and config.horizon == 10
    with pytest.raises(RunError, match="unknown settings in the run's config: colour"):
        TrainConfig.from_dict({**first, "colour": "red"})
