"""What defines a training run: one dataclass of plain values, saved as the run's config.json."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

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
    results as eager, compiled in the first steps; tasks whose step measured faster compiled
    choose it by default."""

    def total_steps(self, steps_per_epoch: int) -> int | None:
        """Length of the run in optimizer steps: ``epochs`` passes if set, else ``steps``
        (None: decided by the trainer to fit the time limit)."""
        if self.epochs is not None:
            return max(1, math.ceil(self.epochs * steps_per_epoch))
        return self.steps

    def check(self) -> None:
        """Raise :class:`RunError` (one line, naming the option) for values out of range."""
        positive = ("embedding_size", "hidden_size", "layers", "batch_size", "bptt", "steps",
                    "eval_every", "horizon")
        for name in positive:
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise RunError(f"--{_flag(name)} must be >= 1, got {getattr(self, name)}")
        for name in ("dropout", "weight_dropout", "zoneout_hidden", "zoneout_cell"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise RunError(f"--{_flag(name)} must be in [0, 1), got {getattr(self, name)}")
        for name in ("activation_penalty", "temporal_penalty"):
            if getattr(self, name) < 0:
                raise RunError(f"--{_flag(name)} must be >= 0, got {getattr(self, name)}")
        if not 0 < self.lr < 1e6:
            raise RunError(f"--lr must be > 0 and < 1e6, got {self.lr}")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise RunError(f"--min-lr-ratio must be in [0, 1], got {self.min_lr_ratio}")
        for name in ("warmup", "weight_decay", "momentum"):
            if getattr(self, name) < 0:
                raise RunError(f"--{_flag(name)} must be >= 0, got {getattr(self, name)}")
        if self.ema is not None and not 0.0 < self.ema < 1.0:
            raise RunError(f"--ema must be in (0, 1), or 0 for no average; got {self.ema}")
        for name in ("clip", "clip_value", "epochs", "time_limit"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise RunError(f"--{_flag(name)} must be > 0, got {value}")
        if self.steps is None and self.epochs is None and self.time_limit is None:
            raise RunError("--steps 0 (as many as fit in the time limit) needs a --time-limit; "
                           "give --steps N, --epochs E or --time-limit SECONDS")
        if self.threads is not None and self.threads < 1:
            raise RunError(f"--threads must be >= 0 (0: automatic), got {self.threads}")
        if self.patience is not None and self.patience < 1:
            raise RunError(f"--patience must be >= 1, got {self.patience}")
        if self.precision not in PRECISIONS:
            raise RunError(f"--precision: unknown precision {self.precision!r}; "
                           f"choose one of: {', '.join(PRECISIONS)}")
        if not isinstance(self.compile, bool):
            raise RunError(f"--compile must be true or false, got {self.compile!r}")
        if self.optimizer not in OPTIMIZERS:
            raise RunError(f"--optimizer: unknown optimizer {self.optimizer!r}; "
                           f"choose one of: {', '.join(OPTIMIZERS)}")

    def to_dict(self) -> dict[str, Any]:
        """The settings as a JSON-ready dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Rebuild a config saved with :meth:`to_dict`; unknown keys are an error."""
        values = {**ADDED_SETTINGS, **values}
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise RunError(f"unknown settings in the run's config: {', '.join(unknown)}")
        return cls(**values)


ADDED_SETTINGS: dict[str, Any] = {
    "column": None, "horizon": 10, "ema": None, "weight_dropout": 0.0, "zoneout_hidden": 0.0,
    "zoneout_cell": 0.0, "activation_penalty": 0.0, "temporal_penalty": 0.0,
    "source": None, "target": None,
    "season": None, "covariates": None, "compile": False,
}
"""Settings added after runs were first saved, with the values that continue such a run as
it was (a config.json without them): each setting off. Every other setting is in every saved
config.json, so a change of the defaults above never changes how a saved run goes on."""
OPTIMIZERS = ("adamw", "sgd")
PRECISIONS = ("auto", "fp32", "bf16")


def _flag(name: str) -> str:
    return name.replace("_", "-")
