"""The calibration baseline of the translate task, trained under the same time budget as
``rnnkit train --task translate``, for the comparison on docs/results/translation.md.

A plain ``torch.nn`` model, as calibrated on this kind of machine (Multi30K de-en, 33.7
sacreBLEU in 25 minutes): a bidirectional ``nn.GRU`` encoder of 256 units each way, an
``nn.GRU`` decoder of 512 units with general attention after it (Luong et al. 2015), separate
source and target embeddings of 256 and an untied output projection, an 8,000-piece joint
SentencePiece vocabulary, label smoothing 0.1, bfloat16 autocast, batches of 64, AdamW at a
constant 1e-3 with gradient clipping at 1. It trains epoch after epoch until ``--minutes`` run
out (the epoch under way is finished), then scores test_2016_flickr greedy and with beam 5
(sacreBLEU, cased, 13a). Data, vocabulary, batching, decoding and scoring are rnnkit's own
(:mod:`rnnkit.data.parallel`, :mod:`rnnkit.tasks.translate`), so only the model and its
training differ from the task's.

Usage::

    python benchmarks/translation_baseline.py --minutes 30 --threads 2
    python benchmarks/translation_baseline.py --data multi30k:fr-en --minutes 30
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.data.cmudict import PAD
from rnnkit.data.parallel import SubwordVocab, load_parallel
from rnnkit.models import evaluation_mode
from rnnkit.models.base import valid_steps
from rnnkit.models.seq2seq import Seq2Seq
from rnnkit.tasks.translate import (
    BEAM_SIZE,
    VOCABULARY_SIZE,
    bucketed_batches,
    corpus_scores,
    make_batch,
    translate,
)


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="multi30k:de-en")
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--precision", choices=("bf16", "fp32"), default="bf16",
                        help="training arithmetic (default bf16 autocast, as calibrated)")
    parser.add_argument("--out", help="write the results here as JSON")
    args = parser.parse_args()
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
    epoch = 0
    while time.monotonic() - started < args.minutes * 60:
        model.train()
        total = 0.0
        batches = bucketed_batches(lengths, 64, args.seed, epoch)
        for rows in batches:
            (source, source_lengths, target_input), targets = make_batch(
                [encoded[i] for i in rows.tolist()])
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.precision == "bf16"):
                loss = model(source, source_lengths, target_input, targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            total += loss.item()
        epoch += 1
        print(f"epoch {epoch}: loss {total / len(batches):.3f}, "
              f"{(time.monotonic() - started) / 60:.1f} min", flush=True)
    trained_minutes = (time.monotonic() - started) / 60
    sources = [s for s, _ in text.splits["test"]]
    references = [t for _, t in text.splits["test"]]
    results = {"data": args.data, "precision": args.precision, "epochs": epoch,
               "minutes": round(trained_minutes, 1),
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
