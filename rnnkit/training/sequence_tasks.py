"""The tasks of ``rnnkit train --task classify|forecast|seq2seq|adding|copy``.

Each builder follows the contract of :func:`rnnkit.training.tasks.language_model_task`:
``(config, device, saved) -> Task``. The examples of these tasks are independent, so their
models carry no state from batch to batch: each wraps a head of :mod:`rnnkit.models` in a thin
adapter that maps ``(inputs, state) -> (outputs, None)``.

* ``classify`` -- a UCR/UEA ``.ts`` data set (bundled name or path) -> its class. Validation
  is a stratified fifth of the TRAIN file; TEST is the test split.
* ``forecast`` -- a CSV series (bundled name or path, ``--column``) -> its next ``--horizon``
  values from a window of ``--bptt`` past values. The last points are the test split, the
  same number before them the validation split; RMSE at horizons 1 and H, next to the
  last-value and seasonal-naive forecasts.
* ``seq2seq`` -- grapheme-to-phoneme conversion on the CMU Pronouncing Dictionary: an
  encoder-decoder with attention, scored by the phoneme error rate of greedy decoding.
* ``adding`` -- the adding problem with ``--data T`` steps (default 100): regress the sum of
  the two marked values; fresh seeded examples at every step.
* ``copy`` -- copy memory with a delay of ``--data T`` steps: repeat 10 symbols after it.

Every ``saved`` dict holds what rebuilds the model and its data transforms from a checkpoint
(model sizes, class names, normaliser, vocabularies, sequence length).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.data import (
    DataError,
    Normalizer,
    SymbolVocab,
    adding_problem,
    chronological_split,
    copy_memory,
    copy_memory_baseline,
    fit_channel_normalizer,
    load_cmudict,
    load_csv_series,
    load_ucr,
    make_g2p_batch,
    make_windows,
    pad_series,
    split_by_word,
    stratified_validation_split,
)
from rnnkit.data.cmudict import PAD
from rnnkit.models import Forecaster, Seq2Seq, SequenceClassifier, SequenceTagger
from rnnkit.models.seq2seq import edit_distance
from rnnkit.models.state import State
from rnnkit.training.config import TrainConfig
from rnnkit.training.errors import RunError
from rnnkit.training.tasks import Batch, Task, build_model

# ----------------------------------------------------------------------------------------
# Adapters: every head as (inputs, state) -> (outputs, state); these models carry no state.


class _Adapter(nn.Module):
    """Holds a head in ``net`` and remembers its constructor arguments (``settings``)."""

    head_class: Callable[..., nn.Module]

    def __init__(self, settings: dict[str, Any]) -> None:
        super().__init__()
        self.settings = dict(settings)
        self.cell = settings["cell"]
        self.net = self.head_class(**settings)


class ClassifierAdapter(_Adapter):
    """:class:`SequenceClassifier`: ((series (B, T, C), lengths (B,)), state) ->
    (scores (B, K), None). Lengths that all equal T are not passed on (no masking needed)."""

    head_class = SequenceClassifier

    def forward(self, inputs: tuple[Tensor, Tensor], state: State | None = None
                ) -> tuple[Tensor, None]:
        series, lengths = inputs
        full = bool((lengths == series.shape[1]).all())
        return self.net(series, None if full else lengths), None


class RegressorAdapter(ClassifierAdapter):
    """A one-output :class:`SequenceClassifier` as a regressor: series (B, T, C) ->
    (values (B,), None)."""

    def forward(self, inputs: Tensor, state: State | None = None) -> tuple[Tensor, None]:
        return self.net(inputs).squeeze(-1), None


class ForecasterAdapter(_Adapter):
    """:class:`Forecaster`: (window (B, L, 1), state) -> (next values (B, horizon), None).

    Each window is standardised by its own mean m and spread s (standard deviation + 0.1)
    before the forecaster reads it, and the forecast is scaled back (``m + s * output``), so
    cycles of a height never seen in training are forecast on a familiar scale (the
    "reversible instance normalisation" of Kim et al. 2022).
    """

    head_class = Forecaster

    def forward(self, inputs: Tensor, state: State | None = None) -> tuple[Tensor, None]:
        mean = inputs.mean(dim=1, keepdim=True)
        spread = (inputs.std(dim=1, keepdim=True) + 0.1 if inputs.shape[1] > 1
                  else torch.ones_like(mean))
        return self.net((inputs - mean) / spread) * spread[..., 0] + mean[..., 0], None


class Seq2SeqAdapter(_Adapter):
    """:class:`Seq2Seq`: ((source (B, S), lengths (B,), target input (B, T)), state) ->
    (logits (B, T, V), None)."""

    head_class = Seq2Seq

    def forward(self, inputs: tuple[Tensor, Tensor, Tensor], state: State | None = None
                ) -> tuple[Tensor, None]:
        return self.net(*inputs), None


class TokenTaggerAdapter(_Adapter):
    """:class:`SequenceTagger` over one-hot tokens: (ids (B, T), state) ->
    (logits (B, T, V), None), with V = ``num_outputs`` = the number of token ids."""

    head_class = SequenceTagger

    def forward(self, inputs: Tensor, state: State | None = None) -> tuple[Tensor, None]:
        one_hot = F.one_hot(inputs, self.settings["input_size"]).to(self.net.head.weight.dtype)
        return self.net(one_hot), None


def build_adapter(adapter: type[_Adapter], settings: dict[str, Any]) -> nn.Module:
    """Build an adapter, turning a bad cell name or size into a one-line RunError."""
    return build_model(adapter, _Settings(settings))


class _Settings(dict):
    """A dict whose ``cell`` is also an attribute (what :func:`build_model` checks)."""

    @property
    def cell(self) -> str:
        return self["cell"]


def head_settings(config: TrainConfig, saved: dict[str, Any] | None, **sizes: Any
                  ) -> dict[str, Any]:
    """The head's constructor arguments: a checkpoint's, or the config's with ``sizes``."""
    if saved is not None:
        return dict(saved["model"])
    return {"cell": config.cell, "hidden_size": config.hidden_size,
            "num_layers": config.layers, "bidirectional": config.bidirectional,
            "dropout": config.dropout, **sizes}


# ----------------------------------------------------------------------------------------
# Shared helpers.


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


def only_for_forecast(config: TrainConfig) -> None:
    """--column applies to the forecast task only."""
    if config.column is not None:
        raise RunError(f"--column: only --task forecast reads a CSV column, got --task "
                       f"{config.task}; drop --column")


def data_error(config: TrainConfig, err: Exception, expected: str) -> RunError:
    """A RunError naming --data, the task and what it expects, from a reader's error."""
    return RunError(f"--data {config.data} for --task {config.task} (expected {expected}): "
                    f"{err}")


def sequence_length(config: TrainConfig, what: str, minimum: int) -> int:
    """The length T of a synthetic task: ``--data T`` (a whole number >= ``minimum``)."""
    text = str(config.data).strip()
    if text.isdigit() and int(text) >= minimum:
        return int(text)
    raise RunError(f"--data for --task {config.task}: expected {what} as a whole number >= "
                   f"{minimum} (e.g. --data 100), got {config.data!r}")


@contextmanager
def evaluation_mode(model: nn.Module) -> Iterator[None]:
    """Run the body with ``model`` in eval mode and without gradients, then restore its mode."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


def in_chunks(count: int, size: int) -> list[slice]:
    """Slices covering ``range(count)`` in pieces of at most ``size``."""
    return [slice(start, min(start + size, count)) for start in range(0, count, size)]


# ----------------------------------------------------------------------------------------
# classify: UCR/UEA .ts data sets.


FRAMED_STEPS = 20
"""The classifier reads frames of k consecutive steps (all channels side by side), k chosen so
that the longest training series takes at most this many frames: a recurrent layer learns far
more easily from 20 steps than from 150 (GunPoint: test accuracy about 0.96 against 0.75)."""


def framed(series: Sequence[np.ndarray], frame: int) -> tuple[Tensor, Tensor]:
    """Series (T_i, C) as frames (ceil(T_i / k), k*C), each series' last frame completed with
    its last value: padded batch (N, T_max, k*C) float32 and lengths (N,)."""
    frames = []
    for values in series:
        steps = math.ceil(len(values) / frame) * frame
        values = np.concatenate([values, np.repeat(values[-1:], steps - len(values), axis=0)])
        frames.append(values.reshape(steps // frame, frame * values.shape[1]))
    return pad_series(frames)


def classification_task(config: TrainConfig, device: torch.device,
                        saved: dict[str, Any] | None = None) -> Task:
    """Classify whole series of a UCR/UEA ``.ts`` data set (``--data``: GunPoint,
    JapaneseVowels, ItalyPowerDemand or a NAME_TRAIN.ts path with NAME_TEST.ts beside it).

    The model reads the per-channel standardised series (statistics of the training part)
    and scores the classes from the top layer's final state. Validation: a stratified 20% of
    the TRAIN file (fixed split); test: the TEST file. Metrics: error rate (1 - accuracy)
    and cross-entropy.
    """
    only_for_forecast(config)
    expected = "a UCR/UEA .ts data set: GunPoint, JapaneseVowels, ItalyPowerDemand or a path"
    try:
        train = load_ucr(config.data, "train")
        test = load_ucr(config.data, "test")
    except DataError as err:
        raise data_error(config, err, expected) from None
    if not train.class_names or (train.labels < 0).any():
        raise RunError(f"--data {config.data}: its series have no class labels "
                       "(@classLabel false); classify needs labelled series")
    classes = saved["classes"] if saved else train.class_names
    present = sorted(set(train.labels.tolist()))
    if saved is None and len(present) < 2:
        found = ", ".join(train.class_names[i] for i in present)
        raise RunError(f"--data {config.data}: a classifier needs at least 2 classes in the "
                       f"training series, found {len(present)} ({found})")
    if test.class_names != train.class_names or train.class_names != classes:
        raise RunError(f"--data {config.data}: class labels {test.class_names} differ from "
                       f"the {'model' if saved else 'training file'}'s {classes}; use a data "
                       "set with the same classes")
    try:
        train, val = stratified_validation_split(train, 0.2, seed=0)
    except ValueError as err:
        raise RunError(f"--data {config.data}: cannot hold out a validation part: {err}; "
                       "give more training series") from None
    normalizer = (Normalizer.from_dict(saved["normalizer"]) if saved
                  else fit_channel_normalizer(train))
    frame = saved["frame"] if saved else math.ceil(int(train.lengths.max()) / FRAMED_STEPS)
    settings = head_settings(config, saved, input_size=train.n_channels * frame,
                             num_outputs=len(classes), pooling="last")
    if train.n_channels * frame != settings["input_size"]:
        raise RunError(f"--data {config.data}: series with {train.n_channels} channel(s), but "
                       f"the model reads {settings['input_size'] // frame}")
    model = build_adapter(ClassifierAdapter, settings).to(device)
    parts = {name: (*framed(part.normalized(normalizer).series, frame),
                    torch.as_tensor(part.labels, dtype=torch.long))
             for name, part in (("train", train), ("val", val), ("test", test))}
    series, lengths, labels = parts["train"]
    batch_size = config.batch_size

    def batch_at(step: int) -> Batch:
        rows = shuffled_rows(len(labels), batch_size, step, config.seed)
        length = int(lengths[rows].max())
        return Batch((series[rows, :length].to(device), lengths[rows].to(device)),
                     labels[rows].to(device), starts_sequences=True)

    def loss(scores: Tensor, targets: Tensor) -> Tensor:
        return F.cross_entropy(scores.float(), targets)

    def scores_of(split: str) -> tuple[Tensor, Tensor]:
        if split == "all":
            chunks = [scores_of(name) for name in ("train", "val", "test")]
            return torch.cat([c[0] for c in chunks]), torch.cat([c[1] for c in chunks])
        inputs, input_lengths, targets = parts[split]
        with evaluation_mode(model):
            scores = torch.cat([
                model((inputs[rows, :int(input_lengths[rows].max())].to(device),
                       input_lengths[rows].to(device)))[0].float().cpu()
                for rows in in_chunks(len(targets), 256)])
        return scores, targets

    def evaluate(split: str) -> dict[str, float]:
        scores, targets = scores_of(split)
        errors = (scores.argmax(dim=1) != targets).float().mean().item()
        return {"error_rate": errors, "cross_entropy": F.cross_entropy(scores, targets).item()}

    def showcase() -> str:
        scores, targets = scores_of("val")
        predicted = scores.argmax(dim=1)
        width = max(len(name) for name in classes)
        lines = [f"validation confusion (rows: true class, columns: predicted), "
                 f"{len(targets)} series:",
                 " " * (width + 2) + " ".join(f"{name:>{width}}" for name in classes)]
        for k, name in enumerate(classes):
            counts = [int(((targets == k) & (predicted == j)).sum()) for j in range(len(classes))]
            lines.append(f"{name:>{width}}  " + " ".join(f"{c:>{width}}" for c in counts))
        return "\n".join(lines)

    return Task(
        model=model, batch_at=batch_at, steps_per_epoch=math.ceil(len(labels) / batch_size),
        loss=loss, evaluate=evaluate, metric="error_rate",
        metric_names=("error_rate", "cross_entropy"),
        saved={"model": settings, "classes": list(classes), "normalizer": normalizer.to_dict(),
               "frame": frame},
        showcase=showcase,
    )


# ----------------------------------------------------------------------------------------
# forecast: CSV series.

SEASONS = {"sunspots": 11, "airline": 12}
"""Season length of the bundled series, for the seasonal-naive baseline."""


def held_out_size(length: int, horizon: int) -> int:
    """Points in each of the validation and test parts of a series of ``length`` points:
    a tenth of it, at most 30 and at least the horizon (30 for the sunspots)."""
    return max(horizon, min(30, length // 10))


def forecasting_task(config: TrainConfig, device: torch.device,
                     saved: dict[str, Any] | None = None) -> Task:
    """Forecast a CSV series (``--data``: sunspots, airline or a path; ``--column``) the next
    ``--horizon`` H values at once from the ``--bptt`` L values before them.

    The series is split in time order: the last n points are the test part, the n before
    them the validation part (n = a tenth of the series, at most 30, at least H). Training
    windows have inputs and targets inside the training part; a held-out point t is forecast
    h steps ahead from the L values before t - h (observed history). Metrics, in the
    series' units: RMSE over all horizons, at horizon 1 and at H, and the same for the
    last-value forecast (y[t-h]) and, for series with a known season s (sunspots 11 years,
    airline 12 months), the seasonal-naive forecast y[t - s*ceil(h/s)].
    """
    horizon, window = config.horizon, config.bptt
    where = f"--data {config.data}" + (f" --column {config.column}" if config.column else "")
    column = saved["column"] if saved else config.column
    try:
        series = load_csv_series(config.data, column=column)
    except DataError as err:
        raise RunError(f"{where} for --task forecast (expected a CSV series: sunspots, airline "
                       f"or a path, and a value column): {err}") from None
    if saved:
        horizon, window = saved["model"]["horizon"], saved["window"]
    values = series.values
    held_out = held_out_size(len(values), horizon)
    try:
        split = chronological_split(values, test_size=held_out, val_size=held_out)
    except ValueError:
        raise RunError(f"{where}: {len(values)} values are too few to hold out {held_out} "
                       "for validation and test and keep a training part") from None
    if len(split.train) < window + horizon + 1:
        raise RunError(f"--bptt {window} / --horizon {horizon}: the training part of {where} "
                       f"has {len(split.train)} values, fewer than a window of {window} plus "
                       f"{horizon} targets needs; lower --bptt or --horizon")
    # A series that never goes below zero (counts, sales) is modelled on the square-root
    # scale, where its spread depends less on its level.
    root = saved["sqrt"] if saved else bool((split.train >= 0).all())
    if root and (values < 0).any():
        raise RunError(f"{where}: the model works on the square root of this series, which has "
                       "negative values; use a series without them")
    stable = np.sqrt(values) if root else values
    normalizer = (Normalizer.from_dict(saved["normalizer"]) if saved
                  else Normalizer.fit(stable[:split.val_start]))
    scaled = torch.as_tensor(normalizer.transform(stable[:, None])[:, 0], dtype=torch.float32)
    train_inputs, train_targets = make_windows(scaled[:split.val_start], window, horizon)
    season = saved["season"] if saved else SEASONS.get(str(config.data).lower())
    settings = head_settings(config, saved, horizon=horizon, input_size=1)
    model = build_adapter(ForecasterAdapter, settings).to(device)
    batch_size = config.batch_size
    truth = torch.as_tensor(values, dtype=torch.float64)
    ranges = {"val": (split.val_start, split.test_start), "test": (split.test_start, len(values)),
              "all": (window + horizon, len(values))}
    horizons = sorted({1, horizon})
    names = ["rmse", *(f"rmse_h{h}" for h in horizons),
             *(f"last_value_rmse_h{h}" for h in horizons),
             *((f"seasonal_naive_rmse_h{h}" for h in horizons) if season else ())]

    def batch_at(step: int) -> Batch:
        rows = shuffled_rows(len(train_targets), batch_size, step, config.seed)
        return Batch(train_inputs[rows].to(device), train_targets[rows].to(device),
                     starts_sequences=True)

    def loss(predicted: Tensor, targets: Tensor) -> Tensor:
        return F.mse_loss(predicted.float(), targets)

    def forecasts(origins: Sequence[int]) -> Tensor:
        """Forecasts (len(origins), H) in the series' units of the values at indices o .. o+H-1,
        each from the L values before its origin o."""
        windows = torch.stack([scaled[o - window:o] for o in origins]).unsqueeze(-1)
        with evaluation_mode(model):
            predicted = model(windows.to(device))[0].float().cpu().double()
        predicted = normalizer.inverse_transform(predicted.numpy()[..., None])[..., 0]
        return torch.as_tensor(np.maximum(predicted, 0.0) ** 2 if root else predicted)

    def evaluate(split_name: str) -> dict[str, float]:
        start, end = ranges[split_name]
        targets = truth[start:end]
        # Row r: the forecast made with the values before index start - H + 1 + r known.
        predicted = forecasts(range(start - horizon + 1, end + 1))

        def rmse(guess: Tensor) -> float:
            return math.sqrt(float(((guess - targets) ** 2).mean()))

        def at(h: int) -> Tensor:  # forecasts of the targets made h steps ahead
            rows = torch.arange(start, end) - h + 1 - (start - horizon + 1)
            return predicted[rows, h - 1]

        metrics = {"rmse": math.sqrt(sum(rmse(at(h)) ** 2 for h in range(1, horizon + 1))
                                     / horizon)}
        metrics.update({f"rmse_h{h}": rmse(at(h)) for h in horizons})
        metrics.update({f"last_value_rmse_h{h}": rmse(truth[start - h:end - h])
                        for h in horizons})
        if season:
            for h in horizons:
                back = season * math.ceil(h / season)
                metrics[f"seasonal_naive_rmse_h{h}"] = rmse(truth[start - back:end - back])
        return metrics

    def showcase() -> str:
        ahead = forecasts([len(values)])[0].tolist()
        last = series.dates[-1] if series.dates else f"value {len(values)}"
        return (f"forecast of {series.column!r} for the {horizon} steps after {last}: "
                + ", ".join(f"{v:.1f}" for v in ahead))

    return Task(
        model=model, batch_at=batch_at,
        steps_per_epoch=math.ceil(len(train_targets) / batch_size), loss=loss,
        evaluate=evaluate, metric="rmse", metric_names=tuple(names),
        saved={"model": settings, "normalizer": normalizer.to_dict(), "column": series.column,
               "sqrt": root,
               "window": window, "season": season},
        showcase=showcase,
    )


# ----------------------------------------------------------------------------------------
# seq2seq: grapheme-to-phoneme conversion on CMUdict.

VALIDATION_WORDS = 2000
"""Validation during training decodes this many validation words (a fixed subset)."""


def g2p_task(config: TrainConfig, device: torch.device,
             saved: dict[str, Any] | None = None) -> Task:
    """Grapheme-to-phoneme conversion (``--data``: cmudict or a file in its format).

    Words are split 90/5/5 by a seeded hash of the word. An encoder-decoder with general
    attention (bidirectional encoder with ``--bidirectional``) is trained with teacher
    forcing. Metrics: phoneme error rate (edit distance of the greedy decoding over the
    reference length), word error rate and teacher-forced cross-entropy per phoneme.
    Validation during training uses the first 2,000 validation words.
    """
    only_for_forecast(config)
    expected = "cmudict or a pronouncing dictionary file, lines 'word PH1 PH2 ...'"
    try:
        pairs = load_cmudict(config.data)
    except DataError as err:
        raise data_error(config, err, expected) from None
    train_pairs, val_pairs, test_pairs = split_by_word(pairs, (0.9, 0.05, 0.05), seed=0)
    if saved:
        graphemes = SymbolVocab.from_dict(saved["graphemes"])
        phonemes = SymbolVocab.from_dict(saved["phonemes"])
    else:
        if not train_pairs or not val_pairs:
            raise RunError(f"--data {config.data}: {len(pairs)} words are too few to split "
                           "into training, validation and test words; give more")
        graphemes = SymbolVocab.for_graphemes(train_pairs)
        phonemes = SymbolVocab.for_phonemes(train_pairs)

    def known(part: list[tuple[str, tuple[str, ...]]]) -> list[tuple[str, tuple[str, ...]]]:
        return [(w, p) for w, p in part if all(c in graphemes.symbols for c in w)
                and all(s in phonemes.symbols for s in p)]

    parts = {"train": known(train_pairs), "val": known(val_pairs)[:VALIDATION_WORDS],
             "test": known(test_pairs)}
    parts["all"] = parts["train"] + known(val_pairs) + parts["test"]
    settings = head_settings(config, saved, source_vocab_size=len(graphemes),
                             target_vocab_size=len(phonemes),
                             embedding_size=config.embedding_size, attention="general")
    model = build_adapter(Seq2SeqAdapter, settings).to(device)
    if not parts["train"] and saved is None:
        raise RunError(f"--data {config.data}: no training words")
    encoded = make_g2p_batch(parts["train"], graphemes, phonemes) if parts["train"] else None
    batch_size = config.batch_size

    def batch_at(step: int) -> Batch:
        rows = shuffled_rows(len(parts["train"]), batch_size, step, config.seed)
        source_length = int(encoded.source_lengths[rows].max())
        target_length = int(encoded.target_lengths[rows].max())
        inputs = (encoded.source[rows, :source_length].to(device),
                  encoded.source_lengths[rows].to(device),
                  encoded.target_input[rows, :target_length].to(device))
        return Batch(inputs, encoded.target_output[rows, :target_length].to(device),
                     starts_sequences=True)

    def loss(logits: Tensor, targets: Tensor) -> Tensor:
        logits = logits.float()
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1),
                               ignore_index=PAD)

    def decode(words: list[tuple[str, tuple[str, ...]]]) -> tuple[list[list[str]], float]:
        """Greedy phonemes of each word, and the teacher-forced cross-entropy per phoneme."""
        order = sorted(range(len(words)), key=lambda i: len(words[i][0]))
        decoded: list[list[str]] = [[] for _ in words]
        total, count = 0.0, 0
        with evaluation_mode(model):
            for chunk in in_chunks(len(order), 500):
                rows = order[chunk]
                batch = make_g2p_batch([words[i] for i in rows], graphemes, phonemes)
                source, lengths = batch.source.to(device), batch.source_lengths.to(device)
                logits = model((source, lengths, batch.target_input.to(device)))[0].float()
                targets = batch.target_output.to(device)
                total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                         targets.reshape(-1), ignore_index=PAD,
                                         reduction="sum").item()
                count += int((targets != PAD).sum())
                ids = model.net.greedy_decode(source, lengths,
                                              max_length=int(lengths.max()) + 10)
                for row, tokens in zip(rows, ids):
                    decoded[row] = phonemes.decode(tokens)
        return decoded, total / max(count, 1)

    def evaluate(split: str) -> dict[str, float]:
        words = parts[split]
        if not words:
            raise RunError(f"--data {config.data}: no {split} words to score")
        decoded, cross_entropy = decode(words)
        edits = sum(edit_distance(d, list(p)) for d, (_, p) in zip(decoded, words))
        symbols = sum(len(p) for _, p in words)
        wrong = sum(d != list(p) for d, (_, p) in zip(decoded, words))
        return {"phoneme_error_rate": edits / symbols, "word_error_rate": wrong / len(words),
                "cross_entropy": cross_entropy}

    def showcase() -> str:
        words = parts["val"][:8]
        decoded, _ = decode(words)
        return "\n".join(f"{w:<14} {' '.join(d):<28} (reference: {' '.join(p)})"
                         for d, (w, p) in zip(decoded, words))

    return Task(
        model=model, batch_at=batch_at,
        steps_per_epoch=max(1, math.ceil(len(parts["train"]) / batch_size)), loss=loss,
        evaluate=evaluate, metric="phoneme_error_rate",
        metric_names=("phoneme_error_rate", "word_error_rate", "cross_entropy"),
        saved={"model": settings, "graphemes": graphemes.to_dict(),
               "phonemes": phonemes.to_dict()},
        showcase=showcase,
    )


# ----------------------------------------------------------------------------------------
# adding and copy: synthetic long-range tasks with fresh seeded examples every step.

EXAMPLES_PER_EPOCH = 10_000
"""The synthetic tasks draw new examples at every step; an "epoch" is this many."""
HELD_OUT_EXAMPLES = 2_000
"""Examples in each of the validation and test sets of the synthetic tasks."""
VAL_SEED, TEST_SEED = 1, 2
"""Seeds of the synthetic validation and test sets; training batches use others."""


def training_seed(config: TrainConfig, step: int) -> int:
    """Seed of a synthetic task's training batch at ``step`` (never VAL_SEED or TEST_SEED)."""
    return 1_000 + config.seed * 1_000_000_007 + step


def adding_task(config: TrainConfig, device: torch.device,
                saved: dict[str, Any] | None = None) -> Task:
    """The adding problem (Le, Jaitly & Hinton 2015) with ``--data T`` steps (default 100):
    two channels (values, markers), regress the sum of the two marked values from the top
    layer's final state. Metrics: mean squared error, and that of always predicting 1
    (1/6 in expectation) on the same examples."""
    only_for_forecast(config)
    length = sequence_length(config, "the sequence length T", minimum=2)
    settings = head_settings(config, saved, input_size=2, num_outputs=1, pooling="last")
    model = build_adapter(RegressorAdapter, settings).to(device)
    held_out = {"val": adding_problem(HELD_OUT_EXAMPLES, length, seed=VAL_SEED),
                "test": adding_problem(HELD_OUT_EXAMPLES, length, seed=TEST_SEED)}
    held_out["all"] = tuple(torch.cat(parts) for parts in zip(held_out["val"], held_out["test"]))

    def batch_at(step: int) -> Batch:
        inputs, targets = adding_problem(config.batch_size, length,
                                         seed=training_seed(config, step))
        return Batch(inputs.to(device), targets.to(device), starts_sequences=True)

    def loss(predicted: Tensor, targets: Tensor) -> Tensor:
        return F.mse_loss(predicted.float(), targets)

    def predict(inputs: Tensor) -> Tensor:
        with evaluation_mode(model):
            return torch.cat([model(inputs[rows].to(device))[0].float().cpu()
                              for rows in in_chunks(len(inputs), 500)])

    def evaluate(split: str) -> dict[str, float]:
        inputs, targets = held_out[split]
        return {"mse": F.mse_loss(predict(inputs), targets).item(),
                "baseline_mse": F.mse_loss(torch.ones_like(targets), targets).item()}

    def showcase() -> str:
        inputs, targets = held_out["val"]
        predicted = predict(inputs[:5])
        return "validation examples (target -> prediction): " + ", ".join(
            f"{t:.3f} -> {p:.3f}" for t, p in zip(targets[:5].tolist(), predicted.tolist()))

    return Task(
        model=model, batch_at=batch_at,
        steps_per_epoch=math.ceil(EXAMPLES_PER_EPOCH / config.batch_size), loss=loss,
        evaluate=evaluate, metric="mse", metric_names=("mse", "baseline_mse"),
        saved={"model": settings, "length": length}, showcase=showcase,
    )


COPY_SYMBOLS, COPY_LENGTH = 8, 10
"""Copy memory: 8 symbols (ids 1..8; 0 blank, 9 delimiter), 10 of them to copy."""


def copy_task(config: TrainConfig, device: torch.device,
              saved: dict[str, Any] | None = None) -> Task:
    """Copy memory (Arjovsky, Shah & Bengio 2016) with a delay of ``--data T`` steps: read
    10 symbols, T blanks (the last one the delimiter), then output the 10 symbols. The
    model scores the 10 token ids at every step (one-hot inputs, a per-step head).
    Metrics: cross-entropy per step, the error rate on the 10 copied symbols, and the
    cross-entropy of the memoryless baseline (10 ln 8 / (T + 20))."""
    only_for_forecast(config)
    delay = sequence_length(config, "the delay T", minimum=1)
    tokens = COPY_SYMBOLS + 2
    settings = head_settings(config, saved, input_size=tokens, num_outputs=tokens)
    model = build_adapter(TokenTaggerAdapter, settings).to(device)
    held_out = {"val": copy_memory(HELD_OUT_EXAMPLES, delay, seed=VAL_SEED),
                "test": copy_memory(HELD_OUT_EXAMPLES, delay, seed=TEST_SEED)}
    held_out["all"] = tuple(torch.cat(parts) for parts in zip(held_out["val"], held_out["test"]))
    baseline = copy_memory_baseline(delay, COPY_SYMBOLS, COPY_LENGTH).cross_entropy

    def batch_at(step: int) -> Batch:
        inputs, targets = copy_memory(config.batch_size, delay, seed=training_seed(config, step))
        return Batch(inputs.to(device), targets.to(device), starts_sequences=True)

    def loss(logits: Tensor, targets: Tensor) -> Tensor:
        logits = logits.float()
        return F.cross_entropy(logits.reshape(-1, tokens), targets.reshape(-1))

    def predict(inputs: Tensor) -> Tensor:
        with evaluation_mode(model):
            return torch.cat([model(inputs[rows].to(device))[0].float().cpu()
                              for rows in in_chunks(len(inputs), 500)])

    def evaluate(split: str) -> dict[str, float]:
        inputs, targets = held_out[split]
        logits = predict(inputs)
        copied = logits[:, -COPY_LENGTH:].argmax(dim=-1) != targets[:, -COPY_LENGTH:]
        return {"cross_entropy": F.cross_entropy(logits.reshape(-1, tokens),
                                                 targets.reshape(-1)).item(),
                "copy_error_rate": copied.float().mean().item(),
                "baseline_cross_entropy": baseline}

    def showcase() -> str:
        inputs, targets = held_out["val"]
        predicted = predict(inputs[:3])[:, -COPY_LENGTH:].argmax(dim=-1)
        return "validation examples (symbols to copy -> copied):\n" + "\n".join(
            f"{''.join(map(str, t.tolist()))} -> {''.join(map(str, p.tolist()))}"
            for t, p in zip(targets[:3, -COPY_LENGTH:], predicted))

    return Task(
        model=model, batch_at=batch_at,
        steps_per_epoch=math.ceil(EXAMPLES_PER_EPOCH / config.batch_size), loss=loss,
        evaluate=evaluate, metric="cross_entropy",
        metric_names=("cross_entropy", "copy_error_rate", "baseline_cross_entropy"),
        saved={"model": settings, "length": delay}, showcase=showcase,
    )


__all__ = [
    "ClassifierAdapter", "ForecasterAdapter", "RegressorAdapter", "Seq2SeqAdapter",
    "TokenTaggerAdapter", "adding_task", "classification_task", "copy_task",
    "forecasting_task", "g2p_task", "shuffled_rows",
]
