"""Tests for rnnkit.data.synthetic: task definitions and their trivial baselines."""

from __future__ import annotations

import math

import pytest
import torch

from rnnkit.data import (
    adding_baseline,
    adding_problem,
    copy_memory,
    copy_memory_baseline,
    dependency_baseline,
    dependency_task,
    temporal_order,
    temporal_order_baseline,
)
from rnnkit.data.synthetic import TEMPORAL_ORDER_PAD, TEMPORAL_ORDER_SYMBOLS

SYMBOL = {s: i for i, s in enumerate(TEMPORAL_ORDER_SYMBOLS)}


# --- adding problem ---------------------------------------------------------------------------


def test_adding_inputs_are_values_and_two_markers() -> None:
    inputs, targets = adding_problem(64, length=50, seed=0)
    assert inputs.shape == (64, 50, 2) and targets.shape == (64,)
    values, markers = inputs[..., 0], inputs[..., 1]
    assert torch.all((values >= 0) & (values < 1))
    assert torch.all(markers.sum(dim=1) == 2)
    assert torch.all(markers[:, :25].sum(dim=1) == 1) and torch.all(markers[:, 25:].sum(dim=1) == 1)


def test_adding_target_is_the_sum_of_the_marked_values() -> None:
    inputs, targets = adding_problem(32, length=21, seed=1)
    assert torch.allclose((inputs[..., 0] * inputs[..., 1]).sum(dim=1), targets)


def test_adding_baseline_mse_is_one_sixth_within_sampling_error() -> None:
    n = 20_000
    _, targets = adding_problem(n, length=10, seed=2)
    mse = ((targets - 1.0) ** 2).mean().item()
    # (S - 1)^2 for S = U1 + U2 has variance 7/180, so the standard error is sqrt(7/180/n).
    assert adding_baseline().mse == pytest.approx(1 / 6)
    assert abs(mse - 1 / 6) < 5 * math.sqrt(7 / 180 / n)


def test_adding_is_seeded() -> None:
    a, b = adding_problem(8, 30, seed=5), adding_problem(8, 30, seed=5)
    c = adding_problem(8, 30, seed=6)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


def test_adding_does_not_touch_the_global_rng() -> None:
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    adding_problem(4, 10, seed=9)
    assert torch.equal(torch.rand(3), expected)


# --- copy memory ------------------------------------------------------------------------------


def test_copy_memory_layout_follows_arjovsky_et_al() -> None:
    delay = 30
    inputs, targets = copy_memory(16, delay=delay, seed=0)
    assert inputs.shape == targets.shape == (16, delay + 20)
    assert torch.all((inputs[:, :10] >= 1) & (inputs[:, :10] <= 8))
    assert torch.all(inputs[:, delay + 9] == 9)
    rest = torch.cat([inputs[:, 10 : delay + 9], inputs[:, delay + 10 :]], dim=1)
    assert torch.all(rest == 0)


def test_copy_memory_target_repeats_the_symbols_at_the_end() -> None:
    inputs, targets = copy_memory(16, delay=12, seed=1)
    assert torch.all(targets[:, :-10] == 0)
    assert torch.equal(targets[:, -10:], inputs[:, :10])


def test_copy_memory_baseline_matches_a_memoryless_predictor() -> None:
    delay = 100
    _, targets = copy_memory(256, delay=delay, seed=2)
    # Memoryless predictor: blank with certainty, then uniform over symbols 1..8 for 10 steps.
    log_probs = torch.full((delay + 20, 10), -math.inf)
    log_probs[: delay + 10, 0] = 0.0
    log_probs[delay + 10 :, 1:9] = -math.log(8)
    nll = -log_probs.gather(1, targets.T).mean().item()
    baseline = copy_memory_baseline(delay)
    assert baseline.cross_entropy == pytest.approx(10 * math.log(8) / (delay + 20))
    assert nll == pytest.approx(baseline.cross_entropy)


# --- temporal order ---------------------------------------------------------------------------


def test_temporal_order_sequences_start_with_b_and_end_with_e() -> None:
    inputs, _, lengths = temporal_order(200, seed=0)
    assert inputs.shape == (200, 110)
    assert torch.all((lengths >= 100) & (lengths <= 110))
    rows = torch.arange(200)
    assert torch.all(inputs[:, 0] == SYMBOL["B"])
    assert torch.all(inputs[rows, lengths - 1] == SYMBOL["E"])
    beyond = torch.arange(110) >= lengths[:, None]
    assert torch.all(inputs[beyond] == TEMPORAL_ORDER_PAD)


def test_temporal_order_has_two_relevant_symbols_in_their_ranges() -> None:
    inputs, targets, lengths = temporal_order(200, seed=1)
    for row, label, length in zip(inputs, targets, lengths, strict=True):
        relevant = torch.nonzero((row == SYMBOL["X"]) | (row == SYMBOL["Y"])).flatten()
        assert len(relevant) == 2
        first, second = relevant.tolist()
        assert 10 <= first <= 20 and 50 <= second <= 60
        distractors = row[1 : length - 1]
        others = torch.ones_like(distractors, dtype=torch.bool)
        others[[first - 1, second - 1]] = False
        assert torch.all(distractors[others] < 4)
        order = 2 * (row[first] == SYMBOL["Y"]).long() + (row[second] == SYMBOL["Y"]).long()
        assert order == label


def test_temporal_order_classes_are_balanced_and_baseline_is_chance() -> None:
    n = 8000
    _, targets, _ = temporal_order(n, seed=2)
    shares = torch.bincount(targets, minlength=4).float() / n
    assert torch.all((shares - 0.25).abs() < 5 * math.sqrt(0.25 * 0.75 / n))
    baseline = temporal_order_baseline()
    assert baseline.accuracy == 0.25 and baseline.cross_entropy == pytest.approx(math.log(4))


# --- dependency task --------------------------------------------------------------------------


def test_dependency_sequence_is_key_gap_query() -> None:
    inputs, targets = dependency_task(64, gap=40, n_keys=5, n_distractors=7, seed=0)
    assert inputs.shape == (64, 42) and targets.shape == (64,)
    assert torch.equal(inputs[:, 0], targets)
    assert torch.all((targets >= 0) & (targets < 5))
    assert torch.all((inputs[:, 1:-1] >= 5) & (inputs[:, 1:-1] < 12))
    assert torch.all(inputs[:, -1] == 12)


def test_dependency_baseline_is_chance_over_the_keys() -> None:
    n = 8000
    _, targets = dependency_task(n, gap=3, n_keys=8, seed=1)
    majority = torch.bincount(targets).max().item() / n
    baseline = dependency_baseline(8)
    assert baseline.accuracy == pytest.approx(1 / 8)
    assert abs(majority - 1 / 8) < 5 * math.sqrt(1 / 8 * 7 / 8 / n)


def test_invalid_task_parameters_are_rejected() -> None:
    with pytest.raises(ValueError):
        adding_problem(4, length=1)
    with pytest.raises(ValueError):
        copy_memory(4, delay=0)
    with pytest.raises(ValueError):
        temporal_order(4, first_range=(50, 60), second_range=(10, 20))
