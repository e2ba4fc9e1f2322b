"""One-to-many: a conditioning vector in, a sequence out, one step at a time.

A linear map turns the condition (a class embedding, a feature vector, ...) into the recurrent
layer's initial state -- every tensor of it, so LSTM (h, c) pairs and one-tensor states alike;
each step then reads the previous output and predicts the next one.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from rnnkit.catalog import build_layer
from rnnkit.data.cmudict import BOS
from rnnkit.models.base import ModelOutput, evaluation_mode, prediction_loss, sample_token
from rnnkit.models.classifier import layer_output_size, layer_state_sizes
from rnnkit.models.state import State, state_from_tensors


class ConditionalGenerator(nn.Module):
    """Generates a sequence from a condition (B, D): tokens (B, T) or vectors (B, T, F).

    ``tokens=True``: outputs are ids over ``output_size`` symbols; step 0 reads BOS, step t
    the token of step t - 1 (embedded). ``tokens=False``: outputs are vectors of
    ``output_size`` values; step 0 reads zeros, step t the vector of step t - 1.
    :meth:`forward` is teacher-forced: ``forward(condition, targets) ->
    ModelOutput(predictions, None, loss)`` (:class:`~rnnkit.models.ModelOutput`) gives at
    step t the prediction of ``targets[:, t]`` from the targets before it -- logits (B, T, V)
    for tokens, with their cross-entropy as the loss; values (B, T, F) for vectors, with
    their mean squared error. :meth:`generate` feeds its own outputs back instead.
    ``switches`` go to :func:`rnnkit.build_layer`.

    Example::

        >>> from rnnkit.models.generator import ConditionalGenerator
        >>> model = ConditionalGenerator(4, 20, cell="gru", hidden_size=32, tokens=True)
        >>> condition = torch.randn(3, 4)
        >>> logits, _, loss = model(condition, torch.randint(3, 20, (3, 6)))
        >>> logits.shape, loss.dim()
        (torch.Size([3, 6, 20]), 0)
        >>> model.generate(condition, 8, generator=torch.Generator().manual_seed(0)).shape
        torch.Size([3, 8])
    """

    def __init__(
        self,
        condition_size: int,
        output_size: int,
        cell: str = "lstm",
        hidden_size: int = 64,
        num_layers: int = 1,
        dropout: float = 0.0,
        tokens: bool = False,
        embedding_size: int = 32,
        **switches: Any,
    ) -> None:
        """Build the condition-to-state map, the input embedding (tokens), layer and head."""
        super().__init__()
        self.tokens = tokens
        self.output_size = output_size
        if tokens:
            self.embedding = nn.Embedding(output_size, embedding_size)
        self.layer = build_layer(
            cell, embedding_size if tokens else output_size, hidden_size, num_layers,
            batch_first=True, dropout=dropout if num_layers > 1 else 0.0, **switches,
        )
        self.initial_state = nn.ModuleList(
            nn.Linear(condition_size, num_layers * size) for size in layer_state_sizes(self.layer)
        )
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(layer_output_size(self.layer), output_size)

    def start_state(self, condition: Tensor) -> State:
        """The layer's initial state for ``condition`` (B, D): tensors (num_layers, B, size)."""
        parts = [linear(condition).view(condition.shape[0], self.layer.num_layers, -1)
                 .transpose(0, 1).contiguous() for linear in self.initial_state]
        return state_from_tensors(parts, is_tuple=len(parts) > 1)

    def predict_next(
        self, previous: Tensor, state: State, start_step: int = 0
    ) -> tuple[Tensor, State]:
        """Predict the output after each step of ``previous`` (ids (B, T) or vectors (B, T, F)).

        Returns predictions (B, T, output_size) and the state after the last step; ``start_step``
        is the number of steps already generated (the Clockwork RNN's clock depends on it).
        """
        inputs = self.embedding(previous) if self.tokens else previous
        outputs, state = self.layer(self.dropout(inputs), state, start_step=start_step)
        return self.head(self.dropout(outputs)), state

    def forward(self, condition: Tensor, targets: Tensor) -> ModelOutput:
        """Teacher-forced predictions of ``targets`` (B, T) or (B, T, F) -> (B, T, output_size),
        and their loss."""
        first = self._first_input(condition.shape[0], targets)
        previous = torch.cat([first, targets[:, :-1]], dim=1)
        predictions, _ = self.predict_next(previous, self.start_state(condition))
        return ModelOutput(predictions, None, prediction_loss(predictions, targets))

    def generate(
        self,
        condition: Tensor,
        length: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Generate ``length`` steps for each condition: ids (B, length) or vectors (B, length, F).

        Tokens are sampled (see :func:`sample_token` for ``temperature``, ``top_k`` and
        ``generator``); vectors are the predictions themselves. In eval mode; the model returns
        to its previous mode afterwards.
        """
        if length < 1:
            raise ValueError(f"length: expected >= 1, got {length}")
        if temperature < 0:
            raise ValueError(f"temperature: expected >= 0, got {temperature}")
        if top_k is not None and top_k < 1:
            raise ValueError(f"top_k: expected >= 1, got {top_k}")
        outputs = []
        with evaluation_mode(self):
            state = self.start_state(condition)
            previous = self._first_input(condition.shape[0], condition)
            for step in range(length):
                predictions, state = self.predict_next(previous, state, start_step=step)
                if self.tokens:
                    previous = sample_token(predictions[:, -1], temperature, top_k,
                                            generator)[:, None]
                else:
                    previous = predictions
                outputs.append(previous)
        return torch.cat(outputs, dim=1)

    def _first_input(self, batch: int, like: Tensor) -> Tensor:
        """What step 0 reads: BOS (B, 1) for tokens, zeros (B, 1, F) for vectors."""
        if self.tokens:
            return torch.full((batch, 1), BOS, dtype=torch.long, device=like.device)
        return torch.zeros(batch, 1, self.output_size, dtype=like.dtype, device=like.device)
