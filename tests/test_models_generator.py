"""ConditionalGenerator: one condition vector in, a sequence of tokens or vectors out."""

import pytest
import torch
import torch.nn.functional as F

from rnnkit.models.generator import ConditionalGenerator
from rnnkit.models.state import state_tensors

CELLS = ["lstm", "gru", "cifg-lstm", "mingru", "clockwork", "depth-gated-lstm"]


def _generator(cell="lstm", **kwargs):
    # The Depth-Gated LSTM links the cells of adjacent layers, so it needs two.
    kwargs.setdefault("num_layers", 2 if cell == "depth-gated-lstm" else 1)
    return ConditionalGenerator(4, 7, cell=cell, hidden_size=8, **kwargs)


@pytest.mark.parametrize("cell", CELLS)
def test_generated_tokens_and_teacher_forced_logits_have_the_documented_shapes(cell):
    model = _generator(cell, tokens=True)
    condition = torch.randn(3, 4)
    targets = torch.randint(3, 7, (3, 5))
    logits, state, loss = model(condition, targets)
    assert logits.shape == (3, 5, 7) and state is None
    torch.testing.assert_close(loss, F.cross_entropy(logits.flatten(0, 1), targets.flatten()))
    generated = model.generate(condition, 6)
    assert generated.shape == (3, 6) and generated.dtype == torch.long


@pytest.mark.parametrize("cell", CELLS)
def test_generated_vectors_and_teacher_forced_predictions_have_the_documented_shapes(cell):
    model = _generator(cell)
    condition = torch.randn(3, 4)
    targets = torch.randn(3, 5, 7)
    predictions, _, loss = model(condition, targets)
    assert predictions.shape == (3, 5, 7)
    torch.testing.assert_close(loss, F.mse_loss(predictions, targets))
    assert model.generate(condition, 6).shape == (3, 6, 7)


def test_sampling_is_reproducible_with_a_seeded_generator():
    model = _generator("gru", tokens=True)
    condition = torch.randn(5, 4)

    def sample(seed):
        return model.generate(condition, 20, temperature=1.5,
                              generator=torch.Generator().manual_seed(seed))

    torch.testing.assert_close(sample(7), sample(7))
    assert not torch.equal(sample(7), sample(8))


def test_top_k_of_one_is_the_most_likely_token():
    model = _generator("lstm", tokens=True)
    condition = torch.randn(4, 4)
    generator = torch.Generator().manual_seed(0)
    torch.testing.assert_close(model.generate(condition, 10, top_k=1, generator=generator),
                               model.generate(condition, 10, temperature=0))


@pytest.mark.parametrize("cell", ["lstm", "clockwork", "depth-gated-lstm"])
def test_fed_back_vectors_are_the_teacher_forced_predictions(cell):
    model = _generator(cell)
    condition = torch.randn(3, 4)
    generated = model.generate(condition, 9)
    # Teacher forcing on the generated sequence reads exactly what generation fed back.
    torch.testing.assert_close(model(condition, generated).outputs, generated, rtol=1e-5,
                               atol=1e-5)


def test_greedy_tokens_are_the_teacher_forced_choices():
    model = _generator("gru", tokens=True)
    condition = torch.randn(3, 4)
    generated = model.generate(condition, 9, temperature=0)
    torch.testing.assert_close(model(condition, generated).outputs.argmax(dim=-1), generated)


@pytest.mark.parametrize(("cell", "tensors"), [("lstm", 2), ("gru", 1), ("fgr-lstm", 3)])
def test_condition_sets_every_tensor_of_the_initial_state(cell, tensors):
    model = _generator(cell, num_layers=2)
    condition = torch.randn(3, 4)
    state = state_tensors(model.start_state(condition))
    assert len(state) == tensors
    assert all(part.shape[:2] == (2, 3) for part in state)
    other = state_tensors(model.start_state(condition + 1))
    assert all(not torch.allclose(a, b) for a, b in zip(state, other))
