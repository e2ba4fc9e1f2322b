"""SequenceClassifier: many-to-one over any rnnkit layer."""

import pytest
import torch
import torch.nn.functional as F

from rnnkit.models.classifier import ConvolutionalSummary, SequenceClassifier

CELLS = ["lstm", "gru", "cifg-lstm", "mingru", "clockwork", "depth-gated-lstm"]


def _classifier(cell, **kwargs):
    # The Depth-Gated LSTM links the cells of adjacent layers, so it needs two.
    kwargs.setdefault("num_layers", 2 if cell == "depth-gated-lstm" else 1)
    return SequenceClassifier(3, 4, cell=cell, hidden_size=8, **kwargs).eval()


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("cell", CELLS)
def test_logits_have_one_row_per_sequence_for_every_cell(cell, bidirectional):
    model = _classifier(cell, bidirectional=bidirectional)
    logits, state, loss = model(torch.randn(5, 7, 3), lengths=[7, 6, 3, 1, 7])
    assert logits.shape == (5, 4) and state is None and loss is None


@pytest.mark.parametrize("pooling", ["last", "mean"])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("cell", CELLS)
def test_ragged_batch_gives_the_logits_of_each_sequence_alone(cell, bidirectional, pooling):
    model = _classifier(cell, bidirectional=bidirectional, pooling=pooling)
    lengths = [7, 4, 1]
    # Padding is random, not zero, so that reading it would change the logits.
    inputs = torch.randn(3, 7, 3)
    batched = model(inputs, lengths=torch.tensor(lengths)).outputs
    for row, length in enumerate(lengths):
        alone = model(inputs[row : row + 1, :length]).outputs
        torch.testing.assert_close(batched[row : row + 1], alone, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_one_step_sequences_are_the_one_to_one_case(bidirectional):
    last = _classifier("lstm", bidirectional=bidirectional, pooling="last")
    mean = _classifier("lstm", bidirectional=bidirectional, pooling="mean")
    mean.load_state_dict(last.state_dict())
    inputs = torch.randn(6, 1, 3)
    # With one step, the final state of each direction is the only output.
    torch.testing.assert_close(last(inputs).outputs, mean(inputs).outputs)
    assert last(inputs).outputs.shape == (6, 4)


def _sign_of_mean_batch(size, generator):
    lengths = torch.randint(5, 21, (size,), generator=generator)
    offsets = torch.empty(size, 1, 1).uniform_(-1, 1, generator=generator)
    valid = (torch.arange(20) < lengths.unsqueeze(1)).unsqueeze(-1)
    inputs = (torch.randn(size, 20, 1, generator=generator) + offsets) * valid
    labels = (inputs.sum(dim=(1, 2)) > 0).long()
    return inputs, lengths, labels


def test_learns_the_sign_of_a_ragged_sequences_mean(one_thread):
    generator = torch.Generator().manual_seed(0)
    model = SequenceClassifier(1, 2, cell="gru", hidden_size=16)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(40):
        inputs, lengths, labels = _sign_of_mean_batch(64, generator)
        loss = model(inputs, lengths, targets=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    inputs, lengths, labels = _sign_of_mean_batch(500, torch.Generator().manual_seed(1))
    with torch.no_grad():
        accuracy = (model(inputs, lengths).outputs.argmax(dim=1) == labels).float().mean()
    assert accuracy >= 0.9


def test_regression_outputs_fit_a_sequences_mean(one_thread):
    generator = torch.Generator().manual_seed(0)
    model = SequenceClassifier(1, 1, cell="lstm", hidden_size=16, pooling="mean")
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(60):
        inputs, lengths, _ = _sign_of_mean_batch(64, generator)
        targets = inputs.sum(dim=1) / lengths.unsqueeze(1)
        loss = model(inputs, lengths, targets=targets).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    inputs, lengths, _ = _sign_of_mean_batch(500, torch.Generator().manual_seed(1))
    targets = inputs.sum(dim=1) / lengths.unsqueeze(1)
    with torch.no_grad():
        error = F.mse_loss(model(inputs, lengths).outputs, targets)
    assert error < 0.2 * targets.var()


def test_the_loss_is_cross_entropy_for_classes_and_squared_error_for_values():
    model = _classifier("gru")
    inputs, lengths = torch.randn(3, 5, 3), [5, 2, 4]
    labels, values = torch.tensor([0, 3, 1]), torch.randn(3, 4)
    scores, _, loss = model(inputs, lengths, targets=labels)
    torch.testing.assert_close(loss, F.cross_entropy(scores, labels))
    scores, _, loss = model(inputs, lengths, targets=values)
    torch.testing.assert_close(loss, F.mse_loss(scores, values))


def test_unknown_pooling_is_refused():
    with pytest.raises(ValueError, match="pooling"):
        SequenceClassifier(3, 2, pooling="max")


def test_convolutional_branch_gives_a_ragged_series_the_scores_it_has_alone():
    torch.manual_seed(0)
    # 2 channels in frames of 3 steps: input_size 6
    model = SequenceClassifier(6, 4, hidden_size=8, conv_channels=5, frame=3).eval()
    inputs = torch.randn(3, 7, 6)
    lengths = torch.tensor([7, 4, 2])
    together = model(inputs, lengths).outputs
    for row, length in enumerate(lengths.tolist()):
        alone = model(inputs[row:row + 1, :length], lengths[row:row + 1]).outputs
        torch.testing.assert_close(together[row:row + 1], alone, rtol=1e-5, atol=1e-6)


def test_convolutional_branch_reads_the_steps_inside_the_frames():
    model = SequenceClassifier(6, 4, conv_channels=5, frame=3)
    framed = torch.arange(2 * 4 * 6, dtype=torch.float32).reshape(2, 4, 6)
    steps, lengths = model.steps_of(framed, torch.tensor([4, 2]))
    assert steps.shape == (2, 12, 2) and lengths.tolist() == [12, 6]
    # frame f holds steps 3f, 3f+1, 3f+2, each with its 2 channels side by side
    torch.testing.assert_close(steps[0, 4], framed[0, 1, 2:4])


def test_convolutional_summary_gradients_match_finite_differences():
    torch.manual_seed(0)
    summary = ConvolutionalSummary(2, 3).double()
    inputs = torch.randn(2, 9, 2, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([9, 5])
    assert torch.autograd.gradcheck(lambda x: summary(x, lengths), (inputs,))


@pytest.mark.parametrize("settings, message", [
    ({"frame": 4}, "frame: expected a divisor of input_size 6"),
    ({"conv_channels": -1}, "conv_channels: expected >= 0"),
])
def test_bad_convolution_settings_are_named(settings, message):
    with pytest.raises(ValueError, match=message):
        SequenceClassifier(6, 2, **settings)
