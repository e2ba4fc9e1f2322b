"""BLEU and chrF of a translate run's decodings: greedy and beam search with several beam
sizes and length penalties, on the validation (default) or test split, for choosing the
decoding defaults of :mod:`rnnkit.tasks.translate` (``BEAM_SIZE``, ``LENGTH_PENALTY``) on
validation data.

Usage::

    python benchmarks/translation_decoding.py runs/RUN --split val --beams 1,5 \\
        --penalties 0,0.6,1
"""

from __future__ import annotations

import argparse
import time

import torch

from rnnkit.tasks.translate import (
    corpus_scores,
    load_translator,
    read_parallel,
    split_pairs,
    translate,
)
from rnnkit.training.config import TrainConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run")
    parser.add_argument("--split", default="val", choices=("val", "test"))
    parser.add_argument("--beams", default="1,5")
    parser.add_argument("--penalties", default="0,0.6,1")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model, vocab, info = load_translator(args.run)
    config = TrainConfig.from_dict(info["config"])
    pairs = split_pairs(read_parallel(config), args.split, config)
    sources, references = [s for s, _ in pairs], [t for _, t in pairs]
    print(f"{args.run} (step {info['step']}), {args.split} split, {len(pairs)} sentences")
    print("| beams | length penalty | BLEU | chrF | mean output length / reference | seconds |")
    print("|---|---|---|---|---|---|")
    for beams in (int(b) for b in args.beams.split(",")):
        for penalty in ([0.0] if beams == 1 else [float(p) for p in args.penalties.split(",")]):
            started = time.perf_counter()
            hypotheses = translate(model, vocab, sources, beams, penalty)
            seconds = time.perf_counter() - started
            scores = corpus_scores(hypotheses, references)
            ratio = (sum(len(h.split()) for h in hypotheses)
                     / sum(len(r.split()) for r in references))
            print(f"| {beams} | {penalty:g} | {scores['bleu']:.2f} | {scores['chrf']:.2f} | "
                  f"{ratio:.3f} | {seconds:.0f} |", flush=True)
    print(f"BLEU signature: {scores['bleu_signature']}")


if __name__ == "__main__":
    main()
