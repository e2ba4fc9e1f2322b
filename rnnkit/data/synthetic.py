"""Seeded synthetic long-range tasks, each with the score of its trivial baseline.

Every generator takes ``n`` (examples) and ``seed`` and draws from its own
``torch.Generator``, so the same arguments always give the same tensors, independent of
the global RNG. A model has learned a task only once it beats the task's
:class:`TrivialBaseline` -- the score reachable without using the long-range information.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

COPY_BLANK, COPY_DELIMITER = 0, 9
"""Copy memory tokens: 0 is the blank, 1..8 the symbols, 9 the delimiter ("start copying").
With ``n_symbols`` symbols the delimiter is ``n_symbols + 1``."""

TEMPORAL_ORDER_SYMBOLS = ("a", "b", "c", "d", "X", "Y", "B", "E")
"""Temporal order tokens: id i is ``TEMPORAL_ORDER_SYMBOLS[i]``; id 8 is padding."""
TEMPORAL_ORDER_PAD = len(TEMPORAL_ORDER_SYMBOLS)
TEMPORAL_ORDER_CLASSES = ("XX", "XY", "YX", "YY")


@dataclass(frozen=True)
class TrivialBaseline:
    """What a model that ignores the long-range information scores on a task.

    ``mse`` (regression) or ``cross_entropy`` (nats per predicted step) and ``accuracy``
    (classification); fields that do not apply are None. ``predictor`` says what the
    baseline predicts.
    """

    predictor: str
    mse: float | None = None
    cross_entropy: float | None = None
    accuracy: float | None = None


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def adding_problem(n: int, length: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The adding problem in the form of Le, Jaitly & Hinton (2015).

    Each of the ``length`` steps has two inputs: a value drawn from U(0, 1) and a marker.
    The marker is 1 at exactly two steps -- one uniformly chosen in the first half
    ``[0, length // 2)``, one in the second half ``[length // 2, length)`` -- and 0
    elsewhere. The target is the sum of the two marked values, read after the last step.

    Returns float32 ``inputs`` (n, length, 2) (channel 0 values, channel 1 markers) and
    ``targets`` (n,). Baseline: :func:`adding_baseline` (always predict 1, MSE 1/6).
    """
    if length < 2:
        raise ValueError(f"the adding problem needs length >= 2, got {length}")
    gen = _generator(seed)
    values = torch.rand(n, length, generator=gen)
    half = length // 2
    first = torch.randint(0, half, (n,), generator=gen)
    second = torch.randint(half, length, (n,), generator=gen)
    markers = torch.zeros(n, length)
    rows = torch.arange(n)
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    targets = values[rows, first] + values[rows, second]
    return torch.stack([values, markers], dim=-1), targets


def adding_baseline() -> TrivialBaseline:
    """Always predict 1 (the mean of the target): the MSE is Var(U1 + U2) = 2/12 = 1/6."""
    return TrivialBaseline(predictor="the constant 1", mse=1.0 / 6.0)


def copy_memory(
    n: int, delay: int, seed: int = 0, n_symbols: int = 8, copy_length: int = 10
) -> tuple[torch.Tensor, torch.Tensor]:
    """The copy memory task in the form of Arjovsky, Shah & Bengio (2016).

    With T = ``delay`` and the defaults (8 symbols, copy length 10) each sequence has
    T + 20 steps. Input: 10 symbols drawn uniformly from {1..8}, then T - 1 blanks (0),
    then the delimiter 9 (at index T + 9), then 10 more blanks. Target: blanks for the
    first T + 10 steps, then the 10 symbols in their original order.

    Returns LongTensors ``inputs`` and ``targets``, each (n, T + 2*copy_length), with token
    ids in 0..9 (10 classes; in general the delimiter is ``n_symbols + 1``).
    Baseline: :func:`copy_memory_baseline`.
    """
    if delay < 1 or n_symbols < 1 or copy_length < 1:
        raise ValueError("delay, n_symbols and copy_length must be >= 1")
    delimiter = n_symbols + 1  # COPY_DELIMITER (9) for the standard 8 symbols
    gen = _generator(seed)
    total = delay + 2 * copy_length
    symbols = torch.randint(1, n_symbols + 1, (n, copy_length), generator=gen)
    inputs = torch.full((n, total), COPY_BLANK, dtype=torch.long)
    inputs[:, :copy_length] = symbols
    inputs[:, copy_length + delay - 1] = delimiter
    targets = torch.full((n, total), COPY_BLANK, dtype=torch.long)
    targets[:, -copy_length:] = symbols
    return inputs, targets


def copy_memory_baseline(delay: int, n_symbols: int = 8, copy_length: int = 10) -> TrivialBaseline:
    """A memoryless model: predict blank for the first T + 10 steps (certain, 0 nats), then
    the uniform distribution over the 8 symbols for the last 10 (ln 8 nats each).

    Cross-entropy per step: ``10 ln 8 / (T + 20)``; accuracy ``(T + 10 + 10/8) / (T + 20)``.
    """
    total = delay + 2 * copy_length
    return TrivialBaseline(
        predictor="blank, then uniform over the symbols for the last copy_length steps",
        cross_entropy=copy_length * math.log(n_symbols) / total,
        accuracy=(delay + copy_length + copy_length / n_symbols) / total,
    )


def temporal_order(
    n: int,
    seed: int = 0,
    min_length: int = 100,
    max_length: int = 110,
    first_range: tuple[int, int] = (10, 20),
    second_range: tuple[int, int] = (50, 60),
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Temporal order, task 6a of Hochreiter & Schmidhuber (1997).

    A sequence's length is drawn uniformly from ``[min_length, max_length]``. It starts
    with B (index 0) and ends with E; every other step is a distractor drawn uniformly from
    {a, b, c, d}, except two relevant steps, at an index drawn uniformly from
    ``first_range`` and one from ``second_range`` (both inclusive), each holding X or Y.
    The class is the order of the relevant symbols: XX=0, XY=1, YX=2, YY=3.

    Returns ``inputs`` (n, max_length) LongTensor of ids of :data:`TEMPORAL_ORDER_SYMBOLS`,
    padded with :data:`TEMPORAL_ORDER_PAD` after E; ``targets`` (n,) in 0..3; ``lengths``
    (n,). Baseline: :func:`temporal_order_baseline` (chance, 1/4).
    """
    if not (
        0 < first_range[0] <= first_range[1] < second_range[0] <= second_range[1] < min_length - 1
        and min_length <= max_length
    ):
        raise ValueError("need 0 < first_range < second_range < min_length - 1 <= max_length - 1")
    gen = _generator(seed)
    symbol = {s: i for i, s in enumerate(TEMPORAL_ORDER_SYMBOLS)}
    lengths = torch.randint(min_length, max_length + 1, (n,), generator=gen)
    inputs = torch.randint(0, 4, (n, max_length), generator=gen)
    steps = torch.arange(max_length)
    inputs[steps >= lengths[:, None]] = TEMPORAL_ORDER_PAD
    inputs[:, 0] = symbol["B"]
    rows = torch.arange(n)
    inputs[rows, lengths - 1] = symbol["E"]
    first_pos = torch.randint(first_range[0], first_range[1] + 1, (n,), generator=gen)
    second_pos = torch.randint(second_range[0], second_range[1] + 1, (n,), generator=gen)
    first_is_y = torch.randint(0, 2, (n,), generator=gen)
    second_is_y = torch.randint(0, 2, (n,), generator=gen)
    inputs[rows, first_pos] = symbol["X"] + first_is_y
    inputs[rows, second_pos] = symbol["X"] + second_is_y
    return inputs, 2 * first_is_y + second_is_y, lengths


def temporal_order_baseline() -> TrivialBaseline:
    """The four classes are equally likely: chance accuracy 1/4, cross-entropy ln 4."""
    return TrivialBaseline(
        predictor="uniform over the 4 classes", cross_entropy=math.log(4), accuracy=0.25
    )


def dependency_task(
    n: int, gap: int, n_keys: int = 8, n_distractors: int = 8, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Remember a key across a gap: the input is a key, ``gap`` distractors, then a query.

    Token ids: keys ``0..n_keys-1``, distractors ``n_keys..n_keys+n_distractors-1``, the
    query token ``n_keys + n_distractors`` (vocabulary size ``n_keys + n_distractors + 1``).
    Each sequence is ``[key, d_1, ..., d_gap, query]`` with the key and distractors drawn
    uniformly; the target is the key, to be output at the query step.

    Returns ``inputs`` (n, gap + 2) and ``targets`` (n,) in 0..n_keys-1, both LongTensors.
    Baseline: :func:`dependency_baseline` (chance, 1/n_keys).
    """
    if gap < 0 or n_keys < 1 or n_distractors < 1:
        raise ValueError("need gap >= 0, n_keys >= 1 and n_distractors >= 1")
    gen = _generator(seed)
    keys = torch.randint(0, n_keys, (n,), generator=gen)
    distractors = torch.randint(n_keys, n_keys + n_distractors, (n, gap), generator=gen)
    query = torch.full((n, 1), n_keys + n_distractors, dtype=torch.long)
    return torch.cat([keys[:, None], distractors, query], dim=1), keys


def dependency_baseline(n_keys: int = 8) -> TrivialBaseline:
    """Keys are uniform: chance accuracy ``1/n_keys``, cross-entropy ``ln n_keys``."""
    return TrivialBaseline(
        predictor=f"uniform over the {n_keys} keys",
        cross_entropy=math.log(n_keys),
        accuracy=1.0 / n_keys,
    )
