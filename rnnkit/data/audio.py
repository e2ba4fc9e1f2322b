"""Audio in: reading recordings, resampling, log-mel features and augmentation, in torch.

:func:`read_audio` reads a WAV, FLAC or any other file libsndfile reads (through
`soundfile <https://python-soundfile.readthedocs.io>`_), of any sample rate and channel
count, as mono float samples at the rate asked for; a missing, empty, damaged, silent or too
short file raises :class:`~rnnkit.data.DataError` naming the file. :func:`log_mel` turns a
padded batch of waveforms into log-mel features with ``torch.stft`` and a triangular mel
filterbank (:func:`mel_filterbank`); :func:`normalise_features` takes each recording's own
mean and spread off every band (which removes the level and most of the microphone's
colouring). The augmentations change speed (and with it pitch), level and background noise
of waveforms and mask bands and frames of features (SpecAugment, Park et al. 2019).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
import soundfile
import torch
from torch import Tensor

from rnnkit.data.bundle import DataError

SAMPLE_RATE = 8000
"""The rate every recording is resampled to (the Free Spoken Digit Dataset's own)."""
WINDOW = 200
"""Samples per analysis window: 25 ms at 8 kHz."""
HOP = 80
"""Samples between frames: 10 ms at 8 kHz."""
N_FFT = 256
N_MELS = 40
LOG_FLOOR = 1e-6
"""Added to the mel energies before the logarithm, so digital silence stays finite."""
MIN_SECONDS = 0.1
"""Recordings shorter than this hold no spoken digit."""
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".aiff", ".aif", ".au")
"""What a folder given to ``rnnkit recognize`` is searched for."""


def read_audio(path: str | os.PathLike[str], sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """The recording at ``path`` as mono float32 samples in [-1, 1] at ``sample_rate``.

    Several channels are averaged; another rate is resampled (:func:`resample`). A missing,
    empty, unreadable, silent or too short (under :data:`MIN_SECONDS`) file raises
    :class:`DataError` with a one-line message naming it.
    """
    path = Path(path)
    if not path.is_file():
        what = "is a folder, not a recording" if path.is_dir() else "no such file"
        raise DataError(f"{path}: {what}; give a WAV or FLAC recording")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty (0 bytes); give a WAV or FLAC recording")
    try:
        samples, rate = soundfile.read(path, dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, ValueError, TypeError, EOFError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise DataError(f"{path}: not a recording soundfile can read ({reason}); give a WAV "
                        "or FLAC file") from None
    if samples.shape[0] == 0:
        raise DataError(f"{path}: the recording holds no samples; give a recording of a "
                        "spoken digit")
    mono = samples.mean(axis=1)
    if rate != sample_rate:
        mono = resample(torch.from_numpy(mono), rate, sample_rate).numpy()
    seconds = len(mono) / sample_rate
    if seconds < MIN_SECONDS:
        raise DataError(f"{path}: the recording is {seconds * 1000:.0f} ms long, too short to "
                        f"hold a spoken digit (at least {MIN_SECONDS * 1000:.0f} ms)")
    if not np.isfinite(mono).all():
        raise DataError(f"{path}: the recording holds NaN or infinite samples; save it again")
    if float(np.abs(mono).max()) == 0.0:
        raise DataError(f"{path}: the recording is silent (every sample is 0); give a "
                        "recording of someone speaking")
    return np.ascontiguousarray(mono, dtype=np.float32)


def resample(samples: Tensor, from_rate: float, to_rate: float) -> Tensor:
    """Band-limited resampling of a 1-D signal from ``from_rate`` to ``to_rate`` (Hz).

    The signal's spectrum (``torch.fft.rfft``) is cut off at the lower of the two Nyquist
    frequencies and transformed back at the new length, round(N * to / from) samples.
    Speeding a recording up by a factor s is ``resample(x, s, 1)``.
    """
    if from_rate <= 0 or to_rate <= 0:
        raise ValueError(f"rates must be > 0, got {from_rate} and {to_rate}")
    count = samples.shape[-1]
    new_count = max(1, round(count * to_rate / from_rate))
    if new_count == count:
        return samples
    spectrum = torch.fft.rfft(samples.double())
    kept = min(spectrum.shape[-1], new_count // 2 + 1)
    resized = spectrum.new_zeros(new_count // 2 + 1)
    resized[:kept] = spectrum[:kept]
    return (torch.fft.irfft(resized, n=new_count) * (new_count / count)).to(samples.dtype)


@lru_cache(maxsize=64)
def mel_filterbank(sample_rate: int = SAMPLE_RATE, n_fft: int = N_FFT,
                   n_mels: int = N_MELS, warp: float = 1.0) -> Tensor:
    """Triangular filters (n_fft // 2 + 1, n_mels), equally spaced on the mel scale
    (mel = 2595 log10(1 + f / 700)) from 0 Hz to the Nyquist frequency; each has peak 1.

    ``warp`` != 1 reads frequency f where f * warp would be: the spectrum is stretched
    (``warp`` > 1 moves formants up), as vocal tract length perturbation does (Jaitly & Hinton
    2013)."""
    def to_mel(hz: np.ndarray) -> np.ndarray:
        return 2595.0 * np.log10(1.0 + hz / 700.0)

    edges_mel = np.linspace(0.0, to_mel(np.array(sample_rate / 2)), n_mels + 2)
    edges = 700.0 * (10.0 ** (edges_mel / 2595.0) - 1.0)
    bins = warp * np.linspace(0.0, sample_rate / 2, n_fft // 2 + 1)[:, None]
    lower, centre, upper = edges[:-2], edges[1:-1], edges[2:]
    rising = (bins - lower) / (centre - lower)
    falling = (upper - bins) / (upper - centre)
    return torch.from_numpy(np.clip(np.minimum(rising, falling), 0.0, None).astype(np.float32))


def frame_count(samples: int | Tensor) -> int | Tensor:
    """Frames :func:`log_mel` makes of ``samples`` samples: one per :data:`HOP`, plus one."""
    return samples // HOP + 1


def log_mel(waveforms: Tensor, lengths: Tensor | Sequence[int] | None = None,
            n_mels: int = N_MELS, warps: Sequence[float] | None = None,
            range_db: float | None = None) -> tuple[Tensor, Tensor]:
    """Log-mel features of a padded batch of waveforms (B, N) at :data:`SAMPLE_RATE`.

    Returns features (B, T, n_mels) -- the log of each frame's mel-band energies, frames of
    :data:`WINDOW` samples (Hann window) every :data:`HOP` samples, centred -- and each
    recording's frame count (B,) (:func:`frame_count` of its length). Frames after a
    recording's end are zero. ``warps`` (B,) gives each recording a warped filterbank
    (:func:`mel_filterbank`; training augmentation). ``range_db`` raises every band energy
    of a recording to at least its loudest band energy less ``range_db`` dB, so that what
    lies further below -- the recording's own noise floor, which differs from microphone to
    microphone -- reads alike in every recording.
    """
    if waveforms.dim() != 2:
        raise ValueError(f"waveforms must be (B, N), got {tuple(waveforms.shape)}")
    if lengths is None:
        lengths = [waveforms.shape[1]] * waveforms.shape[0]
    lengths = torch.as_tensor(lengths, dtype=torch.long)
    window = torch.hann_window(WINDOW, device=waveforms.device)
    spectra = torch.stft(waveforms, N_FFT, HOP, WINDOW, window, center=True,
                         pad_mode="constant", return_complex=True)
    power = spectra.real.square() + spectra.imag.square()  # (B, F, T)
    if warps is None:
        bank = mel_filterbank(SAMPLE_RATE, N_FFT, n_mels)
    else:
        bank = torch.stack([mel_filterbank(SAMPLE_RATE, N_FFT, n_mels, round(float(w), 3))
                            for w in warps])
    energies = power.transpose(1, 2) @ bank.to(waveforms.device)
    if range_db is not None:
        peaks = energies.amax(dim=(1, 2), keepdim=True)
        energies = torch.maximum(energies, peaks * 10 ** (-range_db / 10))
    features = torch.log(energies + LOG_FLOOR)
    frames = frame_count(lengths).clamp(max=features.shape[1])
    valid = torch.arange(features.shape[1]).unsqueeze(0) < frames.unsqueeze(1)
    return features * valid.unsqueeze(-1).to(features.device), frames


def normalise_features(features: Tensor, frames: Tensor) -> Tensor:
    """Each recording's features (B, T, F) less their mean over its valid frames, divided by
    their standard deviation there (per band); frames after its end stay zero."""
    valid = (torch.arange(features.shape[1]).unsqueeze(0) < frames.unsqueeze(1))
    valid = valid.unsqueeze(-1).to(features)
    counts = frames.to(features).view(-1, 1, 1)
    mean = (features * valid).sum(1, keepdim=True) / counts
    spread = (((features - mean) * valid).square().sum(1, keepdim=True) / counts).sqrt()
    return (features - mean) / (spread + 1e-3) * valid


@lru_cache(maxsize=8)
def cepstral_smoother(bands: int, keep: int) -> Tensor:
    """(bands, bands) matrix that keeps the first ``keep`` coefficients of the orthonormal
    DCT-II of a frame of log-mel features and transforms back: ``features @ matrix`` is the
    spectral envelope the MFCCs c_0 .. c_{keep-1} describe, still as ``bands`` bands."""
    if not 1 <= keep <= bands:
        raise ValueError(f"keep must be in [1, {bands}], got {keep}")
    n = torch.arange(bands, dtype=torch.float64)
    dct = torch.cos(math.pi * (n + 0.5) * n.unsqueeze(1) / bands) * math.sqrt(2.0 / bands)
    dct[0] /= math.sqrt(2.0)  # rows are the basis vectors: dct @ dct.T = I
    return (dct[:keep].T @ dct[:keep]).float()


def smooth_cepstrally(features: Tensor, keep: int) -> Tensor:
    """Log-mel features (B, T, F) with their cepstra from ``keep`` on set to zero (liftering,
    :func:`cepstral_smoother`): the fine structure across bands -- the harmonics of the
    speaker's pitch in the low bands -- goes, the formants stay. Zero frames stay zero."""
    return features @ cepstral_smoother(features.shape[-1], keep).to(features)


def pad_waveforms(waveforms: Sequence[np.ndarray | Tensor]) -> tuple[Tensor, Tensor]:
    """A list of 1-D waveforms as a zero-padded float32 batch (B, N_max) and lengths (B,)."""
    lengths = torch.tensor([len(w) for w in waveforms], dtype=torch.long)
    batch = torch.zeros(len(waveforms), int(lengths.max()))
    for row, wave in enumerate(waveforms):
        batch[row, :len(wave)] = torch.as_tensor(wave, dtype=torch.float32)
    return batch, lengths


def fast_length(count: int) -> int:
    """The smallest length >= ``count`` whose prime factors are all 2, 3, 5 or 7: an FFT of
    that length is fast (one of a length with a large prime factor can take 10-20 times as
    long)."""
    length = max(1, count)
    while True:
        rest = length
        for prime in (2, 3, 5, 7):
            while rest % prime == 0:
                rest //= prime
        if rest == 1:
            return length
        length += 1


def change_speed(wave: Tensor, factor: float) -> Tensor:
    """The waveform played about ``factor`` times as fast (pitch raised alike), as tape speed
    perturbation does (Ko et al. 2015).

    The waveform is padded with zeros to a :func:`fast_length` and resampled to the fast length
    nearest above the one asked for, so both FFTs are fast; the factor used is off from
    ``factor`` by the gap between fast lengths (at most 3%, 0.4% on average, for recordings
    of 0.1 s and more).
    The padding's share of the output is cut off again."""
    count = wave.shape[-1]
    padded_count = fast_length(count)
    new_count = fast_length(round(padded_count / factor))
    padded = torch.nn.functional.pad(wave, (0, padded_count - count))
    faster = resample(padded, padded_count, new_count)
    return faster[..., :max(1, round(count * new_count / padded_count))]


def add_noise(wave: Tensor, snr_db: float, generator: torch.Generator) -> Tensor:
    """``wave`` plus white Gaussian noise ``snr_db`` dB below its mean power."""
    power = wave.square().mean().clamp(min=1e-12)
    scale = math.sqrt(float(power) / 10 ** (snr_db / 10))
    return wave + scale * torch.randn(wave.shape, generator=generator)


def mask_features(features: Tensor, frames: Tensor, generator: torch.Generator,
                  band_masks: int = 2, max_bands: int = 6, time_masks: int = 2,
                  max_share: float = 0.1) -> Tensor:
    """SpecAugment masking (Park et al. 2019) of normalised features (B, T, F): per
    recording, ``band_masks`` runs of up to ``max_bands`` bands and ``time_masks`` runs of up
    to ``max_share`` of its frames set to 0 (the mean after :func:`normalise_features`)."""
    masked = features.clone()
    batch, _, bands = features.shape
    for row in range(batch):
        count = int(frames[row])
        for _ in range(band_masks):
            width = int(torch.randint(0, max_bands + 1, (), generator=generator))
            first = int(torch.randint(0, bands - width + 1, (), generator=generator))
            masked[row, :, first:first + width] = 0.0
        longest = int(max_share * count)
        for _ in range(time_masks):
            width = int(torch.randint(0, longest + 1, (), generator=generator))
            first = int(torch.randint(0, count - width + 1, (), generator=generator))
            masked[row, first:first + width, :] = 0.0
    return masked


def audio_files(paths: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """The files named, each folder replaced by the recordings in it (:data:`AUDIO_SUFFIXES`,
    sorted by name). A folder with none raises DataError."""
    found: list[Path] = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            inside = sorted(p for p in path.iterdir()
                            if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
            if not inside:
                raise DataError(f"{path}: the folder holds no recordings "
                                f"({', '.join(AUDIO_SUFFIXES)})")
            found.extend(inside)
        else:
            found.append(path)
    return found


TRIM_BELOW_DB = 35.0
""":func:`trim_silence` cuts frames this far below the loudest frame's level."""


def trim_silence(wave: Tensor | np.ndarray, below_db: float = TRIM_BELOW_DB,
                 margin: int = 2) -> Tensor:
    """``wave`` without its quiet start and end: the frames (:data:`HOP` samples each) before
    the first and after the last one whose level is within ``below_db`` dB of the loudest
    frame's, ``margin`` frames kept either side. A recording trimmed as the Free Spoken Digit
    Dataset's are is left (almost) as it is."""
    wave = torch.as_tensor(wave, dtype=torch.float32)
    frames = wave.shape[0] // HOP
    if frames < 2:
        return wave
    energy = wave[:frames * HOP].view(frames, HOP).square().mean(1)
    loud = torch.nonzero(energy >= energy.max() * 10 ** (-below_db / 10)).flatten()
    first = max(0, int(loud[0]) - margin)
    last = min(frames, int(loud[-1]) + 1 + margin)
    return wave[first * HOP:wave.shape[0] if last == frames else last * HOP]


def stack_frames(features: Tensor, frames: Tensor, factor: int) -> tuple[Tensor, Tensor]:
    """Every ``factor`` consecutive frames of (B, T, F) side by side: (B, ceil(T / factor),
    factor * F) and the new frame counts; a recording's last frames are completed with zeros
    (so fewer, wider steps for the recurrent layer: twice as fast at ``factor`` 2)."""
    if factor == 1:
        return features, frames
    batch, steps, bands = features.shape
    padded = torch.nn.functional.pad(features, (0, 0, 0, (-steps) % factor))
    stacked = padded.reshape(batch, padded.shape[1] // factor, factor * bands)
    return stacked, (frames + factor - 1) // factor
