"""Grapheme-to-phoneme pairs from the CMU Pronouncing Dictionary (bundled, BSD-style licence).

Each line of the dictionary is ``word PH1 PH2 ...`` (ARPAbet phonemes, vowels carry a
stress digit 0/1/2); alternates are written ``word(2)``; ``;;;`` and ``#`` start comments.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from rnnkit.data.bundle import DataError
from rnnkit.data.splits import hash_split
from rnnkit.data.textfile import read_text_file, resolve_data_path

PAD, BOS, EOS = 0, 1, 2
"""Ids of the special tokens in every :class:`SymbolVocab`."""
SPECIAL_TOKENS = ("<pad>", "<bos>", "<eos>")

_WORD = re.compile(r"^[a-z']+$")
_ALTERNATE = re.compile(r"^(?P<word>.+)\((?P<n>\d+)\)$")
_PHONEME = re.compile(r"^[A-Z]+[0-2]?$")
_STRESS = re.compile(r"[0-2]$")


def load_cmudict(
    path: str | os.PathLike[str] | None = None, keep_stress: bool = False
) -> list[tuple[str, tuple[str, ...]]]:
    """Return (word, phonemes) pairs, one per word, in dictionary order.

    ``path`` defaults to the bundled dictionary. Comments (``;;;``/``#`` lines and trailing
    ``# ...``) are skipped; only the first pronunciation of each word is kept (``word(2)``
    alternates are dropped); words are lower-cased and kept only if made of letters a-z and
    apostrophes; stress digits are removed from phonemes (``AH0`` -> ``AH``) unless
    ``keep_stress``. Raises :class:`DataError` naming the file and line of a line without
    phonemes or with a malformed phoneme.
    """
    source = resolve_data_path(
        path if path is not None else "cmudict", {"cmudict": "cmudict/cmudict.dict"}
    )
    pairs: list[tuple[str, tuple[str, ...]]] = []
    seen: set[str] = set()
    for number, raw in enumerate(read_text_file(source).split("\n"), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line or line.startswith(";;;"):
            continue
        word, *phonemes = line.split()
        if not phonemes:
            raise DataError(
                f"{source}: line {number}: word {word!r} has no phonemes; write 'word PH1 PH2 ...'"
            )
        for phoneme in phonemes:
            if not _PHONEME.match(phoneme):
                raise DataError(
                    f"{source}: line {number}: {phoneme!r} is not an ARPAbet "
                    "phoneme (capital letters and an optional stress digit 0-2)"
                )
        alternate = _ALTERNATE.match(word)
        word = (alternate.group("word") if alternate else word).lower()
        if word in seen or not _WORD.match(word):
            continue
        seen.add(word)
        if not keep_stress:
            phonemes = [_STRESS.sub("", p) for p in phonemes]
        pairs.append((word, tuple(phonemes)))
    if not pairs:
        raise DataError(f"{source}: no usable entries; lines must read 'word PH1 PH2 ...'")
    return pairs


class SymbolVocab:
    """Ids for a set of symbols, after the special tokens PAD=0, BOS=1, EOS=2.

    Symbols are sorted, so the same symbols always give the same ids.
    """

    def __init__(self, symbols: Iterable[str]) -> None:
        """Build the vocabulary of the distinct ``symbols`` (special tokens are added)."""
        self._set_symbols(sorted(set(symbols) - set(SPECIAL_TOKENS)))

    def _set_symbols(self, symbols: Sequence[str]) -> None:
        if len(set(symbols)) != len(symbols):
            raise ValueError("vocabulary symbols must be distinct")
        self.symbols: tuple[str, ...] = tuple(SPECIAL_TOKENS) + tuple(symbols)
        self._index = {s: i for i, s in enumerate(self.symbols)}

    def __len__(self) -> int:
        """Number of ids, special tokens included."""
        return len(self.symbols)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SymbolVocab) and self.symbols == other.symbols

    def __hash__(self) -> int:
        return hash(self.symbols)

    def __repr__(self) -> str:
        return f"SymbolVocab({len(self)} ids)"

    def encode(self, sequence: Sequence[str], bos: bool = False, eos: bool = False) -> torch.Tensor:
        """Ids of ``sequence``, optionally framed by BOS/EOS: LongTensor (len + bos + eos,).

        Raises ValueError naming a symbol that is not in the vocabulary.
        """
        ids = [BOS] if bos else []
        for position, symbol in enumerate(sequence):
            if symbol not in self._index or self._index[symbol] < len(SPECIAL_TOKENS):
                raise ValueError(
                    f"symbol {symbol!r} at position {position} is not in the vocabulary"
                )
            ids.append(self._index[symbol])
        if eos:
            ids.append(EOS)
        return torch.tensor(ids, dtype=torch.long)

    def decode(self, ids: torch.Tensor | Sequence[int]) -> list[str]:
        """Symbols of ``ids`` (shape (n,)), stopping at the first EOS and skipping PAD/BOS."""
        out = []
        for i in ids.tolist() if isinstance(ids, torch.Tensor) else ids:
            if i == EOS:
                break
            if i in (PAD, BOS):
                continue
            if not 0 <= i < len(self.symbols):
                raise ValueError(f"id {i} is outside the vocabulary (0..{len(self) - 1})")
            out.append(self.symbols[i])
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable description: ``{"type": "symbols", "symbols": [...]}``."""
        return {"type": "symbols", "symbols": list(self.symbols[len(SPECIAL_TOKENS) :])}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SymbolVocab:
        """Rebuild a vocabulary saved with :meth:`to_dict`, keeping ids exactly as they were."""
        if not isinstance(data, dict) or data.get("type") != "symbols" or "symbols" not in data:
            raise DataError("not a saved symbol vocabulary (expected {'type': 'symbols', ...})")
        vocab = cls.__new__(cls)
        vocab._set_symbols(list(data["symbols"]))
        return vocab

    @classmethod
    def for_graphemes(cls, pairs: Iterable[tuple[str, Sequence[str]]]) -> SymbolVocab:
        """The vocabulary of the letters of the words in ``pairs``."""
        return cls(char for word, _ in pairs for char in word)

    @classmethod
    def for_phonemes(cls, pairs: Iterable[tuple[str, Sequence[str]]]) -> SymbolVocab:
        """The vocabulary of the phonemes in ``pairs``."""
        return cls(p for _, phonemes in pairs for p in phonemes)


def split_by_word(
    pairs: Sequence[tuple[str, tuple[str, ...]]],
    fractions: tuple[float, float, float] = (0.9, 0.05, 0.05),
    seed: int = 0,
) -> tuple[list[tuple[str, tuple[str, ...]]], ...]:
    """Split pairs into (train, val, test) by word, each part in the input order.

    Each word goes to a part chosen by a seeded hash of the word (see
    :func:`rnnkit.data.hash_split`), so the split is fixed across machines and library
    versions and a word is never in two parts. Part sizes are close to ``fractions``.
    """
    parts = hash_split([word for word, _ in pairs], fractions, seed)
    return tuple([pairs[i] for i in part] for part in parts)


def pad_token_sequences(
    sequences: Sequence[torch.Tensor], pad: int = PAD
) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad 1-D LongTensors into (B, T_max) with ``pad``; also return lengths (B,)."""
    if len(sequences) == 0:
        raise ValueError("pad_token_sequences needs at least one sequence")
    lengths = torch.tensor([len(s) for s in sequences], dtype=torch.long)
    batch = torch.full((len(sequences), int(lengths.max())), pad, dtype=torch.long)
    for i, s in enumerate(sequences):
        batch[i, : len(s)] = s
    return batch, lengths


@dataclass(eq=False)
class G2PBatch:
    """A padded grapheme-to-phoneme batch for a sequence-to-sequence model.

    * ``source`` (B, S): letter ids, PAD after each word; ``source_lengths`` (B,).
    * ``target_input`` (B, T): BOS + phoneme ids (teacher forcing input), PAD after.
    * ``target_output`` (B, T): phoneme ids + EOS (what to predict), PAD after.
    * ``target_lengths`` (B,): phonemes + 1 (the non-PAD length of both target rows).
    """

    source: torch.Tensor
    source_lengths: torch.Tensor
    target_input: torch.Tensor
    target_output: torch.Tensor
    target_lengths: torch.Tensor


def make_g2p_batch(
    pairs: Sequence[tuple[str, Sequence[str]]], graphemes: SymbolVocab, phonemes: SymbolVocab
) -> G2PBatch:
    """Encode and pad (word, phonemes) pairs into a :class:`G2PBatch`."""
    source, source_lengths = pad_token_sequences([graphemes.encode(w) for w, _ in pairs])
    target_input, target_lengths = pad_token_sequences(
        [phonemes.encode(p, bos=True) for _, p in pairs]
    )
    target_output, _ = pad_token_sequences([phonemes.encode(p, eos=True) for _, p in pairs])
    return G2PBatch(source, source_lengths, target_input, target_output, target_lengths)
