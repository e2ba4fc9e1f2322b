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
    stacked layers and to the summary. ``switches`` go to :func:`rnnkit.build_layer`.

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
        **switches: Any,
    ) -> None:
        """Build the recurrent layer (``cell``, see ``rnnkit.CELL_NAMES``) and the linear head."""
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling: expected one of {POOLINGS}, got {pooling!r}")
        self.pooling = pooling
        self.layer = build_layer(
            cell, input_size, hidden_size, num_layers, batch_first=True,
            bidirectional=bidirectional, dropout=dropout if num_layers > 1 else 0.0, **switches,
        )
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(layer_output_size(self.layer), num_outputs)

    def forward(self, inputs: Tensor, lengths: Tensor | Sequence[int] | None = None,
                targets: Tensor | None = None) -> ModelOutput:
        """Outputs (B, K) for inputs (B, T, C), and their loss against ``targets`` if given;
        ``lengths`` (B,) marks ragged sequences' ends."""
        outputs, state = self.layer(inputs, lengths=lengths)
        if self.pooling == "last":
            summary = final_hidden(state, self.layer.num_directions)
        else:
            summary = mean_over_steps(outputs, lengths)
        scores = self.head(self.dropout(summary))
        return ModelOutput(scores, None, None if targets is None
                           else prediction_loss(scores, targets))
