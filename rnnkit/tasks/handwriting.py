"""``rnnkit train --task handwriting``: lines of handwritten digits read by a (by default
bidirectional) LSTM with CTC, as in Graves et al. 2008; and reading users' pictures.

:func:`handwriting_task` trains a :class:`~rnnkit.models.ctc.LineRecognizer` on lines of real
handwritten digits (:mod:`rnnkit.data.handwriting`), read column by column, with the CTC loss;
validation and ``rnnkit evaluate`` score the character error rate and the share of lines read
wrong on fixed held-out lines. :func:`recognize_image` reads a picture of a line of digits
someone drew or scanned (``rnnkit recognize``); :func:`figure_line` gives the line that
``rnnkit inspect --ctc`` draws with its label probabilities
(:func:`rnnkit.diagnostics.plot_ctc`).

Every problem with the user's input -- a missing, empty, damaged or blank picture, one too
narrow to hold a digit, a run directory of another task -- raises :class:`HandwritingError`
with a one-line message naming the problem and what to do.
"""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor, nn

from rnnkit.data.bundle import DataError
from rnnkit.data.handwriting import (
    LINE_HEIGHT,
    MAX_DIGITS,
    batch_lines,
    digit_split,
    make_lines,
)
from rnnkit.models import ModelOutput, evaluation_mode
from rnnkit.models.ctc import (
    LineRecognizer,
    LineRecognizerConfig,
    beam_decode,
    greedy_decode,
    line_accuracy,
)
from rnnkit.models.metrics import error_rate
from rnnkit.models.state import State
from rnnkit.training.checkpoint import load_checkpoint
from rnnkit.training.config import TrainConfig
from rnnkit.training.errors import RunError
from rnnkit.training.run_dir import RunDirectory
from rnnkit.training.task import Batch, Task, build_model

DESCRIPTION = "read lines of handwritten digits: bidirectional LSTM + CTC (Graves 2008)"

DEFAULTS: dict[str, Any] = {
    "data": "digit-lines", "bidirectional": True, "hidden_size": 96, "dropout": 0.25,
    "weight_decay": 0.1, "steps": 4926, "time_limit": None,
}
"""A bidirectional reader, as in Graves et al. 2008: a digit is read best with the columns
after it in view. It trains for a fixed 4,926 steps with no time limit, so that the same
command gives the same run under any load (``--time-limit S`` alone fits the length to S
seconds instead): the length that the idle reference machine (two cores of an AMD EPYC;
docs/results/handwriting.md, test CER 2.70%) fitted into the former time limit of 540 s."""

TASK = "handwriting"
DATA = "digit-lines"
"""The task's data: lines of 1-12 of the bundled MNIST digits (``--data`` default);
``digit-lines-N`` limits every line, training and held-out, to 1..N digits."""
VAL_LINES = 300
TEST_LINES = 500
EVAL_SEED = 0
"""The validation and test lines are fixed (this seed, 1-12 digits), whatever a run's seed."""
EVAL_BATCH = 100
INK_HEIGHT = 24
"""Height in pixels that the ink of a user's picture is scaled to: a typical line's ink."""
IMAGE_MARGIN = 4
MIN_WIDTH = 8
"""Pictures narrower than this many pixels cannot hold a digit."""
MIN_CONTRAST = 0.1
"""Ink must differ from the background by this much (of the full black-white range)."""
NOISE_FLOOR = 0.15
"""Ink below this share of the picture's contrast is paper texture or noise, not a stroke."""

Line = tuple[np.ndarray, list[int]]
"""A line image (height, width) with ink 1, and its digits."""


class HandwritingError(DataError):
    """A picture or run directory cannot be used; the one-line message says what to do."""


def line_classes(label: list[int]) -> list[int]:
    """Digits 0-9 as CTC classes 1-10 (0 is the blank)."""
    return [digit + 1 for digit in label]


def digits_text(classes: list[int]) -> str:
    """CTC classes 1-10 as the digits they stand for, e.g. [5, 1, 8] -> "407"."""
    return "".join(str(c - 1) for c in classes)


class RecognizerForTraining(nn.Module):
    """A :class:`LineRecognizer` as a task's model: ((columns (B, T, height), widths (B,)),
    state, (labels (B, S), label lengths (B,))) -> (log-probabilities (B, T, classes), None,
    CTC loss per digit). Lines are independent examples, so no state is carried from batch to
    batch. The recognizer itself is :attr:`recognizer`."""

    def __init__(self, recognizer: LineRecognizer) -> None:
        """Wrap ``recognizer``."""
        super().__init__()
        self.recognizer = recognizer

    def forward(self, inputs: tuple[Tensor, Tensor], state: State | None = None,
                targets: tuple[Tensor, Tensor] | None = None) -> ModelOutput:
        """Per-column class log-probabilities of a padded batch, and their loss."""
        columns, lengths = inputs
        return self.recognizer(columns, lengths, targets)


def recognizer_config(config: TrainConfig) -> LineRecognizerConfig:
    """The model sizes of a training configuration: ``--embedding-size`` is the size of the
    column features the recurrent layer reads, ``--layers`` stacks per direction."""
    return LineRecognizerConfig(
        line_height=LINE_HEIGHT, cell=config.cell, hidden_size=config.hidden_size,
        num_layers=config.layers, bidirectional=config.bidirectional,
        feature_size=config.embedding_size, dropout=config.dropout)


def build_recognizer(saved_model: dict[str, Any]) -> RecognizerForTraining:
    """The model of a checkpoint's ``saved["model"]``; unusable sizes raise RunError."""
    return RecognizerForTraining(build_model(LineRecognizer, LineRecognizerConfig(**saved_model)))


def digits_per_line(data: str) -> int:
    """The most digits on a line for ``--data``: 12 for ``digit-lines``, N for
    ``digit-lines-N`` (1 <= N <= 12); anything else raises RunError."""
    if data == DATA:
        return MAX_DIGITS
    prefix = DATA + "-"
    if data.startswith(prefix) and data[len(prefix):].isdigit():
        count = int(data[len(prefix):])
        if 1 <= count <= MAX_DIGITS:
            return count
    raise RunError(f"--data {data!r}: the handwriting task reads its bundled lines of "
                   f"handwritten digits: give --data {DATA} (1-{MAX_DIGITS} digits a line) or "
                   f"{DATA}-N (1-N digits, N <= {MAX_DIGITS})")


def digits_of_step(seed: int, step: int, max_digits: int) -> int:
    """How many digits every training line of ``step`` holds: drawn uniformly from
    1..``max_digits``, the same for the same seed and step."""
    return int(np.random.default_rng([seed, step]).integers(1, max_digits + 1))


def training_batch(config: TrainConfig, step: int, max_digits: int, device: torch.device
                   ) -> Batch:
    """Lines ``step*B .. step*B+B-1`` of the endless seeded stream of training lines (B =
    ``--batch-size``), all holding the same number of digits: so they are of about one width
    and little of the batch is padding (twice as fast as mixed lengths)."""
    digits = digits_of_step(config.seed, step, max_digits)
    lines = batch_lines(make_lines(config.batch_size, "train", config.seed,
                                   start=step * config.batch_size, min_digits=digits,
                                   max_digits=digits))
    return Batch((lines.inputs.to(device), lines.lengths.to(device)),
                 (lines.targets.to(device), lines.target_lengths.to(device)),
                 starts_sequences=True)


class HeldOutLines:
    """The fixed validation and test lines of a run (made on first use)."""

    def __init__(self, max_digits: int) -> None:
        """Lines of 1..``max_digits`` digits."""
        self.max_digits = max_digits
        self.made: dict[str, list[Line]] = {}

    def __call__(self, split: str) -> list[Line]:
        """The lines of "val", "test" or "all" (both)."""
        if split == "all":
            return self("val") + self("test")
        if split not in self.made:
            count = VAL_LINES if split == "val" else TEST_LINES
            self.made[split] = make_lines(count, split, EVAL_SEED, max_digits=self.max_digits)
        return self.made[split]


def handwriting_task(config: TrainConfig, device: torch.device,
                     saved: dict[str, Any] | None = None) -> Task:
    """Handwritten digit lines read by a recurrent network with CTC.

    Step ``s`` trains on lines ``s*B .. s*B+B-1`` of the endless seeded stream of training
    lines (``config.seed``; B = ``batch_size``), drawn from the 80% of the digit images kept
    for training; the lines of a step all hold the same number of digits, drawn from 1 to 12
    (``--data``, see :data:`DATA`). The loss is CTC's, in nats per digit. Validation and
    test read fixed lines (300 and 500) made of the other images; metrics: ``cer``
    (character error rate, edit distance over digits) and ``line_error`` (share of lines not
    read exactly, i.e. 1 - line accuracy), by best-path decoding. An epoch is as many lines
    as show each training image about once. ``saved`` (from a checkpoint) fixes the model
    sizes.
    """
    max_digits = digits_per_line(config.data)
    model_config = (LineRecognizerConfig(**saved["model"]) if saved
                    else recognizer_config(config))
    model = RecognizerForTraining(build_model(LineRecognizer, model_config)).to(device)
    held_out = HeldOutLines(max_digits)

    def evaluate(split: str) -> dict[str, float]:
        scores = score_lines(model.recognizer, held_out(split))
        return {"cer": scores["cer"], "line_error": 1.0 - scores["line_accuracy"]}

    digits_per_step = (1 + max_digits) / 2 * config.batch_size
    return Task(
        model=model, batch_at=lambda step: training_batch(config, step, max_digits, device),
        steps_per_epoch=max(1, math.ceil(len(digit_split()["train"]) / digits_per_step)),
        evaluate=evaluate, metric="cer", metric_names=("cer", "line_error"),
        saved={"model": dataclasses.asdict(model_config), "data": config.data},
        showcase=lambda: showcase_lines(model.recognizer, held_out("test")[:8]),
        unit="lines",
    )


def read_lines(model: LineRecognizer, lines: list[Line],
               beam_size: int | None = None) -> list[list[int]]:
    """The reading (CTC classes) of each line by a :class:`LineRecognizer`: best path, or
    prefix beam search with ``beam_size`` beams. Lines are batched by width."""
    device = next(model.parameters()).device
    order = sorted(range(len(lines)), key=lambda i: lines[i][0].shape[1])
    readings: list[list[int]] = [[] for _ in lines]
    with evaluation_mode(model):
        for first in range(0, len(order), EVAL_BATCH):
            rows = order[first:first + EVAL_BATCH]
            batch = batch_lines([lines[i] for i in rows])
            log_probs = model(batch.inputs.to(device), batch.lengths.to(device)).outputs
            if beam_size is None:
                found = greedy_decode(log_probs, batch.lengths)
            else:
                found = beam_decode(log_probs, batch.lengths, beam_size)
            for row, reading in zip(rows, found):
                readings[row] = reading
    return readings


def score_lines(model: LineRecognizer, lines: list[Line],
                beam_size: int | None = None) -> dict[str, float]:
    """Character error rate and line accuracy of a :class:`LineRecognizer` on ``lines``."""
    references = [line_classes(label) for _, label in lines]
    readings = read_lines(model, lines, beam_size)
    return {"cer": error_rate(references, readings),
            "line_accuracy": line_accuracy(references, readings)}


def showcase_lines(model: LineRecognizer, lines: list[Line]) -> str:
    """A few test lines with their labels and the model's readings."""
    readings = read_lines(model, lines)
    return "\n".join(f"test line {i}: label {''.join(map(str, label)):<12}  read "
                     f"{digits_text(reading)}"
                     for i, ((_, label), reading) in enumerate(zip(lines, readings)))


def load_recognizer(run_dir: str | os.PathLike[str]) -> tuple[LineRecognizer, dict[str, Any]]:
    """The best checkpoint's recognizer of a handwriting run, in eval mode, and the
    checkpoint's info. A missing or damaged run, or a run of another task, raises
    :class:`HandwritingError`."""
    try:
        run = RunDirectory.open(run_dir)
        task = run.read_config().task
    except RunError as err:
        raise HandwritingError(str(err)) from None
    if task != TASK:
        raise HandwritingError(f"{run.path}: is a run of task {task!r}, not handwriting; give "
                               "a run directory written by `rnnkit train --task handwriting`")
    try:
        checkpoint = load_checkpoint(run.checkpoint_for_use())
        model = build_recognizer(checkpoint.info["task"]["model"])
        checkpoint.restore_model(model)
    except RunError as err:
        raise HandwritingError(str(err)) from None
    except (KeyError, TypeError):
        raise HandwritingError(f"{run.path}: its checkpoint does not describe a line "
                               "recognizer; train it again with `rnnkit train --task "
                               "handwriting`") from None
    return model.recognizer.eval(), checkpoint.info


def read_line_image(path: str | os.PathLike[str], height: int = LINE_HEIGHT) -> np.ndarray:
    """A picture of a line of digits as the model sees lines: float32 (height, W), ink 1.

    Reads any format Pillow reads (greyscale, RGB, RGBA with a transparent background, 16-bit,
    palette), finds the background as the median shade and the ink as the shade furthest from
    it (so dark-on-light and light-on-dark both work), crops to the ink, scales the ink to
    :data:`INK_HEIGHT` pixels keeping the aspect ratio, and centres it on a line of ``height``.
    Raises :class:`HandwritingError` for a missing, empty, unreadable or blank picture, or one
    narrower than a digit.
    """
    shades = _open_picture(Path(path))
    rows, cols = shades.shape
    if 4 * cols < rows or cols < MIN_WIDTH:
        raise HandwritingError(f"{path}: the picture is {cols}x{rows} pixels, narrower than one "
                               f"digit; give a picture of a whole line, at least {MIN_WIDTH} "
                               "pixels and a quarter of its height wide")
    ink = _ink_from_shades(shades)
    if ink is None:
        raise HandwritingError(f"{path}: no ink found, the picture is blank (one flat shade); "
                               "give a picture with the digits drawn in a contrasting colour")
    return _fit_to_line(ink, height)


def _open_picture(path: Path) -> np.ndarray:
    """The picture at ``path`` as grey shades (see :func:`_grey_shades`); a missing, empty or
    unreadable file raises HandwritingError."""
    if not path.is_file():
        what = "is a folder, not a picture" if path.is_dir() else "no such file"
        raise HandwritingError(f"{path}: {what}; give the path of a PNG or JPEG picture of a "
                               "line of digits")
    if path.stat().st_size == 0:
        raise HandwritingError(f"{path}: the file is empty (0 bytes); save the picture again "
                               "and give that file")
    try:
        with Image.open(path) as image:
            image.load()
            return _grey_shades(image)
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError,
            ValueError) as err:
        problem = ("not a picture Pillow can read" if isinstance(err, UnidentifiedImageError)
                   else f"a damaged or unsupported picture ({err})")
        raise HandwritingError(f"{path}: {problem}; give a PNG, JPEG, BMP or TIFF picture of a "
                               "line of digits") from None


def _grey_shades(image: Image.Image) -> np.ndarray:
    """The picture as one float64 shade per pixel, in [0, 1] (16-bit and float pictures are
    divided by their largest value)."""
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        shades = np.asarray(image, dtype=np.float64)
        return shades / max(1.0, float(np.abs(shades).max()))
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = np.asarray(image.convert("RGBA"), dtype=np.float64) / 255.0
        alpha = rgba[..., 3]
        if alpha.min() < alpha.max():
            # Drawn on a transparent background: the strokes are the opaque pixels. Lay them
            # on a backdrop that contrasts with their colour.
            grey = rgba[..., :3] @ np.array([0.299, 0.587, 0.114])
            strokes = grey[alpha >= 0.5]
            backdrop = 1.0 if strokes.size and strokes.mean() < 0.5 else 0.0
            return alpha * grey + (1.0 - alpha) * backdrop
    return np.asarray(image.convert("L"), dtype=np.float64) / 255.0


def _ink_from_shades(shades: np.ndarray) -> np.ndarray | None:
    """Ink strength in [0, 1] per pixel, or None where there is no contrast.

    The background is the median shade (strokes cover a minority of a line's pixels); the ink
    is whichever extreme, darkest or lightest, lies further from it.
    """
    background = float(np.median(shades))
    dark = background - float(shades.min())
    light = float(shades.max()) - background
    if max(dark, light) < MIN_CONTRAST:
        return None
    ink = (background - shades) / dark if dark >= light else (shades - background) / light
    return np.clip((ink - NOISE_FLOOR) / (1.0 - NOISE_FLOOR), 0.0, 1.0).astype(np.float32)


def _fit_to_line(ink: np.ndarray, height: int) -> np.ndarray:
    """Crop to the ink, scale it to INK_HEIGHT keeping the aspect ratio, centre on a line."""
    rows = np.flatnonzero((ink > 0.3).any(axis=1))
    cols = np.flatnonzero((ink > 0.3).any(axis=0))
    if rows.size == 0:
        rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    box = ink[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    ink_height = min(INK_HEIGHT, height)
    width = max(1, round(box.shape[1] * ink_height / box.shape[0]))
    scaled = Image.fromarray(box).resize((width, ink_height), Image.Resampling.BILINEAR)
    line = np.zeros((height, width + 2 * IMAGE_MARGIN), dtype=np.float32)
    top = (height - ink_height) // 2
    line[top:top + ink_height, IMAGE_MARGIN:IMAGE_MARGIN + width] = np.clip(
        np.asarray(scaled, dtype=np.float32), 0.0, 1.0)
    return line


def recognize_image(run_dir: str | os.PathLike[str], image_path: str | os.PathLike[str],
                    beam_size: int | None = None) -> str:
    """The digits a handwriting run reads in the picture at ``image_path``, e.g. "4071".

    See :func:`read_line_image` for the pictures it accepts; decoding is best path, or prefix
    beam search with ``beam_size`` beams.
    """
    if beam_size is not None and beam_size < 1:
        raise HandwritingError(f"--beam must be >= 1, got {beam_size}")
    model, _ = load_recognizer(run_dir)
    line = read_line_image(image_path, model.config.line_height)
    return digits_text(read_lines(model, [(line, [])], beam_size)[0])


def figure_line(source: str | os.PathLike[str] | int, height: int) -> tuple[np.ndarray, str]:
    """The line ``rnnkit inspect --ctc`` draws, and the start of its title.

    ``source`` is a picture file, or the number of a test line (0-499; an int, or a string of
    digits that names no file)."""
    if isinstance(source, str) and source.isdigit() and not Path(source).exists():
        source = int(source)
    if isinstance(source, int):
        if not 0 <= source < TEST_LINES:
            raise HandwritingError(f"test line {source} does not exist; give a number from 0 "
                                   f"to {TEST_LINES - 1}")
        line, label = make_lines(1, "test", EVAL_SEED, start=source)[0]
        return line, f"test line {source}: label {''.join(map(str, label))}, "
    return read_line_image(source, height), f"{Path(source).name}: "
