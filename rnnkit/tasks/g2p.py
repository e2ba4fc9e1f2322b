"""``rnnkit train --task seq2seq``: grapheme-to-phoneme conversion (G2P) on the CMU
Pronouncing Dictionary with an encoder-decoder and attention.

``--data`` is cmudict or a file in its format (lines ``word PH1 PH2 ...``). Words are split
90/5/5 by a seeded hash of the word. An encoder-decoder with general attention (a bidirectional
encoder with ``--bidirectional``) is trained with teacher forcing. Metrics: phoneme error rate
(edit distance of the greedy decoding over the reference length), word error rate and
teacher-forced cross-entropy per phoneme. Validation during training decodes a fixed subset of
the validation words.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from rnnkit.data import DataError, SymbolVocab, load_cmudict, make_g2p_batch, split_by_word
from rnnkit.data.cmudict import PAD
from rnnkit.models import ModelOutput, Seq2Seq, evaluation_mode
from rnnkit.models.metrics import error_rate
from rnnkit.models.state import State
from rnnkit.training.config import TrainConfig
from rnnkit.training.errors import RunError
from rnnkit.training.task import (
    Batch,
    HeadAdapter,
    Task,
    build_model,
    data_error,
    head_settings,
    in_chunks,
    shuffled_rows,
)

DESCRIPTION = "encoder-decoder with attention: spell words as phonemes (CMUdict G2P)"

DEFAULTS: dict[str, Any] = {
    "data": "cmudict", "hidden_size": 256, "bidirectional": True, "batch_size": 128,
    "dropout": 0.1, "steps": 3206, "time_limit": None,
}
"""A bidirectional encoder reads the whole word before the decoder spells it; 125,000
training words take large batches. The run is a fixed 3,206 steps with no time limit, so that
the same command gives the same run under any load (``--time-limit S`` alone fits the length
to S seconds instead): the length that its only recorded run (docs/results/index.md: a
2-core Intel Xeon, ``--threads 1``) fitted into the former time limit of 780 s."""

VALIDATION_WORDS = 2000
"""Validation during training decodes this many validation words (a fixed subset)."""

Pairs = list[tuple[str, tuple[str, ...]]]
"""Words with their phonemes."""


class Seq2SeqAdapter(HeadAdapter):
    """:class:`Seq2Seq` as a task's model: ((source (B, S), lengths (B,), target input
    (B, T)), state, target output (B, T)) -> (logits (B, T, V), None, cross-entropy)."""

    head_class = Seq2Seq

    def forward(self, inputs: tuple[Tensor, Tensor, Tensor], state: State | None = None,
                targets: Tensor | None = None) -> ModelOutput:
        """Teacher-forced logits of a batch of words, and their loss against ``targets``."""
        return self.net(*inputs, targets=targets)


def g2p_task(config: TrainConfig, device: torch.device,
             saved: dict[str, Any] | None = None) -> Task:
    """The grapheme-to-phoneme task of ``config`` (see the module's docstring); ``saved``
    (from a checkpoint) fixes the vocabularies and the model's sizes."""
    graphemes, phonemes, parts = load_words(config, saved)
    settings = head_settings(config, saved, source_vocab_size=len(graphemes),
                             target_vocab_size=len(phonemes),
                             embedding_size=config.embedding_size, attention="general")
    model = build_model(Seq2SeqAdapter, settings).to(device)
    if not parts["train"] and saved is None:
        raise RunError(f"--data {config.data}: no training words")
    encoded = make_g2p_batch(parts["train"], graphemes, phonemes) if parts["train"] else None
    batch_size = config.batch_size

    def batch_at(step: int) -> Batch:
        rows = shuffled_rows(len(parts["train"]), batch_size, step, config.seed)
        source_length = int(encoded.source_lengths[rows].max())
        target_length = int(encoded.target_lengths[rows].max())
        inputs = (encoded.source[rows, :source_length].to(device),
                  encoded.source_lengths[rows].to(device),
                  encoded.target_input[rows, :target_length].to(device))
        return Batch(inputs, encoded.target_output[rows, :target_length].to(device),
                     starts_sequences=True)

    def evaluate(split: str) -> dict[str, float]:
        if not parts[split]:
            raise RunError(f"--data {config.data}: no {split} words to score")
        return g2p_metrics(parts[split], *decode(model, parts[split], graphemes, phonemes))

    def showcase() -> str:
        words = parts["val"][:8]
        decoded, _ = decode(model, words, graphemes, phonemes)
        return "\n".join(f"{w:<14} {' '.join(d):<28} (reference: {' '.join(p)})"
                         for d, (w, p) in zip(decoded, words))

    return Task(
        model=model, batch_at=batch_at,
        steps_per_epoch=max(1, math.ceil(len(parts["train"]) / batch_size)),
        evaluate=evaluate, metric="phoneme_error_rate",
        metric_names=("phoneme_error_rate", "word_error_rate", "cross_entropy"),
        saved={"model": settings, "graphemes": graphemes.to_dict(),
               "phonemes": phonemes.to_dict()},
        showcase=showcase, unit="words",
    )


def load_words(config: TrainConfig, saved: dict[str, Any] | None
               ) -> tuple[SymbolVocab, SymbolVocab, dict[str, Pairs]]:
    """The grapheme and phoneme vocabularies (a checkpoint's, or those of the training
    words), and the words of each split that they can spell."""
    expected = "cmudict or a pronouncing dictionary file, lines 'word PH1 PH2 ...'"
    try:
        pairs = load_cmudict(config.data)
    except DataError as err:
        raise data_error(config, err, expected) from None
    train_pairs, val_pairs, test_pairs = split_by_word(pairs, (0.9, 0.05, 0.05), seed=0)
    if saved:
        graphemes = SymbolVocab.from_dict(saved["graphemes"])
        phonemes = SymbolVocab.from_dict(saved["phonemes"])
    else:
        if not train_pairs or not val_pairs:
            raise RunError(f"--data {config.data}: {len(pairs)} words are too few to split "
                           "into training, validation and test words; give more")
        graphemes = SymbolVocab.for_graphemes(train_pairs)
        phonemes = SymbolVocab.for_phonemes(train_pairs)

    def known(part: Pairs) -> Pairs:
        return [(w, p) for w, p in part if all(c in graphemes.symbols for c in w)
                and all(s in phonemes.symbols for s in p)]

    parts = {"train": known(train_pairs), "val": known(val_pairs)[:VALIDATION_WORDS],
             "test": known(test_pairs)}
    parts["all"] = parts["train"] + known(val_pairs) + parts["test"]
    return graphemes, phonemes, parts


def decode(model: Seq2SeqAdapter, words: Pairs, graphemes: SymbolVocab,
           phonemes: SymbolVocab) -> tuple[list[list[str]], float]:
    """Greedy phonemes of each word, and the teacher-forced cross-entropy per phoneme."""
    device = next(model.parameters()).device
    order = sorted(range(len(words)), key=lambda i: len(words[i][0]))
    decoded: list[list[str]] = [[] for _ in words]
    total, count = 0.0, 0
    with evaluation_mode(model):
        for chunk in in_chunks(len(order), 500):
            rows = order[chunk]
            batch = make_g2p_batch([words[i] for i in rows], graphemes, phonemes)
            source, lengths = batch.source.to(device), batch.source_lengths.to(device)
            logits = model((source, lengths, batch.target_input.to(device))).outputs.float()
            targets = batch.target_output.to(device)
            total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1),
                                     ignore_index=PAD, reduction="sum").item()
            count += int((targets != PAD).sum())
            ids = model.net.greedy_decode(source, lengths, max_length=int(lengths.max()) + 10)
            for row, tokens in zip(rows, ids):
                decoded[row] = phonemes.decode(tokens)
    return decoded, total / max(count, 1)


def g2p_metrics(words: Pairs, decoded: list[list[str]], cross_entropy: float
                ) -> dict[str, float]:
    """Phoneme and word error rates of the decoded phonemes, and the cross-entropy."""
    references = [list(p) for _, p in words]
    wrong = sum(d != r for d, r in zip(decoded, references))
    return {"phoneme_error_rate": error_rate(references, decoded),
            "word_error_rate": wrong / len(words), "cross_entropy": cross_entropy}
