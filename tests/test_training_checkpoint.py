"""Checkpoints: exact round trip, atomic writes, and one-line errors for bad files."""

import errno
import os

import pytest
import safetensors.torch
import torch

from rnnkit.models import LanguageModel, LanguageModelConfig
from rnnkit.training.checkpoint import load_checkpoint, save_checkpoint
from rnnkit.training.errors import CheckpointError

pytestmark = pytest.mark.usefixtures("one_thread")


def trained_model(hidden_size: int = 8, seed: int = 0):
    torch.manual_seed(seed)
    model = LanguageModel(LanguageModelConfig(vocab_size=7, embedding_size=4,
                                              hidden_size=hidden_size))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    ids = torch.randint(0, 7, (2, 6))
    _, state, loss = model(ids[:, :-1], targets=ids[:, 1:])
    loss.backward()
    optimizer.step()
    return model, optimizer, state


def test_round_trip_restores_model_optimizer_state_and_rng(tmp_path):
    model, optimizer, state = trained_model()
    rng = torch.get_rng_state()
    path = tmp_path / "last.safetensors"
    save_checkpoint(path, model, {"step": 3, "vocab": ["a", "b"]}, optimizer, state,
                    {"rank0.cpu": rng})

    fresh, fresh_optimizer, _ = trained_model(seed=1)
    checkpoint = load_checkpoint(path)
    checkpoint.restore_model(fresh)
    checkpoint.restore_optimizer(fresh_optimizer)
    for a, b in zip(model.state_dict().values(), fresh.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    for p, q in zip(model.parameters(), fresh.parameters(), strict=True):
        saved, restored = optimizer.state[p], fresh_optimizer.state[q]
        assert saved.keys() == restored.keys()
        assert all(torch.equal(saved[k], restored[k]) for k in saved)
    assert fresh_optimizer.param_groups[0]["betas"] == optimizer.param_groups[0]["betas"]
    restored_h, restored_c = checkpoint.carried_state()
    assert torch.equal(restored_h, state[0]) and torch.equal(restored_c, state[1])
    assert torch.equal(checkpoint.section("rng")["rank0.cpu"], rng)
    assert checkpoint.info["step"] == 3 and checkpoint.info["vocab"] == ["a", "b"]


def test_sgd_momentum_state_round_trips(tmp_path):
    model, _, _ = trained_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randint(0, 7, (1, 3)))[0].sum().backward()
    optimizer.step()
    save_checkpoint(tmp_path / "c.safetensors", model, {}, optimizer)
    fresh = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    load_checkpoint(tmp_path / "c.safetensors").restore_optimizer(fresh)
    for p in model.parameters():
        assert torch.equal(fresh.state[p]["momentum_buffer"], optimizer.state[p]["momentum_buffer"])


def test_a_full_disk_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch):
    model, optimizer, _ = trained_model()
    path = tmp_path / "last.safetensors"
    save_checkpoint(path, model, {"step": 1}, optimizer)
    before = path.read_bytes()

    def disk_full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(CheckpointError, match="not enough disk space") as caught:
        save_checkpoint(path, model, {"step": 2}, optimizer)
    assert "\n" not in str(caught.value)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["last.safetensors"]


def test_a_truncated_checkpoint_is_a_one_line_error(tmp_path):
    model, optimizer, _ = trained_model()
    path = tmp_path / "last.safetensors"
    save_checkpoint(path, model, {"step": 1}, optimizer)
    data = path.read_bytes()
    for size in (4, 100, len(data) - 10):
        path.write_bytes(data[:size])
        with pytest.raises(CheckpointError) as caught:
            load_checkpoint(path)
        assert "\n" not in str(caught.value) and str(path) in str(caught.value)


def test_a_missing_checkpoint_is_a_one_line_error(tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "nothing.safetensors")


def test_a_foreign_safetensors_file_is_refused(tmp_path):
    path = tmp_path / "weights.safetensors"
    safetensors.torch.save_file({"weight": torch.zeros(2)}, path)
    with pytest.raises(CheckpointError, match="not an rnnkit checkpoint"):
        load_checkpoint(path)


def test_a_checkpoint_of_another_model_is_refused(tmp_path):
    model, _, _ = trained_model(hidden_size=8)
    save_checkpoint(tmp_path / "c.safetensors", model, {})
    other, _, _ = trained_model(hidden_size=16)
    with pytest.raises(CheckpointError, match="different model"):
        load_checkpoint(tmp_path / "c.safetensors").restore_model(other)
