"""``rnnkit train --task lm``: a character-level language model that predicts each next
character of a text, then samples from it.

The text (``--data``: a bundled name or a UTF-8 file) is split contiguously 90/5/5 into
train/val/test. Training reads ``--batch-size`` parallel streams of the train part in chunks of
``--bptt`` characters, carrying the state from chunk to chunk (truncated BPTT) and resetting it
when a pass over the text starts again. The training loss is the cross-entropy plus the model's
AR and TAR (``--activation-penalty``, ``--temporal-penalty``). Metrics: cross-entropy in nats
per character and bits per character, and the number of unknown characters.

Any UTF-8 text can be trained on, scored and used as a prompt. The vocabulary holds the
characters seen at least twice in the training part and an unknown symbol for every other
character, so the model learns from the characters seen once how often a new one turns up.
The cross-entropy of a text is that of the model spelling it: an unknown character costs the
unknown symbol's probability and then ln 256 per UTF-8 byte (see
:meth:`rnnkit.data.CharVocab.unknown_nats`), so a text with new characters is never scored as
easier than it is.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.data import CharVocab, StreamBatcher, load_text, split_text
from rnnkit.models import LanguageModel, LanguageModelConfig, evaluation_mode
from rnnkit.training.config import TrainConfig
from rnnkit.training.errors import RunError
from rnnkit.training.task import Batch, Task, build_model

DESCRIPTION = "character-level language model: predict the next character of a text, then sample"

DEFAULTS: dict[str, Any] = {
    "data": "shakespeare", "hidden_size": 640, "dropout": 0.35, "activation_penalty": 2.0,
    "temporal_penalty": 1.0, "lr": 2e-2, "weight_decay": 0.1, "ema": 0.999,
    "steps": 5944, "time_limit": None, "precision": "auto",
}
"""The settings of the default run, ``rnnkit train`` with no options: a one-layer LSTM of 640
units on the bundled Shakespeare corpus for 5,944 steps, the length that the reference machine
(two cores of an AMD EPYC, idle; docs/results/language-model.md) fitted into a time limit of
580 s, so it trains in under ten minutes there. The length is fixed, with no time limit, so
that the same command gives the same run under any load (``--time-limit S`` alone fits the
length to S seconds instead). A language model has many more steps of data than the other
tasks, so it takes a larger learning rate, dropout, weight decay, AR and TAR, and averages its
weights; under "auto" precision it trains in bfloat16 where the hardware computes it
natively."""

EVALUATION_SETTINGS: dict[str, Any] = {"batch_size": 1, "bptt": 1}
"""What ``rnnkit evaluate`` sets before building the task: evaluation never batches the
training part, so it takes the smallest batching, which accepts any text."""


def language_model_task(config: TrainConfig, device: torch.device,
                        saved: dict[str, Any] | None = None) -> Task:
    """The language model task of ``config`` (see the module's docstring); ``saved`` (from a
    checkpoint) fixes the vocabulary and the model's sizes."""
    if config.bidirectional:
        raise RunError("--bidirectional: a language model cannot read the characters it is "
                       "asked to predict; drop --bidirectional for --task lm")
    text = load_text(config.data)
    texts = split_text_of(config, text)
    vocab = (CharVocab.from_dict(saved["vocab"]) if saved
             else CharVocab(texts[0], min_count=MIN_COUNT, unknown=True))
    parts = encode_parts(config, vocab, texts)
    batches = training_batches(config, parts[0])
    model_config = LanguageModelConfig(
        vocab_size=len(vocab), cell=config.cell, embedding_size=config.embedding_size,
        hidden_size=config.hidden_size, num_layers=config.layers, dropout=config.dropout,
        activation_penalty=config.activation_penalty, temporal_penalty=config.temporal_penalty)
    model = build_model(LanguageModel, model_config).to(device)
    splits = {"val": (parts[1], texts[1]), "test": (parts[2], texts[2]),
              "all": (torch.cat(parts), text)}

    def batch_at(step: int) -> Batch:
        chunk = step % len(batches)
        inputs, targets = batches[chunk]
        return Batch(inputs.to(device), targets.to(device), starts_sequences=chunk == 0)

    def evaluate(split: str) -> dict[str, float]:
        ids, part = splits[split]
        nats = stream_cross_entropy(model, ids, device, vocab.unknown_nats(part))
        unknown = 0 if vocab.unknown_id is None else int((ids == vocab.unknown_id).sum())
        return {"cross_entropy": nats, "bits_per_char": nats / math.log(2),
                "unknown_chars": unknown}

    return Task(
        model=model, batch_at=batch_at, steps_per_epoch=len(batches), evaluate=evaluate,
        metric="cross_entropy", metric_names=("cross_entropy", "bits_per_char", "unknown_chars"),
        saved={"model": dataclasses.asdict(model_config), "vocab": vocab.to_dict()},
        showcase=lambda: sample_text(model, vocab, text, config.seed),
        unit="chars", counts_targets=True,
    )


MIN_COUNT = 2
"""A character needs this many occurrences in the training part for an id of its own."""


def split_text_of(config: TrainConfig, text: str) -> tuple[str, str, str]:
    """The train, val and test parts of ``text``, split 90/5/5."""
    try:
        return split_text(text)
    except ValueError as err:
        raise RunError(f"--data {config.data}: {err}") from None


def encode_parts(config: TrainConfig, vocab: CharVocab, texts: tuple[str, ...]) -> list[Tensor]:
    """The parts ``texts`` as token ids; a character a vocabulary without an unknown symbol
    does not hold raises RunError naming its line and column in the file."""
    try:
        return [vocab.encode(part) for part in texts]
    except ValueError:
        text = "".join(texts)
        position = next(i for i, char in enumerate(text) if char not in vocab)
        line = text.count("\n", 0, position) + 1
        column = position - (text.rfind("\n", 0, position) + 1) + 1
        char = text[position]
        raise RunError(f"--data {config.data}: line {line}, column {column}: character "
                       f"{char!r} (U+{ord(char):04X}) is not in this run's vocabulary, which "
                       "has no unknown symbol (the run predates it); retrain the run to score "
                       "text with new characters") from None


def training_batches(config: TrainConfig, train_ids: Tensor) -> StreamBatcher:
    """``--batch-size`` streams of the training part in chunks of ``--bptt`` characters."""
    try:
        return StreamBatcher(train_ids, config.batch_size, config.bptt)
    except ValueError as err:
        raise RunError(f"--data {config.data}: the training part is too short: {err}; use a "
                       "longer text or lower --batch-size/--bptt") from None


def stream_cross_entropy(model: nn.Module, ids: Tensor, device: torch.device,
                         extra_nats: Tensor | None = None, streams: int = 4,
                         chunk: int = 256) -> float:
    """Mean next-token cross-entropy (nats) of a language model over the token stream ``ids``,
    plus ``extra_nats`` (N,), a further cost of each token where it is scored (the spelling of
    unknown characters).

    The stream (N,) is read as up to ``streams`` contiguous parallel streams in chunks of
    ``chunk`` steps, carrying the state, so every token except the first of each stream is
    scored with its full left context within its stream. Each stream starts from a zero state
    and so scores its first characters worse than one continuous read would; a few streams
    keep that cost small while reading several times faster than one.
    """
    if ids.numel() < 2:
        raise RunError("the evaluation text needs at least 2 characters")
    streams = max(1, min(streams, (ids.numel() - 1) // 2))
    chunk = min(chunk, (ids.numel() - 1) // streams)
    total, count, state = 0.0, 0, None
    with evaluation_mode(model):
        for inputs, targets in StreamBatcher(ids, streams, chunk, drop_last=False):
            logits, state, _ = model(inputs.to(device), state)
            total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                     targets.to(device).reshape(-1), reduction="sum").item()
            count += targets.numel()
    if extra_nats is not None:  # the scored tokens are ids[1 : count + 1] (StreamBatcher)
        total += extra_nats[1:count + 1].sum().item()
    return total / count


def sample_text(model: LanguageModel, vocab: CharVocab, text: str, seed: int,
                length: int = 400) -> str:
    """``length`` sampled characters after a newline (or the text's first character), at
    temperature 0.8: the showcase of a trained run."""
    prompt = "\n" if "\n" in vocab else text[0]
    generator = torch.Generator().manual_seed(seed)
    try:
        ids = model.generate(vocab.encode(prompt), length, temperature=0.8, generator=generator,
                             excluded=unknown_ids(vocab))
    except ValueError as err:  # a diverged model has nothing to show
        return f"(no sample: {err})"
    return prompt + vocab.decode(ids)


def unknown_ids(vocab: CharVocab) -> tuple[int, ...]:
    """The ids sampling never produces: the unknown symbol, which is no one character."""
    return () if vocab.unknown_id is None else (vocab.unknown_id,)
