"""A run directory: everything one training run leaves behind, in one folder.

::

    RUN/
      config.json                 the TrainConfig of the run
      checkpoints/last.safetensors  the latest state, for --resume
      checkpoints/best.safetensors  the weights with the best validation metric so far
      metrics.csv                 one row per step: step, loss, grad_norm, lr, tokens_per_s, val_*
      tensorboard/                the same curves as TensorBoard events (if tensorboard is there)
      report.json, report.md      the summary written when training ends
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rnnkit.training.checkpoint import write_atomically
from rnnkit.training.config import TrainConfig
from rnnkit.training.errors import RunError

_RUN_FILES = ("config.json", "metrics.csv", "report.json", "report.md")
_RUN_FOLDERS = ("checkpoints", "tensorboard")


class RunDirectory:
    """Paths and files of one run; make a new one with :meth:`create`, reopen with :meth:`open`."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        """Refer to the run at ``path`` (nothing is read or written)."""
        self.path = Path(path)
        self.config_path = self.path / "config.json"
        self.checkpoints = self.path / "checkpoints"
        self.last_checkpoint = self.checkpoints / "last.safetensors"
        self.best_checkpoint = self.checkpoints / "best.safetensors"
        self.metrics_path = self.path / "metrics.csv"
        self.tensorboard = self.path / "tensorboard"
        self.report_json = self.path / "report.json"
        self.report_md = self.path / "report.md"

    def check_new(self, force: bool = False) -> None:
        """Raise RunError unless :meth:`create` may use this path (see there)."""
        if self.path.exists() and not self.path.is_dir():
            raise RunError(f"{self.path}: exists and is not a folder; choose another --out")
        if self.path.is_dir() and any(self.path.iterdir()) and not force:
            raise RunError(f"{self.path}: already exists; continue it with --resume "
                           f"{self.path}, replace it with --force, or choose another --out")

    def create(self, force: bool = False) -> None:
        """Make this run's folder, empty of run files.

        An existing non-empty folder is refused unless ``force``; then only the files a run
        writes (config.json, metrics.csv, reports, checkpoints/, tensorboard/) are removed.
        """
        self.check_new(force)
        try:
            for name in _RUN_FILES:
                (self.path / name).unlink(missing_ok=True)
            for name in _RUN_FOLDERS:
                shutil.rmtree(self.path / name, ignore_errors=True)
            self.checkpoints.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise RunError(f"{self.path}: cannot create the run directory ({err.strerror}); "
                           "choose another --out") from None

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> RunDirectory:
        """An existing run directory (one with a config.json)."""
        run = cls(path)
        if not run.path.is_dir():
            raise RunError(f"{run.path}: no such run directory; give the folder that "
                           "`rnnkit train` wrote (e.g. runs/<time>-lm-lstm)")
        if not run.config_path.is_file():
            raise RunError(f"{run.path}: not a run directory (it has no config.json); give the "
                           "folder that `rnnkit train` wrote")
        return run

    def write_config(self, config: TrainConfig) -> None:
        """Save the run's settings as config.json."""
        write_json(self.config_path, config.to_dict())

    def read_config(self) -> TrainConfig:
        """Load the run's settings from config.json."""
        try:
            values = json.loads(self.config_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise RunError(f"{self.config_path}: cannot be read ({err}); the run directory is "
                           "damaged") from None
        if not isinstance(values, dict):
            raise RunError(f"{self.config_path}: is not a run configuration")
        return TrainConfig.from_dict(values)

    def checkpoint_for_use(self) -> Path:
        """The checkpoint to sample or evaluate with: best.safetensors, else last.safetensors."""
        return self.best_checkpoint if self.best_checkpoint.is_file() else self.last_checkpoint

    def write_report(self, report: Mapping[str, Any], markdown: str) -> None:
        """Save the final summary as report.json and report.md."""
        write_json(self.report_json, report)
        write_atomically(self.report_md, markdown.encode("utf-8"), what="report")


def write_json(path: Path, values: Mapping[str, Any]) -> None:
    """Write ``values`` as indented JSON, atomically."""
    text = json.dumps(values, indent=2, ensure_ascii=False) + "\n"
    write_atomically(path, text.encode("utf-8"), what=path.name)


class MetricsLog:
    """metrics.csv, one row per training step, plus TensorBoard events when available.

    Columns: ``step, loss, grad_norm, lr, tokens_per_s`` and ``val_<name>`` for each
    validation metric (empty except on steps where validation ran).
    """

    def __init__(self, run: RunDirectory, metric_names: Sequence[str],
                 resume_step: int | None = None) -> None:
        """Open the log; when resuming at ``resume_step``, rows after that step are dropped."""
        self.columns = ["step", "loss", "grad_norm", "lr", "tokens_per_s"]
        self.columns += [f"val_{name}" for name in metric_names]
        kept: list[dict[str, str]] = []
        if resume_step is not None and run.metrics_path.is_file():
            with open(run.metrics_path, newline="", encoding="utf-8") as file:
                kept = [row for row in csv.DictReader(file) if int(row["step"]) <= resume_step]
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, self.columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(kept)
        write_atomically(run.metrics_path, buffer.getvalue().encode("utf-8"), what="metrics.csv")
        self._file = open(run.metrics_path, "a", newline="", encoding="utf-8")
        self._writer = csv.DictWriter(self._file, self.columns)
        self._tensorboard = _open_tensorboard(run.tensorboard, resume_step)

    def write(self, step: int, values: Mapping[str, float]) -> None:
        """Append the row of ``step``; ``values`` keys are column names (missing: empty)."""
        row = {"step": step, **{k: repr(float(v)) for k, v in values.items()}}
        try:
            self._writer.writerow(row)
            self._file.flush()
        except OSError as err:
            raise RunError(f"{self._file.name}: cannot append the metrics of step {step} "
                           f"({err.strerror}); the checkpoints written so far are intact: fix "
                           "the disk, then continue with --resume") from None
        if self._tensorboard is not None:
            for name, value in values.items():
                if math.isfinite(value):
                    tag = f"val/{name[4:]}" if name.startswith("val_") else f"train/{name}"
                    self._tensorboard.add_scalar(tag, value, step)

    def close(self) -> None:
        """Flush and close the files."""
        self._file.close()
        if self._tensorboard is not None:
            self._tensorboard.close()


def _open_tensorboard(folder: Path, resume_step: int | None) -> Any:
    """A SummaryWriter for ``folder``, or None when tensorboard is not installed."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    purge_step = None if resume_step is None else resume_step + 1
    return SummaryWriter(str(folder), purge_step=purge_step)

