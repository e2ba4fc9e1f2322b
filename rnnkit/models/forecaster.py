"""Time-series heads: a multi-step forecast from a window, and an output at every step.

* :class:`Forecaster` -- many-to-one: a window of past values (B, L, C) -> the next ``horizon``
  values (B, horizon), all at once from the final state (the direct multi-step strategy, so
  errors are not fed back).
* :class:`SequenceTagger` -- many-to-many aligned: (B, T, C) -> (B, T, K), one output per step,
  for tagging each step or forecasting the next value at every step.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import Tensor, nn

from rnnkit.catalog import build_layer
from rnnkit.models.base import ModelOutput, prediction_loss, valid_steps
from rnnkit.models.classifier import final_hidden, layer_output_size


class Forecaster(nn.Module):
    """Forecasts the next ``horizon`` values of a series from a window: (B, L, C) -> (B, horizon).

    ``forward(window, targets) -> ModelOutput(forecast, None, loss)``
    (:class:`~rnnkit.models.ModelOutput`): the loss is the mean squared error against the
    ``targets`` (B, horizon) when given. The top layer's final state (both directions
    concatenated when ``bidirectional``; the whole window is observed, so reading it
    backwards leaks nothing) goes through a linear head with one output per future step.
    Windows come from :func:`rnnkit.data.make_windows` (C = 1); normalise the series first.
    ``switches`` go to :func:`rnnkit.build_layer`.

    Example::

        >>> from rnnkit.models.forecaster import Forecaster
        >>> model = Forecaster(horizon=12, cell="lstm", hidden_size=32)
        >>> model(torch.randn(8, 24, 1)).outputs.shape
        torch.Size([8, 12])
    """

    def __init__(
        self,
        horizon: int,
        input_size: int = 1,
        cell: str = "lstm",
        hidden_size: int = 64,
        num_layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
        **switches: Any,
    ) -> None:
        """Build the recurrent layer (``cell``, see ``rnnkit.CELL_NAMES``) and the linear head."""
        super().__init__()
        self.horizon = horizon
        self.layer = build_layer(
            cell, input_size, hidden_size, num_layers, batch_first=True,
            bidirectional=bidirectional, dropout=dropout if num_layers > 1 else 0.0, **switches,
        )
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(layer_output_size(self.layer), horizon)

    def forward(self, window: Tensor, targets: Tensor | None = None) -> ModelOutput:
        """The forecast (B, horizon) after each window (B, L, C), and its loss against
        ``targets`` (B, horizon) if given."""
        _, state = self.layer(window)
        forecast = self.head(self.dropout(final_hidden(state, self.layer.num_directions)))
        return ModelOutput(forecast, None, None if targets is None
                           else prediction_loss(forecast, targets))


class SequenceTagger(nn.Module):
    """One output per step: padded inputs (B, T, C) and lengths (B,) -> outputs (B, T, K).

    ``forward(inputs, lengths, targets) -> ModelOutput(outputs, None, loss)``
    (:class:`~rnnkit.models.ModelOutput`). Outputs are unnormalised (logits for K tags, or K
    values to regress); the loss follows the targets
    (:func:`~rnnkit.models.base.prediction_loss`): cross-entropy for tag indices (B, T), mean
    squared error for values (B, T, K), over each sequence's valid steps only (outputs after
    a sequence's end are the head's bias). Unidirectional, the output at step t has seen
    steps <= t only, so it can forecast step t + 1; bidirectional, it sees the whole sequence
    (tagging). ``switches`` go to :func:`rnnkit.build_layer`.

    Example::

        >>> from rnnkit.models.forecaster import SequenceTagger
        >>> model = SequenceTagger(3, 5, cell="gru", hidden_size=16, bidirectional=True)
        >>> model(torch.randn(2, 10, 3), lengths=[10, 4]).outputs.shape
        torch.Size([2, 10, 5])
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
        **switches: Any,
    ) -> None:
        """Build the recurrent layer (``cell``, see ``rnnkit.CELL_NAMES``) and the linear head."""
        super().__init__()
        self.layer = build_layer(
            cell, input_size, hidden_size, num_layers, batch_first=True,
            bidirectional=bidirectional, dropout=dropout if num_layers > 1 else 0.0, **switches,
        )
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(layer_output_size(self.layer), num_outputs)

    def forward(self, inputs: Tensor, lengths: Tensor | Sequence[int] | None = None,
                targets: Tensor | None = None) -> ModelOutput:
        """Outputs (B, T, K) for inputs (B, T, C), and their loss against ``targets`` if given;
        ``lengths`` (B,) marks ragged sequences' ends."""
        outputs, _ = self.layer(inputs, lengths=lengths)
        outputs = self.head(self.dropout(outputs))
        if targets is None:
            return ModelOutput(outputs)
        valid = None if lengths is None else valid_steps(lengths, outputs.shape[1],
                                                         outputs.device)
        return ModelOutput(outputs, None, prediction_loss(outputs, targets, valid))
