"""The classification task's default command on UCR/UEA data sets, over seeds: test accuracy
per run, mean and spread, beside published accuracies.

Each run is ``rnnkit train --task classify --data DATA --seed S`` plus the options given after
``--``; runs are written to ``OUT/NAME-seedS`` and a run whose directory already holds a report
is read, not trained again. DATA is a bundled name, a NAME_TRAIN file or a folder.

Published figures (test accuracy on the default split): 1-NN DTW (full window) and LSTM-FCN
from the LSTM-FCN authors' re-run with the checkpoint chosen on the training loss
(github.com/titu1994/LSTM-FCN, Results/train_loss_old_datasets.csv; GunPoint's and
ItalyPowerDemand's 1-NN DTW agree with Bagnall et al.'s bake-off, 2017), and InceptionTime
(Fawaz et al. 2020, an ensemble of five, github.com/hfawaz/InceptionTime,
results-InceptionTime-128.csv).

Example::

    python benchmarks/classification_ucr.py GunPoint ItalyPowerDemand --seeds 0 1 2 --out runs/ucr
    python benchmarks/classification_ucr.py ~/UCR/ArrowHead --out runs/ucr -- --time-limit 120
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

from report import trained_report

from rnnkit.data import load_ucr

PUBLISHED = {  # name: (1-NN DTW, LSTM-FCN, InceptionTime)
    "ArrowHead": (0.663, 0.897, 0.846), "GunPoint": (0.907, 1.000, 1.000),
    "ItalyPowerDemand": (0.950, 0.962, 0.965), "OSULeaf": (0.591, 0.983, 0.942),
}


def run_report(out: Path, data: str, seed: int, options: list[str]) -> dict:
    """The report of the run of ``data`` with ``seed``, training it first if needed."""
    run = out / f"{load_ucr(data).name}-seed{seed}"
    return trained_report(run, ["--task", "classify", "--data", data, "--seed", str(seed),
                                "--force", *options], f"{data}, seed {seed}")


def main(argv: list[str] | None = None) -> int:
    """Train (or read) the runs and print the Markdown table."""
    argv = sys.argv[1:] if argv is None else argv
    options = argv[argv.index("--") + 1:] if "--" in argv else []
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="+", help="bundled names, NAME_TRAIN files or folders")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--out", type=Path, required=True, help="folder of the runs")
    args = parser.parse_args(argv[:argv.index("--")] if "--" in argv else argv)
    reports = {data: [run_report(args.out, data, seed, options) for seed in args.seeds]
               for data in args.data}
    print("| data set | accuracy, mean (min–max) | seeds | steps | s per run "
          "| 1-NN DTW | LSTM-FCN | InceptionTime |")
    print("|---|---|---|---|---|---|---|---|")
    for data, runs in reports.items():
        accuracies = [1 - report["test"]["error_rate"] for report in runs]
        name = load_ucr(data).name
        published = " | ".join(f"{value:.3f}" if value else "–"
                               for value in PUBLISHED.get(name, (None,) * 3))
        print(f"| {name} | {statistics.mean(accuracies):.3f} ({min(accuracies):.3f}–"
              f"{max(accuracies):.3f}) | {len(runs)} "
              f"| {statistics.mean(report['steps'] for report in runs):.0f} "
              f"| {statistics.mean(report['seconds_this_session'] for report in runs):.0f} "
              f"| {published} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
