"""Reading a user-supplied text data file, with one-line errors that say what to do."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from rnnkit.data.bundle import DataError, bundled_path


def resolve_data_path(path_or_name: str | os.PathLike[str], bundled: Mapping[str, str]) -> Path:
    """Map a bundled data set name to its file, or return any other value as a path.

    ``bundled`` maps names (matched case-insensitively) to paths relative to the bundled
    files folder. A value that is not a bundled name must name an existing file.
    """
    if isinstance(path_or_name, str):
        by_lower = {name.lower(): rel for name, rel in bundled.items()}
        if path_or_name.lower() in by_lower:
            return bundled_path(by_lower[path_or_name.lower()])
    path = Path(path_or_name)
    if not path.exists():
        names = ", ".join(sorted(bundled))
        raise DataError(
            f"{path}: no such file; give an existing path or one of the bundled names: {names}"
        )
    if not path.is_file():
        raise DataError(f"{path}: is not a regular file; give the path of a text file")
    return path


def read_text_file(path: str | os.PathLike[str]) -> str:
    """Read a whole UTF-8 text file and return its text with line endings normalised to "\\n".

    A leading byte-order mark is dropped. Raises :class:`DataError` if the file does not
    exist, is empty (no non-whitespace character), contains NUL bytes (a binary file), or is
    not valid UTF-8 (the message gives the byte offset of the first bad byte).
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: no such file; check the path") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory; give the path of a text file") from None
    except OSError as err:
        raise DataError(f"{path}: cannot be read ({err.strerror}); check its permissions") from None
    nul = raw.find(b"\x00")
    if nul >= 0:
        raise DataError(
            f"{path}: looks like a binary file (NUL byte at byte offset {nul}); "
            "give a plain UTF-8 text file"
        )
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        offset = err.start + (3 if raw.startswith(b"\xef\xbb\xbf") else 0)
        raise DataError(
            f"{path}: not valid UTF-8 at byte offset {offset} (byte 0x{raw[offset]:02x}); "
            "re-save the file as UTF-8"
        ) from None
    if not text.strip():
        raise DataError(f"{path}: the file is empty; give a file that contains data")
    return text.replace("\r\n", "\n").replace("\r", "\n")
