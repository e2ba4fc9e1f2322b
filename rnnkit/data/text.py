"""Character-level text corpora: loading, vocabularies, contiguous splits, BPTT batching."""

from __future__ import annotations

import math
import os
from collections import Counter
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


UNKNOWN_CHARACTER = "\ufffd"
"""What the unknown symbol decodes to: U+FFFD, Unicode's replacement character."""

BYTE_NATS = math.log(256)
"""The cost in nats of spelling one UTF-8 byte uniformly at random."""


class CharVocab:
    """A character vocabulary: each kept character of a text gets an id, in sorted order.

    With ``unknown=True`` the vocabulary also has an unknown symbol, the last id
    (:attr:`unknown_id`): characters it does not hold encode to it, and it decodes to
    :data:`UNKNOWN_CHARACTER`. Characters seen fewer than ``min_count`` times are then left
    out, so the training text itself contains the unknown symbol and a model learns how often
    something new turns up (``min_count=2`` is the Good-Turing estimate: characters seen once
    stand for those never seen). Without it, an unknown character is an error.

    The same text and settings always give the same vocabulary. Save it with a model through
    :meth:`to_dict` (JSON-ready).
    """

    def __init__(self, text: str, min_count: int = 1, unknown: bool = False) -> None:
        """Build the vocabulary of the characters of ``text`` (must be non-empty) seen at least
        ``min_count`` times, with an unknown symbol if ``unknown``."""
        if not text:
            raise ValueError("cannot build a character vocabulary from an empty text")
        if min_count < 1 or (min_count > 1 and not unknown):
            raise ValueError(f"min_count must be 1, or >= 1 with unknown=True; got {min_count} "
                             f"with unknown={unknown}")
        counts = Counter(text)
        self._set_chars(sorted(char for char, n in counts.items() if n >= min_count), unknown)

    def _set_chars(self, chars: Sequence[str], unknown: bool) -> None:
        for char in chars:
            if not isinstance(char, str) or len(char) != 1:
                raise ValueError(f"vocabulary entries must be single characters, got {char!r}")
        if len(set(chars)) != len(chars):
            raise ValueError("vocabulary characters must be distinct")
        self.chars: tuple[str, ...] = tuple(chars)
        self.unknown_id: int | None = len(self.chars) if unknown else None
        self._index = {char: i for i, char in enumerate(self.chars)}

    def __len__(self) -> int:
        """Number of ids, the unknown symbol included (a model's input and output size)."""
        return len(self.chars) + (self.unknown_id is not None)

    def __contains__(self, char: object) -> bool:
        """Whether ``char`` has an id of its own (the unknown symbol's stand-ins do not)."""
        return char in self._index

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, CharVocab) and self.chars == other.chars
                and self.unknown_id == other.unknown_id)

    def __hash__(self) -> int:
        return hash((self.chars, self.unknown_id))

    def __repr__(self) -> str:
        extra = " and an unknown symbol" if self.unknown_id is not None else ""
        return f"CharVocab({len(self.chars)} characters{extra})"

    def encode(self, text: str) -> torch.Tensor:
        """Map a string to ids: LongTensor of shape (len(text),).

        A character not in the vocabulary encodes to :attr:`unknown_id`; a vocabulary
        without one raises ValueError naming the first such character and its position.
        """
        index = self._index
        if self.unknown_id is not None:
            unknown = self.unknown_id
            return torch.tensor([index.get(char, unknown) for char in text], dtype=torch.long)
        try:
            ids = [index[char] for char in text]
        except KeyError as err:
            char = err.args[0]
            pos = text.index(char)
            raise ValueError(
                f"character {char!r} (U+{ord(char):04X}) at position {pos} is not in the "
                f"vocabulary of {len(self)} characters, which has no unknown symbol; build the "
                "vocabulary from a text that contains it, or with unknown=True"
            ) from None
        return torch.tensor(ids, dtype=torch.long)

    def unknown_nats(self, text: str) -> torch.Tensor:
        """The cost in nats, beyond the unknown symbol's own, of each character of ``text``
        (shape (len(text),)): 0 for a character with an id, and ln 256 per UTF-8 byte for one
        read as the unknown symbol, as if the model then spelt its bytes uniformly at random.
        Added to a model's cross-entropy this keeps it a cost of the text itself (a proper
        probability of every Unicode string), not of the text with its rare characters merged.
        """
        index = self._index
        return torch.tensor([0.0 if char in index else BYTE_NATS * len(char.encode("utf-8",
                             "surrogatepass")) for char in text], dtype=torch.float64)

    def decode(self, ids: torch.Tensor | Sequence[int]) -> str:
        """Map ids (a 1-D tensor or sequence of ints, shape (n,)) back to a string of length n;
        the unknown symbol decodes to :data:`UNKNOWN_CHARACTER`."""
        if isinstance(ids, torch.Tensor):
            if ids.dim() != 1:
                raise ValueError(
                    f"decode expects a 1-D tensor of ids, got shape {tuple(ids.shape)}"
                )
            ids = ids.tolist()
        chars = self.chars + ((UNKNOWN_CHARACTER,) if self.unknown_id is not None else ())
        out = []
        for i in ids:
            if not 0 <= i < len(chars):
                raise ValueError(f"id {i} is outside the vocabulary (0..{len(chars) - 1})")
            out.append(chars[i])
        return "".join(out)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable description:
        ``{"type": "char", "chars": [...], "unknown": bool}``."""
        return {"type": "char", "chars": list(self.chars), "unknown": self.unknown_id is not None}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CharVocab:
        """Rebuild a vocabulary saved with :meth:`to_dict`, keeping ids exactly as they were
        (a description without ``"unknown"``, written before it existed, has none)."""
        if not isinstance(data, dict) or data.get("type") != "char" or "chars" not in data:
            raise DataError(
                "not a saved character vocabulary (expected {'type': 'char', 'chars': [...]})"
            )
        vocab = cls.__new__(cls)
        vocab._set_chars(list(data["chars"]), bool(data.get("unknown", False)))
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
