"""Tests for rnnkit.data.handwriting: lines of real handwritten digits, read by column."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rnnkit.data import load_mnist5000
from rnnkit.data.handwriting import (
    LINE_HEIGHT,
    MAX_DIGITS,
    SPLITS,
    batch_lines,
    digit_split,
    line_digit_indices,
    make_lines,
)


@pytest.fixture(scope="module")
def test_lines() -> list[tuple[np.ndarray, list[int]]]:
    return make_lines(300, "test", seed=0)


def test_digit_splits_are_disjoint_and_hold_every_image() -> None:
    parts = digit_split()
    train, val, test = (set(parts[name].tolist()) for name in SPLITS)
    assert not train & val and not train & test and not val & test
    assert train | val | test == set(range(5000))
    assert (len(train), len(val), len(test)) == (4000, 500, 500)


@pytest.mark.parametrize("split", SPLITS)
def test_lines_show_only_their_own_splits_digit_images(split: str) -> None:
    shown = np.concatenate(line_digit_indices(300, split, seed=4))
    assert set(shown.tolist()) <= set(digit_split()[split].tolist())


def test_label_is_the_digits_of_the_images_shown_left_to_right() -> None:
    _, labels = load_mnist5000()
    lines = make_lines(50, "val", seed=2)
    indices = line_digit_indices(50, "val", seed=2)
    assert [label for _, label in lines] == [labels[shown].tolist() for shown in indices]


def test_lines_hold_one_to_twelve_digits(test_lines) -> None:
    counts = {len(label) for _, label in test_lines}
    assert min(counts) == 1 and max(counts) == MAX_DIGITS
    assert all(0 <= digit <= 9 for _, label in test_lines for digit in label)


def test_short_lines_respect_the_digit_limits() -> None:
    lines = make_lines(100, "train", seed=0, min_digits=1, max_digits=3)
    assert {len(label) for _, label in lines} == {1, 2, 3}


def test_lines_are_fixed_height_float_images_in_unit_range(test_lines) -> None:
    for image, _ in test_lines:
        assert image.dtype == np.float32 and image.shape[0] == LINE_HEIGHT
        assert image.min() == 0.0 and 0.5 < image.max() <= 1.0


def test_width_grows_with_the_number_of_digits(test_lines) -> None:
    widths = np.array([image.shape[1] for image, _ in test_lines])
    counts = np.array([len(label) for _, label in test_lines])
    assert np.all(widths >= 4 * counts + 4) and np.all(widths <= 40 * counts + 16)
    per_digit = np.polyfit(counts, widths, 1)[0]
    assert 14 < per_digit < 28


def test_lines_have_blank_margins_before_and_after_the_ink(test_lines) -> None:
    for image, _ in test_lines[:50]:
        inked = np.flatnonzero(image.max(axis=0) > 0)
        assert inked[0] >= 2 and image.shape[1] - 1 - inked[-1] >= 2


def test_same_seed_gives_the_same_lines_and_another_seed_others() -> None:
    first = make_lines(5, "train", seed=7)
    again = make_lines(5, "train", seed=7)
    other = make_lines(5, "train", seed=8)
    assert all(np.array_equal(a[0], b[0]) and a[1] == b[1] for a, b in zip(first, again))
    assert [label for _, label in first] != [label for _, label in other]


def test_a_line_is_the_same_whichever_batch_asks_for_it() -> None:
    whole = make_lines(8, "train", seed=1)
    tail = make_lines(3, "train", seed=1, start=5)
    assert all(np.array_equal(a[0], b[0]) and a[1] == b[1] for a, b in zip(whole[5:], tail))


def test_batch_pads_columns_with_blank_paper_and_targets_with_the_ctc_blank() -> None:
    lines = make_lines(4, "val", seed=0)
    batch = batch_lines(lines)
    assert batch.lengths.tolist() == [image.shape[1] for image, _ in lines]
    assert batch.target_lengths.tolist() == [len(label) for _, label in lines]
    for row, (image, label) in enumerate(lines):
        width = image.shape[1]
        assert torch.equal(batch.inputs[row, :width], torch.from_numpy(image.T))
        assert not batch.inputs[row, width:].any()
        assert batch.targets[row].tolist() == [d + 1 for d in label] + [0] * (
            batch.targets.shape[1] - len(label))
