"""The calibration baseline of the translate task, trained under the same time budget as
``rnnkit train --task translate``, for the comparison on docs/results/translation.md.

A plain ``torch.nn`` model, as calibrated on this kind of machine (Multi30K de-en, 33.7
sacreBLEU in 25 minutes): a bidirectional ``nn.GRU`` encoder of 256 units each way, an
``nn.GRU`` decoder of 512 units with general attention after it (Luong et al. 2015), separate
source and target embeddings of 256 and an untied output projection, an 8,000-piece joint
SentencePiece vocabulary, label smoothing 0.1, bfloat16 autocast where the CPU computes
bfloat16 natively (else float32: on an AVX2-only CPU a bf16 step took 22 times as long),
batches of 64, AdamW at a constant 1e-3 with gradient clipping at 1. It trains until
``--minutes`` (counted from the start, the vocabulary's training included) run out, then scores
test_2016_flickr greedy and with beam 5 (sacreBLEU, cased, 13a). Data, vocabulary, batching,
decoding and scoring are rnnkit's own (:mod:`rnnkit.data.parallel`,
:mod:`rnnkit.tasks.translate`), so only the model and its training differ from the task's.

``--steps N`` trains N steps instead, whatever the time: the steps that the time budget holds
at the speed that ``--speed`` measures.

``--speed`` instead times training steps of this model and of the translate task's default
model (:data:`rnnkit.tasks.translate.DEFAULTS`) on the same random batch, alternating, so that
both see the same machine load.

Usage::

    python benchmarks/translation_baseline.py --minutes 30 --threads 2
    python benchmarks/translation_baseline.py --data multi30k:fr-en --minutes 30
    python benchmarks/translation_baseline.py --speed --threads 1
    python benchmarks/translation_baseline.py --steps 2800 --threads 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.data.cmudict import PAD
from rnnkit.data.parallel import SubwordVocab, load_parallel
from rnnkit.models import evaluation_mode
from rnnkit.models.base import valid_steps
from rnnkit.models.seq2seq import Seq2Seq
from rnnkit.tasks import task_config
from rnnkit.tasks.translate import (
    BEAM_SIZE,
    LABEL_SMOOTHING,
    VOCABULARY_SIZE,
    bucketed_batches,
    corpus_scores,
    make_batch,
    translate,
)
from rnnkit.training.trainer import uses_bf16


class TorchBaseline(nn.Module):
    """biGRU encoder + attention GRU decoder from ``torch.nn``, with the decoding interface of
    :class:`rnnkit.models.Seq2Seq` (``encode``, ``decode``), whose greedy and beam search it
    borrows, so that both models are decoded by the same code."""

    greedy_decode = Seq2Seq.greedy_decode
    beam_decode = Seq2Seq.beam_decode
    _beam_search = Seq2Seq._beam_search
    output_log_probs = Seq2Seq.output_log_probs

    def __init__(self, vocab_size: int, embedding: int = 256, encoder: int = 256,
                 decoder: int = 512, dropout: float = 0.2, smoothing: float = 0.1) -> None:
        super().__init__()
        self.source_embedding = nn.Embedding(vocab_size, embedding, padding_idx=PAD)
        self.target_embedding = nn.Embedding(vocab_size, embedding, padding_idx=PAD)
        self.encoder = nn.GRU(embedding, encoder, batch_first=True, bidirectional=True)
        self.bridge = nn.Linear(2 * encoder, decoder)
        self.decoder = nn.GRU(embedding, decoder, batch_first=True)
        self.attention_weight = nn.Linear(decoder, 2 * encoder, bias=False)
        self.combine = nn.Linear(2 * encoder + decoder, decoder)
        self.head = nn.Linear(decoder, vocab_size)
        self.dropout = nn.Dropout(dropout)
        self.smoothing = smoothing

    def encode(self, source: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        packed = nn.utils.rnn.pack_padded_sequence(
            self.dropout(self.source_embedding(source)), lengths.cpu(), batch_first=True,
            enforce_sorted=False)
        outputs, final = self.encoder(packed)
        memory, _ = nn.utils.rnn.pad_packed_sequence(outputs, batch_first=True,
                                                     total_length=source.shape[1])
        state = torch.tanh(self.bridge(torch.cat([final[0], final[1]], dim=-1))).unsqueeze(0)
        return memory, valid_steps(lengths, source.shape[1], source.device), state

    def decode(self, tokens: Tensor, state: Tensor, memory: Tensor, mask: Tensor,
               start_step: int = 0) -> tuple[Tensor, Tensor]:
        outputs, state = self.decoder(self.dropout(self.target_embedding(tokens)),
                                      state.to(memory.dtype))
        scores = (self.attention_weight(outputs) @ memory.transpose(1, 2))
        weights = scores.masked_fill(~mask.unsqueeze(1), -torch.inf).softmax(dim=-1)
        combined = torch.tanh(self.combine(torch.cat([weights @ memory, outputs], dim=-1)))
        return self.head(self.dropout(combined)), state

    def forward(self, source: Tensor, lengths: Tensor, target_input: Tensor,
                targets: Tensor) -> Tensor:
        memory, mask, state = self.encode(source, lengths)
        logits, _ = self.decode(target_input, state, memory, mask)
        return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]),
                               targets.reshape(-1), ignore_index=PAD,
                               label_smoothing=self.smoothing)


def time_steps(threads: int, rounds: int = 5, batch: int = 64, length: int = 16) -> dict:
    """Median seconds per training step of the baseline and of the task's default model on
    one random batch of ``batch`` pairs of ``length`` pieces, the two timed in turn."""
    config = task_config("translate")
    default = Seq2Seq(VOCABULARY_SIZE, VOCABULARY_SIZE, cell=config.cell,
                      embedding_size=config.embedding_size, hidden_size=config.hidden_size,
                      bidirectional=config.bidirectional, dropout=config.dropout,
                      decoder_size=2 * config.hidden_size, tie_embeddings=True,
                      label_smoothing=LABEL_SMOOTHING)
    baseline = TorchBaseline(VOCABULARY_SIZE)
    source = torch.randint(3, VOCABULARY_SIZE, (batch, length))
    lengths = torch.full((batch,), length)
    target_input = torch.randint(3, VOCABULARY_SIZE, (batch, length))
    targets = torch.randint(3, VOCABULARY_SIZE, (batch, length))
    models = {"rnnkit default (fp32)": (default, False),
              "torch.nn baseline (fp32)": (baseline, False)}
    if uses_bf16("auto", torch.device("cpu")):  # elsewhere bf16 is emulated, far slower
        models["torch.nn baseline (bf16)"] = (baseline, True)
    times: dict[str, list[float]] = {name: [] for name in models}
    torch.set_num_threads(threads)
    for _ in range(rounds):
        for name, (model, bf16) in models.items():
            optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
            started = time.perf_counter()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                output = model(source, lengths, target_input, targets)
            loss = output if isinstance(output, Tensor) else output.loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            times[name].append(time.perf_counter() - started)
    return {name: round(statistics.median(values[1:]), 3) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="multi30k:de-en")
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--steps", type=int,
                        help="train this many steps instead of for --minutes: the steps the "
                             "time budget holds at the speed --speed measures, so that a "
                             "comparison does not depend on the machine's load")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="auto",
                        help="training arithmetic; auto: bf16 autocast (as calibrated) where "
                             "the CPU computes bf16 natively, else fp32")
    parser.add_argument("--speed", action="store_true",
                        help="only time training steps of both models (seconds per step)")
    parser.add_argument("--out", help="write the results here as JSON")
    args = parser.parse_args()
    if args.speed:
        print(json.dumps(time_steps(args.threads), indent=2))
        return
    bf16 = uses_bf16(args.precision, torch.device("cpu"))
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    started = time.monotonic()
    text = load_parallel(args.data)
    vocab = SubwordVocab.train([s for pair in text.splits["train"] for s in pair],
                               VOCABULARY_SIZE)
    encoded = [(vocab.encode(s), vocab.encode(t)) for s, t in text.splits["train"]]
    lengths = torch.tensor([max(len(s), len(t)) for s, t in encoded])
    model = TorchBaseline(len(vocab))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    epoch, steps, deadline = 0, 0, started + args.minutes * 60

    def more() -> bool:
        return steps < args.steps if args.steps else time.monotonic() < deadline

    while more():
        model.train()
        total, done = 0.0, 0
        batches = bucketed_batches(lengths, 64, args.seed, epoch)
        for rows in batches:
            if not more():
                break
            (source, source_lengths, target_input), targets = make_batch(
                [encoded[i] for i in rows.tolist()])
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                loss = model(source, source_lengths, target_input, targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            total += loss.item()
            done += 1
            steps += 1
        epoch += 1
        print(f"epoch {epoch} ({done} of {len(batches)} batches): loss "
              f"{total / max(done, 1):.3f}, {(time.monotonic() - started) / 60:.1f} min",
              flush=True)
    trained_minutes = (time.monotonic() - started) / 60
    sources = [s for s, _ in text.splits["test"]]
    references = [t for _, t in text.splits["test"]]
    results = {"data": args.data, "precision": "bf16" if bf16 else "fp32", "steps": steps,
               "epochs": round(steps / len(batches), 2), "minutes": round(trained_minutes, 1),
               "parameters": sum(p.numel() for p in model.parameters())}
    with evaluation_mode(model):
        for name, beams in (("greedy", 1), ("beam", BEAM_SIZE)):
            scores = corpus_scores(translate(model, vocab, sources, beams), references)
            results[f"{name}_bleu"] = round(scores["bleu"], 2)
            results[f"{name}_chrf"] = round(scores["chrf"], 2)
            results["bleu_signature"] = scores["bleu_signature"]
    print(json.dumps(results, indent=2))
    if args.out:
        with open(args.out, "w", encoding="utf-8") as file:
            json.dump(results, file, indent=2)


if __name__ == "__main__":
    main()
