"""Tests for rnnkit.data.cmudict: parsing, vocabularies, the by-word split, padded batches."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from rnnkit.data import (
    DataError,
    SymbolVocab,
    load_cmudict,
    make_g2p_batch,
    pad_token_sequences,
    split_by_word,
)
from rnnkit.data.cmudict import BOS, EOS, PAD

# The 39 ARPAbet phonemes of the CMU Pronouncing Dictionary (its documented phoneme set).
ARPABET = set(
    "AA AE AH AO AW AY B CH D DH EH ER EY F G HH IH IY JH K L M N NG OW OY P R S SH T TH "
    "UH UW V W Y Z ZH".split()
)


@pytest.fixture(scope="module")
def pairs() -> list[tuple[str, tuple[str, ...]]]:
    return load_cmudict()


def write_dict(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mini.dict"
    path.write_text(text)
    return path


# --- the bundled dictionary -------------------------------------------------------------------


def test_bundled_dictionary_has_over_100k_distinct_words(pairs) -> None:
    words = [w for w, _ in pairs]
    assert len(words) > 100_000
    assert len(set(words)) == len(words)


def test_words_are_letters_and_apostrophes_only(pairs) -> None:
    assert all(re.fullmatch(r"[a-z']+", w) for w, _ in pairs)


def test_phonemes_without_stress_are_the_39_arpabet_symbols(pairs) -> None:
    assert {p for _, ph in pairs for p in ph} == ARPABET


def test_keep_stress_keeps_the_stress_digits() -> None:
    stressed = dict(load_cmudict(keep_stress=True))
    assert any(p[-1] in "012" for p in stressed["aardvark"])
    assert {re.sub("[012]$", "", p) for ph in stressed.values() for p in ph} == ARPABET


def test_first_pronunciation_is_kept_for_alternates(tmp_path: Path) -> None:
    path = write_dict(tmp_path, "read R IY1 D\nread(2) R EH1 D\n")
    assert load_cmudict(path) == [("read", ("R", "IY", "D"))]


def test_comments_and_non_letter_words_are_skipped(tmp_path: Path) -> None:
    path = write_dict(
        tmp_path,
        ";;; header comment\n# another\naalborg AO1 L B AO0 R G # place, danish\n"
        "a.m. EY2 EH1 M\nad-hoc AE1 D HH AA1 K\n'tis T IH1 Z\n",
    )
    assert load_cmudict(path) == [
        ("aalborg", ("AO", "L", "B", "AO", "R", "G")),
        ("'tis", ("T", "IH", "Z")),
    ]


def test_line_without_phonemes_names_the_file_and_line(tmp_path: Path) -> None:
    path = write_dict(tmp_path, "cat K AE1 T\ndog\n")
    with pytest.raises(DataError, match=r"mini.dict: line 2: word 'dog' has no phonemes"):
        load_cmudict(path)


def test_malformed_phoneme_names_the_file_and_line(tmp_path: Path) -> None:
    path = write_dict(tmp_path, "cat K AE1 T\n\ndog D ao1 G\n")
    with pytest.raises(DataError, match=r"mini.dict: line 3: 'ao1' is not an ARPAbet phoneme"):
        load_cmudict(path)


def test_missing_dictionary_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="absent.dict: no such file"):
        load_cmudict(tmp_path / "absent.dict")


# --- split by word ----------------------------------------------------------------------------


def test_split_by_word_is_a_partition_with_roughly_90_5_5(pairs) -> None:
    train, val, test = split_by_word(pairs)
    words = [{w for w, _ in part} for part in (train, val, test)]
    assert not (words[0] & words[1] or words[0] & words[2] or words[1] & words[2])
    assert sum(len(p) for p in (train, val, test)) == len(pairs)
    n = len(pairs)
    assert abs(len(train) / n - 0.90) < 0.01
    assert abs(len(val) / n - 0.05) < 0.01 and abs(len(test) / n - 0.05) < 0.01


def test_split_by_word_is_fixed_and_independent_of_the_other_words(pairs) -> None:
    sample = pairs[::50]
    _, _, test_full = split_by_word(sample, seed=7)
    _, _, test_reversed = split_by_word(sample[::-1], seed=7)
    _, _, test_half = split_by_word(sample[: len(sample) // 2], seed=7)
    assert {w for w, _ in test_full} == {w for w, _ in test_reversed}
    assert {w for w, _ in test_half} <= {w for w, _ in test_full}


def test_split_by_word_changes_with_the_seed(pairs) -> None:
    sample = pairs[::50]
    assert split_by_word(sample, seed=0)[2] != split_by_word(sample, seed=1)[2]


# --- vocabularies and batches ----------------------------------------------------------------


def test_special_tokens_come_first(pairs) -> None:
    vocab = SymbolVocab.for_phonemes(pairs)
    assert (PAD, BOS, EOS) == (0, 1, 2)
    assert vocab.symbols[:3] == ("<pad>", "<bos>", "<eos>")
    assert len(vocab) == 39 + 3


def test_grapheme_vocab_holds_26_letters_and_the_apostrophe(pairs) -> None:
    vocab = SymbolVocab.for_graphemes(pairs)
    assert set(vocab.symbols[3:]) == set("abcdefghijklmnopqrstuvwxyz'")


def test_symbol_vocab_round_trips_with_bos_and_eos(pairs) -> None:
    vocab = SymbolVocab.for_phonemes(pairs)
    phonemes = dict(pairs)["aardvark"]
    ids = vocab.encode(phonemes, bos=True, eos=True)
    assert ids[0] == BOS and ids[-1] == EOS and len(ids) == len(phonemes) + 2
    assert vocab.decode(ids) == list(phonemes)


def test_symbol_vocab_survives_json_round_trip(pairs) -> None:
    vocab = SymbolVocab.for_graphemes(pairs)
    restored = SymbolVocab.from_dict(json.loads(json.dumps(vocab.to_dict())))
    assert restored == vocab


def test_unknown_symbol_error_names_the_symbol() -> None:
    with pytest.raises(ValueError, match=r"symbol 'Q' at position 1"):
        SymbolVocab(["A", "B"]).encode(["A", "Q"])


def test_pad_token_sequences_pads_with_zero() -> None:
    batch, lengths = pad_token_sequences([torch.tensor([5, 6, 7]), torch.tensor([8])])
    assert batch.tolist() == [[5, 6, 7], [8, PAD, PAD]] and lengths.tolist() == [3, 1]


def test_g2p_batch_shifts_target_by_one_step(pairs) -> None:
    graphemes = SymbolVocab.for_graphemes(pairs)
    phonemes = SymbolVocab.for_phonemes(pairs)
    chosen = pairs[1000:1008]
    batch = make_g2p_batch(chosen, graphemes, phonemes)
    assert batch.source.shape == (8, max(len(w) for w, _ in chosen))
    assert batch.target_input.shape == batch.target_output.shape
    assert torch.all(batch.target_input[:, 0] == BOS)
    for i, (word, phones) in enumerate(chosen):
        n = len(phones)
        assert batch.source_lengths[i] == len(word) and batch.target_lengths[i] == n + 1
        assert torch.equal(batch.target_input[i, 1 : n + 1], batch.target_output[i, :n])
        assert batch.target_output[i, n] == EOS
        assert graphemes.decode(batch.source[i]) == list(word)
