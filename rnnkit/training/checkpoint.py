"""Checkpoints: one safetensors file per checkpoint, written atomically.

Layout of the file:

* tensors ``model.<name>`` -- the model's state_dict;
* tensors ``optimizer.<param index>.<key>`` -- the optimizer's per-parameter state (Adam's
  moments, SGD's momentum buffers, ...);
* tensors ``average.<name>`` -- the moving average of the weights (last checkpoints of runs
  that keep one);
* tensors ``state.<i>`` -- the hidden state carried between truncated-BPTT chunks;
* tensors ``rng.<name>`` -- random number generator states (uint8);
* header metadata ``rnnkit`` -- JSON: format version, step, configuration, vocabulary, data
  position, optimizer hyper-parameters, early-stopping record.

A checkpoint is written to a temporary file in the same folder, flushed to disk and then
renamed over the old one, so a crash or a full disk at any moment leaves the previous
checkpoint complete and loadable.
"""

from __future__ import annotations

import errno
import json
import os
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
from torch import Tensor, nn

from rnnkit.models.state import State, state_from_tensors, state_tensors
from rnnkit.training.errors import CheckpointError

FORMAT = "rnnkit-checkpoint"
VERSION = 1
_METADATA_KEY = "rnnkit"


class Checkpoint:
    """A loaded checkpoint: its tensors by name and its JSON information (:attr:`info`)."""

    def __init__(self, path: Path, tensors: dict[str, Tensor], info: dict[str, Any]) -> None:
        """Wrap what :func:`load_checkpoint` read from ``path``."""
        self.path = path
        self.tensors = tensors
        self.info = info

    def section(self, prefix: str) -> dict[str, Tensor]:
        """The tensors named ``<prefix>.<rest>``, keyed by ``<rest>``."""
        start = prefix + "."
        return {name[len(start):]: t for name, t in self.tensors.items() if name.startswith(start)}

    def restore_model(self, model: nn.Module) -> None:
        """Load the model weights; a checkpoint of a different model raises CheckpointError."""
        saved = self.section("model")
        expected = model.state_dict()
        missing = sorted(set(expected) - set(saved))
        unexpected = sorted(set(saved) - set(expected))
        reshaped = [name for name in expected if name in saved
                    and saved[name].shape != expected[name].shape]
        if missing or unexpected or reshaped:
            if missing or unexpected:
                detail = f"{len(missing)} weights missing, {len(unexpected)} unexpected"
            else:
                name = reshaped[0]
                detail = (f"{name} has shape {tuple(saved[name].shape)}, the model expects "
                          f"{tuple(expected[name].shape)}")
            raise CheckpointError(f"{self.path}: holds a different model than the one being "
                                  f"loaded ({detail}); use the run directory it belongs to")
        model.load_state_dict(saved)

    def restore_optimizer(self, optimizer: torch.optim.Optimizer) -> None:
        """Load the optimizer's state saved by :func:`optimizer_tensors`."""
        saved = self.info.get("optimizer")
        if saved is None:
            raise CheckpointError(f"{self.path}: holds no optimizer state; it cannot be resumed")
        state: dict[int, dict[str, Any]] = {}
        for name, tensor in self.section("optimizer").items():
            index, key = name.split(".", 1)
            state.setdefault(int(index), {})[key] = tensor
        for index, values in saved["state"].items():
            state.setdefault(int(index), {}).update(values)
        state = dict(sorted(state.items()))
        groups = [{**group, "betas": tuple(group["betas"])} if "betas" in group else group
                  for group in saved["param_groups"]]
        try:
            optimizer.load_state_dict({"state": state, "param_groups": groups})
        except (ValueError, KeyError) as err:
            raise CheckpointError(f"{self.path}: its optimizer state does not fit this model "
                                  f"and optimizer ({err}); use the run directory it belongs "
                                  "to") from None

    def carried_state(self) -> State | None:
        """The hidden state carried into the next chunk, or None if there was none."""
        kind = self.info.get("carried_state")
        if kind is None:
            return None
        tensors = [self.tensors[f"state.{i}"] for i in range(kind["count"])]
        return state_from_tensors(tensors, kind["is_tuple"])


def optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, Tensor], dict]:
    """Flatten an optimizer's state: (tensors by ``<param index>.<key>``, JSON-ready rest)."""
    saved = optimizer.state_dict()
    tensors: dict[str, Tensor] = {}
    plain: dict[str, dict[str, Any]] = {}
    for index, values in saved["state"].items():
        for key, value in values.items():
            if isinstance(value, Tensor):
                tensors[f"{index}.{key}"] = value
            else:
                plain.setdefault(str(index), {})[key] = value
    return tensors, {"param_groups": saved["param_groups"], "state": plain}


def save_checkpoint(
    path: str | os.PathLike[str],
    model: nn.Module,
    info: Mapping[str, Any],
    optimizer: torch.optim.Optimizer | None = None,
    carried_state: State | None = None,
    rng_states: Mapping[str, Tensor] | None = None,
    average: Mapping[str, Tensor] | None = None,
) -> None:
    """Write a checkpoint to ``path`` atomically (temporary file, fsync, rename).

    ``info`` is JSON-ready information (step, configuration, vocabulary, ...);
    ``carried_state`` is the hidden state (tensor or tuple, each (L*D, B, H)) carried into the
    next chunk; ``rng_states`` are uint8 generator states by name; ``average`` is the moving
    average of the weights by parameter name. Raises CheckpointError
    (one line) if the file cannot be written; the previous checkpoint at ``path`` then stays
    as it was.
    """
    path = Path(path)
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    info = {"format": FORMAT, "version": VERSION, **info}
    if optimizer is not None:
        flat, rest = optimizer_tensors(optimizer)
        tensors.update({f"optimizer.{k}": v for k, v in flat.items()})
        info["optimizer"] = rest
    if carried_state is not None:
        parts = state_tensors(carried_state)
        tensors.update({f"state.{i}": t for i, t in enumerate(parts)})
        info["carried_state"] = {"count": len(parts), "is_tuple": isinstance(carried_state, tuple)}
    if rng_states:
        tensors.update({f"rng.{k}": v for k, v in rng_states.items()})
    if average:
        tensors.update({f"average.{k}": v for k, v in average.items()})
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}
    data = safetensors.torch.save(tensors, metadata={_METADATA_KEY: json.dumps(info)})
    write_atomically(path, data, what="checkpoint")


def write_atomically(path: Path, data: bytes, what: str) -> None:
    """Replace ``path`` with ``data`` so that it is always either the old or the new file.

    Raises CheckpointError (one line) on failure, with the temporary file removed. The
    temporary file is ``.<name>.<pid>.tmp`` next to ``path``; one a killed process left is
    removed when its run is next locked (:meth:`rnnkit.training.run_dir.RunDirectory.lock`).
    """
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(temporary, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
        _fsync_folder(path.parent)
    except OSError as err:
        temporary.unlink(missing_ok=True)
        if path.exists():
            kept = "the previous one is intact: {fix}, then continue with --resume"
        else:
            kept = "none was saved before: {fix}, then start the run again"
        if err.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            raise CheckpointError(
                f"{path}: not enough disk space to write the {what} ({len(data)} bytes); "
                + kept.format(fix="free some space")
            ) from None
        raise CheckpointError(
            f"{path}: cannot write the {what} ({err.strerror}); "
            + kept.format(fix="fix the folder")
        ) from None
    except BaseException:  # e.g. a second Ctrl-C: no temporary file left behind
        temporary.unlink(missing_ok=True)
        raise


def _fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def load_checkpoint(path: str | os.PathLike[str]) -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint`.

    Raises CheckpointError (one line) for a missing file, a truncated or damaged file, or a
    file that is not an rnnkit checkpoint.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such checkpoint; check the run directory, or train "
                              "a model first with `rnnkit train`") from None
    except OSError as err:
        raise CheckpointError(f"{path}: cannot read the checkpoint ({err.strerror})") from None
    metadata = _read_metadata(path, data)
    if _METADATA_KEY not in metadata:
        raise CheckpointError(f"{path}: is a safetensors file but not an rnnkit checkpoint; "
                              "give a run directory written by `rnnkit train`")
    try:
        info = json.loads(metadata[_METADATA_KEY])
        tensors = safetensors.torch.load(data)
    except Exception as err:  # safetensors reports damage with its own exception types
        raise CheckpointError(f"{path}: the checkpoint is damaged ({err}); use an earlier "
                              "copy or train again") from None
    if info.get("format") != FORMAT or info.get("version") != VERSION:
        raise CheckpointError(f"{path}: unsupported checkpoint format "
                              f"{info.get('format')!r} version {info.get('version')!r}")
    return Checkpoint(path, tensors, info)


def _read_metadata(path: Path, data: bytes) -> dict[str, str]:
    """The ``__metadata__`` of a safetensors file: an 8-byte header length, then JSON."""
    damaged = CheckpointError(f"{path}: is truncated or not a checkpoint file (the safetensors "
                              "header is incomplete); use an earlier copy or train again")
    if len(data) < 8:
        raise damaged
    (header_length,) = struct.unpack("<Q", data[:8])
    if 8 + header_length > len(data):
        raise damaged
    try:
        header = json.loads(data[8:8 + header_length])
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise damaged from None
    if not isinstance(header, dict):
        raise damaged
    metadata = header.get("__metadata__") or {}
    return metadata if isinstance(metadata, dict) else {}
