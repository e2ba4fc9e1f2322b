"""The language model task on any text: its vocabulary, unknown characters and how a text
is scored."""

import math

import pytest
import torch
import torch.nn.functional as F

from rnnkit.data import CharVocab
from rnnkit.models import LanguageModel, LanguageModelConfig
from rnnkit.tasks import task_config
from rnnkit.tasks.language_model import encode_parts, language_model_task, stream_cross_entropy
from rnnkit.training.errors import RunError

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_model(vocab_size: int) -> LanguageModel:
    torch.manual_seed(0)
    return LanguageModel(LanguageModelConfig(vocab_size=vocab_size, embedding_size=4,
                                             hidden_size=8))


def test_stream_cross_entropy_of_one_stream_is_the_plain_cross_entropy_plus_the_extra():
    ids = torch.randint(0, 5, (41,), generator=torch.Generator().manual_seed(1))
    extra = torch.rand(41, dtype=torch.float64)
    model = tiny_model(5).eval()
    with torch.no_grad():
        logits, _, _ = model(ids[:-1].unsqueeze(0))
    plain = F.cross_entropy(logits[0], ids[1:]).item()
    assert stream_cross_entropy(model, ids, torch.device("cpu"), streams=1, chunk=40) \
        == pytest.approx(plain, rel=1e-6)
    assert stream_cross_entropy(model, ids, torch.device("cpu"), extra, streams=1, chunk=40) \
        == pytest.approx(plain + extra[1:].mean().item(), rel=1e-6)


def test_characters_seen_once_in_training_train_the_unknown_symbol(tmp_path):
    text = "abab" * 500 + "x" + "abab" * 100 + "y?" * 20  # "x" once in training; "y" unseen
    path = tmp_path / "text.txt"
    path.write_text(text)
    config = task_config("lm", data=str(path), batch_size=2, bptt=8, hidden_size=8,
                         embedding_size=4)
    task = language_model_task(config, torch.device("cpu"))
    vocab = CharVocab.from_dict(task.saved["vocab"])
    assert vocab.chars == ("a", "b") and vocab.unknown_id == 2
    assert any((task.batch_at(step).inputs == 2).any() for step in range(task.steps_per_epoch))
    metrics = task.evaluate("test")
    assert metrics["unknown_chars"] == 40
    # 40 of the 122 test characters are spelt at ln 256 nats each, beyond the model's own cost
    assert math.isfinite(metrics["cross_entropy"])
    assert metrics["cross_entropy"] > 40 * math.log(256) / 122


def test_a_vocabulary_without_an_unknown_symbol_names_the_line_and_column():
    config = task_config("lm", data="poem.txt")
    vocab = CharVocab("ab\n")
    with pytest.raises(RunError, match=r"poem.txt: line 2, column 3: character 'z'"):
        encode_parts(config, vocab, ("ab\nab", "z", "a"))
