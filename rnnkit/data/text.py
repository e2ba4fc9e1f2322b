"""Character-level text corpora: loading, vocabularies, contiguous splits, BPTT batching."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from typing import Any

import torch

from rnnkit.data.bundle import DataError
from rnnkit.data.textfile import read_text_file, resolve_data_path

BUNDLED_TEXTS: dict[str, str] = {"shakespeare": "text/shakespeare.txt"}
"""Names accepted by :func:`load_text`, mapped to their bundled files."""


def load_text(path_or_name: str | os.PathLike[str] = "shakespeare") -> str:
    """Return a whole corpus as one string.

    ``"shakespeare"`` (the default) is the bundled 1.1 MB ASCII corpus of the Sonnets and
    eight plays; any other value is the path of a UTF-8 text file. Line endings are
    normalised to "\\n". Raises :class:`DataError` for a missing, empty, binary (NUL bytes)
    or non-UTF-8 file; the message names the file (and the byte offset of a bad byte).
    """
    return read_text_file(resolve_data_path(path_or_name, BUNDLED_TEXTS))


class CharVocab:
    """A character vocabulary: each distinct character of a text gets an id 0..len-1.

    Ids follow the sorted order of the characters, so the same text always gives the
    same vocabulary. Save it with a model through :meth:`to_dict` (JSON-ready).
    """

    def __init__(self, text: str) -> None:
        """Build the vocabulary of the distinct characters in ``text`` (must be non-empty)."""
        if not text:
            raise ValueError("cannot build a character vocabulary from an empty text")
        self._set_chars(sorted(set(text)))

    def _set_chars(self, chars: Sequence[str]) -> None:
        for char in chars:
            if not isinstance(char, str) or len(char) != 1:
                raise ValueError(f"vocabulary entries must be single characters, got {char!r}")
        if len(set(chars)) != len(chars):
            raise ValueError("vocabulary characters must be distinct")
        self.chars: tuple[str, ...] = tuple(chars)
        self._index = {char: i for i, char in enumerate(self.chars)}

    def __len__(self) -> int:
        """Number of characters (the size of a model's input and output layers)."""
        return len(self.chars)

    def __contains__(self, char: object) -> bool:
        return char in self._index

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CharVocab) and self.chars == other.chars

    def __hash__(self) -> int:
        return hash(self.chars)

    def __repr__(self) -> str:
        return f"CharVocab({len(self)} characters)"

    def encode(self, text: str) -> torch.Tensor:
        """Map a string to ids: LongTensor of shape (len(text),).

        Raises ValueError naming the first character not in the vocabulary and its position.
        """
        index = self._index
        try:
            ids = [index[char] for char in text]
        except KeyError as err:
            char = err.args[0]
            pos = text.index(char)
            raise ValueError(
                f"character {char!r} (U+{ord(char):04X}) at position {pos} is not in the "
                f"vocabulary of {len(self)} characters; build the vocabulary from a text "
                "that contains it"
            ) from None
        return torch.tensor(ids, dtype=torch.long)

    def decode(self, ids: torch.Tensor | Sequence[int]) -> str:
        """Map ids (a 1-D tensor or sequence of ints, shape (n,)) back to a string of length n."""
        if isinstance(ids, torch.Tensor):
            if ids.dim() != 1:
                raise ValueError(
                    f"decode expects a 1-D tensor of ids, got shape {tuple(ids.shape)}"
                )
            ids = ids.tolist()
        chars = self.chars
        out = []
        for i in ids:
            if not 0 <= i < len(chars):
                raise ValueError(f"id {i} is outside the vocabulary (0..{len(chars) - 1})")
            out.append(chars[i])
        return "".join(out)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable description: ``{"type": "char", "chars": [...]}``."""
        return {"type": "char", "chars": list(self.chars)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CharVocab:
        """Rebuild a vocabulary saved with :meth:`to_dict`, keeping ids exactly as they were."""
        if not isinstance(data, dict) or data.get("type") != "char" or "chars" not in data:
            raise DataError(
                "not a saved character vocabulary (expected {'type': 'char', 'chars': [...]})"
            )
        vocab = cls.__new__(cls)
        vocab._set_chars(list(data["chars"]))
        return vocab


def split_text(
    text: str, fractions: tuple[float, float, float] = (0.9, 0.05, 0.05)
) -> tuple[str, str, str]:
    """Split a text into contiguous (train, val, test) parts, in that order.

    Contiguous blocks keep the validation and test text truly held out (no sentence is
    shared with training). The split is fixed: the same text and fractions always give
    the same parts, which concatenate back to ``text``. Each fraction must be >= 0, they
    must sum to 1, and every part with a positive fraction must be non-empty.
    """
    if len(fractions) != 3 or any(f < 0 for f in fractions):
        raise ValueError(f"fractions must be three non-negative numbers, got {fractions}")
    if not math.isclose(sum(fractions), 1.0, abs_tol=1e-9):
        raise ValueError(f"fractions must sum to 1, got {fractions} (sum {sum(fractions)})")
    n = len(text)
    train_end = round(fractions[0] * n)
    val_end = round((fractions[0] + fractions[1]) * n)
    parts = (text[:train_end], text[train_end:val_end], text[val_end:])
    for name, part, fraction in zip(("train", "val", "test"), parts, fractions, strict=True):
        if fraction > 0 and not part:
            raise ValueError(
                f"the {name} part of a {n}-character text is empty with fractions {fractions}; "
                "use a longer text or larger fraction"
            )
    return parts


class StreamBatcher:
    """Truncated-BPTT batches over one long token stream (the classic PTB layout).

    The stream ``ids`` (length N) is cut into ``batch_size`` contiguous streams of
    ``L = (N - 1) // batch_size`` steps each: row b holds inputs ``ids[b*L : (b+1)*L]`` and
    targets ``ids[b*L + 1 : (b+1)*L + 1]`` (the next token). Chunk k is columns
    ``[k*bptt, (k+1)*bptt)`` of those rows, so row b of chunk k+1 continues row b of chunk k
    and a model may carry its hidden state from one chunk to the next (detached).

    Every chunk has shape (batch_size, bptt); the last ``L % bptt`` steps of each row are
    dropped unless ``drop_last=False``, in which case the final chunk is narrower.

    Iterating yields ``(input, target)`` LongTensor pairs from :attr:`position` to the end.
    :attr:`position` is the index of the next chunk: inside the loop body it already counts
    the chunk being processed, so saving it with a checkpoint and calling :meth:`seek` on
    resume continues with exactly the next chunk. After the last chunk it returns to 0.
    """

    def __init__(
        self, ids: torch.Tensor | Sequence[int], batch_size: int, bptt: int, drop_last: bool = True
    ) -> None:
        """Lay out ``ids`` (1-D, shape (N,)) as ``batch_size`` streams cut into ``bptt`` steps."""
        ids = torch.as_tensor(ids)
        if ids.dim() != 1 or ids.is_floating_point() or ids.is_complex():
            raise ValueError(
                f"ids must be a 1-D integer tensor, got {ids.dtype} {tuple(ids.shape)}"
            )
        if batch_size < 1 or bptt < 1:
            raise ValueError(f"batch_size and bptt must be >= 1, got {batch_size} and {bptt}")
        length = (ids.numel() - 1) // batch_size
        if length < bptt:
            raise ValueError(
                f"a stream of {ids.numel()} tokens is too short for batch_size={batch_size} "
                f"and bptt={bptt}; it needs at least {batch_size * bptt + 1} tokens"
            )
        ids = ids.long()
        self.batch_size = batch_size
        self.bptt = bptt
        self.drop_last = drop_last
        self.stream_length = length
        self._inputs = ids[: batch_size * length].view(batch_size, length)
        self._targets = ids[1 : batch_size * length + 1].view(batch_size, length)
        self._position = 0

    def __len__(self) -> int:
        """Number of chunks per pass over the stream."""
        full, rest = divmod(self.stream_length, self.bptt)
        return full + (1 if rest and not self.drop_last else 0)

    @property
    def position(self) -> int:
        """Index of the next chunk that iteration will yield (0 <= position <= len)."""
        return self._position

    def seek(self, index: int) -> None:
        """Make the next iteration start at chunk ``index`` (0 <= index <= len), for resuming."""
        if not 0 <= index <= len(self):
            raise ValueError(f"chunk index {index} is outside 0..{len(self)}")
        self._position = index

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Chunk ``index``: (input, target), each (batch_size, bptt) (the last may be narrower)."""
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"chunk index {index} is outside 0..{len(self) - 1}")
        start = index * self.bptt
        stop = min(start + self.bptt, self.stream_length)
        return self._inputs[:, start:stop], self._targets[:, start:stop]

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield (input, target) chunks, each (batch_size, bptt), from :attr:`position` on."""
        while self._position < len(self):
            chunk = self[self._position]
            self._position += 1
            yield chunk
        self._position = 0
