"""LanguageModel: shapes, state carrying, sampling, and every cell of the catalog."""

import pytest
import torch

from rnnkit import CELL_NAMES
from rnnkit.models import LanguageModel, LanguageModelConfig
from rnnkit.models.language_model import output_penalty
from rnnkit.models.state import detach_state, select_rows, state_from_tensors, state_tensors

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_model(cell: str = "lstm", layers: int = 1, vocab_size: int = 11) -> LanguageModel:
    torch.manual_seed(0)
    return LanguageModel(LanguageModelConfig(vocab_size=vocab_size, cell=cell, embedding_size=6,
                                             hidden_size=8, num_layers=layers))


def test_forward_returns_logits_for_every_position():
    model = tiny_model(layers=2)
    logits, (h, c), loss = model(torch.randint(0, 11, (3, 5)))
    assert logits.shape == (3, 5, 11) and loss is None
    assert h.shape == c.shape == (2, 3, 8)


def test_carrying_the_state_across_chunks_equals_one_long_pass():
    model = tiny_model()
    ids = torch.randint(0, 11, (2, 10))
    whole = model(ids).outputs
    first, state, _ = model(ids[:, :4])
    second = model(ids[:, 4:], state).outputs
    torch.testing.assert_close(torch.cat([first, second], dim=1), whole)


def test_dropout_drops_layer_outputs_but_not_embeddings():
    torch.manual_seed(0)
    model = LanguageModel(LanguageModelConfig(vocab_size=11, embedding_size=6, hidden_size=8,
                                              dropout=0.5)).train()
    seen = {}
    model.head.register_forward_hook(lambda _, args, out: seen.update(head=args[0]))
    ids = torch.randint(0, 11, (4, 16))
    outputs, _ = model.layer(model.embedding(ids))
    model(ids)  # kept entries equal the undropped outputs: the embeddings were not dropped
    kept = seen["head"] != 0
    assert 0.3 < kept.float().mean() < 0.7
    torch.testing.assert_close(seen["head"][kept], 2 * outputs[kept])


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_every_cell_trains_and_samples(cell):
    model = tiny_model(cell, layers=2)
    ids = torch.randint(0, 11, (2, 6))
    _, state, _ = model(ids[:, :-1])
    _, _, loss = model(ids[:, -1:], detach_state(state), targets=ids[:, :1])
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())
    sample = model.generate(torch.tensor([1, 2]), 4, generator=torch.Generator().manual_seed(0))
    assert sample.shape == (4,) and 0 <= int(sample.min()) and int(sample.max()) < 11


def test_generate_with_the_same_generator_seed_repeats():
    model = tiny_model()
    prompt = torch.tensor([3, 1, 4])
    a = model.generate(prompt, 20, generator=torch.Generator().manual_seed(7))
    b = model.generate(prompt, 20, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a, b)


def test_generate_at_temperature_zero_follows_the_most_likely_token():
    model = tiny_model()
    sample = model.generate(torch.tensor([5]), 6, temperature=0.0)
    ids, expected = torch.tensor([5]), []
    for _ in range(6):
        logits = model(ids.unsqueeze(0)).outputs
        expected.append(int(logits[0, -1].argmax()))
        ids = torch.cat([ids, torch.tensor(expected[-1:])])
    assert sample.tolist() == expected


def test_generate_with_top_k_one_is_greedy():
    model = tiny_model()
    greedy = model.generate(torch.tensor([2]), 8, temperature=0.0)
    top1 = model.generate(torch.tensor([2]), 8, temperature=1.5, top_k=1,
                          generator=torch.Generator().manual_seed(1))
    assert torch.equal(greedy, top1)


def test_generate_never_samples_an_excluded_token_even_the_most_likely():
    model = tiny_model()
    with torch.no_grad():
        model.head.bias[3] = 100.0  # token 3 is far the most likely everywhere
    assert set(model.generate(torch.tensor([2]), 8, temperature=0.0).tolist()) == {3}
    for temperature in (0.0, 1.0):
        sample = model.generate(torch.tensor([2]), 50, temperature=temperature, excluded=(3,),
                                generator=torch.Generator().manual_seed(0))
        assert 3 not in sample.tolist()


def test_generate_restores_training_mode():
    model = tiny_model()
    model.train()
    model.generate(torch.tensor([1]), 2)
    assert model.training


@pytest.mark.parametrize("kwargs", [{"length": -1}, {"temperature": -0.5}, {"top_k": 0}])
def test_generate_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        tiny_model().generate(torch.tensor([1]), **{"length": 3, **kwargs})


def test_generate_rejects_an_empty_prompt():
    with pytest.raises(ValueError, match="non-empty"):
        tiny_model().generate(torch.tensor([], dtype=torch.long), 3)


def test_state_helpers_keep_tuple_and_tensor_forms():
    h, c = torch.randn(2, 4, 3), torch.randn(2, 4, 3)
    assert state_from_tensors(state_tensors((h, c)), is_tuple=True)[1] is c
    assert state_from_tensors(state_tensors(h), is_tuple=False) is h
    rows = select_rows((h, c), 1, 3)
    assert rows[0].shape == (2, 2, 3) and torch.equal(rows[1], c[:, 1:3])


def test_generate_refuses_a_diverged_model():
    model = tiny_model()
    with torch.no_grad():
        model.head.bias.fill_(float("nan"))
    with pytest.raises(ValueError, match="not finite"):
        model.generate(torch.tensor([1]), 3)


def test_output_penalty_is_ar_of_the_dropped_outputs_plus_tar_of_the_outputs():
    torch.manual_seed(0)
    outputs = torch.randn(3, 5, 4, dtype=torch.float64)
    dropped = outputs * (torch.rand(3, 5, 4) > 0.5) * 2
    ar = sum(float(x) ** 2 for x in dropped.flatten()) / 60
    tar = sum(float(outputs[b, t + 1, u] - outputs[b, t, u]) ** 2
              for b in range(3) for t in range(4) for u in range(4)) / 48
    penalty = output_penalty(outputs, dropped, 2.0, 0.5)
    assert penalty.dtype == torch.float64
    assert penalty.item() == pytest.approx(2.0 * ar + 0.5 * tar, rel=1e-12)
    assert output_penalty(outputs, dropped, 0.0, 0.5).item() == pytest.approx(0.5 * tar, rel=1e-12)
    assert output_penalty(outputs[:, :1], dropped[:, :1], 0.0, 0.5).item() == 0.0  # one step
    assert output_penalty(outputs.bfloat16(), dropped.bfloat16(), 1.0, 1.0).dtype == torch.float32


@pytest.mark.parametrize("steps", [1, 2, 5])
@pytest.mark.parametrize(("activation", "temporal"), [(1.5, 0.7), (0.0, 0.7), (1.5, 0.0)])
def test_output_penalty_gradcheck(steps, activation, temporal):
    torch.manual_seed(0)
    outputs = torch.randn(2, steps, 3, dtype=torch.float64, requires_grad=True)
    dropped = torch.randn(2, steps, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda o, d: output_penalty(o, d, activation, temporal),
                                    (outputs, dropped))
    # Batch-first views of time-major memory, as the layers return them.
    time_major = torch.randn(steps, 2, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda o, d: output_penalty(o.transpose(0, 1), d, activation, temporal),
        (time_major, dropped))


def test_the_loss_adds_the_output_penalty_in_training_only():
    torch.manual_seed(0)
    model = LanguageModel(LanguageModelConfig(vocab_size=11, embedding_size=6, hidden_size=8,
                                              dropout=0.5, activation_penalty=2.0,
                                              temporal_penalty=1.0)).train()
    seen = {}
    model.head.register_forward_hook(lambda _, args, out: seen.update(head=args[0]))
    ids = torch.randint(0, 11, (4, 17))
    inputs, targets = ids[:, :-1], ids[:, 1:]
    logits, _, loss = model(inputs, targets=targets)
    outputs, _ = model.layer(model.embedding(inputs))
    penalty = output_penalty(outputs, seen["head"], 2.0, 1.0)
    assert penalty > 0
    nats = torch.nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten())
    torch.testing.assert_close(loss, nats + penalty)
    loss.backward()  # the penalty reaches the weights
    assert next(model.layer.parameters()).grad.abs().sum() > 0
    model.eval()
    logits, _, loss = model(inputs, targets=targets)
    torch.testing.assert_close(loss, torch.nn.functional.cross_entropy(logits.flatten(0, 1),
                                                                       targets.flatten()))
    assert model(inputs).loss is None  # no targets, no loss
    plain = tiny_model().train()  # no penalties configured
    logits, _, loss = plain(inputs, targets=targets)
    torch.testing.assert_close(loss, torch.nn.functional.cross_entropy(logits.flatten(0, 1),
                                                                       targets.flatten()))
    assert not hasattr(plain, "penalty")
