"""Connectionist temporal classification (CTC): many-to-many labelling without an alignment.

A network reads a sequence of T steps and, at every step, gives a distribution over the
labels plus one extra class, the *blank* (index :data:`BLANK` = 0, "no label here"). A
labelling such as "4 0 7" is read off a path of per-step classes by collapsing repeats and
dropping blanks ("4 4 - 0 - - 7" and "- 4 0 0 7 7 -" both give "4 0 7"), and its probability
is the sum over all its paths (Graves et al. 2006). Training maximises that probability of
the target labelling (:func:`ctc_loss`); reading decodes the most likely labelling,
approximately, by best path (:func:`greedy_decode`) or by prefix beam search
(:func:`prefix_beam_search`). :class:`LineRecognizer` is the network of Graves et al. 2008
for handwritten lines: columns of pixels in, per-column class log-probabilities out, with
any rnnkit layer (by default a bidirectional LSTM) doing the sequence work.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.catalog import build_layer
from rnnkit.models.base import ModelOutput, valid_steps
from rnnkit.models.classifier import layer_output_size

BLANK = 0
"""The class index of the CTC blank."""
INITIAL_BLANK_BIAS = 3.0


def ctc_loss(log_probs: Tensor, lengths: Tensor | Sequence[int], targets: Tensor,
             target_lengths: Tensor | Sequence[int]) -> Tensor:
    """Mean over the batch of -log p(target labelling | input), in nats per sequence.

    ``log_probs`` (B, T, C) batch-first log-probabilities (class 0 is the blank); ``lengths``
    (B,) the valid steps of each sequence; ``targets`` (B, S) class indices in 1..C-1, padded
    after ``target_lengths`` (B,). A target that cannot fit its sequence (more steps needed
    than there are) gives an infinite loss.
    """
    lengths = torch.as_tensor(lengths, dtype=torch.long)
    target_lengths = torch.as_tensor(target_lengths, dtype=torch.long)
    per_sequence = F.ctc_loss(log_probs.transpose(0, 1), targets, lengths.cpu(),
                              target_lengths.cpu(), blank=BLANK, reduction="none")
    return per_sequence.mean()


def _valid_rows(log_probs: Tensor, lengths: Tensor | Sequence[int] | None) -> list[Tensor]:
    """Each sequence's valid steps of (B, T, C) (or one (T, C) sequence) as (T_i, C) tensors."""
    if log_probs.dim() == 2:
        log_probs = log_probs.unsqueeze(0)
    if log_probs.dim() != 3:
        raise ValueError(f"log_probs must be (B, T, C) or (T, C), got {tuple(log_probs.shape)}")
    if lengths is None:
        lengths = [log_probs.shape[1]] * log_probs.shape[0]
    return [row[:int(length)] for row, length in zip(log_probs.detach().cpu(), lengths)]


def collapse_path(path: Sequence[int]) -> list[int]:
    """The labelling a path of per-step classes stands for: merge repeats, then drop blanks.

    Example::

        >>> collapse_path([0, 3, 3, 0, 3, 1, 1, 0])
        [3, 3, 1]
    """
    labelling, previous = [], None
    for label in path:
        if label != previous and label != BLANK:
            labelling.append(int(label))
        previous = label
    return labelling


def greedy_decode(log_probs: Tensor,
                  lengths: Tensor | Sequence[int] | None = None) -> list[list[int]]:
    """Best-path decoding: the most likely class at each step, collapsed (repeats, blanks).

    ``log_probs`` (B, T, C) or (T, C); ``lengths`` (B,) limits each sequence to its valid
    steps. Returns one labelling (list of class indices, blank excluded) per sequence. Fast,
    but the most likely path need not spell the most likely labelling; see
    :func:`prefix_beam_search`.
    """
    return [collapse_path(row.argmax(dim=-1).tolist()) for row in _valid_rows(log_probs, lengths)]


def _log_add(a: float, b: float) -> float:
    """log(exp(a) + exp(b)) without overflow; -inf is log(0)."""
    if a == -math.inf:
        return b
    if b == -math.inf:
        return a
    high, low = (a, b) if a > b else (b, a)
    return high + math.log1p(math.exp(low - high))


def _accumulate(beams: dict[tuple[int, ...], list[float]], prefix: tuple[int, ...],
                blank: float, label: float) -> None:
    """Add path probabilities (log) ending in a blank / in the last label to ``prefix``."""
    entry = beams.setdefault(prefix, [-math.inf, -math.inf])
    entry[0] = _log_add(entry[0], blank)
    entry[1] = _log_add(entry[1], label)


def prefix_beam_search(log_probs: Tensor | np.ndarray,
                       beam_size: int = 8) -> list[tuple[list[int], float]]:
    """CTC prefix beam search over one sequence's log-probabilities (T, C).

    Keeps the ``beam_size`` most probable labelling prefixes. For each prefix it tracks, in
    log space, the total probability of the paths so far that spell it and end in a blank
    (p_b) and that end in its last label (p_nb): a repeated label extends the prefix only
    after a blank, and otherwise merges into it. With a beam as large as the number of
    prefixes this is exact. Returns the final beams, most probable first, as (labelling, log
    probability) pairs.

    Example::

        >>> table = torch.tensor([[0.6, 0.4], [0.6, 0.4]]).log()  # blank, "a"
        >>> [(labels, round(math.exp(score), 2)) for labels, score in prefix_beam_search(table)]
        [([1], 0.64), ([], 0.36)]
    """
    if beam_size < 1:
        raise ValueError(f"beam_size must be >= 1, got {beam_size}")
    table = np.asarray(torch.as_tensor(log_probs).detach().cpu(), dtype=np.float64)
    if table.ndim != 2:
        raise ValueError(f"log_probs must be (T, C), got {table.shape}")
    beams: dict[tuple[int, ...], tuple[float, float]] = {(): (0.0, -math.inf)}
    for step in table.tolist():
        grown: dict[tuple[int, ...], list[float]] = {}
        for prefix, (p_blank, p_label) in beams.items():
            total = _log_add(p_blank, p_label)
            _accumulate(grown, prefix, total + step[BLANK], -math.inf)
            if prefix:  # the last label again, merging into it
                _accumulate(grown, prefix, -math.inf, p_label + step[prefix[-1]])
            for label, score in enumerate(step):
                if label == BLANK:
                    continue
                # After the same label, only a path through a blank spells a new repeat.
                before = p_blank if prefix and prefix[-1] == label else total
                _accumulate(grown, prefix + (label,), -math.inf, before + score)
        scored = [(-_log_add(*scores), prefix) for prefix, scores in grown.items()]
        # Prefixes no path spells (a repeat right after its label, with no blank) drop out.
        ranked = sorted(item for item in scored if item[0] < math.inf)
        beams = {prefix: tuple(grown[prefix]) for _, prefix in ranked[:beam_size]}
    return [(list(prefix), _log_add(*scores)) for prefix, scores in beams.items()]


def beam_decode(log_probs: Tensor, lengths: Tensor | Sequence[int] | None = None,
                beam_size: int = 8) -> list[list[int]]:
    """The best labelling of each sequence by :func:`prefix_beam_search` (same input as
    :func:`greedy_decode`)."""
    return [prefix_beam_search(row, beam_size)[0][0] for row in _valid_rows(log_probs, lengths)]


def line_accuracy(references: Sequence[Sequence[Any]],
                  hypotheses: Sequence[Sequence[Any]]) -> float:
    """The share of sequences read exactly right."""
    if len(references) != len(hypotheses) or not references:
        raise ValueError(f"need equally many references and hypotheses, at least one; got "
                         f"{len(references)} and {len(hypotheses)}")
    return sum(list(r) == list(h) for r, h in zip(references, hypotheses)) / len(references)


@dataclass
class LineRecognizerConfig:
    """Sizes of a :class:`LineRecognizer`; plain values, saved as JSON with a checkpoint."""

    line_height: int = 32
    num_classes: int = 11
    """The blank plus the labels (11: blank and the digits 0-9)."""
    cell: str = "lstm"
    hidden_size: int = 128
    num_layers: int = 1
    bidirectional: bool = True
    feature_size: int = 64
    """Outputs of the column feature layer; 0 feeds the raw pixel columns to the layer."""
    feature_width: int = 3
    """Columns the feature layer sees at once (1: each column alone)."""
    dropout: float = 0.0
    switches: dict[str, Any] = field(default_factory=dict)
    """Cell-specific options passed on to :func:`rnnkit.build_layer`."""


def reverse_within(sequences: Tensor, lengths: Tensor | Sequence[int] | None) -> Tensor:
    """Reverse each sequence of (B, T, ...) in time within its own length; padding stays put.

    Applying it twice gives the input back. With ``lengths`` None every row is reversed whole.
    """
    steps = sequences.shape[1]
    if lengths is None:
        return sequences.flip(1)
    lengths = torch.as_tensor(lengths, device=sequences.device).unsqueeze(1)
    time = torch.arange(steps, device=sequences.device).unsqueeze(0)
    index = torch.where(time < lengths, lengths - 1 - time, time)
    index = index.view(*index.shape, *([1] * (sequences.dim() - 2))).expand_as(sequences)
    return sequences.gather(1, index)


class LineRecognizer(nn.Module):
    """Reads a line image column by column into per-column CTC class log-probabilities.

    ``forward(columns, lengths, targets) -> ModelOutput(log_probs, None, loss)``
    (:class:`~rnnkit.models.ModelOutput`): columns (B, T, line_height) in [0, 1] and lengths
    (B,) give log_probs (B, T, num_classes); given ``targets`` = (labels (B, S), label lengths
    (B,)), the loss is the batch's CTC loss in nats per label, comparable between batches of
    short and long lines. A small feature layer (a 1-D convolution over ``feature_width``
    neighbouring columns, then tanh) turns each column into ``feature_size`` features; the
    recurrent layer (``cell``) reads them left to right and, when ``bidirectional``, a second
    one reads them right to left from each line's own last column; a linear head on both
    directions' outputs (its blank bias raised by :data:`INITIAL_BLANK_BIAS`) and
    log-softmax give the class log-probabilities. With ``num_layers`` > 1 each direction is
    a stack of its own, the two meeting at the head. Padded steps after a sequence's end are
    a certain blank (log-probability 0 for the blank, -inf for the rest), which leaves every
    labelling's probability unchanged. Dropout applies to the features, the layer's output
    and between stacked layers.

    Every direction runs over the whole padded batch without ``lengths`` (so torch's fused
    kernels serve the standard cells); this is exact because each direction is causal in its
    own reading order, and the backward one reads each line reversed within its length.

    Example::

        >>> from rnnkit.models.ctc import LineRecognizer, LineRecognizerConfig
        >>> model = LineRecognizer(LineRecognizerConfig(hidden_size=16))
        >>> labels, label_lengths = torch.tensor([[5, 1], [8, 0]]), torch.tensor([2, 1])
        >>> log_probs, _, loss = model(torch.rand(2, 50, 32), lengths=[50, 30],
        ...                            targets=(labels, label_lengths))
        >>> log_probs.shape, loss.dim()
        (torch.Size([2, 50, 11]), 0)
    """

    def __init__(self, config: LineRecognizerConfig) -> None:
        """Build the feature layer, the recurrent layers and the head from ``config``."""
        super().__init__()
        if config.feature_size < 0 or config.feature_width < 1 or config.feature_width % 2 == 0:
            raise ValueError(f"feature_size must be >= 0 and feature_width odd and >= 1, got "
                             f"{config.feature_size} and {config.feature_width}")
        self.config = config
        self.features = None
        layer_input = config.line_height
        if config.feature_size:
            self.features = nn.Conv1d(config.line_height, config.feature_size,
                                      config.feature_width, padding=config.feature_width // 2)
            layer_input = config.feature_size
        self.directions = nn.ModuleList(
            build_layer(config.cell, layer_input, config.hidden_size, config.num_layers,
                        batch_first=True, dropout=config.dropout if config.num_layers > 1 else 0.0,
                        **config.switches)
            for _ in range(2 if config.bidirectional else 1)
        )
        self.dropout = nn.Dropout(config.dropout)
        output_size = sum(layer_output_size(layer) for layer in self.directions)
        self.head = nn.Linear(output_size, config.num_classes)
        with torch.no_grad():
            # Start out mostly blank, as a trained CTC network is: training then skips the
            # phase of learning the blank and starts on the labels at once.
            self.head.bias[BLANK] += INITIAL_BLANK_BIAS

    def forward(self, columns: Tensor, lengths: Tensor | Sequence[int] | None = None,
                targets: tuple[Tensor, Tensor] | None = None) -> ModelOutput:
        """Class log-probabilities (B, T, num_classes) for columns (B, T, line_height), and
        their CTC loss per label against ``targets`` = (labels (B, S), label lengths (B,))."""
        if columns.dim() != 3 or columns.shape[-1] != self.config.line_height:
            raise ValueError(f"columns must be (B, T, {self.config.line_height}), got "
                             f"{tuple(columns.shape)}")
        features = columns
        if self.features is not None:
            features = torch.tanh(self.features(columns.transpose(1, 2)).transpose(1, 2))
        features = self.dropout(features)
        outputs = [self.directions[0](features)[0]]
        if len(self.directions) == 2:
            backward, _ = self.directions[1](reverse_within(features, lengths))
            outputs.append(reverse_within(backward, lengths))
        log_probs = F.log_softmax(self.head(self.dropout(torch.cat(outputs, -1))), dim=-1)
        if lengths is not None:
            valid = valid_steps(lengths, columns.shape[1], columns.device).unsqueeze(-1)
            certain_blank = torch.full_like(log_probs, -math.inf)
            certain_blank[..., BLANK] = 0.0
            log_probs = torch.where(valid, log_probs, certain_blank)
        if targets is None:
            return ModelOutput(log_probs)
        labels, label_lengths = targets
        if lengths is None:
            lengths = [columns.shape[1]] * columns.shape[0]
        per_line = ctc_loss(log_probs.float(), lengths, labels, label_lengths)
        return ModelOutput(log_probs, None, per_line * len(label_lengths) / label_lengths.sum())
