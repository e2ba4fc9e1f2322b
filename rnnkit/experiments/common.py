"""What the experiments share: the model around a recurrent layer, initialisation, seed
summaries, worker processes and the Markdown report."""

from __future__ import annotations

import multiprocessing
import os
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import rnnkit
from rnnkit.layers import RecurrentLayer
from rnnkit.models import ModelOutput


class SequenceModel(nn.Module):
    """A recurrent layer between an input encoding and a linear read-out.

    Args:
        cell: a name of :data:`rnnkit.CELL_NAMES`, or a ready layer (``batch_first=True``).
        input_size: features per step, or the vocabulary size when ``one_hot``.
        hidden_size: the layer's hidden size.
        output_size: the read-out's size (1 for regression, the number of classes otherwise).
        one_hot: inputs are token ids (B, T), fed to the layer as one-hot vectors.
        layer_options: passed on to :func:`rnnkit.build_layer`.
    """

    def __init__(self, cell: str | RecurrentLayer, input_size: int, hidden_size: int,
                 output_size: int, *, one_hot: bool = False, **layer_options) -> None:
        super().__init__()
        self.input_size = input_size
        self.one_hot = one_hot
        if isinstance(cell, str):
            cell = rnnkit.build_layer(cell, input_size, hidden_size, batch_first=True,
                                      **layer_options)
        self.layer = cell
        self.readout = nn.Linear(hidden_size, output_size)

    def forward(self, inputs: Tensor, state=None) -> ModelOutput:
        """(B, T[, input_size]) -> ``ModelOutput(read-out at every step (B, T, output_size),
        final state)``, as every model returns (:class:`rnnkit.models.ModelOutput`); the loss
        is None, since each experiment scores its own steps."""
        if self.one_hot:
            inputs = F.one_hot(inputs, self.input_size).float()
        outputs, state = self.layer(inputs, state)
        return ModelOutput(self.readout(outputs), state)


def set_forget_bias(layer: RecurrentLayer, value: float) -> None:
    """Start the forget gate of every LSTM-family layer at sigmoid(``value``).

    A positive bias (Gers, Schmidhuber & Cummins 2000; Jozefowicz et al. 2015) makes the cell
    remember by default, so gradients reach far back from the first step of training. Layers
    without a forget gate are left as they are.
    """
    hidden = layer.hidden_size
    for index, cell_math in enumerate(layer.layer_maths):
        blocks = getattr(cell_math, "blocks", "")
        if "f" not in blocks or not layer.bias:
            continue
        rows = slice(blocks.index("f") * hidden, (blocks.index("f") + 1) * hidden)
        for direction in range(layer.num_directions):
            params = layer.cell_parameters(index, direction)
            with torch.no_grad():
                params["bias_ih"][rows] = value
                params["bias_hh"][rows] = 0.0


def seed_list(seeds: int | Sequence[int]) -> list[int]:
    """``seeds`` as a list: a count ``n`` means seeds 0 .. n-1."""
    if isinstance(seeds, int):
        if seeds < 1:
            raise ValueError(f"seeds: expected a count >= 1 or a list of seeds, got {seeds}")
        return list(range(seeds))
    if not seeds:
        raise ValueError("seeds: expected at least one seed")
    return list(seeds)


def mean_std(values: Sequence[float], digits: int = 3) -> str:
    """``mean ± std`` over seeds (just the value for one seed), as fixed-point text."""
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.fmean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub-flavoured Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def available_cores() -> int:
    """The CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def worker_count(workers: int | None, jobs: int) -> int:
    """The processes :func:`run_jobs` uses: ``workers`` (default: the available cores), at most
    one per job."""
    return max(1, min(workers or available_cores(), jobs))


def _one_thread_call(function: Callable[..., Any], args: tuple) -> Any:
    """``function(*args)`` on one torch thread (the caller's thread count restored after)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return function(*args)
    finally:
        torch.set_num_threads(threads)


def run_jobs(function: Callable[..., Any], jobs: Sequence[tuple], costs: Sequence[float],
             workers: int | None = None) -> Iterator[tuple[int, Any]]:
    """Run ``function(*job)`` for every job, each on one torch thread, ``workers`` at a time.

    The training runs of an experiment are small (hidden sizes 32-128) and independent: one
    process per core trains about twice as many of them per minute on two cores as one process
    with two threads. Each job runs on exactly one thread wherever it runs, so its result does
    not depend on ``workers``. Jobs start in decreasing order of ``costs`` (an estimate of
    their run time) so the workers finish together.

    Args:
        function: a module-level function (the worker processes import it by name).
        jobs: the argument tuples.
        costs: one estimate per job, in any unit.
        workers: processes; default the available cores, at most the number of jobs; 1 runs
            the jobs one after another in this process. The worker processes import the
            caller's main module: a script that calls this needs the usual
            ``if __name__ == "__main__":`` guard.

    Yields:
        (index into ``jobs``, result) as each job finishes.
    """
    order = sorted(range(len(jobs)), key=lambda index: -costs[index])
    workers = worker_count(workers, len(jobs))
    if workers <= 1:
        for index in order:
            yield index, _one_thread_call(function, jobs[index])
        return
    # "spawn": a fresh interpreter per worker, never a fork of a process whose OpenMP
    # threads are already running.
    try:
        with ProcessPoolExecutor(workers,
                                 mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = {pool.submit(_one_thread_call, function, jobs[index]): index
                       for index in order}
            for future in as_completed(futures):
                yield futures[future], future.result()
    except BrokenProcessPool as error:
        raise RuntimeError(
            f"the {workers} worker processes of the experiment stopped before finishing (see "
            "the messages above). Called from a script? Put the call under `if __name__ == "
            "\"__main__\":` (worker processes import the script), or run the jobs in this "
            "process with workers=1") from error


def write_report(out_dir: Path, title: str, sections: Sequence[str],
                 started: float | None = None, workers: int | None = None) -> Path:
    """Write ``report.md``: the title, then the sections separated by blank lines; with
    ``started`` (a :func:`time.perf_counter` value), a last line with the wall time since and
    how it was spent (``workers`` one-thread processes of :func:`run_jobs`, or this process's
    threads)."""
    sections = list(sections)
    if started is not None:
        seconds = time.perf_counter() - started
        how = (f"{workers} worker process(es) of one CPU thread each" if workers
               else f"{torch.get_num_threads()} CPU thread(s)")
        sections.append(f"Wall time: {seconds:.0f} s ({seconds / 60:.1f} min) with {how}.")
    path = out_dir / "report.md"
    path.write_text(f"# {title}\n\n" + "\n\n".join(s.strip() for s in sections) + "\n")
    return path
