"""Scores of decoded sequences: edit distance and the error rate built on it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def edit_distance(reference: Sequence[Any], hypothesis: Sequence[Any]) -> int:
    """Levenshtein distance: the fewest insertions, deletions and substitutions turning
    ``reference`` into ``hypothesis`` (symmetric in its arguments).

    Example::

        >>> from rnnkit.models.metrics import edit_distance
        >>> edit_distance("kitten", "sitting")
        3
    """
    previous = list(range(len(hypothesis) + 1))
    for i, ref_item in enumerate(reference, start=1):
        current = [i]
        for j, hyp_item in enumerate(hypothesis, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1,
                               previous[j - 1] + (ref_item != hyp_item)))
        previous = current
    return previous[-1]


def error_rate(references: Sequence[Sequence[Any]],
               hypotheses: Sequence[Sequence[Any]]) -> float:
    """Total edit distance over the total length of the references: the character, phoneme
    or word error rate, depending on what the sequences hold.

    Example::

        >>> from rnnkit.models.metrics import error_rate
        >>> error_rate([["K", "AE", "T"], ["D", "AO", "G"]], [["K", "AE", "T"], ["D", "AO"]])
        0.16666666666666666
    """
    if len(references) != len(hypotheses):
        raise ValueError(f"hypotheses: expected one per reference ({len(references)}), got "
                         f"{len(hypotheses)}")
    total = sum(len(reference) for reference in references)
    if total == 0:
        raise ValueError("references: expected at least one symbol in all, got none; the error "
                         "rate is undefined")
    return sum(edit_distance(r, h) for r, h in zip(references, hypotheses)) / total
