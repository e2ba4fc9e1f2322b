"""A language model over any rnnkit layer: embedding -> recurrent layer -> linear.

Many-to-many and aligned: the output at step t scores the token at step t + 1. The same
model samples one-to-many with :meth:`LanguageModel.generate`, one token per step, carrying
the recurrent state from step to step.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from rnnkit.catalog import build_layer
from rnnkit.models.base import ModelOutput, evaluation_mode, prediction_loss, sample_token
from rnnkit.models.state import State


@dataclass
class LanguageModelConfig:
    """Sizes of a :class:`LanguageModel`; plain values, saved as JSON with a checkpoint."""

    vocab_size: int
    cell: str = "lstm"
    embedding_size: int = 64
    hidden_size: int = 512
    num_layers: int = 1
    dropout: float = 0.0
    activation_penalty: float = 0.0
    temporal_penalty: float = 0.0
    """Activation regularisation (AR) and temporal activation regularisation (TAR) of the
    outputs in training (Merity et al. 2017), see :func:`output_penalty`."""
    switches: dict[str, Any] = field(default_factory=dict)
    """Cell-specific options passed on to :func:`rnnkit.build_layer` (e.g. clockwork periods)."""


def output_penalty(outputs: Tensor, dropped: Tensor, activation: float,
                   temporal: float) -> Tensor:
    """AR and TAR of a recurrent layer's outputs (B, T, H):

        activation * mean(dropout(h_t) ** 2) + temporal * mean((h_t+1 - h_t) ** 2)

    over all batch rows, steps and units (``dropped`` = ``dropout(outputs)``), in float32 or
    the outputs' wider dtype. The first term keeps the outputs small, the second keeps them
    from changing fast from step to step. It is one autograd function, not a chain of
    autograd's ops, so that forward and backward take a few passes over the time-major memory
    the layers write and keep only what the backward needs."""
    dtype = torch.promote_types(outputs.dtype, torch.float32)
    # (T, B, H) views: contiguous where the layer wrote its outputs time-major.
    return _OutputPenalty.apply(outputs.movedim(1, 0).to(dtype), dropped.movedim(1, 0).to(dtype),
                                activation, temporal)


class _OutputPenalty(torch.autograd.Function):
    """:func:`output_penalty` on time-major (T, B, H) outputs and dropped outputs."""

    @staticmethod
    def forward(ctx: Any, outputs: Tensor, dropped: Tensor, activation: float,
                temporal: float) -> Tensor:
        ctx.scales = activation, temporal
        penalty = outputs.new_zeros(())
        if activation:
            penalty += activation * torch.linalg.vector_norm(dropped).square() / dropped.numel()
        steps = None
        if temporal and len(outputs) > 1:
            steps = outputs[1:] - outputs[:-1]  # (T - 1, B, H), kept for the backward
            penalty += temporal * torch.linalg.vector_norm(steps).square() / steps.numel()
        ctx.save_for_backward(dropped if activation else None, steps)
        ctx.outputs_shape = outputs.shape
        return penalty

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, Tensor | None, None, None]:
        dropped, steps = ctx.saved_tensors
        activation, temporal = ctx.scales
        grad_dropped = dropped * (2 * activation / dropped.numel() * grad) if activation else None
        grad_outputs = None
        if steps is not None:
            # d/dh_t of sum_t (h_t+1 - h_t)^2 = 2 (h_t - h_t-1) - 2 (h_t+1 - h_t); the ends
            # have one of the two terms.
            steps = steps * (2 * temporal / steps.numel() * grad)
            grad_outputs = steps.new_empty(ctx.outputs_shape)
            grad_outputs[0] = -steps[0]
            grad_outputs[-1] = steps[-1]
            torch.sub(steps[:-1], steps[1:], out=grad_outputs[1:-1])
        return grad_outputs, grad_dropped, None, None


class LanguageModel(nn.Module):
    """Predicts the next token of a sequence from the tokens before it.

    ``forward(ids (B, T), state, targets (B, T)) -> ModelOutput(logits (B, T, vocab_size),
    state, loss)`` (:class:`~rnnkit.models.ModelOutput`): ``state`` is the layer's recurrent
    state (a tensor or a tuple of tensors, each (num_layers, B, hidden_size)), None for a zero
    state; pass the returned one to the next call to read on (truncated BPTT). The loss, given
    ``targets``, is the mean cross-entropy of the logits, plus in training mode the
    :func:`output_penalty` of the layer's outputs when ``config.activation_penalty`` or
    ``config.temporal_penalty`` is set. Dropout (``config.dropout``) applies between stacked
    layers and to the layer's output, not to the embeddings, which did worse on the bundled
    corpus at the same step count.

    Example::

        >>> from rnnkit.models import LanguageModel, LanguageModelConfig
        >>> model = LanguageModel(LanguageModelConfig(vocab_size=20, hidden_size=16))
        >>> ids = torch.randint(0, 20, (2, 7))
        >>> logits, state, loss = model(ids[:, :-1], targets=ids[:, 1:])
        >>> logits.shape, state[0].shape, loss.dim()
        (torch.Size([2, 6, 20]), torch.Size([1, 2, 16]), 0)
    """

    def __init__(self, config: LanguageModelConfig) -> None:
        """Build the embedding, the recurrent layer (``config.cell``) and the output head."""
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.embedding_size)
        self.layer = build_layer(
            config.cell,
            config.embedding_size,
            config.hidden_size,
            config.num_layers,
            batch_first=True,
            dropout=config.dropout if config.num_layers > 1 else 0.0,
            **config.switches,
        )
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.hidden_size, config.vocab_size)

    def forward(self, ids: Tensor, state: State | None = None,
                targets: Tensor | None = None) -> ModelOutput:
        """Score the next token after each position: ids (B, T) -> logits (B, T, vocab_size),
        the state after the last position, and the loss against ``targets`` (B, T) if given.

        Where the layer runs on the fused kernels, the embedding and the first layer's input
        weights are applied together: each vocabulary entry's projection ``W_ih e + b_ih`` is
        computed once (in float32, also under autocast) and the steps read its rows (the
        ``tokens`` of :meth:`rnnkit.layers.RecurrentLayer.forward`), in place of a matrix
        product over all B * T positions and its gradients."""
        if self.layer.reads_token_table(self.embedding.weight):
            with torch.autocast(ids.device.type, enabled=False):
                table = self.layer.project_input(self.embedding.weight)
            outputs, state = self.layer(table, state, tokens=ids)
        else:
            outputs, state = self.layer(self.embedding(ids), state)
        dropped = self.dropout(outputs)
        logits = self.head(dropped)
        if targets is None:
            return ModelOutput(logits, state)
        loss = prediction_loss(logits, targets)
        config = self.config
        if self.training and (config.activation_penalty or config.temporal_penalty):
            loss = loss + output_penalty(outputs, dropped, config.activation_penalty,
                                         config.temporal_penalty)
        return ModelOutput(logits, state, loss)

    def generate(
        self,
        prompt_ids: Tensor,
        length: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        generator: torch.Generator | None = None,
        excluded: Sequence[int] = (),
    ) -> Tensor:
        """Sample ``length`` tokens that continue ``prompt_ids``; returns them, shape (length,).

        ``prompt_ids`` (P,) with P >= 1 is read first; then each sampled token is fed back in,
        carrying the state. ``temperature`` divides the logits (0 picks the most likely token);
        ``top_k`` keeps only the k most likely tokens; ``generator`` makes sampling repeatable;
        ``excluded`` token ids are never sampled (a vocabulary's unknown symbol, which stands for
        no one character).
        The model is in eval mode while sampling and returns to its previous mode afterwards.
        Raises ValueError if the model's scores are not finite (a diverged model).
        """
        if prompt_ids.dim() != 1 or prompt_ids.numel() == 0:
            raise ValueError(f"prompt_ids must be a non-empty 1-D tensor, got shape "
                             f"{tuple(prompt_ids.shape)}")
        if length < 0:
            raise ValueError(f"length must be >= 0, got {length}")
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {temperature}")
        if top_k is not None and top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k}")
        device = self.head.weight.device
        sampled = torch.empty(length, dtype=torch.long)
        with evaluation_mode(self):
            logits, state, _ = self(prompt_ids.to(device).unsqueeze(0))
            for i in range(length):
                next_logits = logits[:, -1]
                if not torch.isfinite(next_logits).all():
                    raise ValueError("cannot sample: the model's next-token scores are not "
                                     "finite (the model has diverged)")
                if excluded:
                    next_logits = next_logits.index_fill(1, torch.as_tensor(
                        list(excluded), device=next_logits.device), -math.inf)
                token = sample_token(next_logits, temperature, top_k, generator)
                sampled[i] = token[0]
                logits, state, _ = self(token.view(1, 1).to(device), state)
        return sampled
