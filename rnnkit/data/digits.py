"""Handwritten digits (a 5,000-image MNIST subset, 500 per class) as sequences.

Sequential MNIST (Le, Jaitly & Hinton 2015) reads an image one pixel per step (784 steps);
the row-wise variant reads one 28-pixel row per step (28 steps). The permuted variant
applies one fixed, seeded permutation to the pixel order of every image.
"""

from __future__ import annotations

import numpy as np
import torch

from rnnkit.data.bundle import DataError, bundled_path
from rnnkit.data.splits import stable_permutation, stratified_split_indices

IMAGE_SIZE = 28


def load_mnist5000() -> tuple[np.ndarray, np.ndarray]:
    """The bundled digits: uint8 images (5000, 28, 28) and int64 labels (5000,) in 0..9."""
    path = bundled_path("handwriting/mnist5000.npz")
    with np.load(path) as data:
        if "images" not in data or "labels" not in data:
            raise DataError(f"{path}: expected arrays 'images' and 'labels'; restore the file")
        return data["images"], data["labels"].astype(np.int64)


def sequential_digits(
    images: np.ndarray, mode: str = "row", permutation_seed: int | None = None
) -> torch.Tensor:
    """Turn images (N, 28, 28) uint8 into float32 sequences with values in [0, 1].

    ``mode="row"`` gives (N, 28, 28): 28 steps of 28 pixels. ``mode="pixel"`` gives
    (N, 784, 1): one pixel per step, rows top to bottom. With ``permutation_seed`` the
    784 pixels are first reordered by one seeded permutation (permuted MNIST); in row mode
    the permuted pixels are then cut into 28 steps of 28.
    """
    if mode not in ("row", "pixel"):
        raise ValueError(f"mode must be 'row' or 'pixel', got {mode!r}")
    pixels = torch.as_tensor(np.asarray(images)).reshape(len(images), -1).float() / 255.0
    if pixels.shape[1] != IMAGE_SIZE * IMAGE_SIZE:
        raise ValueError(f"images must be (N, 28, 28), got {tuple(np.shape(images))}")
    if permutation_seed is not None:
        order = torch.as_tensor(stable_permutation(pixels.shape[1], permutation_seed))
        pixels = pixels[:, order]
    if mode == "row":
        return pixels.reshape(len(images), IMAGE_SIZE, IMAGE_SIZE)
    return pixels.unsqueeze(-1)


def split_digits(
    labels: np.ndarray, fractions: tuple[float, float] = (0.1, 0.1), seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fixed stratified (train, val, test) index arrays; ``fractions`` = (val, test) shares."""
    val_share, test_share = fractions
    rest, test = stratified_split_indices(labels, test_share, seed)
    keep, val = stratified_split_indices(labels[rest], val_share / (1.0 - test_share), seed)
    return rest[keep], rest[val], test
