"""A run directory: everything one training run leaves behind, in one folder.

::

    RUN/
      config.json                 the TrainConfig of the run
      checkpoints/last.safetensors  the latest state, for --resume
      checkpoints/best.safetensors  the weights with the best validation metric so far
      metrics.csv                 one row per step: step, loss, grad_norm, lr, tokens_per_s, val_*
      tensorboard/                the same curves as TensorBoard events (if tensorboard is there)
      report.json, report.md      the summary written when training ends
      .rnnkit.lock                held (flock) by the process training in the run, its pid inside

One process trains in a run at a time: :meth:`RunDirectory.lock` takes an OS lock on
``.rnnkit.lock`` for the life of the process (the kernel releases it when the process ends,
however it ends), so a second process is refused with the holder's pid, and a lock left by a
dead process is simply taken over.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

from rnnkit.training.checkpoint import write_atomically
from rnnkit.training.config import TrainConfig
from rnnkit.training.errors import RunError

try:
    import fcntl
except ImportError:  # no flock (Windows): runs are not locked there
    fcntl = None  # type: ignore[assignment]

LOCK_NAME = ".rnnkit.lock"
_RUN_FILES = ("config.json", "metrics.csv", "report.json", "report.md")
_CHECKPOINT_FILES = ("last.safetensors", "best.safetensors")
_TEMPORARY = re.compile(r"^\.(config\.json|metrics\.csv|report\.json|report\.md|"
                        r"last\.safetensors|best\.safetensors)\.\d+\.tmp$")
"""The temporary files of :func:`write_atomically` (``.<name>.<pid>.tmp``) for the files a
run writes; one left behind by a killed process is removed when the run is next locked."""
_CONFIG_KEYS = frozenset({"task", "cell", "hidden_size", "batch_size", "lr", "seed"})
"""Settings every config.json that rnnkit ever wrote holds: what marks a folder as a run."""


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
        self.lock_path = self.path / LOCK_NAME
        self._lock_fd: int | None = None

    def is_run(self) -> bool:
        """Whether this folder is an rnnkit run: its config.json is a JSON object with the
        settings every run's config holds (a user's own config.json is not)."""
        try:
            values = json.loads(self.config_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError):
            return False
        return isinstance(values, dict) and _CONFIG_KEYS <= values.keys()

    def _has_content(self) -> bool:
        """Whether the folder holds anything but what a run that stopped before writing its
        config leaves (the lock file, empty checkpoints/ and tensorboard/ folders)."""
        for item in self.path.iterdir():
            if item.name == LOCK_NAME or _TEMPORARY.match(item.name):
                continue
            if (item.name in ("checkpoints", "tensorboard") and item.is_dir()
                    and not any(item.iterdir())):
                continue
            return True
        return False

    def check_new(self, force: bool = False) -> None:
        """Raise RunError unless :meth:`create` may use this path (see there)."""
        if self.path.exists() and not self.path.is_dir():
            raise RunError(f"{self.path}: exists and is not a folder; choose another --out")
        if not self.path.is_dir() or not self._has_content():
            return
        if not self.is_run():
            raise RunError(f"{self.path}: already exists and is not an rnnkit run (it has no "
                           "config.json written by rnnkit), so --force will not replace "
                           "anything in it; choose another --out")
        if not force:
            raise RunError(f"{self.path}: already exists; continue it with --resume "
                           f"{self.path}, replace it with --force, or choose another --out")

    def create(self, force: bool = False) -> None:
        """Make this run's folder, lock it, and remove the files of an earlier run there.

        An existing non-empty folder is refused unless it is an rnnkit run and ``force``;
        then only the files a run writes are removed: config.json, metrics.csv, the reports,
        checkpoints/last.safetensors and best.safetensors, and the TensorBoard event files
        (anything else, even inside checkpoints/ or tensorboard/, stays).
        """
        self.check_new(force)
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise RunError(f"{self.path}: cannot create the run directory ({err.strerror}); "
                           "choose another --out") from None
        self.lock()
        self.check_new(force)  # again, now that no other process can write here
        try:
            for name in _RUN_FILES:
                (self.path / name).unlink(missing_ok=True)
            for name in _CHECKPOINT_FILES:
                (self.checkpoints / name).unlink(missing_ok=True)
            if self.tensorboard.is_dir():
                for events in self.tensorboard.glob("events.out.tfevents.*"):
                    events.unlink()
                if not any(self.tensorboard.iterdir()):
                    self.tensorboard.rmdir()
            self.checkpoints.mkdir(exist_ok=True)
        except OSError as err:
            raise RunError(f"{self.path}: cannot create the run directory ({err.strerror}); "
                           "choose another --out") from None

    def lock(self) -> int | None:
        """Take this run for this process until :meth:`unlock` or the process ends.

        Raises RunError (one line, naming the holder's pid) while another process holds it.
        Removes the temporary files that an interrupted write left behind. Returns the pid
        of a process that held the lock and ended without releasing it (killed), else None.
        Taking a lock this process holds already does nothing.
        """
        if self._lock_fd is not None or fcntl is None:
            return None
        try:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            raise RunError(f"{self.lock_path}: cannot create the run's lock file "
                           f"({err.strerror}); fix the folder's permissions") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = _read_pid(fd)
            os.close(fd)
            who = f"pid {holder}" if holder else "another process"
            raise RunError(f"{self.path}: another rnnkit process ({who}) is training in this "
                           "run; wait for it to end or stop it"
                           + (f" (kill {holder})" if holder else "")
                           + ", then try again") from None
        previous = _read_pid(fd)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._lock_fd = fd
        self.remove_temporary_files()
        return previous if previous and previous != os.getpid() else None

    def unlock(self) -> None:
        """Release the lock taken by :meth:`lock` (emptied first: a lock file that still
        names a pid was left by a process that did not end normally)."""
        if self._lock_fd is None:
            return
        fd, self._lock_fd = self._lock_fd, None
        try:
            os.ftruncate(fd, 0)
        except OSError:
            pass
        os.close(fd)  # closing the only descriptor releases the flock

    def remove_temporary_files(self) -> None:
        """Delete the ``.<name>.<pid>.tmp`` files that a killed write left in the run."""
        for folder in (self.path, self.checkpoints):
            if folder.is_dir():
                for item in folder.iterdir():
                    if _TEMPORARY.match(item.name):
                        item.unlink(missing_ok=True)

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

    def read_config(self, tasks: Collection[str] | None = None) -> TrainConfig:
        """Load the run's settings from config.json, each checked (a bad one raises RunError
        naming the file and key); ``tasks``: the task names ``task`` may take."""
        try:
            values = json.loads(self.config_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise RunError(f"{self.config_path}: cannot be read ({err}); the run directory is "
                           "damaged") from None
        if not isinstance(values, dict):
            raise RunError(f"{self.config_path}: is not a run configuration (expected a JSON "
                           f"object of settings, got {type(values).__name__}); the run "
                           "directory is damaged")
        return TrainConfig.from_dict(values, self.config_path, tasks)

    def checkpoint_for_use(self) -> Path:
        """The checkpoint to sample or evaluate with: best.safetensors, else last.safetensors."""
        return self.best_checkpoint if self.best_checkpoint.is_file() else self.last_checkpoint

    def write_report(self, report: Mapping[str, Any], markdown: str) -> None:
        """Save the final summary as report.md and report.json.

        report.json last: a process killed between the two leaves the report.json of an
        earlier session (or none), so :meth:`reported_step` does not take the run's report
        for written."""
        write_atomically(self.report_md, markdown.encode("utf-8"), what="report")
        write_json(self.report_json, report)

    def reported_step(self) -> int | None:
        """The step of the run's last complete report (report.json's ``steps``), or None
        where there is none, or it is unreadable, or it is the report of an interrupted
        session (which skips the test metrics and the sample)."""
        try:
            report = json.loads(self.report_json.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(report, dict) or report.get("stop_reason") == "interrupted":
            return None
        steps = report.get("steps")
        return steps if isinstance(steps, int) else None


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


def _read_pid(fd: int) -> int | None:
    """The pid written in a lock file, or None (empty or unreadable)."""
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _open_tensorboard(folder: Path, resume_step: int | None) -> Any:
    """A SummaryWriter for ``folder``, or None when tensorboard is not installed."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    purge_step = None if resume_step is None else resume_step + 1
    return SummaryWriter(str(folder), purge_step=purge_step)

