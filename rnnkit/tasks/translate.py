"""``rnnkit train --task translate``: translation with a bidirectional encoder and an attention
decoder over a joint SentencePiece vocabulary, scored with sacreBLEU; and translating text
with a trained run.

``--data`` is a parallel text (:func:`rnnkit.data.parallel.load_parallel`): the bundled
Multi30K (German -> English by default; ``multi30k:fr-en`` etc.), two aligned text files
``SRC,TGT`` or a TSV of pairs, with ``--source``/``--target`` choosing the languages or
columns. One unigram SentencePiece vocabulary is learned from the source and target training
sentences only and kept in the run's checkpoints; outputs are detokenised text.

The model is :class:`~rnnkit.models.Seq2Seq` (any ``--cell``): a bidirectional encoder, a
decoder twice as wide with general attention, one embedding matrix shared by source, target
and output projection, label smoothing 0.1 and dropout; batches hold sentences of similar
length. Validation and the final test score decode greedily: BLEU and chrF (sacreBLEU,
cased, 13a tokenisation) as ``bleu_error`` = 100 - BLEU and ``chrf_error`` = 100 - chrF
(the trainer's metrics are lower-is-better) and the teacher-forced cross-entropy per target
piece. :func:`evaluation_report` (``rnnkit evaluate``) scores greedy and beam search and
prints the sacreBLEU signatures; :func:`translate_lines` (``rnnkit translate``) translates
text.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Sequence
from typing import Any

import sacrebleu
import torch
import torch.nn.functional as F
from torch import Tensor

from rnnkit.data import DataError, pad_token_sequences
from rnnkit.data.cmudict import BOS, EOS, PAD
from rnnkit.data.parallel import Pairs, ParallelText, SubwordVocab, load_parallel
from rnnkit.models import evaluation_mode
from rnnkit.models.seq2seq import Seq2Seq
from rnnkit.tasks.g2p import Seq2SeqAdapter
from rnnkit.training.checkpoint import load_checkpoint
from rnnkit.training.config import TrainConfig
from rnnkit.training.errors import RunError
from rnnkit.training.run_dir import RunDirectory
from rnnkit.training.task import Batch, Task, build_model, data_error, head_settings, in_chunks

TASK = "translate"
DESCRIPTION = "translation: biRNN encoder + attention decoder, SentencePiece, sacreBLEU (Multi30K)"

DEFAULTS: dict[str, Any] = {
    "data": "multi30k", "cell": "gru", "embedding_size": 256, "hidden_size": 256,
    "bidirectional": True, "dropout": 0.2, "batch_size": 64, "lr": 2e-3, "warmup": 200,
    "eval_every": 500, "steps": 3643, "time_limit": None,
}
"""German -> English Multi30K: a GRU encoder of 256 units each way, a 512-unit decoder,
embeddings of 256, batches of 64 sentences, for 3,643 steps (8 epochs): the length that the
reference machine (two cores of an AMD EPYC, idle; docs/results/translation.md) fitted into a
time limit of 30 minutes. The length is fixed, with no time limit, so that the same command
gives the same run under any load (``--time-limit S`` alone fits the length to S seconds
instead)."""

VOCABULARY_SIZE = 8000
"""Pieces of the joint SentencePiece vocabulary (fewer when the training text is small)."""
LABEL_SMOOTHING = 0.1
TIE_EMBEDDINGS = True
"""Label smoothing of the training loss, and one embedding matrix for source, target and output
projection: each measured against its absence in ``benchmarks/translation_ablation.py``."""
BEAM_SIZE = 5
LENGTH_PENALTY = 1.0
"""Beam search keeps BEAM_SIZE hypotheses and ranks finished ones by log p / lp(length)
(:meth:`rnnkit.models.Seq2Seq.beam_decode`); on Multi30K validation (de-en) lp exponent 1.0 did
best of 0, 0.6, 1.0 and 1.5 (see docs/results/translation.md)."""
BUCKET_BATCHES = 50
"""Sentences are grouped by length within pools of this many batches (then the batches are
shuffled), so a batch holds sentences of similar length and little padding."""
DECODE_BATCH = 200


def translation_task(config: TrainConfig, device: torch.device,
                     saved: dict[str, Any] | None = None) -> Task:
    """The translation task of ``config`` (see the module's docstring); ``saved`` (from a
    checkpoint) fixes the vocabulary and the model's sizes."""
    text = read_parallel(config)
    if saved is None:
        if not text.splits["train"] or not text.splits["val"]:
            raise RunError(f"--data {config.data}: {len(text.splits['train'])} training and "
                           f"{len(text.splits['val'])} validation pairs; need both (give more "
                           "pairs)")
        vocab = SubwordVocab.train([s for pair in text.splits["train"] for s in pair],
                                   VOCABULARY_SIZE)
    else:
        vocab = SubwordVocab.from_dict(saved["vocab"])
    decoder_size = config.hidden_size * (2 if config.bidirectional else 1)
    settings = head_settings(config, saved, source_vocab_size=len(vocab),
                             target_vocab_size=len(vocab), embedding_size=config.embedding_size,
                             attention="general", decoder_size=decoder_size,
                             tie_embeddings=TIE_EMBEDDINGS,
                             label_smoothing=LABEL_SMOOTHING)
    model = build_model(Seq2SeqAdapter, settings).to(device)
    train_pairs = text.splits["train"]
    encoded = [(vocab.encode(s), vocab.encode(t)) for s, t in train_pairs]
    lengths = torch.tensor([max(len(s), len(t)) for s, t in encoded])
    batch_size = config.batch_size
    steps_per_epoch = max(1, math.ceil(len(encoded) / batch_size))
    epochs: dict[int, list[Tensor]] = {}

    def batch_at(step: int) -> Batch:
        epoch, index = divmod(step, steps_per_epoch)
        if epoch not in epochs:
            epochs.clear()
            epochs[epoch] = bucketed_batches(lengths, batch_size, config.seed, epoch)
        rows = epochs[epoch][index].tolist()
        inputs, targets = make_batch([encoded[row] for row in rows])
        return Batch(tuple(t.to(device) for t in inputs), targets.to(device),
                     starts_sequences=True)

    def evaluate(split: str) -> dict[str, float]:
        pairs = split_pairs(text, split, config)
        cross_entropy = teacher_forced_cross_entropy(model.net, vocab, pairs)
        hypotheses = translate(model.net, vocab, [s for s, _ in pairs])
        scores = corpus_scores(hypotheses, [t for _, t in pairs])
        return {"bleu_error": 100.0 - scores["bleu"], "chrf_error": 100.0 - scores["chrf"],
                "cross_entropy": cross_entropy}

    def showcase() -> str:
        pairs = text.splits["val"][:6]
        hypotheses = translate(model.net, vocab, [s for s, _ in pairs])
        return "\n".join(f"{s}\n  -> {h}\n  reference: {t}"
                         for (s, t), h in zip(pairs, hypotheses))

    return Task(
        model=model, batch_at=batch_at, steps_per_epoch=steps_per_epoch, evaluate=evaluate,
        metric="bleu_error", metric_names=("bleu_error", "chrf_error", "cross_entropy"),
        saved={"model": settings, "vocab": vocab.to_dict(), "source": text.source,
               "target": text.target},
        showcase=showcase, unit="sentences",
    )


def read_parallel(config: TrainConfig) -> ParallelText:
    """The parallel text of ``config``, a DataError turned into a RunError naming --data."""
    expected = ("multi30k[:SRC-TGT], SOURCE_FILE,TARGET_FILE (aligned lines, plain or gzip) "
                "or a TSV of pairs")
    try:
        return load_parallel(config.data, config.source, config.target)
    except DataError as err:
        raise data_error(config, err, expected) from None


def split_pairs(text: ParallelText, split: str, config: TrainConfig) -> Pairs:
    """The pairs of ``split`` ("all": every split), which must not be empty."""
    pairs = (text.splits[split] if split != "all"
             else [pair for part in text.splits.values() for pair in part])
    if not pairs:
        raise RunError(f"--data {config.data}: no {split} pairs to score")
    return pairs


def bucketed_batches(lengths: Tensor, batch_size: int, seed: int, epoch: int) -> list[Tensor]:
    """The batches (row indices) of one epoch: a seeded shuffle, sorted by length within pools
    of :data:`BUCKET_BATCHES` batches, cut into batches, whose order is shuffled again. The
    same (seed, epoch) always gives the same batches; every row is in exactly one."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    order = torch.randperm(len(lengths), generator=generator)
    batches: list[Tensor] = []
    for pool in order.split(batch_size * BUCKET_BATCHES):
        pool = pool[torch.argsort(lengths[pool], stable=True)]
        batches.extend(pool.split(batch_size))
    return [batches[i] for i in torch.randperm(len(batches), generator=generator)]


def make_batch(encoded: Sequence[tuple[list[int], list[int]]]
               ) -> tuple[tuple[Tensor, Tensor, Tensor], Tensor]:
    """((source (B, S), source lengths (B,), BOS + target (B, T)), target + EOS (B, T)),
    padded with PAD."""
    source, source_lengths = pad_token_sequences([torch.tensor(s) for s, _ in encoded])
    target_input, _ = pad_token_sequences([torch.tensor([BOS] + t) for _, t in encoded])
    target_output, _ = pad_token_sequences([torch.tensor(t + [EOS]) for _, t in encoded])
    return (source, source_lengths, target_input), target_output


def translate(model: Seq2Seq, vocab: SubwordVocab, sentences: Sequence[str],
              beam_size: int = 1, length_penalty: float = LENGTH_PENALTY) -> list[str]:
    """Detokenised translations of ``sentences``: greedy (``beam_size`` 1) or beam search.

    A translation may have up to twice the source's pieces plus 10."""
    device = next(model.parameters()).device
    encoded = [vocab.encode(sentence) or [EOS] for sentence in sentences]
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
    outputs = [""] * len(encoded)
    chunk_size = DECODE_BATCH if beam_size == 1 else max(1, DECODE_BATCH // beam_size)
    with evaluation_mode(model):
        for chunk in in_chunks(len(order), chunk_size):
            rows = order[chunk]
            source, lengths = pad_token_sequences([torch.tensor(encoded[i]) for i in rows])
            source, lengths = source.to(device), lengths.to(device)
            max_length = 2 * int(lengths.max()) + 10
            if beam_size == 1:
                ids = model.greedy_decode(source, lengths, max_length)
            else:
                ids = model.beam_decode(source, lengths, beam_size, max_length, length_penalty)
            for row, tokens in zip(rows, ids):
                outputs[row] = vocab.decode(tokens)
    return outputs


def teacher_forced_cross_entropy(model: Seq2Seq, vocab: SubwordVocab, pairs: Pairs) -> float:
    """Cross-entropy per target piece (EOS included) with teacher forcing, no smoothing."""
    device = next(model.parameters()).device
    encoded = [(vocab.encode(s) or [EOS], vocab.encode(t)) for s, t in pairs]
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i][0]))
    total, count = 0.0, 0
    with evaluation_mode(model):
        for chunk in in_chunks(len(order), DECODE_BATCH):
            inputs, targets = make_batch([encoded[i] for i in order[chunk]])
            logits = model(*(t.to(device) for t in inputs)).outputs.float()
            targets = targets.to(device)
            total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1),
                                     ignore_index=PAD, reduction="sum").item()
            count += int((targets != PAD).sum())
    return total / max(count, 1)


def corpus_scores(hypotheses: Sequence[str], references: Sequence[str]) -> dict[str, Any]:
    """sacreBLEU's corpus BLEU (cased, 13a tokenisation) and chrF of ``hypotheses`` against
    one reference each, with the signatures that say how they were computed."""
    bleu, chrf = sacrebleu.BLEU(), sacrebleu.CHRF()
    return {"bleu": bleu.corpus_score(list(hypotheses), [list(references)]).score,
            "chrf": chrf.corpus_score(list(hypotheses), [list(references)]).score,
            "bleu_signature": str(bleu.get_signature()),
            "chrf_signature": str(chrf.get_signature())}


def load_translator(run_dir: str | os.PathLike[str], device: torch.device | str = "cpu"
                    ) -> tuple[Seq2Seq, SubwordVocab, dict[str, Any]]:
    """The model (eval mode) and vocabulary of a translate run's best checkpoint, and the
    checkpoint's info. A run of another task raises RunError."""
    run = RunDirectory.open(run_dir)
    task = run.read_config().task
    if task != TASK:
        raise RunError(f"{run.path}: is a run of task {task!r}, not translate; give a run "
                       "directory written by `rnnkit train --task translate`")
    checkpoint = load_checkpoint(run.checkpoint_for_use())
    saved = checkpoint.info["task"]
    model = build_model(Seq2SeqAdapter, saved["model"]).to(device)
    checkpoint.restore_model(model)
    return model.net.eval(), SubwordVocab.from_dict(saved["vocab"]), checkpoint.info


def translate_lines(run_dir: str | os.PathLike[str], lines: Sequence[str],
                    beam_size: int = BEAM_SIZE, device: str = "cpu") -> list[str]:
    """Translations of ``lines`` (one sentence each; blank lines stay blank) by a translate
    run, with beam search (``beam_size`` 1: greedy)."""
    if beam_size < 1:
        raise RunError(f"--beam must be >= 1, got {beam_size}")
    model, vocab, _ = load_translator(run_dir, device)
    wanted = [i for i, line in enumerate(lines) if line.strip()]
    translated = translate(model, vocab, [lines[i].strip() for i in wanted], beam_size)
    outputs = [""] * len(lines)
    for i, text in zip(wanted, translated):
        outputs[i] = text
    return outputs


def evaluation_report(run_dir: str | os.PathLike[str], split: str = "test",
                      data: str | None = None, beam_size: int = BEAM_SIZE,
                      device: str = "cpu") -> str:
    """``rnnkit evaluate`` of a translate run: BLEU and chrF of greedy decoding and of beam
    search on ``split`` of its data (or of ``data``), with the sacreBLEU signatures."""
    model, vocab, info = load_translator(run_dir, device)
    config = TrainConfig.from_dict(info["config"])
    if data is not None:
        config = dataclasses.replace(config, data=data)
    pairs = split_pairs(read_parallel(config), split, config)
    sources, references = [s for s, _ in pairs], [t for _, t in pairs]
    lines = [f"{run_dir} (step {info['step']}), {split} split of {config.data} "
             f"({info['task']['source']} -> {info['task']['target']}, {len(pairs)} sentences):",
             f"  cross_entropy            {teacher_forced_cross_entropy(model, vocab, pairs):.4f}"]
    signatures = {}
    for name, beams in (("greedy", 1), (f"beam {beam_size}", beam_size)):
        scores = corpus_scores(translate(model, vocab, sources, beams), references)
        lines.append(f"  {name:<10} BLEU {scores['bleu']:6.2f}   chrF {scores['chrf']:6.2f}")
        signatures = scores
    lines += [f"  BLEU signature: {signatures['bleu_signature']}",
              f"  chrF signature: {signatures['chrf_signature']}"]
    return "\n".join(lines)


def attention_figure(run_dir: str | os.PathLike[str], sentence: str
                     ) -> tuple[Tensor, list[str], list[str], str]:
    """What ``rnnkit inspect --attention`` draws for ``sentence``: the attention weights
    (T, S) of a translate run's decoder while it emits its greedy translation (EOS last), the
    source pieces, the emitted pieces, and the title."""
    if not sentence.strip():
        raise RunError("--attention: the sentence is empty; give the text to translate")
    model, vocab, info = load_translator(run_dir)
    source_ids = vocab.encode(sentence.strip())
    source = torch.tensor([source_ids])
    lengths = torch.tensor([len(source_ids)])
    emitted = model.greedy_decode(source, lengths, 2 * len(source_ids) + 10)[0] + [EOS]
    target_input = torch.tensor([[BOS] + emitted[:-1]])
    weights = model.attention_map(source, lengths, target_input)[0]
    translation = vocab.decode(emitted)
    title = (f"{info['task']['source']} -> {info['task']['target']}: "
             f"{sentence.strip()}\n-> {translation}")
    return weights, vocab.pieces(source_ids), vocab.pieces(emitted), title
