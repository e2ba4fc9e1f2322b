"""The tasks ``rnnkit train --task`` knows, one module each, and how a task is chosen.

* :mod:`~rnnkit.tasks.language_model` -- ``lm``: a character-level language model.
* :mod:`~rnnkit.tasks.classify` -- ``classify``: the class of a UCR/UEA series.
* :mod:`~rnnkit.tasks.forecast` -- ``forecast``: the next values of a CSV series.
* :mod:`~rnnkit.tasks.g2p` -- ``seq2seq``: grapheme-to-phoneme conversion on CMUdict.
* :mod:`~rnnkit.tasks.synthetic` -- ``adding`` and ``copy``: long-range synthetic problems.
* :mod:`~rnnkit.tasks.handwriting` -- ``handwriting``: lines of handwritten digits with CTC.
* :mod:`~rnnkit.tasks.translate` -- ``translate``: translation of sentences (Multi30K).
* :mod:`~rnnkit.tasks.speech` -- ``speech``: spoken digits, isolated or connected (CTC).

A task is a function ``(config, device, saved) -> Task`` (:class:`rnnkit.training.Task`) that
loads its data, builds its model and says how to batch and evaluate, with the settings it
needs other than :class:`~rnnkit.training.TrainConfig`'s defaults. To add one, write such a
module and register it in :data:`TASKS`; the trainer needs nothing else.

Example::

    import torch

    from rnnkit.tasks import build_task, task_config
    from rnnkit.training import Ranks, train

    config = task_config("classify", data="JapaneseVowels", steps=200)
    result = train(config, "runs/vowels", Ranks(0, 1, torch.device("cpu")), build_task)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch

from rnnkit.layers import RecurrentLayer
from rnnkit.tasks import (
    classify,
    forecast,
    g2p,
    handwriting,
    language_model,
    speech,
    synthetic,
    translate,
)
from rnnkit.training.config import TrainConfig
from rnnkit.training.errors import RunError
from rnnkit.training.task import Task, TaskBuilder


@dataclass(frozen=True)
class TaskEntry:
    """A registered task: its builder, a one-line description (``rnnkit list``) and the
    :class:`TrainConfig` settings it uses unless the user gives others."""

    build: TaskBuilder
    description: str
    defaults: dict[str, Any]


TASKS: dict[str, TaskEntry] = {
    "lm": TaskEntry(language_model.language_model_task, language_model.DESCRIPTION,
                    language_model.DEFAULTS),
    "classify": TaskEntry(classify.classification_task, classify.DESCRIPTION,
                          classify.DEFAULTS),
    "forecast": TaskEntry(forecast.forecasting_task, forecast.DESCRIPTION, forecast.DEFAULTS),
    "seq2seq": TaskEntry(g2p.g2p_task, g2p.DESCRIPTION, g2p.DEFAULTS),
    "adding": TaskEntry(synthetic.adding_task, synthetic.ADDING_DESCRIPTION,
                        synthetic.ADDING_DEFAULTS),
    "copy": TaskEntry(synthetic.copy_task, synthetic.COPY_DESCRIPTION, synthetic.COPY_DEFAULTS),
    "handwriting": TaskEntry(handwriting.handwriting_task, handwriting.DESCRIPTION,
                             handwriting.DEFAULTS),
    "speech": TaskEntry(speech.speech_task, speech.DESCRIPTION, speech.DEFAULTS),
    "translate": TaskEntry(translate.translation_task, translate.DESCRIPTION,
                           translate.DEFAULTS),
}
"""Task name -> :class:`TaskEntry`."""

EVALUATION_SETTINGS: dict[str, dict[str, Any]] = {"lm": language_model.EVALUATION_SETTINGS}
"""Task name -> settings ``rnnkit evaluate`` replaces in the run's config before building the
task (evaluation never batches the training part, so a task may take the batching that
accepts any data)."""

LAYER_SETTINGS = {"weight_dropout": "has no recurrent weights to drop",
                  "zoneout_hidden": "does not take it (an LSTM with a projection)",
                  "zoneout_cell": "has no cell state"}
"""Settings of every recurrent layer of a task's model, with why a cell may refuse one."""


def entry(name: str) -> TaskEntry:
    """The registered task ``name``; an unknown name raises RunError."""
    if name not in TASKS:
        raise RunError(f"--task: unknown task {name!r}; available: {', '.join(TASKS)} "
                       "(`rnnkit list` describes them)")
    return TASKS[name]


def task_config(name: str, **settings: Any) -> TrainConfig:
    """The configuration of a run of task ``name``: :class:`TrainConfig`'s defaults, then the
    task's, then ``settings``."""
    return TrainConfig(**{**entry(name).defaults, **settings, "task": name})


def build_task(config: TrainConfig, device: torch.device,
               saved: dict[str, Any] | None = None) -> Task:
    """The :class:`Task` named by ``config.task``, its recurrent layers set up with the
    config's weight dropout and zoneout; an unknown task or a setting the task or cell does
    not take raises RunError. ``config.data`` None means the task's own data."""
    task_entry = entry(config.task)
    if config.column is not None and config.task != "forecast":
        raise RunError(f"--column: only --task forecast reads a CSV column, got --task "
                       f"{config.task}; drop --column")
    for name in ("season", "covariates"):
        if getattr(config, name) is not None and config.task != "forecast":
            raise RunError(f"--{name}: only --task forecast takes it, got --task "
                           f"{config.task}; drop --{name}")
    for name in ("source", "target"):
        if getattr(config, name) is not None and config.task != "translate":
            raise RunError(f"--{name}: only --task translate takes it, got --task "
                           f"{config.task}; drop --{name}")
    for name in ("activation_penalty", "temporal_penalty"):
        if getattr(config, name) and config.task != "lm":
            flag = "--" + name.replace("_", "-")
            raise RunError(f"{flag}: only --task lm takes it, got --task {config.task}; "
                           f"drop {flag}")
    if config.data is None:
        config = dataclasses.replace(config, data=task_entry.defaults["data"])
    task = task_entry.build(config, device, saved)
    set_layer_options(task, config)
    return task


def set_layer_options(task: Task, config: TrainConfig) -> None:
    """Give every recurrent layer of the task's model the config's :data:`LAYER_SETTINGS`
    that are on; a cell that does not take one raises RunError naming the option."""
    for name, why in LAYER_SETTINGS.items():
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


__all__ = ["EVALUATION_SETTINGS", "TASKS", "TaskEntry", "build_task", "entry", "task_config"]
