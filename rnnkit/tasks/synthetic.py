"""``rnnkit train --task adding`` and ``--task copy``: synthetic long-range problems with fresh
seeded examples at every step.

* ``adding`` -- the adding problem (Le, Jaitly & Hinton 2015) with ``--data T`` steps: two
  channels (values, markers); regress the sum of the two marked values from the top layer's
  final state. Metrics: mean squared error, and that of always predicting 1 (1/6 in
  expectation) on the same examples.
* ``copy`` -- copy memory (Arjovsky, Shah & Bengio 2016) with a delay of ``--data T`` steps:
  read 10 symbols, T blanks (the last one the delimiter), then output the 10 symbols. The
  model scores the 10 token ids at every step (one-hot inputs, a per-step head). Metrics:
  cross-entropy per step, the error rate on the 10 copied symbols, and the cross-entropy of
  the memoryless baseline (10 ln 8 / (T + 20)).

The validation and test examples are fixed sets drawn with their own seeds.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from rnnkit.data import adding_problem, copy_memory, copy_memory_baseline
from rnnkit.models import ModelOutput, SequenceClassifier, SequenceTagger, evaluation_mode
from rnnkit.models.state import State
from rnnkit.training.config import TrainConfig
from rnnkit.training.errors import RunError
from rnnkit.training.task import Batch, HeadAdapter, Task, build_model, head_settings, in_chunks

ADDING_DESCRIPTION = "adding problem: sum the two marked values of a --data T step sequence"
COPY_DESCRIPTION = "copy memory: repeat 10 symbols after a delay of --data T steps"

ADDING_DEFAULTS: dict[str, Any] = {"data": "100", "batch_size": 64, "steps": 4000,
                                   "eval_every": 250, "time_limit": None}
COPY_DEFAULTS: dict[str, Any] = {"data": "20", "batch_size": 64, "steps": 8000,
                                 "time_limit": None}
"""Each task's length T and run: fresh examples every step, so more steps than epochs; no time
limit, so that no machine's load cuts the default run short."""

EXAMPLES_PER_EPOCH = 10_000
"""The synthetic tasks draw new examples at every step; an "epoch" is this many."""
HELD_OUT_EXAMPLES = 2_000
"""Examples in each of the validation and test sets of the synthetic tasks."""
VAL_SEED, TEST_SEED = 1, 2
"""Seeds of the synthetic validation and test sets; training batches use others."""
COPY_SYMBOLS, COPY_LENGTH = 8, 10
"""Copy memory: 8 symbols (ids 1..8; 0 blank, 9 delimiter), 10 of them to copy."""


class RegressorAdapter(HeadAdapter):
    """A one-output :class:`SequenceClassifier` as a regressor: (series (B, T, C), state,
    values (B,)) -> (predicted values (B,), None, mean squared error)."""

    head_class = SequenceClassifier

    def forward(self, inputs: Tensor, state: State | None = None,
                targets: Tensor | None = None) -> ModelOutput:
        """The value predicted for each series, and its loss against ``targets``."""
        out = self.net(inputs, targets=None if targets is None else targets.unsqueeze(-1))
        return ModelOutput(out.outputs.squeeze(-1), None, out.loss)


class TokenTaggerAdapter(HeadAdapter):
    """:class:`SequenceTagger` over one-hot tokens: (ids (B, T), state, target ids (B, T)) ->
    (logits (B, T, V), None, cross-entropy), with V = ``num_outputs`` = the number of ids."""

    head_class = SequenceTagger

    def forward(self, inputs: Tensor, state: State | None = None,
                targets: Tensor | None = None) -> ModelOutput:
        """Per-step logits of a batch of token sequences, and their loss against ``targets``."""
        one_hot = F.one_hot(inputs, self.settings["input_size"]).to(self.net.head.weight.dtype)
        return self.net(one_hot, targets=targets)


def sequence_length(config: TrainConfig, what: str, minimum: int) -> int:
    """The length T of a synthetic task: ``--data T`` (a whole number >= ``minimum``)."""
    text = str(config.data).strip()
    if text.isdigit() and int(text) >= minimum:
        return int(text)
    raise RunError(f"--data for --task {config.task}: expected {what} as a whole number >= "
                   f"{minimum} (e.g. --data 100), got {config.data!r}")


def training_seed(config: TrainConfig, step: int) -> int:
    """Seed of a synthetic task's training batch at ``step`` (never VAL_SEED or TEST_SEED)."""
    return 1_000 + config.seed * 1_000_000_007 + step


def predict(model: HeadAdapter, inputs: Tensor) -> Tensor:
    """The model's outputs for held-out ``inputs``, in batches, in float32 on the CPU."""
    device = next(model.parameters()).device
    with evaluation_mode(model):
        return torch.cat([model(inputs[rows].to(device)).outputs.float().cpu()
                          for rows in in_chunks(len(inputs), 500)])


def adding_task(config: TrainConfig, device: torch.device,
                saved: dict[str, Any] | None = None) -> Task:
    """The adding problem of ``config`` (see the module's docstring); ``saved`` (from a
    checkpoint) fixes the model's sizes."""
    length = sequence_length(config, "the sequence length T", minimum=2)
    settings = head_settings(config, saved, input_size=2, num_outputs=1, pooling="last")
    model = build_model(RegressorAdapter, settings).to(device)
    held_out = {"val": adding_problem(HELD_OUT_EXAMPLES, length, seed=VAL_SEED),
                "test": adding_problem(HELD_OUT_EXAMPLES, length, seed=TEST_SEED)}
    held_out["all"] = tuple(torch.cat(parts) for parts in zip(held_out["val"], held_out["test"]))

    def batch_at(step: int) -> Batch:
        inputs, targets = adding_problem(config.batch_size, length,
                                         seed=training_seed(config, step))
        return Batch(inputs.to(device), targets.to(device), starts_sequences=True)

    def evaluate(split: str) -> dict[str, float]:
        inputs, targets = held_out[split]
        return {"mse": F.mse_loss(predict(model, inputs), targets).item(),
                "baseline_mse": F.mse_loss(torch.ones_like(targets), targets).item()}

    def showcase() -> str:
        inputs, targets = held_out["val"]
        predicted = predict(model, inputs[:5])
        return "validation examples (target -> prediction): " + ", ".join(
            f"{t:.3f} -> {p:.3f}" for t, p in zip(targets[:5].tolist(), predicted.tolist()))

    return Task(
        model=model, batch_at=batch_at,
        steps_per_epoch=math.ceil(EXAMPLES_PER_EPOCH / config.batch_size),
        evaluate=evaluate, metric="mse", metric_names=("mse", "baseline_mse"),
        saved={"model": settings, "length": length}, showcase=showcase, unit="sequences",
    )


def copy_task(config: TrainConfig, device: torch.device,
              saved: dict[str, Any] | None = None) -> Task:
    """Copy memory of ``config`` (see the module's docstring); ``saved`` (from a checkpoint)
    fixes the model's sizes."""
    delay = sequence_length(config, "the delay T", minimum=1)
    tokens = COPY_SYMBOLS + 2
    settings = head_settings(config, saved, input_size=tokens, num_outputs=tokens)
    model = build_model(TokenTaggerAdapter, settings).to(device)
    held_out = {"val": copy_memory(HELD_OUT_EXAMPLES, delay, seed=VAL_SEED),
                "test": copy_memory(HELD_OUT_EXAMPLES, delay, seed=TEST_SEED)}
    held_out["all"] = tuple(torch.cat(parts) for parts in zip(held_out["val"], held_out["test"]))
    baseline = copy_memory_baseline(delay, COPY_SYMBOLS, COPY_LENGTH).cross_entropy

    def batch_at(step: int) -> Batch:
        inputs, targets = copy_memory(config.batch_size, delay, seed=training_seed(config, step))
        return Batch(inputs.to(device), targets.to(device), starts_sequences=True)

    def evaluate(split: str) -> dict[str, float]:
        inputs, targets = held_out[split]
        return {**copy_metrics(predict(model, inputs), targets),
                "baseline_cross_entropy": baseline}

    def showcase() -> str:
        inputs, targets = held_out["val"]
        predicted = predict(model, inputs[:3])[:, -COPY_LENGTH:].argmax(dim=-1)
        return "validation examples (symbols to copy -> copied):\n" + "\n".join(
            f"{''.join(map(str, t.tolist()))} -> {''.join(map(str, p.tolist()))}"
            for t, p in zip(targets[:3, -COPY_LENGTH:], predicted))

    return Task(
        model=model, batch_at=batch_at,
        steps_per_epoch=math.ceil(EXAMPLES_PER_EPOCH / config.batch_size),
        evaluate=evaluate, metric="cross_entropy",
        metric_names=("cross_entropy", "copy_error_rate", "baseline_cross_entropy"),
        saved={"model": settings, "length": delay}, showcase=showcase, unit="sequences",
    )


def copy_metrics(logits: Tensor, targets: Tensor) -> dict[str, float]:
    """Cross-entropy per step of logits (N, T, V) for ids (N, T), and the error rate of the
    copied symbols (the last COPY_LENGTH steps)."""
    copied = logits[:, -COPY_LENGTH:].argmax(dim=-1) != targets[:, -COPY_LENGTH:]
    return {"cross_entropy": F.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                             targets.reshape(-1)).item(),
            "copy_error_rate": copied.float().mean().item()}
