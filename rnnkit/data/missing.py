"""How missing values in a series are filled, so no NaN ever reaches a model."""

from __future__ import annotations

import numpy as np


def fill_missing(values: np.ndarray) -> np.ndarray:
    """Return a copy of ``values`` with every NaN filled; shape (T,) or (T, C) is kept.

    Policy, for each channel (column) separately:

    * a gap between two observed values is filled by linear interpolation in the time index;
    * leading and trailing gaps take the nearest observed value;
    * a channel with no observed value at all becomes zeros.

    The result is float64 and contains no NaN.
    """
    arr = np.array(values, dtype=np.float64)
    if arr.ndim not in (1, 2):
        raise ValueError(f"fill_missing expects shape (T,) or (T, C), got {arr.shape}")
    columns = arr[:, None] if arr.ndim == 1 else arr
    steps = np.arange(columns.shape[0])
    for c in range(columns.shape[1]):
        column = columns[:, c]
        missing = np.isnan(column)
        if not missing.any():
            continue
        if missing.all():
            column[:] = 0.0
            continue
        observed = ~missing
        column[missing] = np.interp(steps[missing], steps[observed], column[observed])
    return arr
