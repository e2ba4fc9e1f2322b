"""The translate task: parallel-text readers and their errors, length-bucketed batches, the
encoder-decoder's translation options, and training, evaluation and translation from the
command line on a few hundred pairs."""

import gzip
import random
import re

import pytest
import torch

from rnnkit.data import DataError
from rnnkit.data.parallel import SubwordVocab, load_parallel
from rnnkit.models.seq2seq import Seq2Seq
from rnnkit.tasks.translate import bucketed_batches, corpus_scores

pytestmark = pytest.mark.usefixtures("one_thread")

SOURCE_WORDS = ["ka", "lo", "mi", "tu", "ne", "sa", "po", "ri", "ve", "du", "ga", "zo"]
TARGET_WORDS = ["Tree", "house", "dog", "runs", "red", "water", "child", "small", "plays",
                "street", "ball", "two"]


def word_pairs(count, seed=0):
    """A toy language pair: each source word has one target word, in the same order."""
    rng = random.Random(seed)
    pairs = []
    for _ in range(count):
        words = rng.choices(range(len(SOURCE_WORDS)), k=rng.randint(3, 6))
        pairs.append((" ".join(SOURCE_WORDS[w] for w in words) + ".",
                      " ".join(TARGET_WORDS[w] for w in words) + "."))
    return pairs


def write_tsv(path, pairs):
    path.write_text("".join(f"{s}\t{t}\n" for s, t in pairs), encoding="utf-8")
    return path


def test_multi30k_is_bundled_with_its_splits_in_each_language_pair():
    text = load_parallel("multi30k")
    assert (text.source, text.target) == ("de", "en")
    assert {k: len(v) for k, v in text.splits.items()} == {"train": 29000, "val": 1014,
                                                           "test": 1000}
    assert text.splits["train"][0][0].startswith("Zwei junge weiße Männer")
    french = load_parallel("multi30k:fr-en")
    assert french.splits["test"][0][1] == text.splits["test"][0][1]
    assert load_parallel("multi30k", "en", "fr").splits["val"][3][0] == text.splits["val"][3][1]


@pytest.mark.parametrize("data, source, target, message", [
    ("multi30k:de-en", "fr", None, "--source fr disagrees with --data multi30k:de-en"),
    ("multi30k", "es", None, "--source: Multi30K has the languages de, en, fr, got 'es'"),
    ("multi30k:de", None, None, "expected a language pair like multi30k:de-en"),
    ("multi30k", "en", "en", "both are 'en'"),
])
def test_multi30k_languages_are_checked(data, source, target, message):
    with pytest.raises(DataError, match=message):
        load_parallel(data, source, target)


def test_two_aligned_files_plain_or_gzip_and_a_tsv_give_the_same_pairs(tmp_path):
    pairs = word_pairs(40)
    (tmp_path / "a.src").write_text("\n".join(s for s, _ in pairs) + "\n", encoding="utf-8")
    with gzip.open(tmp_path / "a.tgt.gz", "wt", encoding="utf-8") as file:
        file.write("\n".join(t for _, t in pairs) + "\n")
    files = load_parallel(f"{tmp_path / 'a.src'},{tmp_path / 'a.tgt.gz'}")
    tsv = load_parallel(str(write_tsv(tmp_path / "p.tsv", pairs)))
    assert files.splits == tsv.splits
    assert sorted(p for part in tsv.splits.values() for p in part) == sorted(pairs)
    swapped = load_parallel(str(tmp_path / "p.tsv"), "2", "1")
    assert sorted(p for part in swapped.splits.values() for p in part) == sorted(
        (t, s) for s, t in pairs)


@pytest.mark.parametrize("content, message", [
    ("eins\tone\nzwei two\n", r"p.tsv: line 2: expected at least 2 tab-separated columns, got 1"),
    ("eins\tone\n\nzwei\ttwo\n", r"p.tsv: line 2: empty line"),
    ("eins\tone\nzwei\t \n", r"p.tsv: line 2: empty sentence in column 2"),
    (b"eins\tone\nzw\xe9i\ttwo\n", r"p.tsv: line 2: not UTF-8 \(byte 0xe9\)"),
    ("", r"p.tsv: is empty"),
])
def test_bad_pair_files_name_the_file_and_line(tmp_path, content, message):
    path = tmp_path / "p.tsv"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match=message):
        load_parallel(str(path))


def test_misaligned_files_and_bad_columns_are_refused(tmp_path):
    (tmp_path / "a").write_text("eins\nzwei\ndrei\n", encoding="utf-8")
    (tmp_path / "b").write_text("one\ntwo\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"a has 3 lines but .*b has 2; .*check the end of .*b"):
        load_parallel(f"{tmp_path / 'a'},{tmp_path / 'b'}")
    (tmp_path / "c").write_text("one\n\nthree\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"c: line 2: empty sentence"):
        load_parallel(f"{tmp_path / 'a'},{tmp_path / 'c'}")
    with pytest.raises(DataError, match="expected a column number"):
        load_parallel(str(write_tsv(tmp_path / "p.tsv", word_pairs(5))), "de")
    with pytest.raises(DataError, match="no such file"):
        load_parallel(str(tmp_path / "missing.tsv"))


def test_subword_vocabulary_round_trips_text_and_its_saved_form():
    sentences = [s for pair in word_pairs(200) for s in pair]
    vocab = SubwordVocab.train(sentences, 8000)  # more than the text has: fewer pieces
    assert 16 < len(vocab) < 200
    text = "ka lo mi. Tree house dog."
    assert vocab.decode(vocab.encode(text)) == text
    again = SubwordVocab.from_dict(vocab.to_dict())
    assert again.encode(text) == vocab.encode(text)


def test_bucketed_batches_cover_every_row_once_with_less_padding():
    lengths = torch.randint(3, 40, (1000,), generator=torch.Generator().manual_seed(1))
    batches = bucketed_batches(lengths, 32, seed=0, epoch=0)
    assert sorted(torch.cat(batches).tolist()) == list(range(1000))
    assert len(batches) == 32  # ceil(1000 / 32)
    again = bucketed_batches(lengths, 32, seed=0, epoch=0)
    assert all(torch.equal(a, b) for a, b in zip(batches, again))
    assert not torch.equal(torch.cat(bucketed_batches(lengths, 32, 0, 1)), torch.cat(batches))

    def padded(parts):
        return sum(len(part) * int(lengths[part].max()) for part in parts)

    shuffled = torch.randperm(1000, generator=torch.Generator().manual_seed(2)).split(32)
    assert padded(batches) < 0.75 * padded(shuffled)


def test_tied_embeddings_share_one_matrix_and_label_smoothing_raises_the_loss():
    model = Seq2Seq(30, 30, cell="gru", embedding_size=8, hidden_size=6, bidirectional=True,
                    decoder_size=12, tie_embeddings=True)
    assert model.source_embedding.weight is model.target_embedding.weight is model.head.weight
    source, lengths = torch.randint(3, 30, (4, 5)), torch.tensor([5, 3, 4, 1])
    target_input, targets = torch.randint(3, 30, (4, 6)), torch.randint(3, 30, (4, 6))
    plain = model(source, lengths, target_input, targets).loss
    model.label_smoothing = 0.1
    assert model(source, lengths, target_input, targets).loss > plain
    weights = model.attention_map(source, lengths, target_input)
    torch.testing.assert_close(weights.sum(-1), torch.ones(4, 6))
    assert bool((weights[1, :, 3:] == 0).all())  # padded source steps get no attention
    with pytest.raises(ValueError, match="tie_embeddings: needs one vocabulary"):
        Seq2Seq(30, 31, tie_embeddings=True)


def test_corpus_scores_are_sacrebleu_with_its_signature():
    scores = corpus_scores(["A man rides a bike ."], ["A man rides a bike ."])
    assert scores["bleu"] == pytest.approx(100.0) and scores["chrf"] == pytest.approx(100.0)
    assert "tok:13a" in scores["bleu_signature"] and "case:mixed" in scores["bleu_signature"]


def test_train_evaluate_and_translate_from_the_command_line(tmp_path, cli, monkeypatch):
    data = write_tsv(tmp_path / "pairs.tsv", word_pairs(400))
    run = tmp_path / "run"
    code, out, err = cli("train", "--task", "translate", "--data", data, "--steps", 150,
                         "--eval-every", 150, "--hidden-size", 32, "--embedding-size", 32,
                         "--batch-size", 32, "--lr", "1e-2", "--warmup", 10, "--dropout", 0,
                         "--time-limit", 0, "--threads", 1, "--out", run)
    assert code == 0, err
    assert "bleu_error" in out and "->" in out
    code, out, err = cli("evaluate", run)
    assert code == 0, err
    bleu = {m[1]: float(m[2]) for m in re.finditer(r"^ +(greedy|beam) .*BLEU +([\d.]+)", out,
                                                  re.MULTILINE)}
    # Copying the source scores 0 BLEU; a word-for-word mapping is learnt well.
    assert bleu["greedy"] > 50 and bleu["beam"] > 50
    assert "BLEU signature: nrefs:1|case:mixed|eff:no|tok:13a" in out

    code, out, err = cli("translate", run, "ka lo mi.", "tu ne.")
    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) == 2 and lines[0].startswith("Tree house dog")
    (tmp_path / "in.txt").write_text("ka lo mi.\n\ntu ne.\n", encoding="utf-8")
    code, out, _ = cli("translate", run, "--file", tmp_path / "in.txt", "--beam", 1)
    assert out.splitlines()[1] == "" and out.splitlines()[0] == lines[0]
    monkeypatch.setattr("sys.stdin", open(tmp_path / "in.txt", encoding="utf-8"))
    code, out, _ = cli("translate", run)
    assert code == 0 and out.splitlines()[0] == lines[0]

    code, out, err = cli("inspect", run, "--attention", "ka lo mi.", "--out",
                         tmp_path / "inspect")
    assert code == 0, err
    assert f"translation: {lines[0]}" in out
    assert (tmp_path / "inspect" / "attention.png").stat().st_size > 1000
    rows = (tmp_path / "inspect" / "attention.csv").read_text().splitlines()
    assert rows[0] == "target_index,target_piece,source_index,source_piece,weight"
    # Each emitted piece's weights over the source sum to 1.
    sums = {}
    for row in rows[1:]:
        target_index, *_, weight = row.split(",")
        sums[target_index] = sums.get(target_index, 0.0) + float(weight)
    assert len(sums) >= 4 and all(abs(total - 1) < 1e-5 for total in sums.values())


def test_bad_translate_options_are_one_line_errors(tmp_path, cli):
    bad = tmp_path / "bad.tsv"
    bad.write_text("eins\tone\nzwei\n", encoding="utf-8")
    code, _, err = cli("train", "--task", "translate", "--data", bad, "--out",
                       tmp_path / "run")
    assert code == 1 and "bad.tsv: line 2: expected at least 2 tab-separated columns" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "run").exists()
    code, _, err = cli("train", "--task", "classify", "--source", "de")
    assert code == 1 and "--source: only --task translate takes it" in err
    code, _, err = cli("translate", tmp_path / "nowhere", "Hallo.")
    assert code == 1 and len(err.strip().splitlines()) == 1
