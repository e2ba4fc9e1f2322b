"""Each modelling choice of the translate task against its absence, at a fixed number of
training steps, for docs/results/translation.md.

Every variant is ``rnnkit train --task translate --steps STEPS --time-limit 0 --seed S`` plus
the options given after ``--``, with one choice undone: ``untied`` (separate source, target and
output matrices: :data:`rnnkit.tasks.translate.TIE_EMBEDDINGS`), ``no-smoothing``
(:data:`~rnnkit.tasks.translate.LABEL_SMOOTHING` 0) and ``no-dropout`` (``--dropout 0``);
``default`` changes nothing. The length of the runs is fixed in steps, not time, so that the
comparison does not depend on how loaded the machine is. The table gives each run's
validation BLEU and chrF (greedy, sacreBLEU) and its validation cross-entropy: choices are
judged on validation only. A run directory that already holds a report is read, not trained
again.

Usage::

    python benchmarks/translation_ablation.py --steps 800 --out runs/ablation -- --threads 1
    python benchmarks/translation_ablation.py --variants default untied --out runs/ablation
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from report import trained_report

from rnnkit.tasks import translate

VARIANTS: dict[str, tuple[dict[str, object], list[str]]] = {
    "default": ({}, []),
    "untied": ({"TIE_EMBEDDINGS": False}, []),
    "no-smoothing": ({"LABEL_SMOOTHING": 0.0}, []),
    "no-dropout": ({}, ["--dropout", "0"]),
}
"""Variant name: (constants of rnnkit.tasks.translate to set, extra ``rnnkit train`` options)."""


def run_report(run: Path, variant: str, steps: int, seed: int, options: list[str]) -> dict:
    """The report of ``variant``'s run in ``run``, training it first if needed."""
    constants, extra = VARIANTS[variant]
    saved = {name: getattr(translate, name) for name in constants}
    for name, value in constants.items():
        setattr(translate, name, value)
    try:
        return trained_report(run, ["--task", "translate", "--steps", str(steps),
                                    "--time-limit", "0", "--seed", str(seed), "--force",
                                    *extra, *options], variant)
    finally:
        for name, value in saved.items():
            setattr(translate, name, value)


def main(argv: list[str] | None = None) -> int:
    """Train (or read) the variants' runs and print the Markdown table."""
    argv = sys.argv[1:] if argv is None else argv
    options = argv[argv.index("--") + 1:] if "--" in argv else []
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--steps", type=int, default=800)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True, help="folder of the runs")
    args = parser.parse_args(argv[:argv.index("--")] if "--" in argv else argv)
    print("| variant | steps | validation BLEU (greedy) | validation chrF | validation "
          "cross-entropy | parameters |")
    print("|---|---|---|---|---|---|")
    for variant in args.variants:
        report = run_report(args.out / f"{variant}-seed{args.seed}", variant, args.steps,
                            args.seed, options)
        scores = report["validation"]
        print(f"| {variant} | {report['steps']} | {100 - scores['bleu_error']:.2f} "
              f"| {100 - scores['chrf_error']:.2f} | {scores['cross_entropy']:.3f} "
              f"| {report['parameters']:,} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
