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
    exist, is empty (no non-whitespace character), is UTF-16 or UTF-32 text (the message says
    how to convert it), contains NUL bytes (a binary file), or is not valid UTF-8 (the message
    gives the byte offset of the first bad byte).
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
    wide = _wide_encoding(raw)
    if wide is not None:
        raise DataError(f"{path}: is {wide} text; rnnkit reads UTF-8: convert it (e.g. "
                        f"`iconv -f {wide} -t UTF-8 {path.name} > {path.stem}-utf8{path.suffix}`) "
                        "and give the converted file")
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


def _wide_encoding(raw: bytes) -> str | None:
    """"UTF-16" or "UTF-32" when ``raw`` is text in that encoding, else None: a byte-order
    mark, or (no mark) the start's code units mostly one non-NUL byte and NULs, as
    Latin-script text in those encodings has and binary files do not."""
    if raw.startswith((b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")):
        return "UTF-32"
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "UTF-16"
    head = raw[:400]
    if len(head) < 8:
        return None
    for name, width in (("UTF-32", 4), ("UTF-16", 2)):
        usable = len(head) - len(head) % width
        units = [head[i:i + width] for i in range(0, usable, width)]
        for text_at in range(width):  # where the non-NUL byte sits: little- or big-endian
            narrow = sum(unit[text_at] != 0 and unit.count(0) == width - 1 for unit in units)
            if narrow >= 0.75 * len(units):
                return name
    return None
