"""``rnnkit train --task classify``: the class of whole series of a UCR/UEA ``.ts`` data set.

``--data`` is GunPoint, JapaneseVowels, ItalyPowerDemand, a NAME_TRAIN.ts (or UCR 2018
``.tsv``) path with NAME_TEST beside it, or a folder holding such a pair.

The model is LSTM-FCN (Karim et al. 2017): the recurrent layer (``--cell``) reads the
per-channel standardised series (statistics of the TRAIN file) in frames of a few steps, three
convolution blocks read the steps themselves, and a linear head scores the classes from the
layer's final state and the convolutions' mean over time. It trains on every series of the
TRAIN file for a length in steps that a cost model gives for the data (:func:`default_steps`:
about 240 s of the reference machine, whatever the data set) and keeps its final weights: UCR
training sets are too small (often a few dozen series) to hold out a part that could choose a
checkpoint without choosing noise. Validation therefore reports the fit on the training
series; the TEST file is the test part.

Metrics: error rate (1 - accuracy; ``rnnkit evaluate`` prints the accuracy first, with the
confusion matrix) and cross-entropy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from rnnkit.data import (
    DataError,
    Normalizer,
    TimeSeriesDataset,
    fit_channel_normalizer,
    load_ucr,
    pad_series,
    ucr_file,
)
from rnnkit.models import ModelOutput, SequenceClassifier, evaluation_mode
from rnnkit.models.state import State
from rnnkit.training.config import TrainConfig
from rnnkit.training.errors import RunError
from rnnkit.training.task import (
    Batch,
    HeadAdapter,
    Task,
    build_model,
    data_error,
    head_settings,
    in_chunks,
    shuffled_rows,
)

DESCRIPTION = "classify whole series of a UCR/UEA .ts data set (GunPoint, JapaneseVowels)"

DEFAULTS: dict[str, Any] = {
    "data": "GunPoint", "hidden_size": 64, "batch_size": 16, "dropout": 0.8, "lr": 1e-3,
    "warmup": 20, "eval_every": 50, "steps": None, "time_limit": None,
}
"""LSTM-FCN's published settings (64 units, dropout 0.8 on the recurrent summary, Adam at
1e-3, batches of 16), trained for the steps :func:`default_steps` gives for the data set, with
no time limit, so that the same command gives the same run under any load (``--steps``,
``--epochs`` or ``--time-limit`` set another length; ``--time-limit S`` alone fits it to S
seconds)."""

BUDGET = 16_300_000
"""The default run's cost in point-rows (one point of one series in a training batch), what
the idle reference machine (two cores of an AMD EPYC, docs/results/classification.md) trains
in about 240 s: its 240 s limit fitted about 3,500 steps on ArrowHead (36 series of 251
points) and 2,000 on OSULeaf (200 of 427), 16.2 and 16.4 million point-rows by
:func:`step_cost`."""

STEP_OVERHEAD = 520
"""The cost of a training step that does not grow with the batch's points (the recurrent
layer's 20 frames, the optimizer, Python), in point-rows: a step's CPU time (one thread) fitted
19.5 ms + 0.0377 ms a point-row on series of 24 to 1,500 points, measured back to back
(benchmarks/classify_step_cost.py, docs/results/classification.md)."""

EVALUATION_COST = 0.5
"""The cost of a point-row scored by the validation every ``eval_every`` steps (forward only, in
chunks of 256 series) relative to a trained one: measured 0.3 to 0.6."""

MIN_STEPS, MAX_STEPS = 50, 10_000
"""The default length's bounds. At least 50 steps (the warm-up of 20 and a decay): the budget
gives fewer only for series of over 12,000 points (18,000 for a hundred series), longer than
those of any UCR/UEA set (the longest, EigenWorms' 17,984 points, get 52 steps). At most
10,000: series shorter than about 70 points would get up to 30,000 steps, and the bundled
short-series sets met LSTM-FCN's accuracy in 2,800 to 4,000 steps; 10,000 steps of the
shortest series take about 2 minutes of the budget's 4."""


def step_cost(length: int, count: int, batch_size: int, eval_every: int) -> float:
    """The cost of one training step in point-rows: its batch (``batch_size`` series of
    ``length`` points; :func:`~rnnkit.training.task.shuffled_rows` fills a batch also from
    fewer series), :data:`STEP_OVERHEAD`, and its share of the validation of all ``count``
    training series every ``eval_every`` steps. The channels are left out: the first
    convolution is the only part that reads them, a few per cent of a step (12 channels of
    JapaneseVowels cost 7 % more than one at the same length)."""
    return (batch_size * length + STEP_OVERHEAD
            + EVALUATION_COST * count * length / eval_every)


def default_steps(length: int, count: int, batch_size: int = 16, eval_every: int = 50) -> int:
    """The default length of a run in steps: :data:`BUDGET` / :func:`step_cost`, within
    [:data:`MIN_STEPS`, :data:`MAX_STEPS`], for ``count`` training series of at most
    ``length`` points (the longest: batches are padded to their longest series, so it bounds
    a step's cost, and equals it on equal-length data). It depends on the data and the
    options only, never on the machine's pace, so the same command gives the same run; on
    the reference machine it takes about 240 s, less where MAX_STEPS binds.

    >>> default_steps(251, 36), default_steps(427, 200), default_steps(1500, 40)
    (3523, 1986, 649)
    """
    steps = round(BUDGET / step_cost(length, count, batch_size, eval_every))
    return min(MAX_STEPS, max(MIN_STEPS, steps))


def length_note(steps: int, train: TimeSeriesDataset, batch_size: int) -> str:
    """The line that says why a run trains its default length."""
    bound = (" (the most)" if steps == MAX_STEPS else " (the fewest)" if steps == MIN_STEPS
             else "")
    lengths = train.lengths
    points = (f"{int(lengths.max())}" if lengths.min() == lengths.max()
              else f"up to {int(lengths.max())}")
    return (f"{steps:,} steps{bound}: the default budget for {len(train)} series of {points} "
            f"points, batch {batch_size}; --steps, --epochs or --time-limit sets another length")


CONV_CHANNELS = 128
"""Filters of the first and last convolution blocks (the middle one has twice as many)."""

FRAMED_STEPS = 20
"""The classifier reads frames of k consecutive steps (all channels side by side), k chosen so
that the longest training series takes at most this many frames: a recurrent layer learns far
more easily from 20 steps than from the 150 of a GunPoint series."""

EXPECTED = ("a UCR/UEA data set: GunPoint, JapaneseVowels, ItalyPowerDemand, a NAME_TRAIN.ts "
            "or .tsv path, or a folder holding one")

Part = tuple[Tensor, Tensor, Tensor]
"""A split as (framed series (N, T, F), lengths (N,), labels (N,))."""


class ClassifierAdapter(HeadAdapter):
    """:class:`SequenceClassifier` as a task's model: ((series (B, T, C), lengths (B,)),
    state, labels (B,)) -> (scores (B, K), None, cross-entropy). Lengths that all equal T are
    not passed on (no masking needed)."""

    head_class = SequenceClassifier

    def forward(self, inputs: tuple[Tensor, Tensor], state: State | None = None,
                targets: Tensor | None = None) -> ModelOutput:
        """Class scores of a padded batch of series, and their loss against ``targets``."""
        series, lengths = inputs
        # Compiled or exported, the values of lengths are unknown: the ragged path takes all.
        full = not torch.compiler.is_compiling() and bool((lengths == series.shape[1]).all())
        return self.net(series, None if full else lengths, targets=targets)


def classification_task(config: TrainConfig, device: torch.device,
                        saved: dict[str, Any] | None = None) -> Task:
    """The classification task of ``config`` (see the module's docstring); ``saved`` (from a
    checkpoint) fixes the classes, the normaliser, the frame length and the model's sizes."""
    train, test = load_series(config)
    classes = saved["classes"] if saved else train.class_names
    check_classes(config, train, test, classes, saved is not None)
    test = with_classes(test, classes)
    normalizer = (Normalizer.from_dict(saved["normalizer"]) if saved
                  else fit_channel_normalizer(train))
    frame = saved["frame"] if saved else math.ceil(int(train.lengths.max()) / FRAMED_STEPS)
    settings = head_settings(config, saved, input_size=train.n_channels * frame,
                             num_outputs=len(classes), pooling="last",
                             conv_channels=CONV_CHANNELS, frame=frame)
    if train.n_channels * frame != settings["input_size"]:
        raise RunError(f"--data {config.data}: series with {train.n_channels} channel(s), but "
                       f"the model reads {settings['input_size'] // frame}")
    model = build_model(ClassifierAdapter, settings).to(device)
    parts = {name: (*framed(part.normalized(normalizer).series, frame),
                    torch.as_tensor(part.labels, dtype=torch.long))
             for name, part in (("train", train), ("test", test))}
    parts["val"] = parts["train"]
    series, lengths, labels = parts["train"]
    steps = default_steps(int(train.lengths.max()), len(train), config.batch_size,
                          config.eval_every)

    def batch_at(step: int) -> Batch:
        rows = shuffled_rows(len(labels), config.batch_size, step, config.seed)
        length = int(lengths[rows].max())
        return Batch((series[rows, :length].to(device), lengths[rows].to(device)),
                     labels[rows].to(device), starts_sequences=True)

    return Task(
        model=model, batch_at=batch_at,
        steps_per_epoch=math.ceil(len(labels) / config.batch_size),
        evaluate=lambda split: classification_metrics(*scores_of(model, parts, split, device)),
        metric="error_rate", metric_names=("error_rate", "cross_entropy"),
        saved={"model": settings, "classes": list(classes), "normalizer": normalizer.to_dict(),
               "frame": frame},
        showcase=lambda: confusion_table(classes, *scores_of(model, parts, "test", device),
                                         split="test"),
        describe_split=lambda split: describe_split(config, parts, split),
        details=lambda split: confusion_table(classes, *scores_of(model, parts, split, device),
                                              split=split),
        selects_best=False, unit="series",
        default_length=(steps, length_note(steps, train, config.batch_size)),
    )


def describe_split(config: TrainConfig, parts: dict[str, Part], split: str) -> str:
    """Which series a split holds: the TEST file, a fifth of the TRAIN file, or all."""
    count = sum(len(parts[name][2]) for name in ("train", "test")) if split == "all" \
        else len(parts[split][2])
    source = {"test": str(ucr_file(config.data, "test")),
              "val": f"the training series of {ucr_file(config.data, 'train')}",
              "all": "the TRAIN and TEST files"}[split]
    return f"{source}, {count} series"


def load_series(config: TrainConfig) -> tuple[TimeSeriesDataset, TimeSeriesDataset]:
    """The TRAIN and TEST files of ``--data``; they must hold labelled series."""
    try:
        train = load_ucr(config.data, "train")
        test = load_ucr(config.data, "test")
    except DataError as err:
        raise data_error(config, err, EXPECTED) from None
    if not train.class_names or (train.labels < 0).any():
        raise RunError(f"--data {config.data}: its series have no class labels "
                       "(@classLabel false); classify needs labelled series")
    return train, test


def check_classes(config: TrainConfig, train: TimeSeriesDataset, test: TimeSeriesDataset,
                  classes: Sequence[str], from_checkpoint: bool) -> None:
    """A new model needs at least two classes in the training series; a checkpoint's model
    must name the same classes as the TRAIN file, and the TEST file only classes of it."""
    present = sorted(set(train.labels.tolist()))
    if not from_checkpoint and len(present) < 2:
        found = ", ".join(train.class_names[i] for i in present)
        raise RunError(f"--data {config.data}: a classifier needs at least 2 classes in the "
                       f"training series, found {len(present)} ({found})")
    if not set(test.class_names) <= set(classes) or train.class_names != list(classes):
        raise RunError(f"--data {config.data}: class labels {test.class_names} differ from "
                       f"the {'model' if from_checkpoint else 'training file'}'s {classes}; "
                       "use a data set with the same classes")


def with_classes(data: TimeSeriesDataset, classes: Sequence[str]) -> TimeSeriesDataset:
    """``data`` with its labels numbered as in ``classes``, which holds all of its classes
    (a TEST file may lack a class, and a .tsv file lists only the classes it holds)."""
    index = [list(classes).index(name) for name in data.class_names]
    return TimeSeriesDataset(series=data.series, labels=np.asarray(index)[data.labels],
                             class_names=list(classes), name=data.name,
                             missing_filled=data.missing_filled)


def framed(series: Sequence[np.ndarray], frame: int) -> tuple[Tensor, Tensor]:
    """Series (T_i, C) as frames (ceil(T_i / k), k*C), each series' last frame completed with
    its last value: padded batch (N, T_max, k*C) float32 and lengths (N,)."""
    frames = []
    for values in series:
        steps = math.ceil(len(values) / frame) * frame
        values = np.concatenate([values, np.repeat(values[-1:], steps - len(values), axis=0)])
        frames.append(values.reshape(steps // frame, frame * values.shape[1]))
    return pad_series(frames)


def scores_of(model: ClassifierAdapter, parts: dict[str, Part], split: str,
              device: torch.device) -> tuple[Tensor, Tensor]:
    """The model's class scores (N, K) of a split's series, in float32 on the CPU, and their
    labels (N,); split "all" is train, val and test together."""
    if split == "all":
        chunks = [scores_of(model, parts, name, device) for name in ("train", "test")]
        return torch.cat([c[0] for c in chunks]), torch.cat([c[1] for c in chunks])
    inputs, lengths, targets = parts[split]
    with evaluation_mode(model):
        scores = torch.cat([
            model((inputs[rows, :int(lengths[rows].max())].to(device),
                   lengths[rows].to(device))).outputs.float().cpu()
            for rows in in_chunks(len(targets), 256)])
    return scores, targets


def classification_metrics(scores: Tensor, targets: Tensor) -> dict[str, float]:
    """Error rate (1 - accuracy) and cross-entropy of class scores (N, K) for labels (N,)."""
    errors = (scores.argmax(dim=1) != targets).float().mean().item()
    return {"error_rate": errors, "cross_entropy": F.cross_entropy(scores, targets).item()}


def confusion_table(classes: Sequence[str], scores: Tensor, targets: Tensor,
                    split: str = "val") -> str:
    """The confusion matrix of a split as text: rows true classes, columns predicted ones."""
    predicted = scores.argmax(dim=1)
    width = max(len(name) for name in classes)
    title = {"val": "training-series", "test": "test", "all": "all"}[split]
    lines = [f"{title} confusion (rows: true class, columns: predicted), "
             f"{len(targets)} series:",
             " " * (width + 2) + " ".join(f"{name:>{width}}" for name in classes)]
    for k, name in enumerate(classes):
        counts = [int(((targets == k) & (predicted == j)).sum()) for j in range(len(classes))]
        lines.append(f"{name:>{width}}  " + " ".join(f"{c:>{width}}" for c in counts))
    return "\n".join(lines)
