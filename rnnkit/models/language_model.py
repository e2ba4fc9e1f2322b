"""A language model over any rnnkit layer: embedding -> recurrent layer -> linear.

Many-to-many and aligned: the output at step t scores the token at step t + 1. The same
model samples one-to-many with :meth:`LanguageModel.generate`, one token per step, carrying
the recurrent state from step to step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from rnnkit.catalog import build_layer
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
    from changing fast from step to step. Forward and backward take a few passes over the
    time-major memory the layers write (a third of the time of the same in autograd's ops)."""
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

    ``forward(ids (B, T), state) -> (logits (B, T, vocab_size), state)``; ``state`` is the
    layer's recurrent state (a tensor or a tuple of tensors, each (num_layers, B, hidden_size)),
    or None for a zero state. Dropout (``config.dropout``) applies between stacked layers and
    to the layer's output, not to the embeddings: on the bundled corpus, dropping embedding
    units as well cost 0.012 nats/char of validation cross-entropy at the same step count.
    In training mode with ``config.activation_penalty`` or ``config.temporal_penalty`` set,
    each forward leaves :func:`output_penalty` of its outputs in ``self.penalty`` (else None),
    for the training loss to add.
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
        self.penalty: Tensor | None = None

    def forward(self, ids: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        """Score the next token after each position: ids (B, T) -> logits (B, T, vocab_size).

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
        config = self.config
        self.penalty = (output_penalty(outputs, dropped, config.activation_penalty,
                                       config.temporal_penalty)
                        if self.training and (config.activation_penalty or config.temporal_penalty)
                        else None)
        return self.head(dropped), state

    @torch.no_grad()
    def generate(
        self,
        prompt_ids: Tensor,
        length: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Sample ``length`` tokens that continue ``prompt_ids``; returns them, shape (length,).

        ``prompt_ids`` (P,) with P >= 1 is read first; then each sampled token is fed back in,
        carrying the state. ``temperature`` divides the logits (0 picks the most likely token);
        ``top_k`` keeps only the k most likely tokens; ``generator`` makes sampling repeatable.
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
        was_training = self.training
        self.eval()
        device = self.head.weight.device
        logits, state = self(prompt_ids.to(device).unsqueeze(0))
        sampled = torch.empty(length, dtype=torch.long)
        for i in range(length):
            next_logits = logits[0, -1]
            if not torch.isfinite(next_logits).all():
                self.train(was_training)
                raise ValueError("cannot sample: the model's next-token scores are not finite "
                                 "(the model has diverged)")
            if temperature == 0:
                token = next_logits.argmax()
            else:
                next_logits = next_logits / temperature
                if top_k is not None and top_k < next_logits.numel():
                    kth_largest = torch.topk(next_logits, top_k).values[-1]
                    next_logits = next_logits.masked_fill(next_logits < kth_largest, -torch.inf)
                probs = torch.softmax(next_logits.float(), dim=-1).cpu()
                token = torch.multinomial(probs, 1, generator=generator)[0]
            sampled[i] = token
            logits, state = self(token.view(1, 1).to(device), state)
        self.train(was_training)
        return sampled
