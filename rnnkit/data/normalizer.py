"""Per-channel standardisation whose statistics come from the training data only."""

from __future__ import annotations

from typing import Any, TypeVar

import numpy as np
import torch

from rnnkit.data.bundle import DataError

ArrayOrTensor = TypeVar("ArrayOrTensor", np.ndarray, torch.Tensor)


class Normalizer:
    """Standardise each channel to zero mean and unit variance: ``(x - mean) / std``.

    Fit it on the training part only (:meth:`fit`), then apply the same statistics to the
    validation and test parts. The channel is the last axis; a 1-D array is one channel.
    A channel with zero (or non-finite) spread keeps ``std = 1`` so it is only shifted.
    """

    def __init__(self, mean: np.ndarray | float, std: np.ndarray | float) -> None:
        """Use the given per-channel ``mean`` and ``std`` (each a scalar or shape (C,))."""
        self.mean = np.atleast_1d(np.asarray(mean, dtype=np.float64))
        self.std = np.atleast_1d(np.asarray(std, dtype=np.float64))
        if self.mean.shape != self.std.shape or self.mean.ndim != 1:
            raise ValueError(
                f"mean and std must have shape (C,), got {self.mean.shape}, {self.std.shape}"
            )
        if not (np.all(np.isfinite(self.mean)) and np.all(self.std > 0)):
            raise ValueError("mean must be finite and std positive")

    @classmethod
    def fit(cls, values: np.ndarray | torch.Tensor) -> Normalizer:
        """Compute per-channel statistics of ``values``, shape (..., C) or (N,) for one channel."""
        arr = np.asarray(values, dtype=np.float64)
        if arr.size == 0:
            raise ValueError("cannot fit a Normalizer on no values")
        if arr.ndim == 1:
            arr = arr[:, None]
        flat = arr.reshape(-1, arr.shape[-1])
        if np.isnan(flat).any():
            raise ValueError("cannot fit a Normalizer on values with NaN; fill them first")
        mean = flat.mean(axis=0)
        std = flat.std(axis=0)
        std = np.where(np.isfinite(std) & (std > 1e-12), std, 1.0)
        return cls(mean, std)

    @property
    def channels(self) -> int:
        """Number of channels C."""
        return int(self.mean.shape[0])

    def _stats(self, like: ArrayOrTensor) -> tuple[Any, Any]:
        if isinstance(like, torch.Tensor):
            dtype = like.dtype if like.is_floating_point() else torch.float32
            mean = torch.as_tensor(self.mean, dtype=dtype, device=like.device)
            std = torch.as_tensor(self.std, dtype=dtype, device=like.device)
        else:
            mean, std = self.mean, self.std
        if like.ndim == 1:
            if self.channels != 1:
                raise ValueError(
                    f"a 1-D input is one channel but this Normalizer has {self.channels}"
                )
            return mean[0], std[0]
        if like.shape[-1] != self.channels:
            raise ValueError(f"last axis has {like.shape[-1]} channels, expected {self.channels}")
        return mean, std

    def transform(self, values: ArrayOrTensor) -> ArrayOrTensor:
        """Standardise ``values`` (array or tensor, shape (..., C) or (N,)); same shape back."""
        mean, std = self._stats(values)
        return (values - mean) / std

    def inverse_transform(self, values: ArrayOrTensor) -> ArrayOrTensor:
        """Undo :meth:`transform`: ``values * std + mean``; same shape back."""
        mean, std = self._stats(values)
        return values * std + mean

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable description to save with a model."""
        return {"type": "normalizer", "mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Normalizer:
        """Rebuild a Normalizer saved with :meth:`to_dict`."""
        if not isinstance(data, dict) or data.get("type") != "normalizer":
            raise DataError("not a saved Normalizer (expected {'type': 'normalizer', ...})")
        return cls(np.asarray(data["mean"]), np.asarray(data["std"]))

    def __repr__(self) -> str:
        return f"Normalizer(mean={self.mean.tolist()}, std={self.std.tolist()})"
