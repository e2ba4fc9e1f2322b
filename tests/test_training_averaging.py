"""The moving average of the weights: its update, and which checkpoint holds what."""

import json

import pytest
import torch
from conftest import write_word_corpus
from torch import nn

from rnnkit.tasks import build_task, task_config
from rnnkit.training.averaging import WeightAverage, averaged
from rnnkit.training.checkpoint import load_checkpoint
from rnnkit.training.distributed import Ranks
from rnnkit.training.trainer import make_optimizer, restore, train

ONE_RANK = Ranks(rank=0, world_size=1, device=torch.device("cpu"))


def linear(*weights: float) -> nn.Linear:
    model = nn.Linear(len(weights), 1, bias=False).double()
    with torch.no_grad():
        model.weight.copy_(torch.tensor([weights], dtype=torch.float64))
    return model


def test_the_average_moves_towards_the_weights_with_a_warming_decay():
    model = linear(1.0, -2.0)
    average = WeightAverage(model, decay=0.5)
    expected = model.weight.detach().clone()
    for step, value in enumerate([3.0, 5.0, -1.0, 0.5]):
        with torch.no_grad():
            model.weight.fill_(value)
        average.update(step)
        decay = min(0.5, (1 + step) / (10 + step))  # 0.1, 0.18.., 0.25, 0.30..
        expected = decay * expected + (1 - decay) * value
        torch.testing.assert_close(average.tensors["weight"], expected, rtol=1e-15, atol=0)


def test_applied_holds_the_average_inside_and_the_raw_weights_after_even_on_error():
    model = linear(1.0, 2.0)
    average = WeightAverage(model, decay=0.9)
    with torch.no_grad():
        model.weight.fill_(7.0)
    raw = model.weight.detach().clone()
    with pytest.raises(KeyError), average.applied():
        assert model.weight.tolist() == [[1.0, 2.0]]
        raise KeyError("stop")
    assert torch.equal(model.weight, raw)
    with averaged(None):  # no average: the model keeps its weights
        assert torch.equal(model.weight, raw)


def test_an_average_that_does_not_fit_restarts_at_the_current_weights():
    model = linear(1.0, 2.0)
    average = WeightAverage(model, decay=0.9)
    average.load({"weight": torch.full((1, 2), 4.0, dtype=torch.float64)})
    assert average.tensors["weight"].tolist() == [[4.0, 4.0]]
    with torch.no_grad():
        model.weight.fill_(7.0)  # e.g. weights just restored from a checkpoint
    for other in ({}, {"weight": torch.zeros(1, 3, dtype=torch.float64)}):
        average.load(other)
        assert average.tensors["weight"].tolist() == [[7.0, 7.0]]


@pytest.mark.parametrize("decay", [0.0, 1.0, -0.5])
def test_the_decay_must_be_inside_0_1(decay):
    with pytest.raises(ValueError, match=r"decay must be in \(0, 1\)"):
        WeightAverage(linear(1.0), decay)


@pytest.fixture
def corpus(tmp_path):
    words = "now is the winter of our discontent made glorious summer by this sun".split()
    return write_word_corpus(tmp_path / "corpus.txt", words, seed=1, words_per_line=6)


def tiny(corpus, ema):
    # One validation, at the last step: the best checkpoint is that step's.
    return task_config("lm", data=str(corpus), embedding_size=8, hidden_size=16, batch_size=8,
                       bptt=16, steps=10, eval_every=10, warmup=2, time_limit=None,
                       device="cpu", threads=1, ema=ema, lr=0.05)


def run_once(corpus, path, ema):
    result = train(tiny(corpus, ema), path, ONE_RANK, build_task)
    last = load_checkpoint(path / "checkpoints" / "last.safetensors")
    best = load_checkpoint(path / "checkpoints" / "best.safetensors")
    return result, last, best


def test_validation_and_the_best_checkpoint_use_the_average(corpus, tmp_path):
    result, last, best = run_once(corpus, tmp_path / "run", ema=0.9)
    raw, average = last.section("model"), last.section("average")
    assert set(average) == set(raw) and set(best.section("model")) == set(raw)
    for name, weights in best.section("model").items():
        torch.testing.assert_close(weights, average[name], rtol=0, atol=0)
    assert any(not torch.equal(raw[name], average[name]) for name in raw)
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["validation"] == result.validation and result.best_step == 10


def test_without_an_average_the_best_checkpoint_holds_the_raw_weights(corpus, tmp_path):
    _, last, best = run_once(corpus, tmp_path / "run", ema=None)
    assert last.section("average") == {}
    for name, weights in best.section("model").items():
        torch.testing.assert_close(weights, last.section("model")[name], rtol=0, atol=0)


def test_resuming_a_run_that_kept_no_average_starts_it_at_the_restored_weights(corpus, tmp_path):
    _, last, _ = run_once(corpus, tmp_path / "run", ema=None)
    config = tiny(corpus, ema=0.9)
    torch.manual_seed(123)  # other initial weights than the run's
    model = build_task(config, ONE_RANK.device).model
    average = WeightAverage(model, config.ema)  # starts at those weights
    restore(last, model, make_optimizer(config, model), ONE_RANK, config, average)
    for name, weights in last.section("model").items():
        torch.testing.assert_close(average.tensors[name], weights, rtol=0, atol=0)


def test_the_average_changes_what_is_validated(corpus, tmp_path):
    with_average, _, _ = run_once(corpus, tmp_path / "a", ema=0.9)
    without, _, _ = run_once(corpus, tmp_path / "b", ema=None)
    assert with_average.validation != without.validation
