"""Exact resume for every task: a run of N steps resumed to 2N ends with the metrics rows and
the weights, optimizer state, weight average and random generator states of a run of 2N
steps made in one go -- whatever each task draws at random (shuffling, dropout, sampled
lines, augmentation)."""

import csv
import random

import pytest
import torch
from conftest import write_word_corpus

from rnnkit.cli import main
from rnnkit.data import bundled_path
from rnnkit.tasks import TASKS
from rnnkit.training.checkpoint import load_checkpoint

N = 3
# A constant learning rate, so that N steps resumed to 2N follow the schedule of 2N steps.
COMMON = ["--batch-size", "4", "--warmup", "0", "--min-lr-ratio", "1", "--eval-every", str(N),
          "--time-limit", "0", "--device", "cpu", "--threads", "1", "--precision", "fp32"]
SMALL = ["--hidden-size", "8", "--embedding-size", "8"]
WORDS = "now is the winter of our discontent made glorious summer by this sun of york".split()
SOURCE_WORDS = "ka lo mi tu ne sa ri po".split()
TARGET_WORDS = "tree house dog sun water stone bird road".split()


def word_corpus(path):
    return write_word_corpus(path, WORDS, seed=0, words_per_line=6, length=1500)


def small_dictionary(path, words=300):
    """The first ``words`` entries of the bundled CMUdict, in its format."""
    lines = [line for line in bundled_path("cmudict/cmudict.dict").read_text().splitlines()
             if line and not line.startswith(";;;")]
    path.write_text("\n".join(lines[:words]) + "\n")
    return path


def word_pairs(path, count=200):
    """A toy language pair as a TSV: each source word has one target word."""
    rng = random.Random(0)
    lines = []
    for _ in range(count):
        words = rng.choices(range(len(SOURCE_WORDS)), k=rng.randint(3, 6))
        lines.append(" ".join(SOURCE_WORDS[w] for w in words) + ".\t"
                     + " ".join(TARGET_WORDS[w] for w in words) + ".\n")
    path.write_text("".join(lines), encoding="utf-8")
    return path


CASES = {
    "lm": lambda folder: ["--data", word_corpus(folder / "corpus.txt"), *SMALL,
                          "--bptt", "16", "--dropout", "0.2", "--weight-dropout", "0.2"],
    "classify": lambda folder: ["--data", "ItalyPowerDemand", *SMALL],
    "forecast": lambda folder: ["--data", "airline", "--bptt", "12", "--horizon", "3", *SMALL,
                                "--dropout", "0.2"],
    "seq2seq": lambda folder: ["--data", small_dictionary(folder / "dict.txt"), *SMALL],
    "translate": lambda folder: ["--data", word_pairs(folder / "pairs.tsv"), "--hidden-size",
                                 "16", "--embedding-size", "16"],
    "copy": lambda folder: ["--data", "4", *SMALL],
    "adding": lambda folder: ["--data", "12", *SMALL],
    "handwriting": lambda folder: ["--data", "digit-lines-3", "--hidden-size", "16",
                                   "--embedding-size", "16"],
    # Every augmentation: speed, warp, noise, SpecAugment masks and (isolated digits) mixup.
    "speech": lambda folder: ["--data", "fsdd:nicolas/speed,warp,noise,mask,mixup", *SMALL,
                              "--layers", "1"],
    "speech-strings": lambda folder: ["--data", "fsdd-strings:theo/speed,warp,noise,mask",
                                      *SMALL, "--layers", "1"],
}
"""Each task (speech twice: isolated digits and digit strings) on tiny data and sizes."""


pytestmark = pytest.mark.usefixtures("one_thread")


def test_every_task_is_tried():
    assert {case.split("-")[0] for case in CASES} == set(TASKS)


def metrics_rows(run):
    """metrics.csv without the speed column (the one value that depends on the clock)."""
    with open(run / "metrics.csv", newline="") as file:
        return [{k: v for k, v in row.items() if k != "tokens_per_s"}
                for row in csv.DictReader(file)]


@pytest.mark.parametrize("case", list(CASES))
def test_a_run_resumed_ends_as_the_run_made_in_one_go(case, tmp_path):
    args = ["--task", case.split("-")[0], *(str(a) for a in CASES[case](tmp_path)), *COMMON]
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    assert main(["train", *args, "--steps", str(2 * N), "--out", str(whole)]) == 0
    assert main(["train", *args, "--steps", str(N), "--out", str(resumed)]) == 0
    assert main(["train", "--resume", str(resumed), "--steps", str(2 * N)]) == 0

    rows = metrics_rows(resumed)
    assert [int(row["step"]) for row in rows] == list(range(1, 2 * N + 1))
    assert rows == metrics_rows(whole)
    for name in ("last.safetensors", "best.safetensors"):
        got = load_checkpoint(resumed / "checkpoints" / name)
        expected = load_checkpoint(whole / "checkpoints" / name)
        assert got.info["step"] == expected.info["step"]
        assert got.tensors.keys() == expected.tensors.keys()
        different = [key for key, tensor in expected.tensors.items()
                     if not torch.equal(got.tensors[key], tensor)]
        assert not different, f"{name}: {different}"
