"""Tests for rnnkit.data.text: loading corpora, CharVocab, split_text, StreamBatcher."""

from __future__ import annotations

import json
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rnnkit.data import CharVocab, DataError, StreamBatcher, bundled_path, load_text, split_text


@pytest.fixture(scope="module")
def shakespeare() -> str:
    return load_text("shakespeare")


# --- load_text -------------------------------------------------------------------------


def test_shakespeare_is_the_default_corpus(shakespeare: str) -> None:
    assert load_text() == shakespeare


def test_shakespeare_is_ascii_with_76_distinct_characters(shakespeare: str) -> None:
    assert all(ord(c) < 128 for c in set(shakespeare))
    assert len(set(shakespeare)) == 76


def test_shakespeare_contains_the_sonnets_and_the_plays(shakespeare: str) -> None:
    assert len(shakespeare) > 1_000_000
    for title in ("THE SONNETS", "HAMLET", "MACBETH", "OTHELLO", "KING LEAR"):
        assert title in shakespeare.upper()


def test_load_text_reads_a_utf8_path(tmp_path) -> None:
    path = tmp_path / "poem.txt"
    path.write_text("Ça va, naïve café\n", encoding="utf-8")
    assert load_text(path) == "Ça va, naïve café\n"


def test_load_text_normalises_windows_line_endings(tmp_path) -> None:
    path = tmp_path / "crlf.txt"
    path.write_bytes(b"one\r\ntwo\r\n")
    assert load_text(str(path)) == "one\ntwo\n"


def test_missing_file_error_names_the_file(tmp_path) -> None:
    path = tmp_path / "nowhere.txt"
    with pytest.raises(DataError, match="nowhere.txt: no such file"):
        load_text(path)


def test_empty_file_error_names_the_file(tmp_path) -> None:
    path = tmp_path / "empty.txt"
    path.write_bytes(b"")
    with pytest.raises(DataError, match="empty.txt: the file is empty"):
        load_text(path)


def test_whitespace_only_file_counts_as_empty(tmp_path) -> None:
    path = tmp_path / "blank.txt"
    path.write_text("  \n\n\t\n")
    with pytest.raises(DataError, match="blank.txt: the file is empty"):
        load_text(path)


def test_binary_file_error_names_the_file_and_nul_offset(tmp_path) -> None:
    path = tmp_path / "weights.bin"
    path.write_bytes(b"PK\x03\x04\x00\x01")
    with pytest.raises(DataError, match=r"weights.bin: looks like a binary file .*offset 4"):
        load_text(path)


def test_non_utf8_error_gives_the_byte_offset(tmp_path) -> None:
    path = tmp_path / "latin1.txt"
    path.write_bytes("abc café".encode("latin-1"))  # é is byte 0xe9 at offset 7
    with pytest.raises(DataError, match=r"latin1.txt: not valid UTF-8 at byte offset 7"):
        load_text(path)


def test_directory_is_rejected_with_its_name(tmp_path) -> None:
    with pytest.raises(DataError, match=tmp_path.name):
        load_text(tmp_path)


def test_data_errors_are_value_errors_on_one_line(tmp_path) -> None:
    with pytest.raises(ValueError) as info:
        load_text(tmp_path / "missing.txt")
    assert "\n" not in str(info.value)


def test_bundled_path_points_at_an_existing_file() -> None:
    path = bundled_path("text/shakespeare.txt")
    assert path.is_file() and path.name == "shakespeare.txt"


def test_bundled_path_rejects_unknown_and_escaping_paths() -> None:
    with pytest.raises(DataError, match="no_such.txt"):
        bundled_path("text/no_such.txt")
    with pytest.raises(DataError):
        bundled_path("../__init__.py")


def test_bundled_files_have_a_readme_with_sources() -> None:
    readme = bundled_path("README.md").read_text()
    for name in ("shakespeare.txt", "GunPoint", "cmudict", "mnist5000", "sunspots", "airline"):
        assert name in readme
    assert bundled_path("cmudict/LICENSE").is_file()


# --- CharVocab ---------------------------------------------------------------------------


def test_vocab_round_trips_the_corpus(shakespeare: str) -> None:
    vocab = CharVocab(shakespeare)
    sample = shakespeare[:20_000]
    ids = vocab.encode(sample)
    assert ids.dtype == torch.long and ids.shape == (len(sample),)
    assert vocab.decode(ids) == sample


def test_vocab_has_one_id_per_distinct_character_in_sorted_order() -> None:
    vocab = CharVocab("hello world")
    assert len(vocab) == len(set("hello world"))
    assert list(vocab.chars) == sorted(set("hello world"))
    assert vocab.encode(" ").item() == 0


def test_vocab_survives_json_round_trip() -> None:
    vocab = CharVocab("the quick brown fox, ÿ!")
    restored = CharVocab.from_dict(json.loads(json.dumps(vocab.to_dict())))
    assert restored == vocab
    assert torch.equal(restored.encode("fox"), vocab.encode("fox"))


def test_unknown_character_error_names_the_character() -> None:
    vocab = CharVocab("abc")
    with pytest.raises(ValueError, match=r"'z'.*position 2"):
        vocab.encode("abz")


def test_unknown_symbol_takes_rare_and_unseen_characters() -> None:
    vocab = CharVocab("aabbbc", min_count=2, unknown=True)
    assert vocab.chars == ("a", "b") and vocab.unknown_id == 2 and len(vocab) == 3
    assert "c" not in vocab
    assert vocab.encode("abcé").tolist() == [0, 1, 2, 2]
    assert vocab.decode([0, 2, 1]) == "a\ufffdb"


def test_unknown_characters_cost_ln_256_per_utf8_byte() -> None:
    vocab = CharVocab("ab", unknown=True)
    cost = vocab.unknown_nats("aé€😀")  # 0, 2, 3 and 4 bytes of UTF-8
    assert cost.tolist() == pytest.approx([0.0, 2 * math.log(256), 3 * math.log(256),
                                           4 * math.log(256)])


def test_vocab_with_unknown_survives_json_round_trip_and_old_ones_have_none() -> None:
    vocab = CharVocab("abc", unknown=True)
    restored = CharVocab.from_dict(json.loads(json.dumps(vocab.to_dict())))
    assert restored == vocab and restored.unknown_id == 3
    old = CharVocab.from_dict({"type": "char", "chars": ["a", "b"]})
    assert old.unknown_id is None and old != CharVocab("ab", unknown=True)


def test_min_count_needs_the_unknown_symbol() -> None:
    with pytest.raises(ValueError, match="min_count"):
        CharVocab("aab", min_count=2)


def test_decode_rejects_out_of_range_ids() -> None:
    with pytest.raises(ValueError, match="id 3"):
        CharVocab("abc").decode([0, 3])


def test_from_dict_rejects_other_objects() -> None:
    with pytest.raises(DataError, match="character vocabulary"):
        CharVocab.from_dict({"type": "symbols", "symbols": []})


# --- split_text --------------------------------------------------------------------------


def test_split_text_parts_are_contiguous_and_concatenate_back(shakespeare: str) -> None:
    train, val, test = split_text(shakespeare)
    assert train + val + test == shakespeare
    assert shakespeare.startswith(train) and shakespeare.endswith(test)


def test_split_text_sizes_follow_the_fractions(shakespeare: str) -> None:
    n = len(shakespeare)
    train, val, test = split_text(shakespeare, (0.8, 0.1, 0.1))
    assert abs(len(train) - 0.8 * n) <= 1
    assert abs(len(val) - 0.1 * n) <= 1
    assert abs(len(test) - 0.1 * n) <= 1


def test_split_text_is_fixed(shakespeare: str) -> None:
    assert split_text(shakespeare) == split_text(shakespeare)


def test_split_text_rejects_fractions_not_summing_to_one() -> None:
    with pytest.raises(ValueError, match="sum to 1"):
        split_text("abcdef", (0.5, 0.2, 0.2))


def test_split_text_rejects_an_empty_part() -> None:
    with pytest.raises(ValueError, match="val part"):
        split_text("abc", (0.9, 0.05, 0.05))


# --- StreamBatcher -----------------------------------------------------------------------


def test_stream_chunks_have_shape_batch_by_bptt() -> None:
    batcher = StreamBatcher(torch.arange(1000), batch_size=4, bptt=35)
    assert len(batcher) == (999 // 4) // 35
    for inputs, targets in batcher:
        assert inputs.shape == targets.shape == (4, 35)


def test_stream_chunks_concatenate_back_to_the_stream() -> None:
    ids = torch.arange(1001)
    batcher = StreamBatcher(ids, batch_size=4, bptt=10, drop_last=False)
    chunks = list(batcher)
    inputs = torch.cat([x for x, _ in chunks], dim=1)
    targets = torch.cat([y for _, y in chunks], dim=1)
    assert torch.equal(inputs.reshape(-1), ids[:1000])
    assert torch.equal(targets.reshape(-1), ids[1:1001])


def test_stream_rows_continue_across_consecutive_chunks() -> None:
    ids = torch.arange(500)
    batcher = StreamBatcher(ids, batch_size=3, bptt=7)
    (x0, _), (x1, _) = batcher[0], batcher[1]
    assert torch.equal(x1[:, 0], x0[:, -1] + 1)


def test_stream_targets_are_the_next_tokens() -> None:
    ids = torch.randint(0, 50, (777,), generator=torch.Generator().manual_seed(1))
    tokens = StreamBatcher(ids, batch_size=5, bptt=9)
    places = StreamBatcher(torch.arange(777), batch_size=5, bptt=9)
    for (inputs, targets), (where, _) in zip(tokens, places, strict=True):
        assert torch.equal(inputs, ids[where])
        assert torch.equal(targets, ids[where + 1])


def test_stream_drop_last_false_adds_a_narrower_last_chunk() -> None:
    batcher = StreamBatcher(torch.arange(101), batch_size=2, bptt=15, drop_last=False)
    assert len(batcher) == 4  # 50 steps per row: 15 + 15 + 15 + 5
    assert batcher[-1][0].shape == (2, 5)


def test_stream_resume_at_saved_position_gives_the_remaining_chunks() -> None:
    ids = torch.arange(2000)
    full = list(StreamBatcher(ids, batch_size=4, bptt=20))
    batcher = StreamBatcher(ids, batch_size=4, bptt=20)
    for step, _ in enumerate(batcher):
        if step == 6:
            saved = batcher.position
            break
    assert saved == 7
    resumed = StreamBatcher(ids, batch_size=4, bptt=20)
    resumed.seek(saved)
    rest = list(resumed)
    assert len(rest) == len(full) - 7
    for (x, y), (fx, fy) in zip(rest, full[7:], strict=True):
        assert torch.equal(x, fx) and torch.equal(y, fy)


def test_stream_position_returns_to_zero_after_a_full_pass() -> None:
    batcher = StreamBatcher(torch.arange(300), batch_size=2, bptt=10)
    assert len(list(batcher)) == len(batcher)
    assert batcher.position == 0
    assert len(list(batcher)) == len(batcher)


def test_stream_seek_rejects_out_of_range_index() -> None:
    batcher = StreamBatcher(torch.arange(300), batch_size=2, bptt=10)
    with pytest.raises(ValueError, match="outside"):
        batcher.seek(len(batcher) + 1)


def test_stream_too_short_for_one_chunk_is_rejected() -> None:
    with pytest.raises(ValueError, match="at least 41 tokens"):
        StreamBatcher(torch.arange(40), batch_size=4, bptt=10)


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(min_value=2, max_value=400),
    batch_size=st.integers(min_value=1, max_value=8),
    bptt=st.integers(min_value=1, max_value=30),
)
def test_stream_layout_property(n: int, batch_size: int, bptt: int) -> None:
    length = (n - 1) // batch_size
    if length < bptt:
        with pytest.raises(ValueError):
            StreamBatcher(torch.arange(n), batch_size, bptt)
        return
    batcher = StreamBatcher(torch.arange(n), batch_size, bptt, drop_last=False)
    inputs = torch.cat([x for x, _ in batcher], dim=1)
    targets = torch.cat([y for _, y in batcher], dim=1)
    assert inputs.shape == (batch_size, length)
    assert torch.equal(inputs.reshape(-1), torch.arange(batch_size * length))
    assert torch.equal(targets, inputs + 1)
