"""Parallel text for translation: the bundled Multi30K, two aligned text files or a TSV of
pairs, and a SentencePiece subword vocabulary learned from the training sentences.

``--data`` forms (:func:`load_parallel`):

* ``multi30k`` or ``multi30k:de-en`` -- the bundled Multi30K task 1 (English image
  descriptions with German and French translations; train 29,000, val 1,014, test_2016_flickr
  1,000 sentences), with its own splits. The languages are ``de``, ``en`` and ``fr``.
* ``SOURCE_FILE,TARGET_FILE`` -- two text files (plain or gzip), one sentence a line, line n
  of one the translation of line n of the other.
* ``PAIRS.tsv`` -- one pair a line, tab-separated; the source and target columns are given by
  number (1-based, default 1 and 2).

Files other than the bundled set are split 90/5/5 into train/val/test by a seeded hash of the
source sentence (:func:`rnnkit.data.hash_split`). Every problem (a missing file, lines that do
not pair up, an empty sentence, a missing column, bytes that are not UTF-8) is a one-line
:class:`~rnnkit.data.DataError` naming the file and line.
"""

from __future__ import annotations

import base64
import gzip
import io
from dataclasses import dataclass
from pathlib import Path

import sentencepiece

from rnnkit.data.bundle import DataError, bundled_path
from rnnkit.data.cmudict import BOS, EOS, PAD
from rnnkit.data.splits import hash_split

MULTI30K_LANGUAGES = ("de", "en", "fr")
MULTI30K_SPLITS = {"train": "train", "val": "val", "test": "test_2016_flickr"}
"""Split name -> the bundled file stem (``multi30k/<stem>.<language>.gz``)."""

UNK = 3
"""Id of the unknown piece in a :class:`SubwordVocab` (after PAD, BOS and EOS)."""

Pairs = list[tuple[str, str]]
"""(source sentence, target sentence) pairs."""


@dataclass
class ParallelText:
    """Sentence pairs of each split (``train``, ``val``, ``test``) and the languages (or
    column names) of the two sides, for messages and reports."""

    splits: dict[str, Pairs]
    source: str
    target: str


def load_parallel(data: str, source: str | None = None, target: str | None = None
                  ) -> ParallelText:
    """Read the parallel text ``data`` names (see the module's docstring).

    ``source``/``target``: Multi30K languages (default ``de`` and ``en``, or those of
    ``multi30k:SRC-TGT``), or a TSV's column numbers (default 1 and 2); two text files take
    neither. Raises :class:`DataError` for anything it cannot read.
    """
    name, _, pair = data.partition(":")
    if name == "multi30k":
        return _load_multi30k(pair, source, target)
    if "," in data:
        if source is not None or target is not None:
            raise DataError("--source/--target: two text files are already source and target "
                            "(in that order); drop --source/--target")
        source_file, target_file = data.split(",", 1)
        pairs = _read_aligned(Path(source_file), Path(target_file))
        return _hash_splits(pairs, Path(source_file).name, Path(target_file).name)
    source_column = _column(source, "--source", 1)
    target_column = _column(target, "--target", 2)
    if source_column == target_column:
        raise DataError(f"--source/--target: both name column {source_column}; give two "
                        "different columns")
    pairs = _read_tsv(Path(data), source_column, target_column)
    return _hash_splits(pairs, f"column {source_column}", f"column {target_column}")


def _load_multi30k(pair: str, source: str | None, target: str | None) -> ParallelText:
    """The bundled Multi30K in the languages ``pair`` ("de-en") or ``source``/``target`` say."""
    named = pair.split("-") if pair else [None, None]
    if len(named) != 2:
        raise DataError(f"--data multi30k:{pair}: expected a language pair like "
                        "multi30k:de-en")
    chosen = []
    for flag, given, in_name, default in (("--source", source, named[0], "de"),
                                          ("--target", target, named[1], "en")):
        if given is not None and in_name is not None and given != in_name:
            raise DataError(f"{flag} {given} disagrees with --data multi30k:{pair}; give the "
                            "languages once")
        language = given or in_name or default
        if language not in MULTI30K_LANGUAGES:
            raise DataError(f"{flag}: Multi30K has the languages {', '.join(MULTI30K_LANGUAGES)}"
                            f", got {language!r}")
        chosen.append(language)
    if chosen[0] == chosen[1]:
        raise DataError(f"--source/--target: both are {chosen[0]!r}; give two languages")
    splits = {}
    for split, stem in MULTI30K_SPLITS.items():
        paths = [bundled_path(f"multi30k/{stem}.{language}.gz") for language in chosen]
        splits[split] = _read_aligned(*paths)
    return ParallelText(splits, *chosen)


def _column(value: str | None, flag: str, default: int) -> int:
    """A TSV column number (1-based) from ``--source``/``--target``."""
    if value is None:
        return default
    if not value.isdigit() or int(value) < 1:
        raise DataError(f"{flag}: for a tab-separated file, expected a column number (1, 2, "
                        f"...), got {value!r}")
    return int(value)


def _read_lines(path: Path) -> list[str]:
    """The lines of a UTF-8 text file (gzip if it is one), without line ends."""
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as err:
            raise DataError(f"{path}: not a readable gzip file ({err})") from None
    lines = raw.decode("utf-8", errors="replace").splitlines()
    if "\ufffd" in "".join(lines):
        for number, line in enumerate(io.BytesIO(raw), start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as err:
                raise DataError(f"{path}: line {number}: not UTF-8 (byte "
                                f"{line[err.start]:#04x}); save the file as UTF-8") from None
    if not lines:
        raise DataError(f"{path}: is empty; expected one sentence a line")
    return lines


def _read_aligned(source_path: Path, target_path: Path) -> Pairs:
    """Pairs from two files whose line n are translations of each other."""
    source_lines, target_lines = _read_lines(source_path), _read_lines(target_path)
    if len(source_lines) != len(target_lines):
        shorter = source_path if len(source_lines) < len(target_lines) else target_path
        raise DataError(f"{source_path} has {len(source_lines)} lines but {target_path} has "
                        f"{len(target_lines)}; line n of each must translate the other (check "
                        f"the end of {shorter})")
    for path, lines in ((source_path, source_lines), (target_path, target_lines)):
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                raise DataError(f"{path}: line {number}: empty sentence; every line must hold "
                                "one sentence (remove the pair from both files)")
    return [(s.strip(), t.strip()) for s, t in zip(source_lines, target_lines)]


def _read_tsv(path: Path, source_column: int, target_column: int) -> Pairs:
    """Pairs from the two columns of a tab-separated file."""
    pairs = []
    needed = max(source_column, target_column)
    for number, line in enumerate(_read_lines(path), start=1):
        if not line.strip():
            raise DataError(f"{path}: line {number}: empty line; expected a sentence pair "
                            "'SOURCE<TAB>TARGET'")
        columns = line.split("\t")
        if len(columns) < needed:
            raise DataError(f"{path}: line {number}: expected at least {needed} tab-separated "
                            f"columns, got {len(columns)} ({line[:40]!r})")
        pair = columns[source_column - 1].strip(), columns[target_column - 1].strip()
        if not all(pair):
            raise DataError(f"{path}: line {number}: empty sentence in column "
                            f"{source_column if not pair[0] else target_column}")
        pairs.append(pair)
    return pairs


def _hash_splits(pairs: Pairs, source: str, target: str) -> ParallelText:
    """90/5/5 train/val/test by a hash of each source sentence."""
    parts = hash_split([s for s, _ in pairs], (0.9, 0.05, 0.05), seed=0)
    splits = {name: [pairs[i] for i in part] for name, part in zip(("train", "val", "test"),
                                                                      parts)}
    return ParallelText(splits, source, target)


class SubwordVocab:
    """A SentencePiece (unigram) vocabulary: text <-> piece ids, with PAD = 0, BOS = 1,
    EOS = 2 (as :class:`rnnkit.data.SymbolVocab`) and UNK = 3.

    :meth:`train` learns one from sentences; :meth:`to_dict`/:meth:`from_dict` keep it as
    JSON-ready text (the serialised model, base64) in a checkpoint. ``decode`` gives
    detokenised text.
    """

    def __init__(self, model: bytes) -> None:
        """Load a serialised SentencePiece model."""
        self.model = model
        self.processor = sentencepiece.SentencePieceProcessor(model_proto=model)

    @classmethod
    def train(cls, sentences: list[str], size: int) -> SubwordVocab:
        """Learn a vocabulary of at most ``size`` pieces (fewer if the text has too few)."""
        if size < 8:
            raise ValueError(f"size: expected >= 8, got {size}")
        written = io.BytesIO()
        sentencepiece.SentencePieceTrainer.train(
            sentence_iterator=iter(sentences), model_writer=written, vocab_size=size,
            model_type="unigram", character_coverage=1.0, hard_vocab_limit=False,
            pad_id=PAD, bos_id=BOS, eos_id=EOS, unk_id=UNK, num_threads=1, minloglevel=2)
        return cls(written.getvalue())

    def __len__(self) -> int:
        """Number of pieces, the special ones included."""
        return self.processor.get_piece_size()

    def encode(self, text: str) -> list[int]:
        """Piece ids of ``text``."""
        return self.processor.encode(text)

    def decode(self, ids: list[int]) -> str:
        """Detokenised text of piece ids (special ids are dropped)."""
        return self.processor.decode([i for i in ids if i > EOS])

    def pieces(self, ids: list[int]) -> list[str]:
        """The pieces of ``ids`` as strings (e.g. for labelling a plot)."""
        return [self.processor.id_to_piece(i) for i in ids]

    def to_dict(self) -> dict[str, str]:
        """JSON-ready form, for a checkpoint."""
        return {"sentencepiece": base64.b64encode(self.model).decode("ascii")}

    @classmethod
    def from_dict(cls, saved: dict[str, str]) -> SubwordVocab:
        """Rebuild a vocabulary saved with :meth:`to_dict`."""
        return cls(base64.b64decode(saved["sentencepiece"]))
