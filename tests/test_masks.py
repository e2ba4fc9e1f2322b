"""rnnkit.masks: the counter-based generator of the fused extension and the torch fallback."""

import pytest
import torch

from rnnkit.engine import fused
from rnnkit.masks import LEVELS, bernoulli_mask, rounded_probability

MASK64 = (1 << 64) - 1


def split_mix(seed: int, counter: int) -> int:
    """SplitMix64's output for state seed + (counter + 1) * golden ratio, in Python integers."""
    z = (seed + (counter + 1) * 0x9E3779B97F4A7C15) & MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fill_follows_split_mix_draws(fused_extension, dtype):
    seed, threshold, n = -(1 << 62) + 12345, 40000, 37
    out = torch.empty(n, dtype=dtype)
    fused_extension.bernoulli_fill(out, seed, threshold, 2.5)
    draws = [(split_mix(seed & MASK64, i // 4) >> (16 * (i % 4))) & 0xFFFF for i in range(n)]
    expected = torch.tensor([2.5 if d >= threshold else 0.0 for d in draws], dtype=dtype)
    assert torch.equal(out, expected)


@pytest.mark.parametrize("n", [1, 3, 4, 5, 8191, 40_003])
def test_fill_of_any_length_is_a_prefix_of_a_longer_one(fused_extension, n):
    torch.set_num_threads(2)
    longer = torch.empty(65_536)
    fused_extension.bernoulli_fill(longer, 7, 30_000, 1.0)
    part = torch.empty(n)
    fused_extension.bernoulli_fill(part, 7, 30_000, 1.0)
    assert torch.equal(part, longer[:n])


def test_fill_rejects_other_tensors(fused_extension):
    with pytest.raises(RuntimeError, match="contiguous float32 or float64"):
        fused_extension.bernoulli_fill(torch.empty(4, dtype=torch.int32), 0, 10, 1.0)
    with pytest.raises(RuntimeError, match="contiguous float32 or float64"):
        fused_extension.bernoulli_fill(torch.empty(4, 4).t(), 0, 10, 1.0)
    with pytest.raises(RuntimeError, match=r"threshold must be in \[0, 65536\], got 70000"):
        fused_extension.bernoulli_fill(torch.empty(4), 0, 70_000, 1.0)


def test_extension_masks_are_independent_and_have_their_rate(fused_extension):
    torch.manual_seed(0)
    mask = bernoulli_mask((2_000_000,), 0.35, torch.zeros(1))
    assert abs(mask.mean().item() - rounded_probability(0.35)) < 5 * (0.35 * 0.65 / 2e6) ** 0.5
    centred = mask - mask.mean()
    for lag in (1, 2, 3, 4, 5, 8, 640):  # within a draw, across draws, across rows
        correlation = (centred[:-lag] * centred[lag:]).mean() / centred.square().mean()
        assert abs(correlation.item()) < 0.005, lag


@pytest.mark.parametrize("extension", [True, False])
def test_masks_follow_torch_seed_and_carry_the_value(monkeypatch, extension):
    if not extension:
        monkeypatch.setattr("rnnkit.engine.fused.load_extension", lambda: None)
    elif fused.load_extension() is None:
        pytest.skip("the fused extension is not built here")
    like = torch.zeros(1, dtype=torch.float64)
    torch.manual_seed(5)
    first = bernoulli_mask((9, 31), 0.6, like, value=1 / 0.6)
    second = bernoulli_mask((9, 31), 0.6, like, value=1 / 0.6)
    torch.manual_seed(5)
    assert torch.equal(bernoulli_mask((9, 31), 0.6, like, value=1 / 0.6), first)
    assert not torch.equal(first, second)
    assert first.dtype == torch.float64 and set(first.unique().tolist()) == {0.0, 1 / 0.6}


def test_probability_zero_and_one_need_no_draws():
    state = torch.get_rng_state()
    assert torch.equal(bernoulli_mask((3, 4), 0.0, torch.zeros(1)), torch.zeros(3, 4))
    assert torch.equal(bernoulli_mask((3, 4), 1.0, torch.zeros(1), 2.0), torch.full((3, 4), 2.0))
    assert bernoulli_mask((5,), 0.5 / LEVELS, torch.zeros(1)).sum() == 0  # rounds to 0
    assert torch.equal(torch.get_rng_state(), state)
