"""Where bundled data files live, and the one error every reader raises."""

from __future__ import annotations

from pathlib import Path

_FILES_DIR = Path(__file__).resolve().parent / "files"


class DataError(ValueError):
    """Bad or missing input data; the message names the file and what to do about it."""


def bundled_path(relative: str) -> Path:
    """Return the path of a file bundled with rnnkit, e.g. ``bundled_path("text/shakespeare.txt")``.

    ``relative`` is a '/'-separated path below ``rnnkit/data/files``. Raises
    :class:`DataError` if no such bundled file exists.
    """
    path = (_FILES_DIR / relative).resolve()
    if _FILES_DIR not in path.parents or not path.is_file():
        raise DataError(f"{relative}: no such bundled data file; see {_FILES_DIR / 'README.md'}")
    return path
