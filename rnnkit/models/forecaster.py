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
from rnnkit.models.classifier import final_hidden, layer_output_size


class Forecaster(nn.Module):
    """Forecasts the next ``horizon`` values of a series from a window: (B, L, C) -> (B, horizon).

    The top layer's final state (both directions concatenated when ``bidirectional``; the
    whole window is observed, so reading it backwards leaks nothing) goes through a linear
    head with one output per future step. Windows come from :func:`rnnkit.data.make_windows`
    (C = 1); normalise the series first. ``switches`` go to :func:`rnnkit.build_layer`.

    Example::

        >>> from rnnkit.models.forecaster import Forecaster
        >>> model = Forecaster(horizon=12, cell="lstm", hidden_size=32)
        >>> model(torch.randn(8, 24, 1)).shape
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

    def forward(self, window: Tensor) -> Tensor:
        """The forecast (B, horizon) after each window (B, L, C)."""
        _, state = self.layer(window)
        return self.head(self.dropout(final_hidden(state, self.layer.num_directions)))


class SequenceTagger(nn.Module):
    """One output per step: padded inputs (B, T, C) and lengths (B,) -> outputs (B, T, K).

    Outputs are unnormalised (logits for K tags, or K values to regress). Unidirectional, the
    output at step t has seen steps <= t only, so it can forecast step t + 1; bidirectional,
    it sees the whole sequence (tagging). Outputs after a sequence's end are the head's bias:
    mask them out of the loss. ``switches`` go to :func:`rnnkit.build_layer`.

    Example::

        >>> from rnnkit.models.forecaster import SequenceTagger
        >>> model = SequenceTagger(3, 5, cell="gru", hidden_size=16, bidirectional=True)
        >>> model(torch.randn(2, 10, 3), lengths=[10, 4]).shape
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

    def forward(self, inputs: Tensor, lengths: Tensor | Sequence[int] | None = None) -> Tensor:
        """Outputs (B, T, K) for inputs (B, T, C); ``lengths`` (B,) marks ragged sequences' ends."""
        outputs, _ = self.layer(inputs, lengths=lengths)
        return self.head(self.dropout(outputs))
