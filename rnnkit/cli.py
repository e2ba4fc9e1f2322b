"""The ``rnnkit`` command line: train, sample, evaluate, list.

``rnnkit train`` with no arguments trains a character-level LSTM language model on the
bundled Shakespeare corpus in under ten minutes on two CPU cores and prints a sample. Every
problem with the input (options, data, run directories, checkpoints) is reported as one line
on stderr with a non-zero exit code.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from rnnkit.catalog import describe_cells
from rnnkit.data import CharVocab, DataError
from rnnkit.data.audio import audio_files
from rnnkit.engine import fused
from rnnkit.experiments import add_experiment_arguments, experiment_command
from rnnkit.export import export_seq2seq, export_task_model, seq2seq_paths
from rnnkit.inspection import inspect_run
from rnnkit.models import LanguageModel, LanguageModelConfig
from rnnkit.tasks import EVALUATION_SETTINGS, TASKS, build_task, task_config
from rnnkit.tasks.handwriting import recognize_image
from rnnkit.tasks.language_model import unknown_ids
from rnnkit.tasks.speech import TASK as SPEECH
from rnnkit.tasks.speech import recognize_recordings, stream_digits
from rnnkit.tasks.translate import BEAM_SIZE, evaluation_report, translate_lines
from rnnkit.training import distributed
from rnnkit.training.checkpoint import load_checkpoint
from rnnkit.training.config import OPTIMIZERS, PRECISIONS, TrainConfig
from rnnkit.training.errors import RunError
from rnnkit.training.run_dir import RunDirectory
from rnnkit.training.task import build_model
from rnnkit.training.trainer import train

DEFAULTS = task_config("lm")
"""The settings of ``rnnkit train`` with no options (the lm task's), shown in its help."""

# Options a resumed run may change; everything else is fixed by the run's config.json.
RESUMABLE = ("steps", "epochs", "time_limit", "device", "threads", "precision", "compile")


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are a single line on stderr (exit code 2)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        """Print ``message`` as one line naming the --help to read, and exit with code 2."""
        self.exit(2, f"{self.prog}: error: {message}; see `{self.prog} --help`\n")


def _formatter(prog: str) -> argparse.HelpFormatter:
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=32)


def _default(name: str) -> str:
    value = getattr(DEFAULTS, name)
    return "none" if value is None else str(value)


def number(text: str) -> float | None:
    """An option's number, where 0 means "off" (None)."""
    value = float(text)
    return None if value == 0 else value


def count(text: str) -> int | None:
    """An option's count, where 0 means "automatic" (None)."""
    value = int(text)
    return None if value == 0 else value


def build_parser() -> Parser:
    """The argument parser of every command."""
    parser = Parser(
        prog="rnnkit", formatter_class=_formatter,
        description="Recurrent neural networks on PyTorch: train, sample, evaluate.",
        epilog="examples:\n"
               "  rnnkit train                      # Shakespeare LSTM language model, < 10 min\n"
               "  rnnkit sample runs/RUN --prompt 'ROMEO:' --length 300\n"
               "  rnnkit evaluate runs/RUN\n"
               "  rnnkit list")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True,
                                     parser_class=Parser)

    train_parser = commands.add_parser(
        "train", formatter_class=_formatter, argument_default=argparse.SUPPRESS,
        help="train a model and write a run directory",
        description="Train a model. With no options: a character-level LSTM language model\n"
                    "on the bundled Shakespeare corpus for a fixed 5944 steps (under 10 minutes\n"
                    "on two idle CPU cores; the same run under any load), writes\n"
                    "runs/<time>-lm-lstm and prints a generated sample.\n"
                    "The defaults below are the lm task's; every other --task has its own\n"
                    "(data set, sizes, run length), and any option given overrides them.",
        epilog="examples:\n"
               "  rnnkit train\n"
               "  rnnkit train --time-limit 300   # as many steps as fit in 5 minutes\n"
               "  rnnkit train --cell gru --hidden-size 256 --steps 500 --out runs/gru\n"
               "  rnnkit train --data my_text.txt --epochs 3 --dropout 0.2\n"
               "  rnnkit train --resume runs/gru --steps 1000   # continue (to 1000 steps)\n"
               "  rnnkit train --task classify --data JapaneseVowels\n"
               "  rnnkit train --task forecast --data my.csv --column sales --horizon 12\n"
               "  torchrun --nproc_per_node 2 -m rnnkit train   # data-parallel on 2 processes")
    add = train_parser.add_argument
    add("--task", help=f"what to learn: {', '.join(TASKS)} (default {_default('task')})")
    add("--data", metavar="PATH_OR_NAME",
        help="the data, a bundled name or a path: lm a UTF-8 text (default shakespeare); "
             "classify a .ts data set (GunPoint); forecast a CSV series (sunspots); seq2seq "
             "a pronouncing dictionary (cmudict); adding/copy the length T (100/20)")
    add("--column", metavar="NAME",
        help="forecast: the CSV column to forecast (default: the single numeric column)")
    add("--horizon", type=int, metavar="H",
        help=f"forecast: predict 1..H steps ahead (default {_default('horizon')})")
    add("--season", metavar="M[,M2]",
        help="forecast: the series' season lengths in steps, e.g. 48,336 for half-hourly data "
             "with daily and weekly cycles, or none (default: detected from the timestamps "
             "or the autocorrelation)")
    add("--covariates", metavar="COLUMNS",
        help="forecast: comma-separated CSV columns the model also reads (up to each "
             "forecast's origin)")
    add("--source", metavar="LANG_OR_COLUMN",
        help="translate: the source language of multi30k (de, en, fr; default de) or the "
             "source column of a TSV (default 1)")
    add("--target", metavar="LANG_OR_COLUMN",
        help="translate: the target language (default en) or TSV column (default 2)")
    add("--cell", metavar="NAME",
        help=f"recurrent cell, see `rnnkit list` (default {_default('cell')})")
    add("--embedding-size", type=int, metavar="N",
        help=f"input embedding size (default {_default('embedding_size')})")
    add("--hidden-size", type=int, metavar="N",
        help=f"units per layer (default {_default('hidden_size')})")
    add("--layers", type=int, metavar="N",
        help=f"stacked recurrent layers (default {_default('layers')})")
    add("--bidirectional", action=argparse.BooleanOptionalAction,
        help="read sequences in both directions (not for --task lm); --no-bidirectional for "
             "a task whose default is bidirectional")
    add("--dropout", type=float, metavar="P",
        help=f"dropout probability (default {_default('dropout')})")
    add("--weight-dropout", type=float, metavar="P",
        help="DropConnect on the recurrent weights: one mask per chunk on each hidden-to-hidden "
             f"weight, in training (default {_default('weight_dropout')})")
    add("--activation-penalty", type=float, metavar="A",
        help="lm: adds A * mean(h^2) of the recurrent layer's dropped outputs to the training "
             f"loss (AR) (default {_default('activation_penalty')})")
    add("--temporal-penalty", type=float, metavar="B",
        help="lm: adds B * mean((h[t+1] - h[t])^2) of the recurrent layer's outputs to the "
             f"training loss (TAR) (default {_default('temporal_penalty')})")
    add("--zoneout-hidden", type=float, metavar="P",
        help="zoneout on the hidden state: each unit keeps its previous value with probability "
             f"P at each step, in training (default {_default('zoneout_hidden')})")
    add("--zoneout-cell", type=float, metavar="P",
        help="zoneout on the LSTM's cell state, likewise "
             f"(default {_default('zoneout_cell')})")
    add("--batch-size", type=int, metavar="N",
        help=f"sequences per step, across all processes (default {_default('batch_size')})")
    add("--bptt", type=int, metavar="T",
        help=f"truncated-BPTT chunk length; the state is carried across chunks "
             f"(default {_default('bptt')}); forecast: the input window length")
    add("--optimizer", choices=OPTIMIZERS, help=f"(default {_default('optimizer')})")
    add("--lr", type=float, metavar="LR", help=f"peak learning rate (default {_default('lr')})")
    add("--min-lr-ratio", type=float, metavar="R",
        help=f"cosine decay ends at lr * R (default {_default('min_lr_ratio')})")
    add("--warmup", type=int, metavar="STEPS",
        help=f"linear warm-up steps, at most a tenth of the run (default {_default('warmup')})")
    add("--weight-decay", type=float, metavar="W",
        help=f"decoupled weight decay (default {_default('weight_decay')})")
    add("--momentum", type=float, metavar="M",
        help=f"SGD momentum (default {_default('momentum')})")
    add("--ema", type=number, metavar="DECAY",
        help="decay of the moving average of the weights that validation, checkpoints and "
             "results use; 0 = off, the raw weights "
             f"(default {_default('ema')} for lm, off for the other tasks)")
    add("--clip", type=number, metavar="NORM",
        help=f"clip the global gradient norm; 0 = off (default {_default('clip')})")
    add("--clip-value", type=number, metavar="V",
        help=f"clip each gradient element to [-V, V]; 0 = off (default {_default('clip_value')})")
    add("--steps", type=count, metavar="N",
        help="optimizer steps; the lr schedule spans them; 0 = as many as fit in --time-limit, "
             f"judged from the speed of the first 60 steps (default {_default('steps')} for "
             "lm; each task has its own)")
    add("--epochs", type=float, metavar="E",
        help="passes over the training data (overrides --steps)")
    add("--time-limit", type=number, metavar="SECONDS",
        help="a wall-clock budget: without --steps and --epochs the run fits its length to "
             "it (as --steps 0); with them it stops there, with a checkpoint; 0 = no limit "
             f"(default {_default('time_limit')} for lm)")
    add("--eval-every", type=int, metavar="N",
        help=f"validate and checkpoint every N steps (default {_default('eval_every')})")
    add("--patience", type=int, metavar="N",
        help="stop after N validations without improvement (default: never)")
    add("--seed", type=int, help=f"random seed (default {_default('seed')})")
    add("--device", help=f"auto, cpu, cuda or cuda:N (default {_default('device')})")
    add("--precision", choices=PRECISIONS,
        help="training arithmetic: fp32, bf16 (autocast), or auto = bf16 where the hardware "
             "computes it natively (AMX/AVX512-BF16 CPUs, CUDA) (default auto)")
    add("--compile", action=argparse.BooleanOptionalAction,
        help="train through torch.compile: the same results, compiled in the first steps "
             "(default off: the tasks measured trained slower compiled)")
    add("--threads", type=count, metavar="N",
        help="CPU threads per process, fixed for the run; 0 = auto: a resumed run's recorded "
             "count, else torch's (the physical cores, or OMP_NUM_THREADS); 1 can be much "
             "faster on a busy machine (default auto)")
    add("--out", metavar="DIR", help="run directory (default runs/<time>-<task>-<cell>)")
    add("--resume", metavar="RUN", help="continue the run in RUN exactly where it stopped")
    add("--force", action="store_true", help="replace the run files in an existing --out")
    train_parser.set_defaults(handler=train_command, parser=train_parser)

    sample_parser = commands.add_parser(
        "sample", formatter_class=_formatter, help="generate text from a trained language model",
        description="Generate text with a run's best checkpoint, character by character.",
        epilog="example:\n  rnnkit sample runs/RUN --prompt 'ROMEO:' --length 300 "
               "--temperature 0.8 --top-k 10")
    sample_parser.add_argument("run", metavar="RUN", help="run directory of an lm run")
    sample_parser.add_argument("--prompt", default="\n", help="text to continue (default newline)")
    sample_parser.add_argument("--length", type=int, default=500, metavar="N",
                               help="characters to generate (default 500)")
    sample_parser.add_argument("--temperature", type=float, default=0.8, metavar="T",
                               help="sampling temperature; 0 = most likely (default 0.8)")
    sample_parser.add_argument("--top-k", type=int, metavar="K",
                               help="sample among the K most likely characters only")
    sample_parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    sample_parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    sample_parser.set_defaults(handler=sample_command, parser=sample_parser)

    evaluate_parser = commands.add_parser(
        "evaluate", formatter_class=_formatter, help="score a trained model on held-out data",
        description="Score a run's best checkpoint on the test split of its data (lm:\n"
                    "cross-entropy per character; classify: error rate; forecast: MASE,\n"
                    "sMAPE and RMSE over rolling origins with baselines; seq2seq: phoneme\n"
                    "error rate; adding: MSE; copy: cross-entropy and copy error rate).",
        epilog="examples:\n  rnnkit evaluate runs/RUN\n"
               "  rnnkit evaluate runs/RUN --data other.txt   # an lm run on all of other.txt\n"
               "  rnnkit evaluate runs/ADDING --data 200   # an adding run on T = 200")
    evaluate_parser.add_argument("run", metavar="RUN", help="run directory")
    evaluate_parser.add_argument("--data", metavar="PATH_OR_NAME",
                                 help="data to score instead of the run's own")
    evaluate_parser.add_argument("--split", choices=("test", "val", "all"),
                                 help="which part of the data (default test; all of the file "
                                      "for --task lm with --data)")
    evaluate_parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    evaluate_parser.add_argument("--threads", type=int, default=0, metavar="N",
                                 help="CPU threads; 0 = torch's (the physical cores, or "
                                      "OMP_NUM_THREADS); 1 can be much faster on a busy "
                                      "machine (default 0)")
    evaluate_parser.set_defaults(handler=evaluate_command, parser=evaluate_parser)

    export_parser = commands.add_parser(
        "export", formatter_class=_formatter, help="write a trained model as ONNX or .pt2",
        description="Write a run's best checkpoint as a file that runs without rnnkit, for\n"
                    "any batch size and sequence length: ONNX (onnxruntime, ...) or\n"
                    "torch.export's .pt2 (torch.export.load). The inputs are those of a\n"
                    "training batch, batch first; a language model also takes and returns\n"
                    "its state (zeros to start), so it can generate step by step. An\n"
                    "encoder-decoder (seq2seq, translate) is two files, NAME-encoder and\n"
                    "NAME-decoder: a step that carries the decoder's state.\n"
                    "Tasks: " + ", ".join(EXPORT_INPUTS) + ".",
        epilog="examples:\n  rnnkit export runs/RUN   # runs/RUN/model.onnx\n"
               "  rnnkit export runs/RUN --format pt2 --out model.pt2")
    export_parser.add_argument("run", metavar="RUN", help="run directory")
    export_parser.add_argument("--format", choices=("onnx", "pt2"), default="onnx",
                               help="file format (default onnx)")
    export_parser.add_argument("--out", metavar="FILE",
                               help="file to write (default RUN/model.onnx or RUN/model.pt2)")
    export_parser.set_defaults(handler=export_command, parser=export_parser)

    list_parser = commands.add_parser(
        "list", formatter_class=_formatter, help="list the cells and tasks",
        description="List the recurrent cells (--cell) and tasks (--task).",
        epilog="example:\n  rnnkit list")
    list_parser.set_defaults(handler=list_command, parser=list_parser)

    kernels_parser = commands.add_parser(
        "build", formatter_class=_formatter, help="compile the fused CPU kernels now",
        description="Compile rnnkit's fused CPU kernels (C++; a compiler and ninja are needed)\n"
                    "into torch's extensions directory, once per version of the sources and\n"
                    "toolchain, so that the first run starts at once (else the first use\n"
                    "compiles them). Exits 0 where no C++ compiler is found (rnnkit then runs\n"
                    "on its reference engines, with a warning), 1 if a compiler is found but\n"
                    "the build fails.",
        epilog="example:\n  rnnkit build")
    kernels_parser.set_defaults(handler=build_command, parser=kernels_parser)

    inspect_parser = commands.add_parser(
        "inspect", formatter_class=_formatter,
        help="look inside a trained model: gradient flow, gate traces, CTC outputs",
        description="Plots and CSVs of what a run's model does, written to --out\n"
                    "(default RUN/inspect).",
        epilog="examples:\n  rnnkit inspect runs/RUN --gradients\n"
               "  rnnkit inspect runs/rnn runs/lstm --gradients --out cmp   # one line per run\n"
               "  rnnkit inspect runs/RUN --gates --text 'To be, or not to be'\n"
               "  rnnkit inspect runs/RUN --ctc line.png")
    inspect_parser.add_argument("run", metavar="RUN", nargs="+",
                                help="run directory; several, for --gradients in one figure")
    inspect_parser.add_argument("--gradients", action="store_true",
                                help="norm of dloss/dh_k at every step k, before and after "
                                     "training (PNG, log scale, and CSV)")
    inspect_parser.add_argument("--gates", action="store_true",
                                help="heatmaps of every gate and the cell state over --text, "
                                     "with saturation statistics (PNG and CSV)")
    inspect_parser.add_argument("--text", help="the text --gates reads (lm runs)")
    inspect_parser.add_argument("--ctc", metavar="IMAGE",
                                help="a handwriting run's per-step label probabilities under "
                                     "a line image (a PNG, or the number of a test line)")
    inspect_parser.add_argument("--attention", metavar="SENTENCE",
                                help="a translate run's attention weights while it translates "
                                     "SENTENCE: source against target pieces (PNG and CSV)")
    inspect_parser.add_argument("--out", metavar="DIR", help="output folder (default RUN/inspect)")
    inspect_parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    inspect_parser.set_defaults(handler=inspect_command, parser=inspect_parser)

    recognize_parser = commands.add_parser(
        "recognize", formatter_class=_formatter,
        help="read the digits in handwritten line images or spoken recordings",
        description="Read a line of handwritten digits with a handwriting run's model (any\n"
                    "height, dark-on-light or light-on-dark), or the digits spoken in WAV or\n"
                    "FLAC recordings with a speech run's model (any rate and channels): one\n"
                    "line per file, its name and the digits.",
        epilog="examples:\n  rnnkit recognize runs/RUN line.png\n"
               "  rnnkit recognize runs/SPEECH one.wav two.flac recordings/")
    recognize_parser.add_argument("run", metavar="RUN",
                                  help="run directory of a handwriting or speech run")
    recognize_parser.add_argument("image", metavar="FILE", nargs="+",
                                  help="PNG (or other image) file for a handwriting run; WAV or "
                                       "FLAC recordings, or folders of them, for a speech run")
    recognize_parser.add_argument("--beam", type=int, metavar="N",
                                  help="prefix beam search with N beams (default best path)")
    recognize_parser.add_argument("--stream", action="store_true",
                                  help="a unidirectional connected-digit speech run: print the "
                                       "digits as the recording is read, chunk by chunk")
    recognize_parser.add_argument("--chunk-ms", type=int, default=200, metavar="MS",
                                  help="--stream: milliseconds of audio read at a time "
                                       "(default 200)")
    recognize_parser.set_defaults(handler=recognize_command, parser=recognize_parser)

    translate_parser = commands.add_parser(
        "translate", formatter_class=_formatter, help="translate sentences with a translate run",
        description="Translate sentences with a translate run's best checkpoint, one line of\n"
                    "output per sentence: the arguments, else each line of --file, else each\n"
                    "line of standard input.",
        epilog="examples:\n  rnnkit translate runs/RUN \"Ein Mann fährt Fahrrad.\"\n"
               "  rnnkit translate runs/RUN --file sentences.de > sentences.en\n"
               "  echo \"Zwei Hunde spielen im Schnee.\" | rnnkit translate runs/RUN --beam 1")
    translate_parser.add_argument("run", metavar="RUN", help="run directory of a translate run")
    translate_parser.add_argument("text", metavar="SENTENCE", nargs="*",
                                  help="sentences to translate")
    translate_parser.add_argument("--file", metavar="PATH",
                                  help="a UTF-8 text file, one sentence a line")
    translate_parser.add_argument("--beam", type=int, default=BEAM_SIZE, metavar="N",
                                  help=f"beam search with N beams; 1 = greedy (default "
                                       f"{BEAM_SIZE})")
    translate_parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    translate_parser.set_defaults(handler=translate_command, parser=translate_parser)

    experiment_parser = commands.add_parser(
        "experiment", formatter_class=_formatter,
        help="run an experiment that shows why gates matter",
        description="Run an experiment and write a Markdown report with plots.",
        epilog="examples:\n  rnnkit experiment long_range --quick\n"
               "  rnnkit experiment variants --seeds 3 --out runs/variants")
    add_experiment_arguments(experiment_parser)
    experiment_parser.set_defaults(handler=experiment_command, parser=experiment_parser)
    return parser


def train_command(args: argparse.Namespace) -> int:
    """``rnnkit train``: build the config from the options, train, print the outcome."""
    # Train options default to "not given" (argparse.SUPPRESS): the config's defaults apply,
    # or the resumed run's settings.
    fields = [f.name for f in dataclasses.fields(TrainConfig)]
    given = {name: getattr(args, name) for name in fields if hasattr(args, name)}
    resume = getattr(args, "resume", None)
    out = getattr(args, "out", None)
    force = getattr(args, "force", False)
    if resume:
        if out or force:
            raise RunError("--resume continues RUN in place; drop --out/--force")
        fixed = [name for name in given if name not in RESUMABLE]
        if fixed:
            raise RunError(f"--{fixed[0].replace('_', '-')} cannot change when resuming (the "
                           "run's config.json fixes it); drop it, or start a new run")
        config = RunDirectory.open(resume).read_config(TASKS)
        if "steps" in given:
            config.epochs = None
        config = dataclasses.replace(config, **given)
        run_path = Path(resume)
    else:
        if "steps" in given and "epochs" not in given:
            given["epochs"] = None  # --steps sets the length, also where a task's default is epochs
        if (given.get("time_limit") is not None and "steps" not in given
                and "epochs" not in given):
            given["steps"] = given["epochs"] = None  # a time limit alone: the length fits it
        config = task_config(given.pop("task", DEFAULTS.task), **given)
        run_path = None if out is None else Path(out)
    config.check(tasks=TASKS)  # every option, before anything is created or started

    ranks = distributed.start(config.device)
    try:
        if run_path is None:
            stamp = time.strftime("%Y%m%d-%H%M%S")
            run_path = Path(ranks.share(f"runs/{stamp}-{config.task}-{config.cell}"))
        result = train(config, run_path, ranks, build_task, resume=bool(resume), force=force)
    except BaseException:
        distributed.stop(ranks, wait=False)
        raise
    distributed.stop(ranks)
    # A run stopped by SIGINT or SIGTERM exits as the signal would have (130, 143), after
    # its checkpoint; its message gives the command that continues it.
    code = 128 + result.signal if result.signal else 1 if result.stop_reason == "nan" else 0
    if not ranks.is_main:
        return code
    if result.stop_reason == "nan":
        print(f"rnnkit train: error: {result.message}", file=sys.stderr)
        return code
    print(result.message)
    if result.validation is not None:
        print(f"best checkpoint: step {result.best_step}")
        print(f"validation: {format_metrics(result.validation)}")
    if result.test is not None:
        print(f"test: {format_metrics(result.test)}")
    print(f"run directory: {run_path}")
    if result.sample:
        print(f"--- sample ---\n{result.sample}")
    return code


def format_metrics(metrics: dict[str, float]) -> str:
    """Metrics as "name value, name value"."""
    return ", ".join(f"{name} {value:.4f}" if isinstance(value, float) else f"{name} {value}"
                     for name, value in metrics.items())


def sample_command(args: argparse.Namespace) -> int:
    """``rnnkit sample``: continue a prompt with a language model run's best checkpoint."""
    run = RunDirectory.open(args.run)
    task = run.read_config(TASKS).task
    if task != "lm":
        raise RunError(f"{run.path}: is a --task {task} run, not a "
                       "language model; sample works with --task lm runs (use rnnkit evaluate)")
    if args.length < 0:
        raise RunError(f"--length must be >= 0, got {args.length}")
    if not 0 <= args.temperature < float("inf"):  # NaN fails too
        raise RunError(f"--temperature must be >= 0 and finite (0: the most likely), got "
                       f"{args.temperature}")
    if args.top_k is not None and args.top_k < 1:
        raise RunError(f"--top-k must be >= 1, got {args.top_k}")
    if not args.prompt:
        raise RunError("--prompt must not be empty; give at least one character")
    device = distributed.pick_device(args.device)
    checkpoint = load_checkpoint(run.checkpoint_for_use())
    saved = checkpoint.info["task"]
    model = build_model(LanguageModel, LanguageModelConfig(**saved["model"])).to(device)
    checkpoint.restore_model(model)
    vocab = CharVocab.from_dict(saved["vocab"])
    unknown = sorted({char for char in args.prompt if char not in vocab})
    if unknown and vocab.unknown_id is None:
        raise RunError(f"--prompt: character {unknown[0]!r} (U+{ord(unknown[0]):04X}) is not in "
                       f"the model's vocabulary of {len(vocab)} characters, which has no unknown "
                       "symbol (the run predates it); use characters of the training text")
    if unknown:
        print(f"note: --prompt characters {', '.join(map(repr, unknown))} are not in the model's "
              "vocabulary; the model reads them as its unknown symbol", file=sys.stderr)
    prompt_ids = vocab.encode(args.prompt)
    generator = torch.Generator().manual_seed(args.seed)
    try:
        ids = model.generate(prompt_ids, args.length, args.temperature, args.top_k, generator,
                             excluded=unknown_ids(vocab))
    except ValueError as err:
        raise RunError(f"{checkpoint.path}: {err}; sample an earlier run") from None
    print(args.prompt + vocab.decode(ids))
    return 0


def evaluate_command(args: argparse.Namespace) -> int:
    """``rnnkit evaluate``: metrics of a run's best checkpoint on a split of its data."""
    if args.threads < 0:
        raise RunError(f"--threads must be >= 0 (0: torch's count), got {args.threads}")
    if args.threads:
        torch.set_num_threads(args.threads)
    run = RunDirectory.open(args.run)
    config = run.read_config(TASKS)
    if config.task == "translate":  # BLEU and chrF, greedy and beam, with their signatures
        print(evaluation_report(run.path, args.split or "test", args.data,
                                device=distributed.pick_device(args.device)))
        return 0
    if args.data is not None:
        config.data = args.data
    config = dataclasses.replace(config, **EVALUATION_SETTINGS.get(config.task, {}))
    device = distributed.pick_device(args.device)
    checkpoint = load_checkpoint(run.checkpoint_for_use())
    task = build_task(config, device, checkpoint.info["task"])
    checkpoint.restore_model(task.model)
    split = args.split or ("all" if args.data is not None and config.task == "lm" else "test")
    metrics = task.evaluate(split)
    what = f" ({task.describe_split(split)})" if task.describe_split else ""
    print(f"{run.path} (step {checkpoint.info['step']}), {split} split of {config.data}{what}:")
    # An error rate's complement first: accuracy is what published tables give.
    shown = {ACCURACIES[name]: 1.0 - value for name, value in metrics.items()
             if name in ACCURACIES} | metrics
    for name, value in shown.items():
        print(f"  {name:<24} {value:.4f}" if isinstance(value, float) else f"  {name:<24} {value}")
    if task.details is not None:
        print(task.details(split))
    return 0


ACCURACIES = {"error_rate": "accuracy", "line_error": "line_accuracy",
              "string_error": "string_accuracy"}
"""Error-rate metrics and the name of their complement, which ``rnnkit evaluate`` prints
first."""


EXPORT_INPUTS = {"lm": ("ids",), "classify": ("series", "lengths"),
                 "forecast": ("window", "naive"), "handwriting": ("columns", "widths"),
                 "speech": ("features", "lengths"), "seq2seq": (), "translate": ()}
"""The tasks ``rnnkit export`` writes, with the names of their models' inputs (the
encoder-decoder tasks, empty here, write an encoder and a decoder step:
:func:`rnnkit.export.export_seq2seq`)."""


def export_command(args: argparse.Namespace) -> int:
    """``rnnkit export``: a run's best checkpoint as an ONNX or .pt2 file."""
    run = RunDirectory.open(args.run)
    config = run.read_config(TASKS)
    if config.task not in EXPORT_INPUTS:
        raise RunError(f"{run.path}: is a --task {config.task} run; rnnkit export writes "
                       f"--task {', '.join(EXPORT_INPUTS)} runs")
    if args.format == "onnx":
        missing = [name for name in ("onnx", "onnxscript")
                   if importlib.util.find_spec(name) is None]
        if missing:
            raise RunError(f"--format onnx needs {' and '.join(missing)}: "
                           f"pip install 'rnnkit[export]'")
    out = Path(args.out) if args.out else run.path / f"model.{args.format}"
    checkpoint = load_checkpoint(run.checkpoint_for_use())
    task = build_task(config, torch.device("cpu"), checkpoint.info["task"])
    checkpoint.restore_model(task.model)
    inputs = task.batch_at(0).inputs
    try:
        if EXPORT_INPUTS[config.task]:
            names = export_task_model(task.model, inputs, out, args.format,
                                      EXPORT_INPUTS[config.task],
                                      carries_state=config.task == "lm")
            written = f"{out} ({args.format}; inputs {', '.join(names)})"
        else:  # an encoder and a decoder step, from the batch's source and its lengths
            names = export_seq2seq(task.model.net, inputs[0], inputs[1], out, args.format)
            written = ", ".join(f"{path} ({args.format}; inputs {', '.join(names[part])})"
                                for part, path in zip(names, seq2seq_paths(out)))
    except ValueError as err:
        raise RunError(f"{run.path}: {err}") from None
    facts = out.with_suffix(".json")  # what a program needs beside the file (the vocabulary)
    facts.write_text(json.dumps({"task": config.task, "inputs": names,
                                 **checkpoint.info["task"]}, indent=1) + "\n")
    print(f"{written}, for any batch size and length; {facts}")
    return 0


def build_command(args: argparse.Namespace) -> int:
    """``rnnkit build``: compile (or find) the fused CPU kernels and say where they are."""
    started = time.monotonic()
    if fused.load_extension() is None:  # the warning said why
        return 1 if fused.compiler() is not None else 0
    print(f"fused CPU kernels ready in {fused.build_directory()} "
          f"({time.monotonic() - started:.1f} s)")
    return 0


def list_command(args: argparse.Namespace) -> int:
    """``rnnkit list``: the cells and tasks with one-line descriptions."""
    print("cells (--cell):")
    for name, description in describe_cells().items():
        print(f"  {name:<18} {description}")
    print("tasks (--task):")
    for name, task in TASKS.items():
        print(f"  {name:<18} {task.description}")
    return 0


def inspect_command(args: argparse.Namespace) -> int:
    """``rnnkit inspect``: see :mod:`rnnkit.inspection`."""
    return inspect_run(args)


def recognize_command(args: argparse.Namespace) -> int:
    """``rnnkit recognize``: print the digits a handwriting run reads in an image (several:
    one line each, "name: digits"), or a speech run hears in each recording."""
    speech = RunDirectory.open(args.run).read_config(TASKS).task == SPEECH
    if args.stream and not speech:
        raise RunError("--stream reads recordings with a speech run (rnnkit train --task "
                       "speech --data fsdd-strings --no-bidirectional)")
    if args.stream:
        for path in audio_files(args.image):
            print(f"{path}: ", end="", flush=True)
            for digit in stream_digits(args.run, path, args.chunk_ms):
                print(digit, end="", flush=True)
            print()
        return 0
    if speech:
        for path, digits in recognize_recordings(args.run, args.image, beam_size=args.beam):
            print(f"{path}: {digits}")
        return 0
    if len(args.image) == 1:
        print(recognize_image(args.run, args.image[0], beam_size=args.beam))
        return 0
    for image in args.image:
        print(f"{image}: {recognize_image(args.run, image, beam_size=args.beam)}")
    return 0


def translate_command(args: argparse.Namespace) -> int:
    """``rnnkit translate``: print the translation of each sentence, one a line."""
    if args.text and args.file:
        raise RunError("give sentences as arguments or --file, not both")
    if args.text:
        lines = args.text
    elif args.file:
        try:
            lines = Path(args.file).read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError as err:
            raise RunError(f"--file {args.file}: not UTF-8 ({err.reason} at byte "
                           f"{err.start}); save it as UTF-8") from None
    else:
        lines = sys.stdin.read().splitlines()
    for line in translate_lines(args.run, lines, args.beam, args.device):
        print(line)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (0 ok, 1 failed, 2 usage error, 130 or
    143 stopped by SIGINT or SIGTERM)."""
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        args.parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    try:
        return args.handler(args)
    except (RunError, DataError) as err:
        print(f"rnnkit {args.command}: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as err:  # a second Ctrl-C or SIGTERM (Stopped) while stopping
        print(f"rnnkit {args.command}: interrupted", file=sys.stderr)
        return 128 + getattr(err, "signum", signal.SIGINT)
    except BrokenPipeError:  # e.g. `rnnkit list | head`: the reader left, nothing to report
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except OSError as err:  # a file or folder the command could not read or write
        where = f"{err.filename}: " if err.filename else ""
        print(f"rnnkit {args.command}: error: {where}{err.strerror or err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
