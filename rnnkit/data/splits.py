"""Reproducible, seeded ways to split a data set that do not depend on library versions.

Orders come from a keyed BLAKE2 hash of (seed, key), so a split is the same on every
machine and with every numpy/torch version, and adding items to a data set never moves
the existing items between parts of a :func:`hash_split`.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence

import numpy as np


def _unit_hash(key: str, seed: int) -> float:
    """Map (seed, key) to a number in [0, 1) that looks uniformly random."""
    digest = hashlib.blake2b(key.encode("utf-8"), digest_size=8, key=str(seed).encode()).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def stable_permutation(n: int, seed: int) -> np.ndarray:
    """A seeded permutation of ``range(n)``: int64 array of shape (n,)."""
    scores = np.array([_unit_hash(str(i), seed) for i in range(n)])
    return np.argsort(scores, kind="stable").astype(np.int64)


def hash_split(keys: Sequence[str], fractions: Sequence[float], seed: int = 0) -> list[np.ndarray]:
    """Assign each key to a part by its hash; returns one sorted int64 index array per part.

    Part sizes are close to ``fractions`` (which must sum to 1) but not exact; the part of a
    key depends only on the key and the seed. Equal keys always land in the same part.
    """
    if any(f < 0 for f in fractions) or not math.isclose(sum(fractions), 1.0, abs_tol=1e-9):
        raise ValueError(f"fractions must be non-negative and sum to 1, got {list(fractions)}")
    edges = np.cumsum(fractions)[:-1]
    scores = np.array([_unit_hash(key, seed) for key in keys])
    part = np.searchsorted(edges, scores, side="right")
    return [np.flatnonzero(part == p).astype(np.int64) for p in range(len(fractions))]


def stratified_split_indices(
    labels: np.ndarray, fraction: float, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Split indices into (keep, held_out), holding out ``fraction`` of each class.

    ``labels`` has shape (N,). Each class with n items gives ``round(fraction * n)`` items to
    the held-out part, but at least one when n >= 2 and never all of them. Both returned
    int64 arrays are sorted; together they are a partition of ``range(N)``.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be between 0 and 1, got {fraction}")
    labels = np.asarray(labels)
    order = stable_permutation(len(labels), seed)
    held: list[int] = []
    for label in np.unique(labels):
        members = order[labels[order] == label]
        n_held = min(
            max(round(fraction * len(members)), 1 if len(members) >= 2 else 0), len(members) - 1
        )
        held.extend(members[:n_held].tolist())
    held_out = np.sort(np.array(held, dtype=np.int64))
    keep = np.setdiff1d(np.arange(len(labels), dtype=np.int64), held_out)
    return keep, held_out
