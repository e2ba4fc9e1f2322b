"""Spectrogram inputs: a small convolutional front end over (time, frequency band) before the
recurrent layer, and the classifier of whole recordings built on it.

Two 3x3 convolutions, each followed by batch normalisation, ReLU and max-pooling over pairs of
neighbouring bands, turn every frame's bands into features that a formant shifted by a band or
two -- one speaker's voice against another's -- changes little; the recurrent layer then reads
those features frame by frame (as in the convolutional-recurrent models of speech recognition,
e.g. Amodei et al. 2016).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from rnnkit.models.base import ModelOutput
from rnnkit.models.classifier import SequenceClassifier


class SpectrogramFrontEnd(nn.Module):
    """(B, T, frames_per_step * bands) features -> (B, T, output_size) features.

    A step may hold several consecutive frames side by side (``frames_per_step``); the
    convolutions run over the frames at their own rate and each step's frames are put side by
    side again. Steps after a sequence's end (``lengths``) are zero on the way in and out.
    """

    def __init__(self, bands: int, frames_per_step: int = 1, channels: int = 16) -> None:
        """Two convolution blocks of ``channels`` channels over ``bands`` bands."""
        super().__init__()
        if bands % 4 or bands < 4 or frames_per_step < 1 or channels < 1:
            raise ValueError(f"need bands a multiple of 4, frames_per_step >= 1 and channels "
                             f">= 1, got {bands}, {frames_per_step}, {channels}")
        self.bands, self.frames_per_step = bands, frames_per_step
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Conv2d(inputs, channels, 3, padding=1), nn.BatchNorm2d(channels),
                          nn.ReLU(), nn.MaxPool2d((1, 2)))
            for inputs in (1, channels))
        self.output_size = frames_per_step * channels * (bands // 4)

    def forward(self, features: Tensor, lengths: Tensor | Sequence[int] | None = None
                ) -> Tensor:
        """The front end's features of a padded batch."""
        batch, steps, width = features.shape
        if width != self.frames_per_step * self.bands:
            raise ValueError(f"features must be (B, T, {self.frames_per_step * self.bands}), "
                             f"got {tuple(features.shape)}")
        maps = features.reshape(batch, 1, steps * self.frames_per_step, self.bands)
        valid = None
        if lengths is not None:
            # Frames after a sequence's end are zero between the blocks too, so that a row of
            # a padded batch gives what the sequence alone (zero-padded by the convolution)
            # gives.
            valid = torch.arange(steps, device=maps.device).unsqueeze(0) < torch.as_tensor(
                lengths, device=maps.device).unsqueeze(1)
            valid = valid.repeat_interleave(self.frames_per_step, 1)[:, None, :, None]
        for block in self.blocks:
            maps = block(maps)
            if valid is not None:
                maps = maps * valid.to(maps.dtype)
        # (B, C, T * frames_per_step, bands / 4) -> (B, T, frames_per_step * C * bands / 4)
        return maps.permute(0, 2, 1, 3).reshape(batch, steps, self.output_size)


class SpectrogramClassifier(nn.Module):
    """A :class:`SpectrogramFrontEnd` and a :class:`SequenceClassifier`: features (B, T,
    frames_per_step * bands) and lengths (B,) -> class scores (B, K), with the classifier's
    loss (``forward(features, lengths, targets) -> ModelOutput``). ``settings`` go to the
    :class:`SequenceClassifier` (``cell``, ``hidden_size``, ``num_layers``,
    ``bidirectional``, ``dropout``, ``pooling``).

    Example::

        >>> from rnnkit.models.spectrogram import SpectrogramClassifier
        >>> model = SpectrogramClassifier(40, 10, frames_per_step=2, cell="gru", hidden_size=8)
        >>> scores, _, loss = model(torch.randn(2, 30, 80), [30, 20], torch.tensor([3, 7]))
        >>> scores.shape, loss.dim()
        (torch.Size([2, 10]), 0)
    """

    def __init__(self, bands: int, num_outputs: int, frames_per_step: int = 1,
                 channels: int = 16, **settings: Any) -> None:
        """Build the front end and the classifier."""
        super().__init__()
        self.front = SpectrogramFrontEnd(bands, frames_per_step, channels)
        self.classifier = SequenceClassifier(self.front.output_size, num_outputs, **settings)

    def forward(self, features: Tensor, lengths: Tensor | Sequence[int] | None = None,
                targets: Tensor | None = None) -> ModelOutput:
        """Class scores (B, K) and their loss against ``targets`` if given."""
        return self.classifier(self.front(features, lengths), lengths, targets)
