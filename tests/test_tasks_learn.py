"""Short training runs of the classification and language-model tasks must beat their trivial
baselines, not only produce metrics."""

import math
from collections import Counter

import numpy as np
import pytest
import torch

from rnnkit.data import load_ucr, split_text
from rnnkit.tasks import build_task, task_config
from rnnkit.training import Ranks, train

pytestmark = pytest.mark.usefixtures("one_thread")

ONE_RANK = Ranks(0, 1, torch.device("cpu"))
QUICK = {"time_limit": None, "device": "cpu", "threads": 1, "warmup": 5, "eval_every": 1000}


def test_a_short_classification_run_beats_the_majority_class(tmp_path):
    config = task_config("classify", data="ItalyPowerDemand", steps=60, hidden_size=16, **QUICK)
    result = train(config, tmp_path / "run", ONE_RANK, build_task)
    labels = load_ucr("ItalyPowerDemand", "test").labels
    majority = np.bincount(labels).max() / len(labels)
    accuracy = 1 - result.test["error_rate"]
    assert accuracy > majority + 0.2, (accuracy, majority)


def test_a_short_language_model_run_beats_the_character_frequencies(tmp_path):
    rng = np.random.default_rng(0)
    words = "the cat sat on a mat and then ran to the red hat".split()
    text = " ".join(rng.choice(words, 3000))
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(text)
    train_part, _, test_part = split_text(text)
    counts = Counter(train_part)
    unigram = -sum(math.log(counts[char] / len(train_part)) for char in test_part[1:]) \
        / (len(test_part) - 1)
    config = task_config("lm", data=str(corpus), steps=150, hidden_size=32, embedding_size=16,
                         batch_size=16, bptt=32, ema=None, lr=1e-2, **QUICK)
    result = train(config, tmp_path / "run", ONE_RANK, build_task)
    assert result.test["cross_entropy"] < 0.6 * unigram, (result.test, unigram)
