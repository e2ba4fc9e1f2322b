"""The tasks ``rnnkit train --task`` knows. A task is one function: settings -> :class:`Task`.

To add a task, write ``def my_task(config, device, saved=None) -> Task`` that loads its data,
builds its model and says how to batch, score and evaluate, then register it in
:data:`TASKS`. The trainer needs nothing else.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.catalog import CELL_NAMES
from rnnkit.data import CharVocab, StreamBatcher, load_text, split_text
from rnnkit.layers import RecurrentLayer
from rnnkit.models import LanguageModel, LanguageModelConfig
from rnnkit.training.config import TrainConfig
from rnnkit.training.errors import RunError


@dataclass
class Batch:
    """The data of one training step, batch-first.

    ``inputs`` and ``targets`` are each a tensor or a tuple of tensors (e.g. padded sequences
    and their lengths), every one with the batch's rows first: the trainer calls
    ``model(inputs, state)`` and ``task.loss(outputs, targets)``, and splits each tensor's
    rows among distributed ranks. ``starts_sequences`` is True when the rows begin new
    sequences (the first chunk of a pass over a stream, or independent examples): the trainer
    then starts from a zero state instead of carrying the previous chunk's state.
    """

    inputs: Tensor | tuple[Tensor, ...]
    targets: Tensor | tuple[Tensor, ...]
    starts_sequences: bool

    @property
    def size(self) -> int:
        """Target elements in the batch (tokens for a language model, labels for a
        classifier): what the progress bar counts per second."""
        first = self.targets[0] if isinstance(self.targets, tuple) else self.targets
        return first.numel()


@dataclass
class Task:
    """What the trainer needs to know about a task.

    * ``model`` -- ``forward(inputs, state) -> (outputs, state)``.
    * ``batch_at(step)`` -- the global batch of a step; the same step always gives the same
      batch, which is what makes resuming exact. Rows are split among distributed ranks.
    * ``steps_per_epoch`` -- steps in one pass over the training data.
    * ``loss(outputs, targets)`` -- mean loss of a batch (a scalar to minimise).
    * ``evaluate(split)`` -- metrics of the model on "val", "test" or "all" of the data; every
      value is lower-is-better and ``metric`` names the one validation watches.
    * ``saved`` -- JSON-ready facts kept in every checkpoint (model sizes, vocabulary).
    * ``showcase()`` -- a short text shown when training ends (e.g. a generated sample).
    """

    model: nn.Module
    batch_at: Callable[[int], Batch]
    steps_per_epoch: int
    loss: Callable[[Tensor, Tensor], Tensor]
    evaluate: Callable[[str], dict[str, float]]
    metric: str
    metric_names: tuple[str, ...]
    saved: dict[str, Any]
    showcase: Callable[[], str]


TaskBuilder = Callable[[TrainConfig, torch.device, "dict[str, Any] | None"], Task]


def language_model_task(
    config: TrainConfig, device: torch.device, saved: dict[str, Any] | None = None
) -> Task:
    """Character-level language modelling: predict each next character of a text.

    The text (``config.data``: a bundled name or a UTF-8 file) is split contiguously 90/5/5
    into train/val/test. Training reads ``batch_size`` parallel streams of the train part in
    chunks of ``bptt`` characters, carrying the state from chunk to chunk (truncated BPTT) and
    resetting it when a pass over the text starts again. The training loss is the
    cross-entropy plus the model's AR and TAR (``--activation-penalty``, ``--temporal-penalty``).
    Metrics: cross-entropy in nats per character and bits per character. ``saved`` (from a
    checkpoint) fixes the vocabulary.
    """
    if config.bidirectional:
        raise RunError("--bidirectional: a language model cannot read the characters it is "
                       "asked to predict; drop --bidirectional for --task lm")
    only_for_forecast(config)
    text = load_text(config.data)
    vocab = CharVocab.from_dict(saved["vocab"]) if saved else CharVocab(text)
    try:
        parts = [vocab.encode(part) for part in split_text(text)]
    except ValueError as err:
        raise RunError(f"--data {config.data}: {err}") from None
    train_ids, val_ids, test_ids = parts
    try:
        batches = StreamBatcher(train_ids, config.batch_size, config.bptt)
    except ValueError as err:
        raise RunError(f"--data {config.data}: the training part is too short: {err}; use a "
                       "longer text or lower --batch-size/--bptt") from None
    model_config = LanguageModelConfig(
        vocab_size=len(vocab), cell=config.cell, embedding_size=config.embedding_size,
        hidden_size=config.hidden_size, num_layers=config.layers, dropout=config.dropout,
        activation_penalty=config.activation_penalty, temporal_penalty=config.temporal_penalty)
    model = build_model(LanguageModel, model_config).to(device)

    def batch_at(step: int) -> Batch:
        chunk = step % len(batches)
        inputs, targets = batches[chunk]
        return Batch(inputs.to(device), targets.to(device), starts_sequences=chunk == 0)

    def loss(logits: Tensor, targets: Tensor) -> Tensor:
        logits = logits.float()  # float32 softmax even under bf16 autocast
        nats = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
        return nats if model.penalty is None else nats + model.penalty

    splits = {"val": val_ids, "test": test_ids, "all": torch.cat(parts)}

    def evaluate(split: str) -> dict[str, float]:
        nats = stream_cross_entropy(model, splits[split], device)
        return {"cross_entropy": nats, "bits_per_char": nats / math.log(2)}

    def showcase() -> str:
        prompt = "\n" if "\n" in vocab else text[0]
        generator = torch.Generator().manual_seed(config.seed)
        try:
            ids = model.generate(vocab.encode(prompt), 400, temperature=0.8, generator=generator)
        except ValueError as err:  # a diverged model has nothing to show
            return f"(no sample: {err})"
        return prompt + vocab.decode(ids)

    return Task(
        model=model, batch_at=batch_at, steps_per_epoch=len(batches), loss=loss,
        evaluate=evaluate, metric="cross_entropy", metric_names=("cross_entropy", "bits_per_char"),
        saved={"model": dataclasses.asdict(model_config), "vocab": vocab.to_dict()},
        showcase=showcase,
    )


@torch.no_grad()
def stream_cross_entropy(model: nn.Module, ids: Tensor, device: torch.device,
                         streams: int = 4, chunk: int = 256) -> float:
    """Mean next-token cross-entropy (nats) of a language model over the token stream ``ids``.

    The stream (N,) is read as up to ``streams`` contiguous parallel streams in chunks of
    ``chunk`` steps, carrying the state, so every token except the first of each stream is
    scored with its full left context within its stream. Each stream starts from a zero state
    and scores its first characters worse than a continuous read would: on the bundled corpus's
    validation part (56,610 characters) 16 streams gave 0.0019 nats/char more than one stream,
    4 streams 0.0002 more, in about 1.2 of the time of 16 and 0.4 of one.
    """
    if ids.numel() < 2:
        raise RunError("the evaluation text needs at least 2 characters")
    streams = max(1, min(streams, (ids.numel() - 1) // 2))
    chunk = min(chunk, (ids.numel() - 1) // streams)
    was_training = model.training
    model.eval()
    total, count, state = 0.0, 0, None
    for inputs, targets in StreamBatcher(ids, streams, chunk, drop_last=False):
        logits, state = model(inputs.to(device), state)
        total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                 targets.to(device).reshape(-1), reduction="sum").item()
        count += targets.numel()
    model.train(was_training)
    return total / count


def build_model(model_class: Callable[[Any], nn.Module], model_config: Any) -> nn.Module:
    """Instantiate a model, turning a bad cell name or size into a one-line RunError."""
    if model_config.cell not in CELL_NAMES:
        raise RunError(f"--cell: unknown cell {model_config.cell!r}; `rnnkit list` shows the "
                       f"cells: {', '.join(CELL_NAMES)}")
    try:
        return model_class(model_config)
    except (ValueError, TypeError) as err:
        raise RunError(f"cannot build a {model_config.cell} model: {err}") from None


def handwriting_task(config: TrainConfig, device: torch.device,
                     saved: dict[str, Any] | None = None) -> Task:
    """See :func:`rnnkit.handwriting.handwriting_task` (imported on use: it builds on Task)."""
    from rnnkit.handwriting import handwriting_task as build

    return build(config, device, saved)


from rnnkit.training.sequence_tasks import (  # noqa: E402 -- they build on Task and Batch
    adding_task,
    classification_task,
    copy_task,
    forecasting_task,
    g2p_task,
    only_for_forecast,
)

TASKS: dict[str, tuple[TaskBuilder, str]] = {
    "lm": (language_model_task,
           "character-level language model: predict the next character of a text, then sample"),
    "classify": (classification_task,
                 "classify whole series of a UCR/UEA .ts data set (GunPoint, JapaneseVowels)"),
    "forecast": (forecasting_task,
                 "forecast the next --horizon values of a CSV series (sunspots, airline)"),
    "seq2seq": (g2p_task,
                "encoder-decoder with attention: spell words as phonemes (CMUdict G2P)"),
    "adding": (adding_task,
               "adding problem: sum the two marked values of a --data T step sequence"),
    "copy": (copy_task, "copy memory: repeat 10 symbols after a delay of --data T steps"),
    "handwriting": (handwriting_task,
                    "read lines of handwritten digits: bidirectional LSTM + CTC (Graves 2008)"),
}
"""Task name -> (builder, one-line description)."""

NO_PENALTIES = {"activation_penalty": 0.0, "temporal_penalty": 0.0}  # the language model's

TASK_DEFAULTS: dict[str, dict[str, Any]] = {
    "classify": {"data": "GunPoint", "hidden_size": 64, "batch_size": 16, "dropout": 0.1,
                 "lr": 3e-3, "ema": None, "weight_decay": 0.0, "steps": 600, "warmup": 20,
                 "eval_every": 25, "time_limit": 300.0, "precision": "fp32",
                 **NO_PENALTIES},
    "forecast": {"data": "sunspots", "hidden_size": 32, "bptt": 33, "batch_size": 32,
                 "dropout": 0.0, "lr": 3e-3, "ema": None, "weight_decay": 0.0, "steps": 600,
                 "warmup": 20, "eval_every": 25, "time_limit": 300.0, "precision": "fp32",
                 **NO_PENALTIES},
    "seq2seq": {"data": "cmudict", "hidden_size": 256, "bidirectional": True,
                "batch_size": 128, "dropout": 0.1, "lr": 3e-3, "ema": None, "weight_decay": 0.0,
                "time_limit": 780.0, "eval_every": 500, "precision": "fp32",
                **NO_PENALTIES},
    "adding": {"data": "100", "hidden_size": 128, "batch_size": 64, "dropout": 0.0,
               "lr": 3e-3, "ema": None, "weight_decay": 0.0, "steps": 4000, "eval_every": 250,
               "time_limit": 540.0, "precision": "fp32", **NO_PENALTIES},
    "copy": {"data": "20", "hidden_size": 128, "batch_size": 64, "dropout": 0.0,
             "lr": 3e-3, "ema": None, "weight_decay": 0.0, "steps": 8000, "eval_every": 500,
             "time_limit": 540.0, "precision": "fp32", **NO_PENALTIES},
    "handwriting": {"data": "digit-lines", "bidirectional": True, "embedding_size": 64,
                    "hidden_size": 96, "batch_size": 32, "dropout": 0.25, "lr": 3e-3,
                    "ema": None, "steps": None, "warmup": 100, "eval_every": 500,
                    "time_limit": 540.0, "precision": "fp32", **NO_PENALTIES},
}
"""Task name -> the :class:`TrainConfig` settings that task uses unless the user gives them
(e.g. a bidirectional reader, another hidden size, a data set); the rest are TrainConfig's.
The small tasks train in float32 everywhere: bfloat16 autocast would save them little time and
cost accuracy (GunPoint: 0.933 instead of 0.960 on a CPU with AVX512-BF16)."""

EVALUATION_SETTINGS: dict[str, dict[str, Any]] = {"lm": {"batch_size": 1, "bptt": 1}}
"""Task name -> settings ``rnnkit evaluate`` replaces in the run's config before building the
task: evaluation never batches the training part, so e.g. the language model takes the
smallest batching, which accepts any text."""


def build_task(config: TrainConfig, device: torch.device,
               saved: dict[str, Any] | None = None) -> Task:
    """The :class:`Task` named by ``config.task``; an unknown name raises RunError."""
    if config.task not in TASKS:
        raise RunError(f"--task: unknown task {config.task!r}; available: {', '.join(TASKS)} "
                       "(`rnnkit list` describes them)")
    builder, _ = TASKS[config.task]
    task = builder(config, device, saved)
    settings = {"weight_dropout": "has no recurrent weights to drop",
                "zoneout_hidden": "does not take it (an LSTM with a projection)",
                "zoneout_cell": "has no cell state"}
    for name, why in settings.items():
        value = getattr(config, name)
        if not value:
            continue
        try:
            for layer in task.model.modules():
                if isinstance(layer, RecurrentLayer):
                    setattr(layer, name, value)
        except ValueError:
            flag = "--" + name.replace("_", "-")
            raise RunError(f"{flag}: --cell {config.cell} {why}; use {flag} 0") from None
    return task
