"""Tests for rnnkit.data.digits: the bundled MNIST subset as sequences."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rnnkit.data import load_mnist5000, sequential_digits, split_digits


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    return load_mnist5000()


def test_subset_has_500_images_of_each_digit(digits) -> None:
    images, labels = digits
    assert images.shape == (5000, 28, 28) and images.dtype == np.uint8
    assert np.bincount(labels).tolist() == [500] * 10


def test_row_mode_reads_one_row_per_step(digits) -> None:
    images, _ = digits
    rows = sequential_digits(images[:4], mode="row")
    assert rows.shape == (4, 28, 28)
    assert torch.allclose(rows, torch.as_tensor(images[:4]).float() / 255)


def test_pixel_mode_reads_784_single_pixels(digits) -> None:
    images, _ = digits
    pixels = sequential_digits(images[:2], mode="pixel")
    assert pixels.shape == (2, 784, 1)
    assert float(pixels.min()) >= 0.0 and float(pixels.max()) <= 1.0


def test_permuted_mode_uses_one_fixed_permutation(digits) -> None:
    images, _ = digits
    plain = sequential_digits(images[:3], mode="pixel")
    first = sequential_digits(images[:3], mode="pixel", permutation_seed=1)
    again = sequential_digits(images[:3], mode="pixel", permutation_seed=1)
    assert torch.equal(first, again) and not torch.equal(first, plain)
    assert torch.equal(first.sort(dim=1).values, plain.sort(dim=1).values)


def test_split_is_stratified_and_a_partition(digits) -> None:
    _, labels = digits
    train, val, test = split_digits(labels, (0.1, 0.1), seed=0)
    assert np.array_equal(np.sort(np.concatenate([train, val, test])), np.arange(5000))
    assert np.bincount(labels[test]).tolist() == [50] * 10
    assert np.bincount(labels[val]).tolist() == [50] * 10
