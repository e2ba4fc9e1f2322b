"""What defines a training run: one dataclass of plain values, saved as the run's config.json."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from rnnkit.catalog import CELL_NAMES
from rnnkit.training.errors import RunError


@dataclass
class TrainConfig:
    """Every setting of a training run.

    The defaults here are the same for every task; each task of :mod:`rnnkit.tasks` has its
    own for what it needs otherwise (its data, sizes, learning rate, run length), which
    ``rnnkit train`` and :func:`rnnkit.tasks.task_config` apply unless the user gives them.
    """

    # What to learn from.
    task: str = "lm"
    data: str | None = None
    """A bundled name or a path; None: the task's own data set."""
    column: str | None = None
    """forecast: the CSV column to forecast (None: the file's single numeric column)."""
    horizon: int = 10
    """forecast: how many steps ahead each forecast reaches (1 .. horizon)."""
    season: str | None = None
    """forecast: the series' season lengths in steps, comma-separated ("48,336"), or "none";
    None: the bundled series' own, else detected from the timestamps or the autocorrelation."""
    covariates: str | None = None
    """forecast: comma-separated CSV columns read beside the forecast column as inputs (their
    values up to each forecast's origin)."""
    source: str | None = None
    target: str | None = None
    """translate: the source and target languages (Multi30K) or TSV columns (None: the
    data's default, German -> English for Multi30K, columns 1 -> 2 for a TSV)."""
    # The model.
    cell: str = "lstm"
    embedding_size: int = 64
    hidden_size: int = 128
    layers: int = 1
    bidirectional: bool = False
    dropout: float = 0.0
    weight_dropout: float = 0.0
    """DropConnect on the recurrent weights of every recurrent layer (``weight_dropout`` of
    :class:`rnnkit.layers.RecurrentLayer`), a training setting: evaluation never drops."""
    activation_penalty: float = 0.0
    temporal_penalty: float = 0.0
    """lm: AR and TAR of the recurrent layer's outputs in the training loss
    (``activation_penalty`` and ``temporal_penalty`` of
    :class:`rnnkit.models.LanguageModelConfig`); the other tasks' models take none, and
    ``rnnkit train`` refuses them there."""
    zoneout_hidden: float = 0.0
    zoneout_cell: float = 0.0
    """Zoneout on every recurrent layer's hidden state h and (LSTM family) cell state c
    (``zoneout_hidden`` / ``zoneout_cell`` of :class:`rnnkit.layers.RecurrentLayer`)."""
    # Batches: batch_size parallel streams cut into chunks of bptt steps (truncated BPTT).
    batch_size: int = 32
    bptt: int = 64
    # Optimisation: linear warm-up to lr over `warmup` steps (at most a tenth of the run),
    # then cosine decay to lr * min_lr_ratio at the last step.
    optimizer: str = "adamw"
    lr: float = 3e-3
    min_lr_ratio: float = 0.05
    warmup: int = 100
    weight_decay: float = 0.0
    momentum: float = 0.9
    ema: float | None = None
    """Decay of the moving average of the weights that validation, the best checkpoint and
    the final results use (None: no average, the raw weights)."""
    clip: float | None = 1.0
    clip_value: float | None = None
    # How long: `steps` optimizer steps, or `epochs` passes over the training data (which then
    # win), cut short by `time_limit` seconds of this invocation. steps=None ("auto") runs as
    # many steps as fit in the time limit, judged from the speed of the first steps.
    steps: int | None = None
    epochs: float | None = None
    time_limit: float | None = 540.0
    # Validation every eval_every steps (also when a checkpoint is written); stop early after
    # `patience` validations without improvement (None: never).
    eval_every: int = 500
    patience: int | None = None
    # Reproducibility and hardware.
    seed: int = 0
    device: str = "auto"
    threads: int | None = None
    """CPU threads per process, fixed for the run; None: a resumed run's recorded count, else
    torch's (:func:`rnnkit.training.threads.run_threads`)."""
    precision: str = "fp32"
    """Training arithmetic: "fp32", "bf16" (autocast; weights stay float32), or "auto": bf16
    where the hardware computes it natively (CUDA with bf16, CPUs with AMX or AVX512-BF16).
    Small models gain little time from bf16 and can lose accuracy, so only tasks that
    measured a gain choose "auto"."""
    compile: bool = False
    """Train the model through ``torch.compile`` (:mod:`rnnkit.training.compiling`): the same
    results as eager, compiled in the first steps. Off by default: the tasks measured
    (docs/results/export.md) trained slower compiled."""

    def total_steps(self, steps_per_epoch: int) -> int | None:
        """Length of the run in optimizer steps: ``epochs`` passes if set, else ``steps``
        (None: decided by the trainer to fit the time limit)."""
        if self.epochs is not None:
            return max(1, math.ceil(self.epochs * steps_per_epoch))
        return self.steps

    def check(self, source: str | os.PathLike[str] | None = None,
              tasks: Collection[str] | None = None) -> None:
        """Raise :class:`RunError` (one line) unless every setting has its type and range.

        The error names the option (``--hidden-size``), or, with ``source`` (the file the
        settings were read from), the file and its key, and says what was expected and what
        came. ``tasks``: the task names ``task`` may take (None: any text)."""
        for field in dataclasses.fields(self):
            RULES[field.name].check(field.name, getattr(self, field.name), source)
        if tasks is not None and self.task not in tasks:
            raise RunError(f"{_where('task', source)}: unknown task {self.task!r}; choose one "
                           f"of: {', '.join(tasks)}{_fix(source)}")
        if (self.steps is None and self.epochs is None and self.time_limit is None
                and self.task not in LENGTH_FROM_DATA):
            if source is None:
                raise RunError("--steps 0 (as many as fit in the time limit) needs a "
                               "--time-limit; give --steps N, --epochs E or --time-limit SECONDS")
            raise RunError(f"{source}: \"steps\", \"epochs\" and \"time_limit\" are all null, "
                           "so the run has no length; give --steps N, --epochs E or "
                           "--time-limit SECONDS with --resume")
        if self.optimizer == "adamw" and self.lr * self.weight_decay > 1:
            # AdamW multiplies the weights by 1 - lr * weight_decay at every step.
            raise RunError(f"{_where('weight_decay', source)} must keep lr * weight decay <= 1 "
                           f"(AdamW scales the weights by 1 - lr * weight decay at each step), "
                           f"got {self.lr:g} * {self.weight_decay:g} = "
                           f"{self.lr * self.weight_decay:g}; "
                           + ("lower --weight-decay or --lr" if source is None else
                              "correct it in the file, or start a new run"))

    def to_dict(self) -> dict[str, Any]:
        """The settings as a JSON-ready dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str | os.PathLike[str] = "the run's config",
                  tasks: Collection[str] | None = None) -> TrainConfig:
        """Rebuild a config saved with :meth:`to_dict`, checked as :meth:`check` does.

        ``source`` names where ``values`` come from (the run's config.json) in errors. A key
        this version does not know, or one every saved config holds that is missing, is an
        error too."""
        values = {**ADDED_SETTINGS, **values}
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise RunError(f"{source}: unknown settings in the run's config: "
                           f"{', '.join(unknown)}; remove them, or use the version of rnnkit "
                           "that wrote the run")
        missing = [name for name in known if name not in values]
        if missing:
            raise RunError(f"{source}: the run's config lacks the settings "
                           f"{', '.join(missing)}; the file is damaged: restore it, or start "
                           "a new run")
        config = cls(**values)
        config.check(source, tasks)
        return config


ADDED_SETTINGS: dict[str, Any] = {
    "column": None, "horizon": 10, "ema": None, "weight_dropout": 0.0, "zoneout_hidden": 0.0,
    "zoneout_cell": 0.0, "activation_penalty": 0.0, "temporal_penalty": 0.0,
    "source": None, "target": None,
    "season": None, "covariates": None, "compile": False,
}
"""Settings added after runs were first saved, with the values that continue such a run as
it was (a config.json without them): each setting off. Every other setting is in every saved
config.json, so a change of the defaults above never changes how a saved run goes on."""

LENGTH_FROM_DATA = ("classify", "speech")
"""Tasks whose run, given no length (no steps, epochs or time limit), trains the length its
data and options give (:attr:`rnnkit.training.Task.default_length`): classify's budget in
steps for the length and number of its series, speech's epochs for isolated digits or
strings."""

OPTIMIZERS = ("adamw", "sgd")
PRECISIONS = ("auto", "fp32", "bf16")


SEED_LIMIT = 2**32
"""Seeds are in [0, SEED_LIMIT): tasks derive generator seeds from them by arithmetic that
must stay within torch's 64-bit seeds."""
_DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")


@dataclass(frozen=True)
class Rule:
    """What one setting may hold: its type, whether None (off, automatic) is allowed, and a
    test of its value with the words that describe it (``{off}`` stands for how the user
    says None: 0 on the command line, null in a file)."""

    kind: type
    expected: str = ""
    test: Callable[[Any], bool] | None = None
    optional: bool = False
    choices: tuple[str, ...] = ()

    def check(self, name: str, value: Any, source: str | os.PathLike[str] | None) -> None:
        """Raise RunError unless ``value`` fits this rule (see :meth:`TrainConfig.check`)."""
        where = _where(name, source)
        if value is None:
            if self.optional:
                return
            raise RunError(f"{where} must be {_TYPE_WORDS[self.kind]}, got {_shown(value, source)}"
                           f"{_fix(source)}")
        if not _has_type(value, self.kind):
            words = _TYPE_WORDS[self.kind] + (" or null" if self.optional and source else "")
            raise RunError(f"{where} must be {words}, got {_shown(value, source)}{_fix(source)}")
        if self.choices and value not in self.choices:
            what = name.replace("_", " ")
            listed = ("`rnnkit list` shows the cells: " if name == "cell" else "choose one of: ")
            raise RunError(f"{where}: unknown {what} {value!r}; {listed}{', '.join(self.choices)}"
                           f"{_fix(source)}")
        if self.test is not None and not self.test(value):
            expected = self.expected.format(off="null" if source else "0")
            raise RunError(f"{where} must be {expected}, got {_shown(value, source)}"
                           f"{_fix(source)}")


def _finite(value: float) -> bool:
    return math.isfinite(value)


def _has_type(value: Any, kind: type) -> bool:
    if isinstance(value, bool):
        return kind is bool
    if kind is float:
        return isinstance(value, (int, float))
    return isinstance(value, kind)


_TYPE_WORDS = {int: "a whole number", float: "a number", bool: "true or false", str: "text"}
_AT_LEAST_1 = Rule(int, ">= 1", lambda v: v >= 1)
_FRACTION = Rule(float, "in [0, 1)", lambda v: 0.0 <= v < 1.0)
_PENALTY = Rule(float, ">= 0 and finite", lambda v: 0.0 <= v < math.inf)
_TEXT = Rule(str, "non-empty text", lambda v: v.strip() != "", optional=True)
_POSITIVE_OR_OFF = Rule(float, "> 0 and finite, or {off} for off", lambda v: 0 < v < math.inf,
                        optional=True)
RULES: dict[str, Rule] = {
    "task": Rule(str), "data": _TEXT, "column": _TEXT, "horizon": _AT_LEAST_1,
    "season": _TEXT, "covariates": _TEXT, "source": _TEXT, "target": _TEXT,
    "cell": Rule(str, choices=CELL_NAMES), "embedding_size": _AT_LEAST_1,
    "hidden_size": _AT_LEAST_1, "layers": _AT_LEAST_1, "bidirectional": Rule(bool),
    "dropout": _FRACTION, "weight_dropout": _FRACTION,
    "activation_penalty": _PENALTY, "temporal_penalty": _PENALTY,
    "zoneout_hidden": _FRACTION, "zoneout_cell": _FRACTION,
    "batch_size": _AT_LEAST_1,
    "bptt": Rule(int, ">= 1", lambda v: v >= 1, optional=True),  # None: forecast's own window
    "optimizer": Rule(str, choices=OPTIMIZERS),
    "lr": Rule(float, "> 0 and < 1e6", lambda v: 0 < v < 1e6),
    "min_lr_ratio": Rule(float, "in [0, 1]", lambda v: 0.0 <= v <= 1.0),
    "warmup": Rule(int, ">= 0", lambda v: v >= 0),
    "weight_decay": _PENALTY,
    "momentum": Rule(float, "in [0, 1)", lambda v: 0.0 <= v < 1.0),
    "ema": Rule(float, "in (0, 1), or {off} for no average", lambda v: 0.0 < v < 1.0,
                optional=True),
    "clip": _POSITIVE_OR_OFF, "clip_value": _POSITIVE_OR_OFF,
    "steps": Rule(int, ">= 1, or {off} for as many as fit in the time limit",
                  lambda v: v >= 1, optional=True),
    "epochs": Rule(float, "> 0 and finite", lambda v: 0 < v < math.inf, optional=True),
    "time_limit": Rule(float, "> 0 and finite, or {off} for no limit",
                       lambda v: 0 < v < math.inf, optional=True),
    "eval_every": _AT_LEAST_1,
    "patience": Rule(int, ">= 1", lambda v: v >= 1, optional=True),
    "seed": Rule(int, f"in [0, {SEED_LIMIT})", lambda v: 0 <= v < SEED_LIMIT),
    "device": Rule(str, "auto, cpu, cuda or cuda:N", lambda v: _DEVICE.fullmatch(v) is not None),
    "threads": Rule(int, ">= 1, or {off} for automatic", lambda v: v >= 1, optional=True),
    "precision": Rule(str, choices=PRECISIONS), "compile": Rule(bool),
}
"""The type and range of every setting of :class:`TrainConfig`."""


def _where(name: str, source: str | os.PathLike[str] | None) -> str:
    """How an error names a setting: its option, or the file and key it was read from."""
    return f"--{_flag(name)}" if source is None else f'{source}: "{name}"'


def _fix(source: str | os.PathLike[str] | None) -> str:
    """What to do about a bad value read from a file (nothing to add for an option)."""
    return "" if source is None else "; correct it in the file, or start a new run"


def _shown(value: Any, source: str | os.PathLike[str] | None) -> str:
    """A value as the user wrote it: JSON in a file, the option's text on the command line."""
    if source is not None:
        return json.dumps(value)
    return repr(value) if isinstance(value, str) else str(value)


def _flag(name: str) -> str:
    return name.replace("_", "-")
