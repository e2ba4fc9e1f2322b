"""Forecaster (window -> multi-step forecast) and SequenceTagger (an output at every step)."""

import math

import pytest
import torch
import torch.nn.functional as F

from rnnkit.data import make_windows
from rnnkit.models.forecaster import Forecaster, SequenceTagger

CELLS = ["lstm", "gru", "cifg-lstm", "mingru", "clockwork", "depth-gated-lstm"]


def _depth(cell):
    # The Depth-Gated LSTM links the cells of adjacent layers, so it needs two.
    return 2 if cell == "depth-gated-lstm" else 1


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("cell", CELLS)
def test_forecast_has_horizon_values_per_window_for_every_cell(cell, bidirectional):
    model = Forecaster(horizon=5, cell=cell, hidden_size=8, num_layers=_depth(cell),
                       bidirectional=bidirectional)
    forecast, state, loss = model(torch.randn(4, 12, 1))
    assert forecast.shape == (4, 5) and state is None and loss is None


def test_forecaster_beats_repeating_the_last_value_on_a_sine_wave(one_thread):
    series = torch.sin(torch.arange(400) * 2 * math.pi / 25)
    inputs, targets = make_windows(series, input_length=30, horizon=6)
    model = Forecaster(horizon=6, cell="lstm", hidden_size=16)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    generator = torch.Generator().manual_seed(0)
    for _ in range(40):
        rows = torch.randint(0, len(inputs), (64,), generator=generator)
        loss = model(inputs[rows], targets[rows]).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        error = F.mse_loss(model(inputs).outputs, targets)
    naive_error = F.mse_loss(inputs[:, -1].expand_as(targets), targets)
    assert error < 0.1 * naive_error


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("cell", CELLS)
def test_tagger_gives_an_output_at_every_step_for_every_cell(cell, bidirectional):
    model = SequenceTagger(3, 5, cell=cell, hidden_size=8, num_layers=_depth(cell),
                           bidirectional=bidirectional)
    assert model(torch.randn(4, 9, 3), lengths=[9, 2, 5, 9]).outputs.shape == (4, 9, 5)


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("cell", CELLS)
def test_tagger_ragged_batch_gives_each_sequences_outputs_alone(cell, bidirectional):
    model = SequenceTagger(3, 5, cell=cell, hidden_size=8, num_layers=_depth(cell),
                           bidirectional=bidirectional)
    lengths = [6, 3, 1]
    inputs = torch.randn(3, 6, 3)
    batched = model(inputs, lengths=lengths).outputs
    for row, length in enumerate(lengths):
        alone = model(inputs[row : row + 1, :length]).outputs
        torch.testing.assert_close(batched[row : row + 1, :length], alone, rtol=1e-5, atol=1e-5)


def test_unidirectional_tagger_output_at_a_step_ignores_later_steps():
    model = SequenceTagger(2, 3, cell="gru", hidden_size=8)
    inputs = torch.randn(2, 8, 2)
    changed = inputs.clone()
    changed[:, 5:] = torch.randn(2, 3, 2)
    torch.testing.assert_close(model(inputs).outputs[:, :5], model(changed).outputs[:, :5])
    assert not torch.allclose(model(inputs).outputs[:, 5:], model(changed).outputs[:, 5:])


def test_tagger_loss_counts_each_sequences_valid_steps_only():
    model = SequenceTagger(2, 3, cell="gru", hidden_size=8)
    inputs, lengths = torch.randn(2, 6, 2), torch.tensor([6, 2])
    tags = torch.randint(0, 3, (2, 6))
    logits, _, loss = model(inputs, lengths, targets=tags)
    valid = torch.cat([logits[0], logits[1, :2]]), torch.cat([tags[0], tags[1, :2]])
    torch.testing.assert_close(loss, F.cross_entropy(*valid))
    values = torch.randn(2, 6, 3)
    _, _, loss = model(inputs, lengths, targets=values)
    expected = F.mse_loss(torch.cat([logits[0], logits[1, :2]]),
                          torch.cat([values[0], values[1, :2]]))
    torch.testing.assert_close(loss, expected)
