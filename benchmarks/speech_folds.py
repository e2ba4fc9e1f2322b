"""Leave-one-speaker-out for the speech task: one `rnnkit train --task speech` run per held-out
speaker, then the table of test scores with their mean and the worst speaker.

Each fold is the default command with ``--data NAME:SPEAKER`` (the speaker never heard in
training or in choosing the checkpoint) and the options given after ``--``; runs are written to
``OUT/SPEAKER`` and a fold whose run directory already holds a report is read, not trained again.
``--data`` may carry the speech task's options (``fsdd/speed,noise,mask,lifter``).
``--without`` leaves speakers out of every fold (``NAME:SPEAKER-LEFT_OUT``): the inner folds
of a left-out speaker's fold, on which settings can be chosen without ever hearing that voice.

Example::

    python benchmarks/speech_folds.py --out runs/loso                 # isolated digits, 5 folds
    python benchmarks/speech_folds.py --data fsdd-strings --out runs/loso-strings
    python benchmarks/speech_folds.py --speakers theo nicolas --out runs/two -- --epochs 10
    python benchmarks/speech_folds.py --without george --out runs/inner-george  # 4 inner folds
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

from report import trained_report

from rnnkit.data.fsdd import SPEAKERS


def fold_data(data: str, speaker: str, without: list[str]) -> str:
    """``--data`` of the fold holding ``speaker`` out and leaving ``without`` out."""
    name, slash, choices = data.partition("/")
    return f"{name}:{'-'.join([speaker, *without])}{slash}{choices}"


def fold_report(out: Path, data: str, speaker: str, options: list[str],
                without: list[str]) -> dict:
    """The report of the fold holding ``speaker`` out, training it first if needed."""
    return trained_report(out / speaker, ["--task", "speech", "--data",
                                          fold_data(data, speaker, without), *options],
                          f"fold {speaker}")


def main(argv: list[str] | None = None) -> int:
    """Train (or read) the folds and print the Markdown table."""
    argv = sys.argv[1:] if argv is None else argv
    options = argv[argv.index("--") + 1:] if "--" in argv else []
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="fsdd", help="fsdd or fsdd-strings (default fsdd)")
    parser.add_argument("--speakers", nargs="+", default=None, choices=SPEAKERS,
                        help="speakers to hold out in turn (default: all not left out)")
    parser.add_argument("--without", nargs="+", default=[], choices=SPEAKERS,
                        help="speakers left out of every fold (inner folds)")
    parser.add_argument("--out", type=Path, required=True, help="folder of the fold runs")
    args = parser.parse_args(argv[:argv.index("--")] if "--" in argv else argv)
    strings = args.data.startswith("fsdd-strings")
    speakers = args.speakers or [s for s in SPEAKERS if s not in args.without]
    if set(speakers) & set(args.without):
        parser.error("a speaker cannot be both held out and left out")
    rows = []
    for speaker in speakers:
        report = fold_report(args.out, args.data, speaker, options, args.without)
        test = report["test"]
        score = (1 - test["string_error"]) if strings else (1 - test["error_rate"])
        rows.append((speaker, score, test.get("cer"), report["steps"],
                     report["seconds_this_session"]))
    name = "strings right" if strings else "accuracy"
    print(f"| held-out speaker | {name} |" + (" CER |" if strings else "") + " steps | s |")
    print("|---|---|" + ("---|" if strings else "") + "---|---|")
    for speaker, score, cer, steps, seconds in rows:
        print(f"| {speaker} | {score:.1%} |" + (f" {cer:.2%} |" if strings else "")
              + f" {steps} | {seconds:.0f} |")
    scores = [row[1] for row in rows]
    worst = min(rows, key=lambda row: row[1])
    line = f"| mean | {statistics.mean(scores):.1%} |"
    if strings:
        line += f" {statistics.mean(row[2] for row in rows):.2%} |"
    print(line + " | |")
    print(f"| worst ({worst[0]}) | {worst[1]:.1%} |" + (f" {worst[2]:.2%} |" if strings else "")
          + " | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
