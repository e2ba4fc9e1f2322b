"""Many-to-one: a whole sequence in, one vector of class scores (or regression values) out.

The sequence is summarised by the top layer's final state -- each sequence's own last step in
a ragged batch, both directions concatenated when bidirectional -- or by the mean of the top
layer's outputs over the valid steps; a linear head maps the summary to the outputs.

The helpers here (:func:`layer_output_size`, :func:`layer_state_sizes`, :func:`final_hidden`,
:func:`mean_over_steps`) work for any rnnkit layer and are shared by the other heads.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from rnnkit.catalog import build_layer
from rnnkit.models.base import ModelOutput, prediction_loss
from rnnkit.models.state import State, state_tensors

POOLINGS = ("last", "mean")


def layer_output_size(layer: nn.Module) -> int:
    """Feature size of the layer's output: the top cell's ``h`` size times the directions."""
    return layer.layer_maths[-1].output_size * layer.num_directions


def layer_state_sizes(layer: nn.Module) -> tuple[int, ...]:
    """Feature size of each tensor of the layer's state, in the state's order (``h`` first)."""
    return tuple(layer.layer_maths[0].state_sizes())


def final_hidden(state: State, num_directions: int) -> Tensor:
    """The top layer's final ``h`` from a layer's state: (L*D, B, H) -> (B, D*H).

    The directions are concatenated forward first, in the order of the layer's outputs.
    """
    h_n = state_tensors(state)[0]
    top = h_n[-num_directions:]
    return top.transpose(0, 1).reshape(top.shape[1], -1)


def mean_over_steps(outputs: Tensor, lengths: Tensor | Sequence[int] | None) -> Tensor:
    """Mean of batch-first outputs (B, T, F) over each sequence's valid steps -> (B, F).

    Relies on the layer contract that outputs after a sequence's end are zero.
    """
    if lengths is None:
        return outputs.mean(dim=1)
    counts = torch.as_tensor(lengths, device=outputs.device, dtype=outputs.dtype)
    return outputs.sum(dim=1) / counts.unsqueeze(1)


class ConvolutionalSummary(nn.Module):
    """The fully convolutional branch of LSTM-FCN (Karim et al. 2017, after Wang et al. 2017):
    three 1-D convolutions over time (``channels``, 2 x ``channels``, ``channels`` filters of
    widths 8, 5 and 3, "same" padding), each with batch normalisation and ReLU, then the mean
    over each series' valid steps: (B, T, C) and lengths (B,) -> (B, channels)."""

    WIDTHS = (8, 5, 3)

    def __init__(self, input_size: int, channels: int) -> None:
        """Build the three convolution blocks for series of ``input_size`` channels."""
        super().__init__()
        sizes = (input_size, channels, 2 * channels, channels)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Conv1d(sizes[i], sizes[i + 1], width, padding=width // 2),
                          nn.BatchNorm1d(sizes[i + 1]), nn.ReLU())
            for i, width in enumerate(self.WIDTHS))

    def forward(self, inputs: Tensor, lengths: Tensor) -> Tensor:
        """The mean over valid steps of the last block's output; steps after a series' end
        are zeroed before every block, as the convolutions' own padding is, so a series in a
        ragged batch gets the features it has alone."""
        steps = inputs.shape[1]
        valid = (torch.arange(steps, device=inputs.device) < lengths.unsqueeze(1)).unsqueeze(1)
        features = inputs.transpose(1, 2) * valid
        for block in self.blocks:
            features = block(features)[..., :steps] * valid
        return features.sum(dim=2) / lengths.unsqueeze(1).to(features.dtype)


class SequenceClassifier(nn.Module):
    """Scores a whole sequence: padded inputs (B, T, C) and lengths (B,) -> outputs (B, K).

    ``forward(inputs, lengths, targets) -> ModelOutput(outputs, None, loss)``
    (:class:`~rnnkit.models.ModelOutput`; sequences are independent, so no state). The
    outputs are unnormalised: logits for K classes or K real values for regression; the loss
    follows the targets (:func:`~rnnkit.models.base.prediction_loss`): cross-entropy for class
    indices (B,), mean squared error for values (B, K). ``pooling="last"`` summarises each
    sequence by the top layer's final state at its own last step (both directions
    concatenated when ``bidirectional``); ``pooling="mean"`` by the mean of the top layer's
    outputs over its valid steps. T = 1 is the one-to-one case. Dropout applies between
    stacked layers and to the recurrent summary. ``switches`` go to :func:`rnnkit.build_layer`.

    ``conv_channels`` > 0 adds LSTM-FCN's convolutional branch
    (:class:`ConvolutionalSummary`), whose summary is concatenated with the recurrent one
    before the head. ``frame`` > 1 says the inputs are frames of that many consecutive steps
    with the channels side by side (C = ``input_size / frame`` channels, as the
    classification task reads long series); the convolutions read the steps themselves.

    Example::

        >>> from rnnkit.models.classifier import SequenceClassifier
        >>> model = SequenceClassifier(3, 4, cell="gru", hidden_size=16, bidirectional=True)
        >>> scores, _, loss = model(torch.randn(2, 10, 3), lengths=[10, 6],
        ...                         targets=torch.tensor([0, 3]))
        >>> scores.shape, loss.dim()
        (torch.Size([2, 4]), 0)
    """

    def __init__(
        self,
        input_size: int,
        num_outputs: int,
        cell: str = "lstm",
        hidden_size: int = 64,
        num_layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
        pooling: str = "last",
        conv_channels: int = 0,
        frame: int = 1,
        **switches: Any,
    ) -> None:
        """Build the recurrent layer (``cell``, see ``rnnkit.CELL_NAMES``), the convolutional
        branch if ``conv_channels`` > 0, and the linear head."""
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling: expected one of {POOLINGS}, got {pooling!r}")
        if frame < 1 or input_size % frame:
            raise ValueError(f"frame: expected a divisor of input_size {input_size}, got {frame}")
        if conv_channels < 0:
            raise ValueError(f"conv_channels: expected >= 0, got {conv_channels}")
        self.pooling = pooling
        self.frame = frame
        self.conv = (ConvolutionalSummary(input_size // frame, conv_channels)
                     if conv_channels else None)
        self.layer = build_layer(
            cell, input_size, hidden_size, num_layers, batch_first=True,
            bidirectional=bidirectional, dropout=dropout if num_layers > 1 else 0.0, **switches,
        )
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(layer_output_size(self.layer) + conv_channels, num_outputs)

    def forward(self, inputs: Tensor, lengths: Tensor | Sequence[int] | None = None,
                targets: Tensor | None = None) -> ModelOutput:
        """Outputs (B, K) for inputs (B, T, C), and their loss against ``targets`` if given;
        ``lengths`` (B,) marks ragged sequences' ends."""
        outputs, state = self.layer(inputs, lengths=lengths)
        if self.pooling == "last":
            summary = final_hidden(state, self.layer.num_directions)
        else:
            summary = mean_over_steps(outputs, lengths)
        summary = self.dropout(summary)
        if self.conv is not None:
            summary = torch.cat([summary, self.conv(*self.steps_of(inputs, lengths))], dim=1)
        scores = self.head(summary)
        return ModelOutput(scores, None, None if targets is None
                           else prediction_loss(scores, targets))

    def steps_of(self, inputs: Tensor, lengths: Tensor | Sequence[int] | None
                 ) -> tuple[Tensor, Tensor]:
        """Framed inputs (B, T, k*C) and their lengths in frames as steps: (B, T*k, C) and
        (B,) lengths in steps (a last frame's filler steps count as valid: they repeat the
        series' last value)."""
        batch, frames, _ = inputs.shape
        steps = inputs.reshape(batch, frames * self.frame, -1)
        if lengths is None:
            lengths = torch.full((batch,), frames, device=inputs.device)
        lengths = torch.as_tensor(lengths, device=inputs.device) * self.frame
        return steps, lengths
