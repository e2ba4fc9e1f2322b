"""The language model's dropout: the drop rate, the scale, reproducible masks, eval mode."""

import pytest
import torch

from rnnkit.models.dropout import LEVELS, Dropout


def test_drops_at_rate_p_and_keeps_the_expectation():
    torch.manual_seed(0)
    x = torch.ones(400, 1000)
    y = Dropout(0.35)(x)
    rate = (y == 0).float().mean().item()
    assert abs(rate - 0.35) < 5 * (0.35 * 0.65 / x.numel()) ** 0.5
    kept = y[y != 0]
    dropped = round(0.35 * LEVELS)
    assert torch.allclose(kept, torch.full_like(kept, LEVELS / (LEVELS - dropped)))
    assert abs(y.mean().item() - 1.0) < 0.01


def test_masks_follow_the_seed_and_differ_between_calls():
    layer = Dropout(0.5)
    x = torch.randn(8, 33, 17)  # an odd number of elements
    torch.manual_seed(3)
    first, second = layer(x), layer(x)
    torch.manual_seed(3)
    assert torch.equal(layer(x), first)
    assert not torch.equal(first, second)
    assert first.shape == x.shape


def test_gradient_is_the_mask_times_the_scale():
    x = torch.randn(16, 40, requires_grad=True)
    y = Dropout(0.3)(x)
    y.sum().backward()
    expected = torch.where(y != 0, y / x.detach(), torch.zeros_like(y))
    assert torch.allclose(x.grad, expected)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64])
def test_keeps_the_dtype(dtype):
    assert Dropout(0.2)(torch.ones(4, 6, dtype=dtype)).dtype == dtype


def test_identity_in_eval_mode_and_at_p_zero():
    x = torch.randn(5, 7)
    assert torch.equal(Dropout(0.5).eval()(x), x)
    assert torch.equal(Dropout(0.0)(x), x)
    assert torch.equal(Dropout(1.0)(x), torch.zeros_like(x))
