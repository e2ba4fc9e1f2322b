"""Handwritten lines of digits, made from real MNIST digit images, read column by column.

A line holds 1 to 12 digits placed side by side on a fixed-height strip: each digit is cropped
to its ink, slightly scaled and slanted, jittered up or down, and separated from its
neighbour by a random gap that may be negative (touching or slightly overlapping digits).
Each pixel column of the strip is one time step of the sequence; the label is the digit
string, with no alignment between columns and digits (the setting of Graves et al. 2008).

The digit images are split into train/val/test ONCE, by image and before any line is made
(:func:`digit_split`, a fixed stratified split of the bundled 5,000 digits), so no test line
contains a stroke the model was trained on. Lines are generated deterministically from
``(seed, split, line number)``: line ``i`` is the same whatever ``n`` or ``start`` asked
for it, which lets a training run read batch ``s`` as lines ``s*B .. s*B+B-1`` of an endless
stream.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from rnnkit.data.digits import load_mnist5000, split_digits

LINE_HEIGHT = 32
MAX_DIGITS = 12
SPLITS = ("train", "val", "test")
DIGIT_SPLIT_FRACTIONS = (0.1, 0.1)
"""(val, test) shares of the digit images; the rest (80%) make the training lines."""
DIGIT_SPLIT_SEED = 0
"""Fixed, so every run -- whatever its own seed -- holds out the same test images."""

# How a digit is placed. Scales are relative to the 28-pixel MNIST size, so a digit's ink
# (about 20 pixels tall in MNIST) is 18 to 25 pixels tall on the 32-pixel line.
DIGIT_SCALE = (0.9, 1.25)
MAX_SLANT = 0.15  # horizontal shift per row: about +-9 degrees of extra slant
VERTICAL_JITTER = 3.0
GAP = (-3, 6)  # pixels between neighbouring digits' ink boxes; negative overlaps
MAX_OVERLAP_SHARE = 0.2  # an overlap never covers more than this share of the narrower digit
MARGIN = (2, 8)  # blank columns before the first and after the last digit
_SPLIT_CODES = {name: code for code, name in enumerate(SPLITS)}


@dataclass
class LineBatch:
    """Padded lines for a recurrent network, batch-first.

    ``inputs`` (B, T, H) float32: the columns of each line, zero (blank paper) after its end;
    ``lengths`` (B,) int64: each line's width T_i; ``targets`` (B, S) int64: the CTC classes
    of each line's digits (digit d is class d + 1; 0 is the CTC blank, used as padding);
    ``target_lengths`` (B,) int64: each line's number of digits.
    """

    inputs: Tensor
    lengths: Tensor
    targets: Tensor
    target_lengths: Tensor


@lru_cache(maxsize=1)
def _digits() -> tuple[np.ndarray, np.ndarray]:
    return load_mnist5000()


@lru_cache(maxsize=1)
def digit_split() -> dict[str, np.ndarray]:
    """Indices into the bundled digits (:func:`load_mnist5000`) of each split's images.

    A fixed stratified split (80/10/10, seed :data:`DIGIT_SPLIT_SEED`); the three sorted int64
    arrays are disjoint and together hold all 5,000 images.
    """
    train, val, test = split_digits(_digits()[1], DIGIT_SPLIT_FRACTIONS, DIGIT_SPLIT_SEED)
    return {"train": train, "val": val, "test": test}


def _line_rng(seed: int, split: str, index: int) -> np.random.Generator:
    if split not in _SPLIT_CODES:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    return np.random.default_rng([seed, _SPLIT_CODES[split], index])


def _draw_digits(rng: np.random.Generator, split: str, min_digits: int,
                 max_digits: int) -> np.ndarray:
    """The first draws of a line's generator: which digit images it shows, in order."""
    count = int(rng.integers(min_digits, max_digits + 1))
    return rng.choice(digit_split()[split], size=count)


def _check_counts(n: int, min_digits: int, max_digits: int) -> None:
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if not 1 <= min_digits <= max_digits:
        raise ValueError(f"need 1 <= min_digits <= max_digits, got {min_digits}, {max_digits}")


def line_digit_indices(n: int, split: str, seed: int = 0, *, start: int = 0,
                       min_digits: int = 1, max_digits: int = MAX_DIGITS) -> list[np.ndarray]:
    """Which bundled digit images lines ``start .. start+n-1`` of :func:`make_lines` show.

    One int64 array of indices into :func:`load_mnist5000` per line, in reading order; every
    index belongs to ``digit_split()[split]``.
    """
    _check_counts(n, min_digits, max_digits)
    return [_draw_digits(_line_rng(seed, split, i), split, min_digits, max_digits)
            for i in range(start, start + n)]


def make_lines(n: int, split: str, seed: int = 0, *, start: int = 0, min_digits: int = 1,
               max_digits: int = MAX_DIGITS,
               height: int = LINE_HEIGHT) -> list[tuple[np.ndarray, list[int]]]:
    """Lines ``start .. start+n-1`` of the seeded stream of ``split`` ("train", "val", "test").

    Each line is ``(image, label)``: ``image`` float32 (height, W) in [0, 1], ink 1 on blank 0,
    W varying with the digits; ``label`` the digits (0-9) from left to right, between
    ``min_digits`` and ``max_digits`` of them. The same arguments always give the same lines.

    Example::

        >>> image, label = make_lines(1, "train", seed=0)[0]
        >>> image.shape[0], 1 <= len(label) <= 12
        (32, True)
    """
    _check_counts(n, min_digits, max_digits)
    if height < 28:
        raise ValueError(f"height must be >= 28 pixels, got {height}")
    images, labels = _digits()
    lines = []
    for i in range(start, start + n):
        rng = _line_rng(seed, split, i)
        chosen = _draw_digits(rng, split, min_digits, max_digits)
        patches = [_render_digit(images[index], rng, height) for index in chosen]
        lines.append((_compose_line(patches, rng, height), labels[chosen].tolist()))
    return lines


def _ink_box(image: np.ndarray, threshold: float = 0.0) -> tuple[slice, slice]:
    """Rows and columns of the smallest box holding every pixel above ``threshold``."""
    rows = np.flatnonzero((image > threshold).any(axis=1))
    cols = np.flatnonzero((image > threshold).any(axis=0))
    return slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)


def _render_digit(digit: np.ndarray, rng: np.random.Generator, height: int) -> np.ndarray:
    """One digit cropped to its ink, scaled and slanted: float32 (h, w), h < ``height``."""
    patch = digit[_ink_box(digit)].astype(np.float32) / 255.0
    rows, cols = patch.shape
    scale = min(rng.uniform(*DIGIT_SCALE), (height - 2) / rows)
    slant = rng.uniform(-MAX_SLANT, MAX_SLANT)
    size = (max(1, round(cols * scale)), max(1, round(rows * scale)))
    scaled = Image.fromarray(patch).resize(size, Image.Resampling.BILINEAR)
    # Shear about the bottom row: input column = output column + slant * (rows from bottom),
    # shifted so that the whole slanted digit fits in the wider output.
    w, h = size
    extra = math.ceil(abs(slant) * (h - 1))
    offset = -slant * (h - 1) + min(0.0, slant) * (h - 1)
    slanted = scaled.transform((w + extra, h), Image.Transform.AFFINE,
                               (1.0, slant, offset, 0.0, 1.0, 0.0),
                               resample=Image.Resampling.BILINEAR)
    out = np.clip(np.asarray(slanted, dtype=np.float32), 0.0, 1.0)
    return out[_ink_box(out)]


def _compose_line(patches: list[np.ndarray], rng: np.random.Generator,
                  height: int) -> np.ndarray:
    """Place digit patches left to right with random gaps and vertical jitter."""
    gaps = []
    for left, right in zip(patches[:-1], patches[1:]):
        narrower = min(left.shape[1], right.shape[1])
        # Overlaps stay small, so that two narrow digits (say "11") never merge into one.
        most_overlap = min(-GAP[0], int(MAX_OVERLAP_SHARE * narrower))
        gaps.append(int(rng.integers(-most_overlap, GAP[1] + 1)))
    margins = rng.integers(MARGIN[0], MARGIN[1] + 1, size=2)
    width = int(margins.sum()) + sum(p.shape[1] for p in patches) + sum(gaps)
    line = np.zeros((height, width), dtype=np.float32)
    x = int(margins[0])
    for patch, gap in zip(patches, gaps + [0]):
        h, w = patch.shape
        top = round((height - h) / 2 + rng.uniform(-VERTICAL_JITTER, VERTICAL_JITTER))
        top = min(max(top, 0), height - h)
        np.maximum(line[top:top + h, x:x + w], patch, out=line[top:top + h, x:x + w])
        x += w + gap
    return line


def batch_lines(lines: list[tuple[np.ndarray, list[int]]]) -> LineBatch:
    """Pad lines of one height (from :func:`make_lines`) into a :class:`LineBatch`."""
    if not lines:
        raise ValueError("batch_lines needs at least one line")
    heights = {image.shape[0] for image, _ in lines}
    if len(heights) != 1:
        raise ValueError(f"lines of one batch must have one height, got {sorted(heights)}")
    lengths = torch.tensor([image.shape[1] for image, _ in lines])
    target_lengths = torch.tensor([len(label) for _, label in lines])
    inputs = torch.zeros(len(lines), int(lengths.max()), heights.pop())
    targets = torch.zeros(len(lines), int(target_lengths.max()), dtype=torch.long)
    for row, (image, label) in enumerate(lines):
        inputs[row, :image.shape[1]] = torch.from_numpy(image.T)
        targets[row, :len(label)] = torch.tensor(label) + 1
    return LineBatch(inputs, lengths, targets, target_lengths)
