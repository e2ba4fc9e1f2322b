"""The Free Spoken Digit Dataset (bundled), its speaker-independent splits, and digit strings.

2,500 recordings of the digits 0-9 spoken in English by five speakers with different accents
(:data:`SPEAKERS`), 50 of each digit per speaker, 8 kHz mono (Jackson et al.; CC BY-SA 4.0,
see ``rnnkit/data/files/fsdd/LICENSE``). They are bundled losslessly as one FLAC file per
speaker with an index (:func:`load_fsdd`).

:func:`fsdd_split` splits them by the data set's own rule (recordings 0-4 of every speaker
and digit are the test set) or speaker-independently (one speaker's 500 recordings are the
test set, the model never hears that voice in training). :func:`make_digit_strings` joins
recordings of one speaker into spoken digit strings of 1-7 digits with random pauses, level
changes and background noise, the connected-digit task's utterances; like the handwriting
lines, string ``i`` of a split and seed is always the same.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import soundfile

from rnnkit.data.audio import SAMPLE_RATE
from rnnkit.data.bundle import DataError, bundled_path

SPEAKERS = ("george", "jackson", "nicolas", "theo", "yweweler")
ACCENTS = {"george": "Greek", "jackson": "US", "nicolas": "Belgian French", "theo": "US",
           "yweweler": "German"}
OWN_TEST_INDICES = range(0, 5)
"""The data set's own split: recordings 0-4 of every speaker and digit are the test set."""
VAL_INDICES = range(5, 10)
"""Recordings 5-9 of every training speaker and digit validate (choose the checkpoint)."""
SPLITS = ("train", "val", "test")
MAX_STRING_DIGITS = 7
PAUSE_SECONDS = (0.0, 0.3)
"""Silence before, between and after the digits of a string, drawn uniformly per gap."""
LEVEL_DB = (-6.0, 6.0)
"""Each digit's level change, and (separately) the whole string's."""
NOISE_SNR_DB = (10.0, 40.0)
"""Background noise of a string, below its speech power."""


@dataclass(frozen=True)
class Recording:
    """One recording: the digit spoken, its speaker, its index (0-49) and the samples
    (float32 mono at :data:`~rnnkit.data.audio.SAMPLE_RATE`)."""

    digit: int
    speaker: str
    index: int
    samples: np.ndarray

    @property
    def name(self) -> str:
        """The data set's file name, e.g. ``"7_theo_12.wav"``."""
        return f"{self.digit}_{self.speaker}_{self.index}.wav"


@lru_cache(maxsize=1)
def load_fsdd() -> tuple[Recording, ...]:
    """All 2,500 bundled recordings, by speaker, digit and index."""
    recordings = []
    with open(bundled_path("fsdd/index.csv"), newline="") as index:
        rows = list(csv.DictReader(index))
    audio = {}
    for speaker in SPEAKERS:
        samples, rate = soundfile.read(bundled_path(f"fsdd/{speaker}.flac"), dtype="float32")
        if rate != SAMPLE_RATE:
            raise DataError(f"fsdd/{speaker}.flac: expected {SAMPLE_RATE} Hz, got {rate}")
        audio[speaker] = samples
    for row in rows:
        start, frames = int(row["start"]), int(row["frames"])
        recordings.append(Recording(int(row["digit"]), row["speaker"], int(row["index"]),
                                    audio[row["speaker"]][start:start + frames]))
    return tuple(recordings)


def check_speaker(name: str) -> str:
    """``name`` if it is one of :data:`SPEAKERS`, else ValueError listing them."""
    if name not in SPEAKERS:
        raise ValueError(f"unknown speaker {name!r}; the data set's speakers are "
                         f"{', '.join(SPEAKERS)}")
    return name


def fsdd_split(holdout: str | None = None, without: Sequence[str] = ()
               ) -> dict[str, list[Recording]]:
    """The recordings of "train", "val" and "test".

    ``holdout`` None: the data set's own split -- test are recordings 0-4 of every speaker
    and digit (250), validation recordings 5-9 (250), training the rest (2,000). ``holdout``
    a speaker: test are that speaker's 500 recordings; validation recordings 5-9 of the other
    four (200), training the rest of theirs (1,800). So the test speaker never appears in
    training or in choosing the checkpoint.

    ``without`` speakers are left out of every part: holding out one speaker without another
    is an inner fold of the other's leave-one-speaker-out fold, for choosing settings without
    ever hearing the outer test speaker.
    """
    if holdout is not None:
        check_speaker(holdout)
    for name in without:
        check_speaker(name)
        if name == holdout:
            raise ValueError(f"speaker {name!r} cannot be both held out and left out")
    split: dict[str, list[Recording]] = {name: [] for name in SPLITS}
    for recording in load_fsdd():
        if recording.speaker in without:
            continue
        if holdout is None and recording.index in OWN_TEST_INDICES:
            split["test"].append(recording)
        elif recording.speaker == holdout:
            split["test"].append(recording)
        elif recording.index in VAL_INDICES:
            split["val"].append(recording)
        else:
            split["train"].append(recording)
    return split


def _decibels(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return 10 ** (rng.uniform(*bounds) / 20)


def make_digit_string(recordings: list[Recording], rng: np.random.Generator,
                      min_digits: int = 1, max_digits: int = MAX_STRING_DIGITS
                      ) -> tuple[np.ndarray, list[int]]:
    """One spoken digit string drawn by ``rng`` from ``recordings``: (samples, digits).

    A speaker is drawn, then 1-7 digits (uniformly), each spoken by one of that speaker's
    recordings of it at a level changed by up to 6 dB; the recordings are joined with pauses
    of 0-0.3 s (also before the first and after the last), the whole string's level changed
    by up to 6 dB, and white noise 10-40 dB below the speech power added throughout.
    """
    speakers = sorted({r.speaker for r in recordings})
    speaker = speakers[int(rng.integers(len(speakers)))]
    by_digit: dict[int, list[Recording]] = {}
    for recording in recordings:
        if recording.speaker == speaker:
            by_digit.setdefault(recording.digit, []).append(recording)
    available = sorted(by_digit)
    count = int(rng.integers(min_digits, max_digits + 1))
    digits = [available[int(rng.integers(len(available)))] for _ in range(count)]
    pieces = []
    for digit in digits:
        pieces.append(np.zeros(int(rng.uniform(*PAUSE_SECONDS) * SAMPLE_RATE), np.float32))
        spoken = by_digit[digit][int(rng.integers(len(by_digit[digit])))]
        pieces.append(spoken.samples * _decibels(rng, LEVEL_DB))
    pieces.append(np.zeros(int(rng.uniform(*PAUSE_SECONDS) * SAMPLE_RATE), np.float32))
    level = _decibels(rng, LEVEL_DB)
    speech = np.concatenate(pieces) * level
    power = float(np.mean(np.concatenate(pieces[1::2]) ** 2)) * level ** 2
    noise_power = power / 10 ** (rng.uniform(*NOISE_SNR_DB) / 10)
    noisy = speech + rng.normal(0.0, np.sqrt(noise_power), len(speech))
    return np.clip(noisy, -1.0, 1.0).astype(np.float32), digits


def make_digit_strings(recordings: list[Recording], count: int, seed: int, split: str, *,
                       start: int = 0, min_digits: int = 1,
                       max_digits: int = MAX_STRING_DIGITS) -> list[tuple[np.ndarray, list[int]]]:
    """Strings ``start .. start+count-1`` of the seeded stream of ``split``'s strings
    (:func:`make_digit_string`); the same arguments always give the same strings."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if not 1 <= min_digits <= max_digits:
        raise ValueError(f"need 1 <= min_digits <= max_digits, got {min_digits}, {max_digits}")
    if not recordings:
        raise ValueError("need at least one recording to make digit strings from")
    code = SPLITS.index(split)
    return [make_digit_string(recordings, np.random.default_rng([seed, code, i]), min_digits,
                              max_digits) for i in range(start, start + count)]
