"""What a task gives the trainer (:class:`Task`, :class:`Batch`), and helpers for writing one.

A task is a function ``(config, device, saved) -> Task`` that loads its data, builds its model
and says how to batch and evaluate; the tasks ``rnnkit train --task`` knows are in
:mod:`rnnkit.tasks`. The trainer only sees this module's types, so it trains any task given to
it and never imports :mod:`rnnkit.tasks`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from rnnkit.catalog import CELL_NAMES
from rnnkit.models import ModelOutput
from rnnkit.models.state import State
from rnnkit.training.config import TrainConfig
from rnnkit.training.errors import RunError


@dataclass
class Batch:
    """The data of one training step, batch-first.

    ``inputs`` and ``targets`` are each a tensor or a tuple of tensors (e.g. padded sequences
    and their lengths), every one with the batch's rows first: the trainer calls
    ``model(inputs, state, targets)`` and splits each tensor's rows among distributed ranks.
    ``starts_sequences`` is True when the rows begin new sequences (the first chunk of a pass
    over a stream, or independent examples): the trainer then starts from a zero state
    instead of carrying the previous chunk's state.
    """

    inputs: Tensor | tuple[Tensor, ...]
    targets: Tensor | tuple[Tensor, ...]
    starts_sequences: bool

    @property
    def size(self) -> int:
        """Target elements in the batch (characters for a language model, labels for a
        classifier)."""
        first = self.targets[0] if isinstance(self.targets, tuple) else self.targets
        return first.numel()

    @property
    def rows(self) -> int:
        """Examples in the batch (sequences, series, lines, recordings, sentences)."""
        first = self.inputs[0] if isinstance(self.inputs, tuple) else self.inputs
        return first.shape[0]


@dataclass
class Task:
    """What the trainer needs to know about a task.

    * ``model`` -- ``forward(inputs, state, targets) -> ModelOutput(outputs, state, loss)``
      (:class:`rnnkit.models.ModelOutput`): the loss is the mean training loss of the batch, a
      scalar to minimise; the state is carried into the next batch unless it starts new
      sequences (None: the model carries none).
    * ``batch_at(step)`` -- the global batch of a step; the same step always gives the same
      batch, which is what makes resuming exact. Rows are split among distributed ranks.
    * ``steps_per_epoch`` -- steps in one pass over the training data.
    * ``evaluate(split)`` -- metrics of the model on "val", "test" or "all" of the data; every
      value is lower-is-better and ``metric`` names the one validation watches.
    * ``saved`` -- JSON-ready facts kept in every checkpoint (model sizes, vocabulary).
    * ``showcase()`` -- a short text shown when training ends (e.g. a generated sample).
    * ``describe_split(split)`` -- optional: what a split reads, for messages (the file of the
      test series, say), and ``details(split)`` -- optional: a longer text about the model on a
      split (a confusion matrix), printed by ``rnnkit evaluate``.
    * ``write_files(folder)`` -- optional: files about the trained model (plots, tables)
      written to the run directory once training ends; returns their paths.
    * ``unit`` -- what the progress line's speed counts per second: the batch's examples
      (:attr:`Batch.rows`: "series", "sentences", "lines", ...) or, with ``counts_targets``,
      its target elements (:attr:`Batch.size`: "chars" for a language model).
    * ``selects_best`` -- whether the validation metric picks the weights of the results
      (best.safetensors); False: the final weights are the results, and validation only
      reports (for data too small to hold out a part that can choose).
    * ``default_length`` -- optional: (steps, why) for a config that gives no length (no
      steps, epochs or time limit; tasks of :data:`rnnkit.training.config.LENGTH_FROM_DATA`):
      a length decided from the data and the options alone, never from the machine's pace,
      and a one-line reason the trainer prints at the start of the run.
    """

    model: nn.Module
    batch_at: Callable[[int], Batch]
    steps_per_epoch: int
    evaluate: Callable[[str], dict[str, float]]
    metric: str
    metric_names: tuple[str, ...]
    saved: dict[str, Any]
    showcase: Callable[[], str]
    describe_split: Callable[[str], str] | None = None
    details: Callable[[str], str] | None = None
    write_files: Callable[[Path], list[Path]] | None = None
    selects_best: bool = True
    unit: str = "examples"
    counts_targets: bool = False
    default_length: tuple[int, str] | None = None


TaskBuilder = Callable[[TrainConfig, torch.device, "dict[str, Any] | None"], Task]
"""``(config, device, saved) -> Task``; ``saved`` is the ``Task.saved`` of a checkpoint (the
model is rebuilt to load its weights), or None for a new model."""


def build_model(model_class: Callable[[Any], nn.Module], settings: Any) -> nn.Module:
    """``model_class(settings)``, turning a bad cell name or size into a one-line RunError.

    ``settings`` is a model's config dataclass or a dict, with the cell's name as ``cell``."""
    cell = settings["cell"] if isinstance(settings, dict) else settings.cell
    if cell not in CELL_NAMES:
        raise RunError(f"--cell: unknown cell {cell!r}; `rnnkit list` shows the cells: "
                       f"{', '.join(CELL_NAMES)}")
    try:
        return model_class(settings)
    except (ValueError, TypeError) as err:
        raise RunError(f"cannot build a {cell} model: {err}") from None
    except (RuntimeError, MemoryError) as err:
        if not isinstance(err, MemoryError) and "allocate" not in str(err):
            raise
        sizes = {name: value for name, value in (settings if isinstance(settings, dict)
                                                 else vars(settings)).items()
                 if name.endswith("size") and isinstance(value, int)}
        shown = ", ".join(f"{name} {value}" for name, value in sizes.items())
        raise RunError(f"cannot build a {cell} model ({shown}): its weights do not fit in "
                       "memory; lower --hidden-size / --embedding-size") from None


class HeadAdapter(nn.Module):
    """A head of :mod:`rnnkit.models` as a task's model: ``forward(inputs, state, targets) ->
    ModelOutput``, for heads whose examples are independent (the state is always None).

    Subclasses name the head's class in ``head_class`` and map a batch's ``inputs`` to its
    arguments. The head is ``net``, built from ``settings`` (its constructor's keyword
    arguments, which a checkpoint keeps to build it again).
    """

    head_class: Callable[..., nn.Module]

    def __init__(self, settings: dict[str, Any]) -> None:
        """Build the head from ``settings``."""
        super().__init__()
        self.settings = dict(settings)
        self.cell = settings["cell"]
        self.net = self.head_class(**settings)

    def forward(self, inputs: Any, state: State | None = None,
                targets: Any = None) -> ModelOutput:
        """The head's output for ``inputs`` (and its loss against ``targets``)."""
        raise NotImplementedError


def head_settings(config: TrainConfig, saved: dict[str, Any] | None, **sizes: Any
                  ) -> dict[str, Any]:
    """A head's constructor arguments: a checkpoint's, or the config's with ``sizes``."""
    if saved is not None:
        return dict(saved["model"])
    return {"cell": config.cell, "hidden_size": config.hidden_size,
            "num_layers": config.layers, "bidirectional": config.bidirectional,
            "dropout": config.dropout, **sizes}


def shuffled_rows(count: int, batch_size: int, step: int, seed: int) -> Tensor:
    """Row indices of ``step``'s batch of ``batch_size`` rows out of ``count``.

    The rows are read from an endless stream of seeded random permutations of
    ``range(count)``, one per epoch, so a step always gets the same rows (exact resume) and
    each epoch sees every row once, whatever ``batch_size`` is.
    """
    start = step * batch_size
    first, last = start // count, (start + batch_size - 1) // count
    stream = torch.cat([torch.randperm(count, generator=torch.Generator().manual_seed(
        seed * 1_000_003 + epoch)) for epoch in range(first, last + 1)])
    offset = start - first * count
    return stream[offset:offset + batch_size]


def in_chunks(count: int, size: int) -> list[slice]:
    """Slices covering ``range(count)`` in pieces of at most ``size`` (evaluation batches)."""
    return [slice(start, min(start + size, count)) for start in range(0, count, size)]


def data_error(config: TrainConfig, err: Exception, expected: str) -> RunError:
    """A RunError naming --data, the task and what it expects, from a reader's error."""
    return RunError(f"--data {config.data} for --task {config.task} (expected {expected}): "
                    f"{err}")
