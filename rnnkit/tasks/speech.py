"""``rnnkit train --task speech``: spoken digits, isolated or connected, from unseen speakers.

The data are the bundled Free Spoken Digit Dataset's 2,500 recordings (:mod:`rnnkit.data.fsdd`),
read as log-mel features computed on the fly (:mod:`rnnkit.data.audio`), each recording's
features normalised by its own mean and spread. ``--data`` says what to learn and how to
split (:func:`parse_data`):

* ``fsdd`` -- isolated digits: one recording in, one digit out. Two convolutions over time
  and frequency band, then a (by default bidirectional, two-layer GRU)
  :class:`~rnnkit.models.SequenceClassifier` that averages its outputs over the recording
  (:class:`~rnnkit.models.spectrogram.SpectrogramClassifier`). Metrics: ``error_rate``
  (1 - accuracy) and ``cross_entropy``.
* ``fsdd-strings`` -- connected digits: strings of 1-7 digits, made by joining recordings of
  one speaker with random pauses, level changes and background noise
  (:func:`~rnnkit.data.fsdd.make_digit_strings`), read by the handwriting task's CTC
  recognizer (:class:`~rnnkit.models.ctc.LineRecognizer`, bidirectional, or unidirectional
  with ``--no-bidirectional``) frame by frame. Metrics: ``cer`` (character error rate) and
  ``string_error`` (share of strings not read exactly).

``:SPEAKER`` after either name holds that speaker out (``fsdd:theo``): the test set is their
500 recordings (or strings made of them), never heard in training or in choosing the
checkpoint; without it the test set is the data set's own split, recordings 0-4. Speakers
after it (``fsdd:theo-george``) are left out of every part: an inner fold, for choosing
settings without the outer test speaker. ``/OPTIONS`` after the name (a comma list, or
``/none``) picks the training augmentations -- ``speed`` perturbation by 0.9-1.1, white
``noise`` 5-40 dB below the speech in half the recordings, SpecAugment ``mask`` of bands and
frames, ``warp`` (vocal tract length perturbation of the filterbank by 0.85-1.15), ``mixup``
(isolated digits) -- and the feature switches ``lifter`` and ``floor``
(:data:`FEATURE_SWITCHES`), which recognition applies too; :data:`DEFAULT_OPTIONS` otherwise.

:func:`recognize_recordings` reads users' WAV or FLAC files with a trained run
(``rnnkit recognize``); :func:`ctc_figure` gives what ``rnnkit inspect --ctc`` draws. Every
problem with the user's input raises :class:`~rnnkit.data.DataError` or
:class:`~rnnkit.training.errors.RunError` with a one-line message.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.data.audio import (
    N_MELS,
    SAMPLE_RATE,
    WINDOW,
    add_noise,
    audio_files,
    change_speed,
    log_mel,
    mask_features,
    normalise_features,
    pad_waveforms,
    read_audio,
    resample,
    smooth_cepstrally,
    stack_frames,
    trim_silence,
)
from rnnkit.data.fsdd import (
    MAX_STRING_DIGITS,
    SPEAKERS,
    Recording,
    fsdd_split,
    make_digit_strings,
)
from rnnkit.models import ModelOutput, evaluation_mode
from rnnkit.models.ctc import (
    LineRecognizer,
    LineRecognizerConfig,
    beam_decode,
    collapse_path,
    greedy_decode,
)
from rnnkit.models.spectrogram import SpectrogramClassifier
from rnnkit.tasks.classify import ClassifierAdapter, classification_metrics, confusion_table
from rnnkit.tasks.handwriting import (
    RecognizerForTraining,
    digits_text,
    score_lines,
    showcase_lines,
)
from rnnkit.training.checkpoint import load_checkpoint
from rnnkit.training.config import TrainConfig
from rnnkit.training.errors import RunError
from rnnkit.training.run_dir import RunDirectory
from rnnkit.training.task import Batch, Task, build_model, head_settings, in_chunks, shuffled_rows

TASK = "speech"
DESCRIPTION = ("spoken digits (bundled FSDD): isolated (fsdd) or connected strings with CTC "
               "(fsdd-strings), any speaker held out (fsdd:theo)")

DEFAULTS: dict[str, Any] = {
    "data": "fsdd", "cell": "gru", "hidden_size": 128, "layers": 2, "bidirectional": True,
    "dropout": 0.2, "batch_size": 32, "weight_decay": 0.01, "warmup": 50, "eval_every": 100,
    "time_limit": None,
}
"""A two-layer bidirectional GRU; its length, given no --steps, --epochs or --time-limit, is
a fixed number of passes over the training recordings (:data:`DEFAULT_EPOCHS`), so that a
result does not depend on the machine's load."""

ISOLATED, STRINGS = "fsdd", "fsdd-strings"
DEFAULT_EPOCHS = {ISOLATED: 20, STRINGS: 60}
"""Passes over the training recordings of a run given no length. 20 are about 1,100 steps
for isolated digits (0.2-0.3 s each with one thread on a shared 2-core machine: 4-6
minutes, the best checkpoint at 800-1,100). A string step reads about four recordings' worth
of audio per string, so 20 epochs of strings are only 300 steps, about 3 minutes, after which
every fold's validation CER was still falling; 60 are 900 steps, about 10 minutes
(results page: both measured)."""
AUGMENTATIONS = ("speed", "warp", "noise", "mask", "mixup")
FEATURE_SWITCHES = ("lifter", "floor")
"""Feature choices: ``lifter`` smooths each frame's log-mel bands to the envelope of its first
:data:`LIFTER_KEEP` cepstra (:func:`~rnnkit.data.audio.smooth_cepstrally`); ``floor`` reads
every band at least :data:`FLOOR_DB` dB below the recording's loudest (``range_db`` of
:func:`~rnnkit.data.audio.log_mel`). A run keeps them in its checkpoint, and recognition reads
recordings as it was trained to."""
OPTIONS = AUGMENTATIONS + FEATURE_SWITCHES
DEFAULT_OPTIONS = ("speed", "noise", "mask")
"""What training uses unless ``--data`` names others (results page: what each measured)."""
LIFTER_KEEP = 13
FLOOR_DB = 50.0
MIXUP_ALPHA = 0.4
"""Mixup (Zhang et al. 2018; isolated digits only): each training recording's features are
mixed with another's of its batch, share ~ Beta(0.4, 0.4) folded to >= 0.5 for its own, and
so are the two digits in the loss."""
SPEED_RANGE = (0.9, 1.1)
WARP_RANGE = (0.85, 1.15)
"""Frequency warping of the mel filterbank (vocal tract length perturbation)."""
NOISE_SHARE = 0.5
"""Share of training recordings given white noise, at :data:`NOISE_SNR_DB` below them."""
NOISE_SNR_DB = (5.0, 40.0)
STACK = 2
"""Consecutive 10 ms frames the recurrent layer reads as one step (20 ms steps)."""
FRONT_CHANNELS = 16
"""Channels of the isolated-digit model's convolutional front end."""
VAL_STRINGS = 200
TEST_STRINGS = 500
EVAL_SEED = 0
"""The validation and test strings are fixed (this seed), whatever a run's seed."""
EVAL_BATCH = 100
MEAN_STRING_DIGITS = (1 + MAX_STRING_DIGITS) / 2


@dataclass(frozen=True)
class SpeechData:
    """What ``--data`` asks for: connected ``strings`` or isolated digits, the speaker held
    out (None: the data set's own split), speakers left out altogether (``without``), the
    training augmentations and the feature switches (:data:`FEATURE_SWITCHES`)."""

    strings: bool
    holdout: str | None
    augment: tuple[str, ...]
    features: tuple[str, ...] = ()
    without: tuple[str, ...] = ()


def parse_data(data: str) -> SpeechData:
    """``NAME[:SPEAKER[-LEFT_OUT...]][/OPTIONS]``: NAME ``fsdd`` (isolated digits) or
    ``fsdd-strings`` (connected digits); SPEAKER one of :data:`~rnnkit.data.fsdd.SPEAKERS`,
    held out as the test set; LEFT_OUT speakers after it (``fsdd:theo-george``) are in no
    part (an inner fold); OPTIONS a comma list of :data:`OPTIONS` or ``none`` (default
    :data:`DEFAULT_OPTIONS`). Else RunError."""
    expected = (f"give --data {ISOLATED} or {STRINGS}, optionally :SPEAKER to hold one of "
                f"{', '.join(SPEAKERS)} out (-OTHER to leave others out too) and /OPTIONS "
                f"({','.join(OPTIONS)} or none), e.g. {ISOLATED}:theo")
    rest, _, option_text = data.partition("/")
    name, _, speakers = rest.partition(":")
    if name not in (ISOLATED, STRINGS):
        raise RunError(f"--data {data!r}: the speech task reads the bundled spoken digits; "
                       f"{expected}")
    holdout, *without = speakers.split("-")
    for speaker in [holdout, *without] if ":" in rest else []:
        if speaker not in SPEAKERS:
            raise RunError(f"--data {data!r}: unknown speaker {speaker!r}; {expected}")
    if len({holdout, *without}) < 1 + len(without) or 1 + len(without) > len(SPEAKERS) - 2:
        raise RunError(f"--data {data!r}: each speaker once, at least two left to train on; "
                       f"{expected}")
    options = DEFAULT_OPTIONS
    if "/" in data:
        options = () if option_text == "none" else tuple(option_text.split(","))
        unknown = [a for a in options if a not in OPTIONS]
        if unknown or not option_text:
            wrong = unknown[0] if unknown else ""
            raise RunError(f"--data {data!r}: unknown option {wrong!r}; {expected}")
    if name == STRINGS and "mixup" in options:
        raise RunError(f"--data {data!r}: mixup mixes the labels of isolated digits, not digit "
                       f"strings; leave it out of {STRINGS}'s options")
    return SpeechData(name == STRINGS, holdout or None,
                      tuple(o for o in options if o in AUGMENTATIONS),
                      tuple(o for o in options if o in FEATURE_SWITCHES), tuple(without))


def default_length(name: str, steps_per_epoch: int) -> tuple[int, str]:
    """(steps, why) of a run of ``name`` (:data:`ISOLATED` or :data:`STRINGS`) given no
    length: :data:`DEFAULT_EPOCHS` passes of ``steps_per_epoch`` steps."""
    epochs = DEFAULT_EPOCHS[name]
    return epochs * steps_per_epoch, (f"{epochs * steps_per_epoch:,} steps: the default "
                                      f"{epochs} epochs of {name}; --steps, --epochs or "
                                      "--time-limit sets another length")


def features_of(waves: Sequence[Tensor | np.ndarray], masks: torch.Generator | None = None,
                warps: Sequence[float] | None = None, switches: Sequence[str] = ()
                ) -> tuple[Tensor, Tensor]:
    """The recurrent layer's input for waveforms at 8 kHz: normalised log-mel features,
    :data:`STACK` frames a step, (B, T, STACK * N_MELS), and each one's step count (B,).
    ``masks`` (training) draws SpecAugment masks; ``warps`` warps each one's filterbank;
    ``switches`` are the run's :data:`FEATURE_SWITCHES`."""
    features, frames = log_mel(*pad_waveforms(waves), warps=warps,
                               range_db=FLOOR_DB if "floor" in switches else None)
    if "lifter" in switches:
        features = smooth_cepstrally(features, LIFTER_KEEP)
    features = normalise_features(features, frames)
    if masks is not None:
        features = mask_features(features, frames, masks)
    return stack_frames(features, frames, STACK)


def augmented(wave: np.ndarray, augment: tuple[str, ...], rng: np.random.Generator,
              generator: torch.Generator) -> Tensor:
    """A training waveform with the chosen speed change and noise (:data:`AUGMENTATIONS`)."""
    samples = torch.from_numpy(wave)
    if "speed" in augment:
        samples = change_speed(samples, float(rng.uniform(*SPEED_RANGE)))
    if "noise" in augment and rng.random() < NOISE_SHARE:
        samples = add_noise(samples, float(rng.uniform(*NOISE_SNR_DB)), generator)
    return samples


def training_features(waves: Sequence[np.ndarray], augment: tuple[str, ...], seed: int,
                      step: int, switches: Sequence[str] = ()) -> tuple[Tensor, Tensor]:
    """:func:`features_of` the waveforms of training ``step``, augmented; the same for the
    same seed and step (so a resumed run repeats them)."""
    rng = np.random.default_rng([seed, step, 1])
    generator = torch.Generator().manual_seed(seed * 1_000_003 + step)
    inputs = [augmented(wave, augment, rng, generator) for wave in waves]
    warps = rng.uniform(*WARP_RANGE, len(waves)) if "warp" in augment else None
    return features_of(inputs, generator if "mask" in augment else None, warps, switches)


def speech_task(config: TrainConfig, device: torch.device,
                saved: dict[str, Any] | None = None) -> Task:
    """The isolated- or connected-digit task of ``config.data`` (see the module's docstring);
    ``saved`` (from a checkpoint) fixes the model's sizes."""
    data = parse_data(config.data)
    if saved is not None and saved.get("strings") != data.strings:
        kind = "connected digits" if saved.get("strings") else "isolated digits"
        raise RunError(f"--data {config.data}: the run's model reads {kind}; give --data "
                       f"{STRINGS if saved.get('strings') else ISOLATED}[:SPEAKER]")
    split = fsdd_split(data.holdout, data.without)
    if data.strings:
        return _strings_task(config, device, saved, data, split)
    return _isolated_task(config, device, saved, data, split)


class DigitClassifier(ClassifierAdapter):
    """:class:`~rnnkit.models.spectrogram.SpectrogramClassifier` as the isolated-digit task's
    model: ((features (B, T, F), steps (B,)), state, digits (B,)) -> (scores (B, 10), None,
    cross-entropy). Mixed training batches (:data:`MIXUP_ALPHA`) give the targets as (digits
    (B,), partners' digits (B,), own shares (B,)), and the loss is the shares' mix of the two
    cross-entropies."""

    head_class = SpectrogramClassifier

    def forward(self, inputs: tuple[Tensor, Tensor], state: Any = None,
                targets: Tensor | tuple[Tensor, Tensor, Tensor] | None = None) -> ModelOutput:
        """Digit scores of a padded batch, and their loss against ``targets``."""
        if not isinstance(targets, tuple):
            return super().forward(inputs, state, targets)
        own, partner, shares = targets
        scores = super().forward(inputs, state).outputs
        losses = (shares * F.cross_entropy(scores.float(), own, reduction="none")
                  + (1 - shares) * F.cross_entropy(scores.float(), partner, reduction="none"))
        return ModelOutput(scores, None, losses.mean())


def mix_batch(features: Tensor, frames: Tensor, digits: Tensor, rng: np.random.Generator
              ) -> tuple[Tensor, Tensor, tuple[Tensor, Tensor, Tensor]]:
    """Mixup of a padded training batch (:data:`MIXUP_ALPHA`): features, step counts (the
    longer of each pair) and the targets :class:`DigitClassifier` reads."""
    shares = rng.beta(MIXUP_ALPHA, MIXUP_ALPHA, len(digits))
    shares = torch.from_numpy(np.maximum(shares, 1 - shares)).float()
    partners = torch.from_numpy(rng.permutation(len(digits)))
    weights = shares.view(-1, 1, 1)
    mixed = weights * features + (1 - weights) * features[partners]
    return (mixed, torch.maximum(frames, frames[partners]),
            (digits, digits[partners], shares))


BUCKET_STEPS = 8
"""Training batches are formed from the recordings of this many steps at a time, sorted by
length, so that a batch pads little (each step half as long)."""


def similar_lengths(lengths: Tensor, batch_size: int, step: int, seed: int) -> Tensor:
    """Rows of training ``step``'s batch: the rows of :data:`BUCKET_STEPS` steps
    (:func:`~rnnkit.training.task.shuffled_rows`, so every epoch reads every row once)
    sorted by ``lengths`` and cut into batches, which are taken in a seeded random order."""
    group, place = divmod(step, BUCKET_STEPS)
    rows = shuffled_rows(len(lengths), batch_size * BUCKET_STEPS, group, seed)
    rows = rows[torch.sort(lengths[rows], stable=True).indices]
    order = torch.randperm(BUCKET_STEPS, generator=torch.Generator().manual_seed(
        seed * 1_000_003 + group))
    first = int(order[place]) * batch_size
    return rows[first:first + batch_size]


def _isolated_task(config: TrainConfig, device: torch.device, saved: dict[str, Any] | None,
                   data: SpeechData, split: dict[str, list[Recording]]) -> Task:
    settings = head_settings(config, saved, bands=N_MELS, num_outputs=10,
                             frames_per_step=STACK, channels=FRONT_CHANNELS, pooling="mean")
    model = build_model(DigitClassifier, settings).to(device)
    train = split["train"]
    labels = torch.tensor([r.digit for r in train])
    lengths = torch.tensor([len(r.samples) for r in train])
    held_out: dict[str, tuple[list[tuple[Tensor, Tensor]], Tensor]] = {}

    def batch_at(step: int) -> Batch:
        rows = similar_lengths(lengths, config.batch_size, step, config.seed)
        features, frames = training_features([train[int(i)].samples for i in rows],
                                             data.augment, config.seed, step, data.features)
        targets: Tensor | tuple[Tensor, ...] = labels[rows]
        if "mixup" in data.augment:
            features, frames, targets = mix_batch(features, frames, labels[rows],
                                                  np.random.default_rng([config.seed, step, 2]))
            targets = tuple(t.to(device) for t in targets)
        else:
            targets = targets.to(device)
        return Batch((features.to(device), frames.to(device)), targets, starts_sequences=True)

    def scores(name: str) -> tuple[Tensor, Tensor]:
        if name == "all":
            parts = [scores(part) for part in ("val", "test")]
            return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
        if name not in held_out:
            recordings = split[name]
            held_out[name] = ([features_of([r.samples for r in recordings[rows]],
                                           switches=data.features)
                               for rows in in_chunks(len(recordings), EVAL_BATCH)],
                              torch.tensor([r.digit for r in recordings]))
        chunks, targets = held_out[name]
        with evaluation_mode(model):
            outputs = [model((f.to(device), n.to(device))).outputs.float().cpu()
                       for f, n in chunks]
        return torch.cat(outputs), targets

    return Task(
        model=model, batch_at=batch_at,
        steps_per_epoch=math.ceil(len(train) / config.batch_size),
        default_length=default_length(ISOLATED, math.ceil(len(train) / config.batch_size)),
        evaluate=lambda name: classification_metrics(*scores(name)),
        metric="error_rate", metric_names=("error_rate", "cross_entropy"),
        saved={"model": settings, "strings": False, "data": config.data,
               "features": list(data.features)},
        showcase=lambda: confusion_table([str(d) for d in range(10)], *scores("test"),
                                         split="test").replace(" series:", " recordings:"),
        unit="recordings",
    )


def recognizer_config(config: TrainConfig) -> LineRecognizerConfig:
    """The CTC recognizer's sizes: ``--embedding-size`` features from each step's frames,
    ``--layers`` stacked per direction."""
    return LineRecognizerConfig(
        line_height=STACK * N_MELS, cell=config.cell, hidden_size=config.hidden_size,
        num_layers=config.layers, bidirectional=config.bidirectional,
        feature_size=config.embedding_size, dropout=config.dropout)


Line = tuple[np.ndarray, list[int]]
"""A string's features as a line (features, steps) -- the handwriting task's layout -- and
its digits."""


def as_lines(waves: Sequence[np.ndarray], labels: Sequence[list[int]],
             switches: Sequence[str] = ()) -> list[Line]:
    """Recordings as the lines the CTC recognizer's helpers read (features transposed)."""
    lines: list[Line] = []
    for rows in in_chunks(len(waves), EVAL_BATCH):
        features, steps = features_of(list(waves[rows]), switches=switches)
        lines.extend((features[i, :int(steps[i])].T.numpy(), list(labels[rows][i]))
                     for i in range(len(steps)))
    return lines


def _strings_task(config: TrainConfig, device: torch.device, saved: dict[str, Any] | None,
                  data: SpeechData, split: dict[str, list[Recording]]) -> Task:
    model_config = (LineRecognizerConfig(**saved["model"]) if saved
                    else recognizer_config(config))
    model = RecognizerForTraining(build_model(LineRecognizer, model_config)).to(device)
    held_out: dict[str, list[Line]] = {}

    def strings_of(name: str) -> list[Line]:
        if name == "all":
            return strings_of("val") + strings_of("test")
        if name not in held_out:
            count = VAL_STRINGS if name == "val" else TEST_STRINGS
            made = make_digit_strings(split[name], count, EVAL_SEED, name)
            held_out[name] = as_lines([w for w, _ in made], [d for _, d in made],
                                      data.features)
        return held_out[name]

    def batch_at(step: int) -> Batch:
        digits = int(np.random.default_rng([config.seed, step]).integers(
            1, MAX_STRING_DIGITS + 1))
        made = make_digit_strings(split["train"], config.batch_size, config.seed, "train",
                                  start=step * config.batch_size, min_digits=digits,
                                  max_digits=digits)
        features, steps = training_features([w for w, _ in made], data.augment, config.seed,
                                            step, data.features)
        targets = torch.tensor([d for _, d in made]) + 1
        return Batch((features.to(device), steps.to(device)),
                     (targets.to(device), torch.full((len(made),), digits, device=device)),
                     starts_sequences=True)

    def evaluate(name: str) -> dict[str, float]:
        scores = score_lines(model.recognizer, strings_of(name))
        return {"cer": scores["cer"], "string_error": 1.0 - scores["line_accuracy"]}

    per_step = MEAN_STRING_DIGITS * config.batch_size
    return Task(
        model=model, batch_at=batch_at,
        steps_per_epoch=max(1, math.ceil(len(split["train"]) / per_step)),
        default_length=default_length(
            STRINGS, max(1, math.ceil(len(split["train"]) / per_step))),
        evaluate=evaluate, metric="cer", metric_names=("cer", "string_error"),
        saved={"model": dataclasses.asdict(model_config), "strings": True, "data": config.data,
               "features": list(data.features)},
        showcase=lambda: showcase_lines(model.recognizer, strings_of("test")[:8]).replace(
            "test line", "test string"),
        unit="recordings",
    )


def load_speech_model(run_dir: str | os.PathLike[str]) -> tuple[nn.Module, bool]:
    """The best checkpoint's model of a speech run in eval mode -- a
    :class:`~rnnkit.models.spectrogram.SpectrogramClassifier` or a :class:`LineRecognizer` --
    and whether it reads digit strings. A missing or damaged run, or a run of another task,
    raises RunError."""
    model, strings, _ = load_speech_run(run_dir)
    return model, strings


def load_speech_run(run_dir: str | os.PathLike[str]
                    ) -> tuple[nn.Module, bool, tuple[str, ...]]:
    """:func:`load_speech_model` and the run's feature switches (:data:`FEATURE_SWITCHES`),
    with which its model reads recordings."""
    run = RunDirectory.open(run_dir)
    task = run.read_config().task
    if task != TASK:
        raise RunError(f"{run.path}: is a run of task {task!r}, not speech; give a run "
                       "directory written by `rnnkit train --task speech`")
    checkpoint = load_checkpoint(run.checkpoint_for_use())
    try:
        saved = checkpoint.info["task"]
        strings = bool(saved["strings"])
        if strings:
            model: nn.Module = RecognizerForTraining(
                build_model(LineRecognizer, LineRecognizerConfig(**saved["model"])))
        else:
            model = build_model(DigitClassifier, saved["model"])
        checkpoint.restore_model(model)
        switches = tuple(saved.get("features", ()))
    except (KeyError, TypeError):
        raise RunError(f"{run.path}: its checkpoint does not describe a speech model; train "
                       "it again with `rnnkit train --task speech`") from None
    inner = model.recognizer if strings else model.net
    return inner.eval(), strings, switches


def recording_features(path: str | os.PathLike[str], switches: Sequence[str] = ()) -> Tensor:
    """A user's recording as the model reads it: read and resampled (:func:`read_audio`),
    its quiet start and end cut (:func:`trim_silence`), features (T, F) with the run's
    feature ``switches``."""
    wave = trim_silence(read_audio(path))
    return features_of([wave], switches=switches)[0][0]


def recognize_recordings(run_dir: str | os.PathLike[str],
                         paths: Sequence[str | os.PathLike[str]],
                         beam_size: int | None = None) -> list[tuple[Path, str]]:
    """The digits a speech run hears in each recording (files, or folders of them):
    ``(path, digits)`` pairs in order. Every file is read (and a bad one reported, naming it)
    before any is recognised. Strings are decoded by best path, or prefix beam search with
    ``beam_size`` beams."""
    if beam_size is not None and beam_size < 1:
        raise RunError(f"--beam must be >= 1, got {beam_size}")
    model, strings, switches = load_speech_run(run_dir)
    files = audio_files(paths)
    features = [recording_features(path, switches) for path in files]
    found = []
    with torch.no_grad():
        for path, steps in zip(files, features):
            if strings:
                log_probs = model(steps.unsqueeze(0)).outputs
                classes = (greedy_decode(log_probs) if beam_size is None
                           else beam_decode(log_probs, beam_size=beam_size))[0]
                found.append((path, digits_text(classes)))
            else:
                found.append((path, str(int(model(steps.unsqueeze(0)).outputs.argmax()))))
    return found


STREAM_CHUNK_MS = 200
"""How much audio ``rnnkit recognize --stream`` reads at a time."""
SETTLED_STEPS = 5
"""A digit streamed out must have been emitted at least this many steps (100 ms) before the
end of the audio read so far."""


def stream_digits(run_dir: str | os.PathLike[str], path: str | os.PathLike[str],
                  chunk_ms: int = STREAM_CHUNK_MS) -> Iterator[str]:
    """The digits a unidirectional connected-digit run hears in a recording, yielded as the
    file is read, :data:`STREAM_CHUNK_MS` ms at a time (``rnnkit recognize --stream``).

    After each chunk the model reads all the audio so far (its features normalised over it) and
    decodes it by best path; a digit is yielded once it was emitted at least
    :data:`SETTLED_STEPS` steps before the end of that audio, and is never taken back. At the
    end of the file the rest of the final reading follows. A unidirectional model's output at a
    step depends only on the audio up to it (and the normalisation), so the digits come as the
    audio does. A bidirectional or isolated-digit run, or a bad file, raises RunError or
    DataError.
    """
    if chunk_ms < 10:
        raise RunError(f"--chunk-ms must be >= 10, got {chunk_ms}")
    model, strings, switches = load_speech_run(run_dir)
    if not strings or model.config.bidirectional:
        raise RunError(f"--stream needs a unidirectional connected-digit run (rnnkit train "
                       f"--task speech --data {STRINGS} --no-bidirectional); {run_dir} "
                       + ("reads isolated digits" if not strings else "is bidirectional"))
    whole = read_audio(path)  # checks the file, naming it, before anything is streamed
    rate = soundfile.info(str(path)).samplerate
    heard: list[np.ndarray] = []
    said = 0
    blocks = soundfile.blocks(str(path), blocksize=max(1, rate * chunk_ms // 1000),
                              dtype="float32", always_2d=True)
    for block in blocks:
        chunk = block.mean(axis=1)
        if rate != SAMPLE_RATE:
            chunk = resample(torch.from_numpy(chunk), rate, SAMPLE_RATE).numpy()
        heard.append(chunk)
        audio = np.concatenate(heard)
        if len(audio) < WINDOW:
            continue
        path_classes = _best_path(model, audio, switches)
        settled = collapse_path(path_classes[:max(0, len(path_classes) - SETTLED_STEPS)])
        for classes in settled[said:]:
            yield digits_text([classes])
        said = max(said, len(settled))
    final = collapse_path(_best_path(model, whole, switches))
    for classes in final[said:]:
        yield digits_text([classes])


def _best_path(model: nn.Module, wave: np.ndarray, switches: Sequence[str]) -> list[int]:
    """The most likely class at every step of a recording."""
    with torch.no_grad():
        return model(features_of([wave], switches=switches)[0]).outputs[0].argmax(-1).tolist()


def ctc_figure(run_dir: str | os.PathLike[str], path: str | os.PathLike[str]
               ) -> tuple[np.ndarray, np.ndarray, str]:
    """What ``rnnkit inspect --ctc`` draws for a connected-digit run and a recording: its
    log-mel bands (40, T), the per-step class probabilities (T, 11) and a title."""
    model, strings, switches = load_speech_run(run_dir)
    if not strings:
        raise RunError(f"--ctc needs a connected-digit run (--data {STRINGS}); {run_dir} "
                       "reads isolated digits")
    features = recording_features(path, switches)
    with torch.no_grad():
        log_probs = model(features.unsqueeze(0)).outputs[0]
    title = f"{Path(path).name}: read {digits_text(greedy_decode(log_probs)[0])}"
    # Each step's first frame, low bands at the bottom, as a spectrogram is drawn.
    return features[:, :N_MELS].T.flip(0).numpy(), log_probs.exp().numpy(), title


__all__ = ["DEFAULTS", "DESCRIPTION", "SpeechData", "ctc_figure", "features_of",
           "load_speech_model", "load_speech_run", "parse_data", "recognize_recordings",
           "speech_task", "stream_digits"]
