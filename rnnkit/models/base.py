"""What every model of :mod:`rnnkit.models` shares: what ``forward`` returns, its loss, and
evaluation mode.

Every model's ``forward`` takes its inputs and, optionally, the ``targets`` to score them
against, and returns a :class:`ModelOutput` ``(outputs, state, loss)``:

* ``outputs`` -- what the model computes (logits, class scores, forecasts, log-probabilities);
* ``state`` -- the recurrent state to continue from in the next call, for a model that carries
  one from call to call (the language model); None for models whose examples are independent;
* ``loss`` -- the scalar training loss of ``outputs`` against ``targets``, everything the
  model adds to it included (e.g. the language model's AR and TAR); None without targets.

The model computes its own loss (as in nanoGPT) so that a term that needs the model's
intermediate values, such as a penalty on a recurrent layer's outputs, is added where those
values are, and the trainer needs nothing but ``model(inputs, state, targets).loss``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.models.state import State


class ModelOutput(NamedTuple):
    """What a model's ``forward`` returns: ``(outputs, state, loss)``; see the module's
    docstring."""

    outputs: Any
    state: State | None = None
    loss: Tensor | None = None


def prediction_loss(outputs: Tensor, targets: Tensor, valid: Tensor | None = None) -> Tensor:
    """The loss of predictions against targets, chosen by the targets' dtype.

    Integer targets are class indices: the mean cross-entropy of ``outputs`` (..., K) as
    logits, with ``targets`` (...). Floating targets are values: the mean squared error of
    ``outputs`` against ``targets`` of the same shape. ``valid`` (a bool tensor of the
    targets' leading shape) limits the mean to the steps it marks. The loss is computed in
    float32, also under bfloat16 autocast.
    """
    outputs = outputs.float()
    if valid is not None:
        outputs, targets = outputs[valid], targets[valid]
    if targets.is_floating_point():
        return F.mse_loss(outputs, targets)
    return F.cross_entropy(outputs.reshape(-1, outputs.shape[-1]), targets.reshape(-1))


def valid_steps(lengths: Tensor | Sequence[int], steps: int, device: torch.device) -> Tensor:
    """(B, T) bool: True at each sequence's valid steps, the first ``lengths[b]`` of row b."""
    lengths = torch.as_tensor(lengths, device=device)
    return torch.arange(steps, device=device) < lengths.unsqueeze(1)


@contextmanager
def evaluation_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Run the block with ``model`` in eval mode and without gradients; its previous mode
    (training or not) is restored afterwards, also when the block raises.

    Example::

        >>> model = torch.nn.Dropout(0.5).train()
        >>> with evaluation_mode(model):
        ...     model.training
        False
        >>> model.training
        True
    """
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield model
    finally:
        model.train(was_training)


def sample_token(
    logits: Tensor, temperature: float, top_k: int | None, generator: torch.Generator | None
) -> Tensor:
    """One token id per row of ``logits`` (B, V) -> (B,).

    ``temperature`` divides the logits (0 takes the most likely token); ``top_k`` keeps only
    the k most likely; ``generator`` (on any device) makes the draw repeatable.
    """
    if temperature == 0:
        return logits.argmax(dim=-1)
    logits = logits / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth_largest = logits.topk(top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth_largest, -torch.inf)
    probs = logits.float().softmax(dim=-1)
    if generator is not None:
        probs = probs.to(generator.device)
    return torch.multinomial(probs, 1, generator=generator)[:, 0].to(logits.device)
