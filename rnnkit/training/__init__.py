"""How a model is trained: the loop, checkpoints, run directories and distribution, for any task.

* :mod:`~rnnkit.training.trainer` -- :func:`train`, the loop every task shares.
* :mod:`~rnnkit.training.task` -- :class:`Task` and :class:`Batch`, what a task gives the
  trainer (the tasks themselves are in :mod:`rnnkit.tasks`).
* :mod:`~rnnkit.training.config` -- :class:`TrainConfig`, every setting of a run.
* :mod:`~rnnkit.training.checkpoint` -- atomic safetensors checkpoints.
* :mod:`~rnnkit.training.run_dir` -- the run directory and its metrics log.
* :mod:`~rnnkit.training.distributed` -- data-parallel ranks under torchrun.
* :mod:`~rnnkit.training.progress` -- the progress bar or log lines.
"""

from rnnkit.training.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from rnnkit.training.config import TrainConfig
from rnnkit.training.distributed import Ranks
from rnnkit.training.errors import CheckpointError, RunError
from rnnkit.training.run_dir import MetricsLog, RunDirectory
from rnnkit.training.task import Batch, Task, TaskBuilder
from rnnkit.training.trainer import TrainResult, learning_rate, train

__all__ = [
    "Batch", "Checkpoint", "CheckpointError", "MetricsLog", "Ranks", "RunDirectory",
    "RunError", "Task", "TaskBuilder", "TrainConfig", "TrainResult", "learning_rate",
    "load_checkpoint", "save_checkpoint", "train",
]
