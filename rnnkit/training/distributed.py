"""Data-parallel training with torch.distributed, as started by ``torchrun``.

``torchrun --nproc_per_node N -m rnnkit train ...`` starts N processes (ranks) with RANK,
WORLD_SIZE and LOCAL_RANK in their environment. Each rank holds a replica of the model wrapped
in DistributedDataParallel and trains on its share of the rows (streams) of every global
batch; DDP averages the gradients, so N ranks take the same steps as one process with the
whole batch. Only rank 0 writes files and prints. Without torchrun there is one rank and
nothing here communicates.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

from rnnkit.models.state import State, map_state
from rnnkit.training.errors import RunError


@dataclass
class Ranks:
    """This process's place in a (possibly one-process) training job."""

    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """Whether this is rank 0, the one that writes files and prints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """Whether there is more than one rank."""
        return self.world_size > 1

    def shard(self, batch: Any) -> Any:
        """This rank's rows of a global batch (B, ...) -> (B / world_size, ...); a tuple or
        list of tensors is sharded element by element (each with B rows first)."""
        if not self.distributed:
            return batch
        if isinstance(batch, (tuple, list)):
            return type(batch)(self.shard(part) for part in batch)
        rows = batch.shape[0] // self.world_size
        return batch[self.rank * rows:(self.rank + 1) * rows]

    def mean(self, value: Tensor) -> Tensor:
        """The mean of ``value`` over all ranks (every rank gets it)."""
        if not self.distributed:
            return value
        value = value.clone()
        dist.all_reduce(value, op=dist.ReduceOp.SUM)
        return value / self.world_size

    def highest(self, value: int) -> int:
        """The largest ``value`` over all ranks (every rank gets it); used to agree on stopping."""
        if not self.distributed:
            return value
        tensor = torch.tensor([value], dtype=torch.long, device=self.device)
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
        return int(tensor.item())

    def gather_rows(self, state: State) -> State:
        """Join every rank's rows of a state (L*D, B / world_size, H) into (L*D, B, H)."""
        if not self.distributed:
            return state

        def gather(part: Tensor) -> Tensor:
            parts = [torch.empty_like(part) for _ in range(self.world_size)]
            dist.all_gather(parts, part.contiguous())
            return torch.cat(parts, dim=1)

        return map_state(state, gather)

    def gather_objects(self, value: Any) -> list[Any]:
        """Every rank's ``value``, in rank order (every rank gets the list)."""
        if not self.distributed:
            return [value]
        values: list[Any] = [None] * self.world_size
        dist.all_gather_object(values, value)
        return values

    def share(self, value: Any) -> Any:
        """Rank 0's ``value``, on every rank."""
        if not self.distributed:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]


def pick_device(name: str, local_rank: int = 0) -> torch.device:
    """Resolve ``--device``: "auto" (CUDA when available, else CPU), "cpu", "cuda", "cuda:N"."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise RunError(f"--device: unknown device {name!r}; use auto, cpu, cuda or cuda:N"
                       ) from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise RunError(f"--device {name}: CUDA is not available here; use --device cpu")
        if device.index is None:
            device = torch.device("cuda", local_rank)
    elif device.type != "cpu":
        raise RunError(f"--device: unsupported device {name!r}; use auto, cpu, cuda or cuda:N")
    return device


def start(device_name: str) -> Ranks:
    """Join the job torchrun started (gloo on CPU, nccl on CUDA), or return a single rank.

    On CPU each rank gets an equal share of the cores for its threads.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return Ranks(0, 1, pick_device(device_name))
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    local_world_size = int(os.environ.get("LOCAL_WORLD_SIZE", str(world_size)))
    device = pick_device(device_name, local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
        dist.init_process_group("nccl")
    else:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // local_world_size))
        dist.init_process_group("gloo")
    return Ranks(rank, world_size, device)


def stop(ranks: Ranks, wait: bool = True) -> None:
    """Leave the job, first waiting until every rank is done unless ``wait`` is False (after
    an error, when the other ranks may never get there). A no-op for a single rank."""
    if ranks.distributed and dist.is_initialized():
        if wait:
            dist.barrier()
        dist.destroy_process_group()
