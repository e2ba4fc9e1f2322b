"""The training loop shared by every task, readable top to bottom.

:func:`train` sets up the task, model and optimizer (or restores them with ``resume``), then
runs optimizer steps: truncated BPTT with the hidden state carried from chunk to chunk
(detached, reset where sequences start), optional bf16 autocast, gradient clipping by global
norm and/or by value, linear warm-up then cosine decay of the learning rate, a moving average
of the weights (which validation, the best checkpoint and the final results use), validation and
checkpoints every ``eval_every`` steps, early stopping, a time limit, SIGINT (Ctrl-C) and
SIGTERM (both stop after the current step with a validation and a checkpoint), and a stop on
a non-finite loss. Every step is logged to metrics.csv. The run directory is locked while the
run trains in it (:meth:`RunDirectory.lock`). Resuming from
``checkpoints/last.safetensors`` restores the weights, their average, optimizer, random
generators, carried state and data position, so the resumed loss curve is the one an
uninterrupted run would have produced. A run resumed at its last step whose report is not
written (killed after its final checkpoint) writes its final results and report, untrained.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from rnnkit.engine.fused import cpu_computes_bf16, load_extension, load_seconds
from rnnkit.models.state import State, map_state, select_rows
from rnnkit.training.averaging import WeightAverage, averaged
from rnnkit.training.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from rnnkit.training.compiling import compile_model, compile_seconds
from rnnkit.training.config import TrainConfig
from rnnkit.training.distributed import Ranks
from rnnkit.training.errors import CheckpointError, RunError
from rnnkit.training.progress import Progress, format_seconds
from rnnkit.training.run_dir import MetricsLog, RunDirectory
from rnnkit.training.task import Task, TaskBuilder
from rnnkit.training.threads import run_threads


@dataclass
class TrainResult:
    """How a run ended.

    ``stop_reason`` is one of "finished", "time_limit", "early_stopping", "interrupted" or
    "nan"; ``message`` says it in one line. ``validation`` and ``test`` are the metrics of the
    best checkpoint (None if none was written; an interrupted run skips the test and the
    sample, to exit promptly); ``sample`` is the task's showcase text. ``signal`` is the
    signal that interrupted the run (SIGINT or SIGTERM), else None.
    """

    stop_reason: str
    message: str
    steps: int
    total_steps: int | None
    seconds: float
    best_step: int | None = None
    validation: dict[str, float] | None = None
    test: dict[str, float] | None = None
    sample: str | None = None
    signal: int | None = None


class Stopped(KeyboardInterrupt):
    """A second SIGINT or SIGTERM while the run was already stopping: stop at once."""

    def __init__(self, signum: int) -> None:
        """Remember the signal, for the exit code (128 + signum)."""
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@dataclass
class BestRecord:
    """The best validation result so far, for best.safetensors and early stopping."""

    value: float = math.inf
    step: int | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    evals_without_improvement: int = 0

    def update(self, step: int, metrics: dict[str, float], metric: str,
               latest_is_best: bool = False) -> bool:
        """Record a validation; return whether it is a new best (always, with
        ``latest_is_best``: for tasks whose results come from the final weights)."""
        if latest_is_best or metrics[metric] < self.value:
            self.value, self.step, self.metrics = metrics[metric], step, dict(metrics)
            self.evals_without_improvement = 0
            return True
        self.evals_without_improvement += 1
        return False


def learning_rate(step: int, total_steps: int | None, config: TrainConfig) -> float:
    """The learning rate of (0-based) ``step`` of ``total_steps``.

    Linear warm-up from lr / W to lr over the first W steps, where W is ``config.warmup``
    capped at a tenth of the run, then cosine decay to ``lr * min_lr_ratio`` at the last step.
    While the length of an "auto" run is not yet decided (``total_steps`` None), the warm-up
    is not capped and the rate stays at lr after it.
    """
    warmup = config.warmup if total_steps is None else min(config.warmup, total_steps // 10)
    if step < warmup:
        return config.lr * (step + 1) / warmup
    if total_steps is None:
        return config.lr
    progress = min(1.0, (step - warmup) / max(1, total_steps - 1 - warmup))
    floor = config.lr * config.min_lr_ratio
    return floor + (config.lr - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


# An "auto" run (steps=None) times its steps PACE_FROM..PACE_TO of the session, then sets its
# length to the steps that fit in the time limit less SPARE of it (kept for the last validation
# and for a machine that slows down); at each validation it sets the length again from the pace
# since the last time, which includes one validation (a new session of a resumed run keeps the
# saved length).
PACE_FROM, PACE_TO, SPARE = 10, 60, 0.04


def steps_that_fit(step: int, seconds_per_step: float, seconds_left: float,
                   time_limit: float) -> int:
    """Length of an "auto" run at ``step``: the steps done plus those that fit, at
    ``seconds_per_step``, in the ``seconds_left`` of the time limit less ``SPARE * time_limit``
    (at least one more)."""
    usable = seconds_left - SPARE * time_limit
    return step + max(1, int(usable / max(seconds_per_step, 1e-9)))


def fit_length(step: int, since: tuple[int, float], started: float, config: TrainConfig,
               ranks: Ranks) -> tuple[int, float, tuple[int, float]]:
    """The length of an "auto" run at ``step``: the steps that fit in the rest of the time
    limit at the pace since ``since`` = (step, time.monotonic() then), the same on every rank;
    that pace in seconds per step; and (step, now), where the next pace is measured from."""
    now = time.monotonic()
    seconds_per_step = (now - since[1]) / (step - since[0])
    limit = config.time_limit or 0
    fitted = steps_that_fit(step, seconds_per_step, limit - (now - started), limit)
    return ranks.share(fitted), seconds_per_step, (step, now)


def make_optimizer(config: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    """AdamW (betas 0.9, 0.99) or SGD with ``config.momentum``, as ``config.optimizer`` says.

    Both run torch's fused kernels: one pass over each parameter, no dispatch per
    operation."""
    if config.optimizer == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=config.lr, betas=(0.9, 0.99),
                                 weight_decay=config.weight_decay, fused=True)
    return torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                           weight_decay=config.weight_decay, fused=True)


def clip_gradients(parameters: Iterable[nn.Parameter], clip: float | None,
                   clip_value: float | None) -> float:
    """Clip gradients in place (global L2 norm to ``clip``, then each element to
    ``±clip_value``; None skips either) and return the global norm from BEFORE clipping."""
    parameters = [p for p in parameters if p.grad is not None]
    norm = torch.nn.utils.get_total_norm([p.grad for p in parameters])
    if clip is not None:
        torch.nn.utils.clip_grads_with_norm_(parameters, clip, norm)
    if clip_value is not None:
        torch.nn.utils.clip_grad_value_(parameters, clip_value)
    return norm.item()


def uses_bf16(precision: str, device: torch.device) -> bool:
    """Whether to train under bf16 autocast: ``precision`` "bf16", or "auto" on hardware that
    computes bf16 natively (CUDA devices with bf16; CPUs with AMX or AVX512-BF16)."""
    if precision != "auto":
        return precision == "bf16"
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return cpu_computes_bf16()


def train(config: TrainConfig, run_path: str | os.PathLike[str], ranks: Ranks,
          build_task: TaskBuilder, resume: bool = False, force: bool = False) -> TrainResult:
    """Train as ``config`` says, writing the run directory ``run_path`` (on rank 0 only).

    ``build_task(config, device, saved)`` gives the task (data, model, metrics), e.g.
    :func:`rnnkit.tasks.build_task`; it is called after seeding, so the same seed gives the
    same initial weights. A new run refuses an existing non-empty ``run_path`` unless it is
    an rnnkit run and ``force``; with ``resume`` it continues from ``run_path``'s last
    checkpoint instead. The directory is created only once the data and model are ready, so
    bad settings leave nothing behind. The run directory is locked (rank 0) from before
    anything in it is read for resuming or replaced until training ends: a run another
    process trains in raises RunError naming its pid. Raises RunError (one line) for
    unusable settings, data, run directories or checkpoints.
    """
    run = RunDirectory.open(run_path) if resume else RunDirectory(run_path)
    try:
        return _train(config, run, ranks, build_task, resume, force)
    finally:
        run.unlock()


def _lock(run: RunDirectory) -> None:
    """Lock ``run`` for this process; say so when a killed process's lock is taken over."""
    dead = run.lock()
    if dead is not None:
        print(f"note: {run.path} was locked by pid {dead}, which ended without releasing it "
              "(killed?); this process has taken the run over", file=sys.stderr)


def _train(config: TrainConfig, run: RunDirectory, ranks: Ranks, build_task: TaskBuilder,
           resume: bool, force: bool) -> TrainResult:
    """:func:`train`, with ``run`` unlocked by the caller whatever happens."""
    started = time.monotonic()
    config.check()
    if config.batch_size % ranks.world_size:
        raise RunError(f"--batch-size {config.batch_size} must be divisible by the number of "
                       f"processes ({ranks.world_size})")
    if resume:
        if ranks.is_main:
            _lock(run)
        if not run.last_checkpoint.exists():
            raise RunError(f"{run.path}: has no checkpoint to resume from (it stopped before "
                           f"its first validation); start it again with --out {run.path} --force")
        checkpoint = load_checkpoint(run.last_checkpoint)
        threads = run_threads(config.threads, checkpoint.info.get("threads"))
    else:
        if ranks.is_main and run.is_run():
            _lock(run)  # before anything else: a run in use is refused with its holder's pid
        run.check_new(force)
        checkpoint = None
        threads = run_threads(config.threads)

    # The task, its model and the optimizer; the same seed gives the same initial weights.
    torch.manual_seed(config.seed)
    task = build_task(config, ranks.device, checkpoint.info["task"] if checkpoint else None)
    model = task.model
    optimizer = make_optimizer(config, model)
    average = WeightAverage(model, config.ema) if config.ema is not None else None
    total_steps = config.total_steps(task.steps_per_epoch)
    length_note = None
    if total_steps is None and config.time_limit is None:
        # A task that decides its default length from its data (config.LENGTH_FROM_DATA);
        # the run's config.json records the steps, so a resumed run keeps them.
        if task.default_length is None:
            raise RunError(f"--task {config.task} has no default length; give --steps N, "
                           "--epochs E or --time-limit SECONDS")
        total_steps, length_note = task.default_length
        config = dataclasses.replace(config, steps=total_steps)
    torch.manual_seed(config.seed + ranks.rank)  # distinct dropout masks on each rank
    step, state, best = 0, None, BestRecord()
    finishing = False  # a run at its last step that has yet to write its report
    stopped_early = False  # ... and whose last step was its early stop
    if checkpoint is not None:
        step, state, best = restore(checkpoint, model, optimizer, ranks, config, average)
        saved_total = checkpoint.info.get("total_steps")
        if total_steps is None:  # an "auto" run keeps the length it chose
            total_steps = saved_total
        if ranks.is_main:
            recover_best(run, checkpoint, model, average)
        if (config.patience is not None and best.evals_without_improvement >= config.patience
                and total_steps is not None and step < total_steps):
            # Its last checkpoint is the validation that stopped it early: it ends there, as a
            # finished run does, unless this session gives it another length (--steps or
            # --epochs), which trains on with the patience counted afresh.
            if total_steps == saved_total:
                stopped_early = True
            else:
                best.evals_without_improvement = 0
        if stopped_early or (total_steps is not None and step >= total_steps):
            # Its last checkpoint is the final one. With the report of that step written, the
            # run is complete; without it (killed after the checkpoint, before or while the
            # report was written), the session does what remains: the final results and the
            # report, no training.
            if ranks.share(run.reported_step() if ranks.is_main else None) == step:
                if stopped_early:
                    raise RunError(f"{run.path}: stopped early at step {step} of {total_steps} "
                                   f"(validation had not improved for {config.patience} "
                                   "validations); give another --steps (or --epochs) than "
                                   f"its {total_steps} to train further")
                raise RunError(f"{run.path}: already trained for {step} of {total_steps} "
                               "steps; give a larger --steps (or --epochs) to train further")
            finishing = True
    trained = DistributedDataParallel(model) if ranks.distributed else model
    if config.compile:
        trained = compile_model(trained)
    model.train()
    if ranks.is_main:
        if not resume:
            run.create(force)
        run.write_config(config)

    metrics = (MetricsLog(run, task.metric_names, step if checkpoint else None)
               if ranks.is_main and not finishing else None)
    progress = Progress(total_steps, step, enabled=ranks.is_main and not finishing,
                        unit=task.unit)
    if finishing and ranks.is_main:
        done = f"stopped early at step {step}" if stopped_early else f"trained all {step} steps"
        print(f"{run.path}: {done} but ended before writing its report; writing the final "
              "results and the report (no training)", file=sys.stderr)
    progress.write(f"{'resuming' if resume else 'training'} {run.path} at step {step} of "
                   f"{total_steps or 'auto'}: task {config.task} on {config.data}, {config.cell} "
                   f"{config.layers}x{config.hidden_size} ({count_parameters(model):,} "
                   f"parameters), batch {config.batch_size}, {config.optimizer} lr {config.lr:g}"
                   f", {threads} CPU thread{'s' if threads > 1 else ''}"
                   + (f", weights averaged (decay {config.ema:g})" if average else "")
                   + (", compiled (torch.compile; the first steps compile)"
                      if config.compile else "")
                   + (f", output penalties AR {config.activation_penalty:g} and TAR "
                      f"{config.temporal_penalty:g}"
                      if config.activation_penalty or config.temporal_penalty else ""))
    if length_note is not None:
        progress.write(length_note)
    autocast = torch.autocast(ranks.device.type, dtype=torch.bfloat16,
                              enabled=uses_bf16(config.precision, ranks.device))
    weight_dtype = next(model.parameters()).dtype
    first_step, saved_step, stop_signal = step, step, None
    stop_reason = ("early_stopping" if stopped_early else "finished") if finishing else None
    loss_value = grad_norm = math.nan  # until the first step of this session
    auto_length = total_steps is None
    # The fused kernels before the first step (a trace, as --compile's, never builds them);
    # building them, or waiting for another process's build, is not training time.
    loaded = load_seconds()
    if ranks.device.type == "cpu":
        load_extension()
        started += load_seconds() - loaded
        loaded = load_seconds()
    last_fit = (step, started)  # (step, time) the pace of an auto run is measured from
    session_tokens = 0
    compiled = compile_seconds()
    with stop_on_signals() as received:
        while stop_reason is None:
            step_started = time.perf_counter()
            batch = task.batch_at(step)
            if batch.starts_sequences:
                state = None
            lr = learning_rate(step, total_steps, config)
            for group in optimizer.param_groups:
                group["lr"] = lr
            with autocast:
                _, state, loss = trained(ranks.shard(batch.inputs), state,
                                         ranks.shard(batch.targets))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = clip_gradients(model.parameters(), config.clip, config.clip_value)
            loss_value = ranks.mean(loss.detach()).item()
            if not (math.isfinite(loss_value) and math.isfinite(grad_norm)):
                stop_reason = "nan"  # the weights are not updated; the checkpoints stay good
                if metrics is not None:
                    metrics.write(step + 1, {"loss": loss_value, "grad_norm": grad_norm, "lr": lr})
                break
            optimizer.step()
            if average is not None:
                average.update(step)
            # Carry the state into the next chunk without its history (and, after bf16
            # autocast, back in the weights' dtype, which layers expect of a given state).
            if state is not None:  # None: the model carries no state (independent examples)
                state = map_state(state, lambda part: part.detach().to(weight_dtype))
            step += 1
            step_seconds = time.perf_counter() - step_started
            if load_seconds() > loaded:  # the kernels were compiled in this step: not training
                started += load_seconds() - loaded
                step_seconds = max(step_seconds - (load_seconds() - loaded), 1e-9)
                loaded = load_seconds()
            if compile_seconds() > compiled:  # torch.compile compiled in this step: likewise
                started += compile_seconds() - compiled
                step_seconds = max(step_seconds - (compile_seconds() - compiled), 1e-9)
                compiled = compile_seconds()
            if step - first_step == PACE_FROM:
                last_fit = (step, time.monotonic())
            if total_steps is None and step - first_step == PACE_TO:
                total_steps, seconds_per_step, last_fit = fit_length(step, last_fit, started,
                                                                     config, ranks)
                progress.set_total(total_steps)
                progress.write(f"steps: {total_steps} fit in the time limit at "
                               f"{seconds_per_step * 1000:.0f} ms per step")
            tokens = batch.size if task.counts_targets else batch.rows  # in task.unit
            session_tokens += tokens
            row = {"loss": loss_value, "grad_norm": grad_norm, "lr": lr,
                   "tokens_per_s": tokens / step_seconds}

            # Decide together (all ranks) whether this was the last step.
            if total_steps is not None and step >= total_steps:
                stop_reason = "finished"
            else:
                time_up = (config.time_limit is not None
                           and time.monotonic() - started >= config.time_limit)
                signum = received()
                stop_code = ranks.highest(signum + 2 if signum else 1 if time_up else 0)
                stop_reason = (None if stop_code == 0 else "time_limit" if stop_code == 1
                               else "interrupted")
                stop_signal = stop_code - 2 if stop_code > 1 else None

            validation = None
            if step % config.eval_every == 0 or stop_reason is not None:
                with averaged(average):
                    validation = task.evaluate("val")
                if auto_length and stop_reason is None and step - first_step > PACE_TO:
                    total_steps, _, last_fit = fit_length(step, last_fit, started, config,
                                                          ranks)
                    progress.set_total(total_steps)
                row.update({f"val_{k}": v for k, v in validation.items()})
                improved = best.update(step, validation, task.metric,
                                       latest_is_best=not task.selects_best)
                # The row first: a kill before the checkpoint then resumes from the one
                # before, whose resume drops this row; after it, the row is there.
                if metrics is not None:
                    metrics.write(step, row)
                save(run, model, optimizer, average, state, ranks, config, task, step,
                     total_steps, best, improved, threads)
                saved_step = step
                if (stop_reason is None and config.patience is not None
                        and best.evals_without_improvement >= config.patience):
                    stop_reason = "early_stopping"
            elif metrics is not None:
                metrics.write(step, row)
            rate = session_tokens / max(time.monotonic() - started, 1e-9)
            progress.update(step, loss_value, rate, validation)

    progress.close()
    if metrics is not None:
        metrics.close()
    seconds = time.monotonic() - started
    message = stop_message(stop_reason, run, config, step, total_steps, best, saved_step,
                           loss_value, grad_norm, stop_signal)
    result = TrainResult(stop_reason, message, step, total_steps, seconds, signal=stop_signal)
    if ranks.is_main and best.step is not None:
        # The run's outcome is the best checkpoint: its validation, test metrics and sample
        # (not after a signal: a scheduler's SIGTERM leaves little time before SIGKILL).
        result.best_step, result.validation = best.step, best.metrics
        if stop_reason != "interrupted":
            load_checkpoint(run.best_checkpoint).restore_model(model)
            result.test = task.evaluate("test")
            result.sample = task.showcase()
            if task.write_files is not None:
                written = task.write_files(run.path)
                result.sample += "".join(f"\nwritten: {path}" for path in written)
    if ranks.is_main:
        tokens_per_s = session_tokens / max(seconds, 1e-9)
        write_report(run, config, result, steps_this_session=step - first_step,
                     tokens_per_s=tokens_per_s, parameters=count_parameters(model),
                     unit=task.unit)
    return result


def restore(checkpoint: Checkpoint, model: nn.Module, optimizer: torch.optim.Optimizer,
            ranks: Ranks, config: TrainConfig, average: WeightAverage | None
            ) -> tuple[int, State | None, BestRecord]:
    """Put a run back as it was at ``checkpoint``: weights, their average, optimizer, random
    generators. (A checkpoint without an average, from a run that kept none, starts the
    average at the restored weights; so the weights are restored first.)

    Returns (step, this rank's rows of the carried state, best-validation record).
    """
    checkpoint.restore_model(model)
    checkpoint.restore_optimizer(optimizer)
    if average is not None:
        average.load(checkpoint.section("average"))
    info = checkpoint.info
    state = checkpoint.carried_state()
    if state is not None:
        rows = config.batch_size // ranks.world_size
        state = select_rows(state, ranks.rank * rows, (ranks.rank + 1) * rows)
        state = map_state(state, lambda part: part.to(ranks.device))
    rng = checkpoint.section("rng")
    if f"rank{ranks.rank}.cpu" in rng and info.get("world_size") == ranks.world_size:
        torch.set_rng_state(rng[f"rank{ranks.rank}.cpu"])
        if ranks.device.type == "cuda" and f"rank{ranks.rank}.cuda" in rng:
            torch.cuda.set_rng_state(rng[f"rank{ranks.rank}.cuda"], ranks.device)
    best = BestRecord(**info["best"]) if info.get("best") else BestRecord()
    return info["step"], state, best


def save(run: RunDirectory, model: nn.Module, optimizer: torch.optim.Optimizer,
         average: WeightAverage | None, state: State | None, ranks: Ranks, config: TrainConfig,
         task: Task, step: int, total_steps: int | None, best: BestRecord,
         improved: bool, threads: int | None = None) -> None:
    """Write checkpoints/last.safetensors (and best.safetensors if ``improved``) on rank 0.

    last.safetensors holds the raw weights and their average, to resume from; best.safetensors
    holds the weights that were validated (the average, if the run keeps one).

    Every rank takes part: the carried state and random generator states of all ranks are
    gathered so that the run can resume with any number of processes. ``threads`` (the run's
    CPU thread count) is recorded for a resumed run to use the same (:func:`run_threads`).
    """
    full_state = ranks.gather_rows(state) if state is not None else None
    generators = {"cpu": torch.get_rng_state()}
    if ranks.device.type == "cuda":
        generators["cuda"] = torch.cuda.get_rng_state(ranks.device)
    all_generators = ranks.gather_objects(generators)
    if not ranks.is_main:
        return
    rng_states = {f"rank{rank}.{name}": value for rank, values in enumerate(all_generators)
                  for name, value in values.items()}
    info: dict[str, Any] = {
        "step": step,
        "total_steps": total_steps,
        "config": config.to_dict(),
        "task": task.saved,
        "data_position": {"epoch": step // task.steps_per_epoch,
                          "batch": step % task.steps_per_epoch},
        "best": {"value": best.value, "step": best.step, "metrics": best.metrics,
                 "evals_without_improvement": best.evals_without_improvement},
        "world_size": ranks.world_size,
        "threads": threads,
    }
    # last.safetensors first, best.safetensors after it: a kill between them leaves a best
    # file one validation older than last's record says, which recover_best rebuilds from
    # last (whose raw weights and average at this step are the new best's weights).
    save_checkpoint(run.last_checkpoint, model, info, optimizer, full_state, rng_states,
                    average.tensors if average is not None else None)
    if improved:
        with averaged(average):
            save_checkpoint(run.best_checkpoint, model, info)


_LAST_ONLY = ("format", "version", "optimizer", "carried_state")
"""Information of last.safetensors that best.safetensors does not hold."""


def recover_best(run: RunDirectory, checkpoint: Checkpoint, model: nn.Module,
                 average: WeightAverage | None) -> None:
    """Rewrite best.safetensors from ``checkpoint`` (last.safetensors, restored into
    ``model`` and ``average``) where a kill between the two writes of :func:`save` left it
    older than the best step ``checkpoint`` records (that best is then the checkpoint's own
    step)."""
    best_step = (checkpoint.info.get("best") or {}).get("step")
    if best_step is None or best_step != checkpoint.info["step"]:
        return
    try:
        written = load_checkpoint(run.best_checkpoint).info.get("step")
    except CheckpointError:
        written = None
    if written == best_step:
        return
    info = {k: v for k, v in checkpoint.info.items() if k not in _LAST_ONLY}
    with averaged(average):
        save_checkpoint(run.best_checkpoint, model, info)


@contextmanager
def stop_on_signals() -> Iterator[Callable[[], int | None]]:
    """While active, SIGINT (Ctrl-C) and SIGTERM ask the loop to stop after the current step
    and save.

    Yields a function that gives the signal received (its number), or None. A second signal
    raises :class:`Stopped` at once. Outside the main thread this does nothing (signals
    cannot be caught there).
    """
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield lambda: None
        return

    def handler(signum: int, frame: Any) -> None:
        if received:
            raise Stopped(signum)
        received.append(signum)

    previous = {signum: signal.signal(signum, handler) for signum in STOP_SIGNALS}
    try:
        yield lambda: received[0] if received else None
    finally:
        for signum, action in previous.items():
            signal.signal(signum, action)


def stop_message(reason: str, run: RunDirectory, config: TrainConfig, step: int,
                 total_steps: int | None, best: BestRecord, saved_step: int, loss: float,
                 grad_norm: float, signum: int | None = None) -> str:
    """One line that says why training stopped and what to do next."""
    resume = f"continue with: rnnkit train --resume {run.path}"
    if reason == "finished":
        return f"finished {step} steps"
    if reason == "time_limit":
        return (f"stopped at step {step} of {total_steps or 'auto'}: the time limit of "
                f"{format_seconds(config.time_limit or 0)} was reached; {resume}")
    if reason == "interrupted":
        by = f" by {signal.Signals(signum).name}" if signum else ""
        return (f"interrupted{by} at step {step} of {total_steps or 'auto'}, checkpoint saved; "
                f"{resume}")
    if reason == "early_stopping":
        return (f"stopped early at step {step}: validation has not improved for "
                f"{config.patience} validations (best {best.value:.4f} at step {best.step})")
    if math.isfinite(loss):
        what = f"the gradient norm became {grad_norm}"
    else:
        what = f"the loss became {loss}"
    kept = (f"the last good checkpoint (step {saved_step}) is kept in {run.last_checkpoint}"
            if saved_step > 0 else "no checkpoint had been written yet")
    # Advice only about settings that are not already the remedy: a run that clips already
    # is not told to clip.
    remedies = [f"lower --lr (now {config.lr:g})"]
    if config.clip is None:
        remedies.append("set --clip (e.g. --clip 1)")
    if config.precision == "bf16":
        remedies.append("train in --precision fp32")
    return (f"training stopped at step {step + 1}: {what}; {kept}; {' or '.join(remedies)}, "
            "then train again")


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def write_report(run: RunDirectory, config: TrainConfig, result: TrainResult,
                 steps_this_session: int, tokens_per_s: float, parameters: int,
                 unit: str = "tokens") -> None:
    """Write report.json and report.md summarising the run; ``tokens_per_s`` is the speed in
    the task's ``unit`` per second (report.json keeps that key, and names the unit)."""
    report = {
        "stop_reason": result.stop_reason,
        "message": result.message,
        "steps": result.steps,
        "total_steps": result.total_steps,
        "steps_this_session": steps_this_session,
        "seconds_this_session": round(result.seconds, 1),
        "tokens_per_s": round(tokens_per_s, 1),
        "speed_unit": unit,
        "parameters": parameters,
        "best_step": result.best_step,
        "validation": result.validation,
        "test": result.test,
        "sample": result.sample,
        "config": config.to_dict(),
    }
    lines = [
        f"# Training report: {run.path.name}",
        "",
        f"- Task `{config.task}` on `{config.data}`, cell `{config.cell}`, "
        f"{config.layers} x {config.hidden_size} units, {parameters:,} parameters",
        f"- {result.message}",
        f"- This session: {steps_this_session} steps in {format_seconds(result.seconds)}, "
        f"{tokens_per_s:,.0f} {unit}/s",
    ]
    if result.validation is not None:
        lines += ["", f"Best checkpoint: step {result.best_step}", "",
                  "| split | " + " | ".join(result.validation) + " |",
                  "|---" * (len(result.validation) + 1) + "|",
                  "| val | " + " | ".join(f"{v:.4f}" for v in result.validation.values()) + " |"]
        if result.test is not None:
            lines.append("| test | " + " | ".join(f"{v:.4f}" for v in result.test.values())
                         + " |")
    if result.sample:
        lines += ["", "## Sample", "", "```text", result.sample, "```"]
    lines += ["", "## Configuration", "", "```json",
              json.dumps(config.to_dict(), indent=2), "```", ""]
    run.write_report(report, "\n".join(lines))
