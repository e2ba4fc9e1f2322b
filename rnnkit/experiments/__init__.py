"""Experiments that show why gates matter, each writing a Markdown report, CSVs and PNG plots.

Every experiment is a module with ``run(out_dir, quick=False, seeds=None, plan=None) -> Path``
(the path of the report.md it writes). The full run (2-3 seeds) is planned for at most 15 minutes
on two CPU cores (one thread each, except long_range, which trains in one worker process per
core); ``quick=True`` for under two minutes, with the same qualitative outcome. Every run is
seeded and deterministic on the CPU for a given number of threads (long_range: whatever the
number of workers).

Example::

    from rnnkit.experiments import EXPERIMENTS

    run, description = EXPERIMENTS["clipping"]
    report = run("runs/experiments/clipping", quick=True)  # .../report.md
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from rnnkit.experiments import clipping, dependency, long_range, variants

EXPERIMENTS: dict[str, tuple[Callable[..., Path], str]] = {
    "long_range": (long_range.run, "adding problem and copy memory across lengths: tanh RNN, "
                                   "LSTM, GRU, CIFG, minGRU; gradient flow through time"),
    "variants": (variants.run, "the nine LSTM variants of Greff et al. 2017 on the continual "
                               "embedded Reber grammar"),
    "clipping": (clipping.run, "a tanh RNN with exploding gradients trained with and without "
                               "gradient-norm clipping"),
    "dependency": (dependency.run, "recalling a key token across a gap of distractors, "
                                   "accuracy against gap length"),
}


def add_experiment_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``NAME [--quick] [--seeds N] [--out DIR]`` to the parser of ``rnnkit experiment``."""
    parser.add_argument("name", metavar="NAME", choices=list(EXPERIMENTS),
                        type=lambda text: text.replace("-", "_"),
                        help="one of: " + ", ".join(EXPERIMENTS) + " (or with '-' for '_')")
    parser.add_argument("--quick", action="store_true",
                        help="a short run with the same qualitative outcome (under two minutes)")
    parser.add_argument("--seeds", type=int, default=None, metavar="N",
                        help="train with seeds 0 .. N-1 (default 2-3, or 1-2 with --quick)")
    parser.add_argument("--out", type=Path, default=None, metavar="DIR",
                        help="output directory (default runs/experiments/NAME[-quick])")


def experiment_command(args: argparse.Namespace) -> int:
    """Run the experiment named by parsed :func:`add_experiment_arguments` options; print the
    report's path. Returns the exit code (0)."""
    if args.seeds is not None and args.seeds < 1:
        raise SystemExit(f"rnnkit experiment: error: --seeds must be >= 1, got {args.seeds}")
    out = args.out or Path("runs", "experiments", args.name + ("-quick" if args.quick else ""))
    run, _ = EXPERIMENTS[args.name]
    report = run(out, quick=args.quick, seeds=args.seeds)
    print(f"report: {report}")
    return 0


__all__ = ["EXPERIMENTS", "add_experiment_arguments", "experiment_command"]
