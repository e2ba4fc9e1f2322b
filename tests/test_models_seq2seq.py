"""Seq2Seq (encoder-decoder with optional attention), its loss and its decoders."""

import itertools

import pytest
import torch
import torch.nn.functional as F

from rnnkit.data.cmudict import BOS, EOS, PAD
from rnnkit.models.seq2seq import Seq2Seq

CELLS = ["lstm", "gru", "cifg-lstm", "mingru", "clockwork", "depth-gated-lstm"]


def _model(cell="lstm", source_vocab=12, target_vocab=9, **kwargs):
    # The Depth-Gated LSTM links the cells of adjacent layers, so it needs two.
    kwargs.setdefault("num_layers", 2 if cell == "depth-gated-lstm" else 1)
    kwargs.setdefault("embedding_size", 8)
    kwargs.setdefault("hidden_size", 16)
    return Seq2Seq(source_vocab, target_vocab, cell=cell, **kwargs).eval()


def _sources(batch, steps, vocab=12, generator=None):
    source = torch.randint(3, vocab, (batch, steps), generator=generator)
    lengths = torch.randint(1, steps + 1, (batch,), generator=generator)
    lengths[0] = steps
    return source.masked_fill(torch.arange(steps) >= lengths.unsqueeze(1), PAD), lengths


@pytest.mark.parametrize("attention", [None, "general"])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("cell", CELLS)
def test_logits_score_every_target_step_for_every_cell(cell, bidirectional, attention):
    model = _model(cell, bidirectional=bidirectional, attention=attention)
    source, lengths = _sources(3, 6)
    logits, state, loss = model(source, lengths, torch.randint(3, 9, (3, 4)))
    assert logits.shape == (3, 4, 9) and state is None and loss is None


@pytest.mark.parametrize("attention", [None, "dot", "general"])
@pytest.mark.parametrize("cell", ["lstm", "gru", "clockwork", "depth-gated-lstm"])
def test_ragged_sources_give_the_logits_of_each_source_alone(cell, attention):
    model = _model(cell, bidirectional=attention != "dot", attention=attention)
    source, lengths = _sources(4, 6)
    target_input = torch.randint(3, 9, (4, 5))
    batched = model(source, lengths, target_input).outputs
    for row, length in enumerate(lengths.tolist()):
        alone = model(source[row : row + 1, :length], [length],
                      target_input[row : row + 1]).outputs
        torch.testing.assert_close(batched[row : row + 1], alone, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("cell", CELLS)
def test_step_by_step_decoding_agrees_with_teacher_forcing(cell):
    model = _model(cell, bidirectional=True, attention="general")
    source, lengths = _sources(4, 6)
    decoded = model.greedy_decode(source, lengths, max_length=7)
    # Teacher forcing on the decoder's own output must pick the same token at every step.
    for row, tokens in enumerate(decoded):
        emitted = tokens + [EOS] if len(tokens) < 7 else tokens
        target_input = torch.tensor([[BOS] + emitted[:-1]])
        logits = model(source[row : row + 1], lengths[row : row + 1], target_input).outputs
        assert model.output_log_probs(logits).argmax(dim=-1)[0].tolist() == emitted


def test_dot_attention_refuses_a_bidirectional_encoder():
    with pytest.raises(ValueError, match="attention='dot'"):
        _model(bidirectional=True, attention="dot")


def _reversal_batch(size, generator):
    source = torch.randint(3, 11, (size, 5), generator=generator)
    target = source.flip(1)
    target_input = torch.cat([torch.full((size, 1), BOS), target], dim=1)
    target_output = torch.cat([target, torch.full((size, 1), EOS)], dim=1)
    return source, torch.full((size,), 5), target_input, target_output


def test_learns_to_reverse_five_tokens_with_attention(one_thread):
    generator = torch.Generator().manual_seed(0)
    model = Seq2Seq(11, 11, cell="lstm", embedding_size=32, hidden_size=64,
                    attention="general")
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(150):
        source, lengths, target_input, target_output = _reversal_batch(64, generator)
        loss = model(source, lengths, target_input, target_output).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    source, lengths, _, _ = _reversal_batch(200, torch.Generator().manual_seed(1))
    decoded = model.greedy_decode(source, lengths, max_length=8)
    expected = source.flip(1).tolist()
    correct = sum(a == b for tokens, wanted in zip(decoded, expected)
                  for a, b in zip(tokens, wanted))
    assert correct / (len(expected) * 5) >= 0.9


def test_beam_of_one_is_greedy_decoding():
    model = _model("gru", bidirectional=True, attention="general")
    source, lengths = _sources(8, 6)
    assert model.beam_decode(source, lengths, beam_size=1, max_length=10) == \
        model.greedy_decode(source, lengths, max_length=10)


def _closed(sequences, max_length):
    """Sequences as decoding emitted them: EOS after each one that stopped before max_length."""
    return [tokens + [EOS] if len(tokens) < max_length else tokens for tokens in sequences]


def _peaked(model):
    """The model with unit-variance random weights.

    Torch's default initialisation gives near-uniform outputs, on which every search ends at
    once with EOS; unit-variance weights give peaked, input-dependent outputs like a trained
    model's, so searches differ.
    """
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_()
    return model


def test_beam_finds_sequences_at_least_as_likely_as_greedy():
    model = _peaked(_model("lstm", hidden_size=32, embedding_size=16, attention="general"))
    source, lengths = _sources(16, 6)
    greedy = model.greedy_decode(source, lengths, max_length=10)
    beam = model.beam_decode(source, lengths, beam_size=4, max_length=10)
    greedy_scores = model.sequence_log_probs(source, lengths, _closed(greedy, 10))
    beam_scores = model.sequence_log_probs(source, lengths, _closed(beam, 10))
    assert bool((beam_scores >= greedy_scores - 1e-5).all())
    assert bool((beam_scores > greedy_scores + 1e-5).any())


def test_exhaustive_beam_finds_the_most_likely_sequence():
    # Target vocabulary: PAD, BOS, EOS and two symbols. Up to max_length=4 a step has at most
    # 8 unfinished hypotheses x 3 tokens = 24 candidates, so a beam of 32 prunes nothing and
    # must return the best of all 31 possible outputs.
    model = _peaked(_model("gru", target_vocab=5, attention="general"))
    source, lengths = _sources(12, 5)
    outputs = [list(tokens) + [EOS] for n in range(4) for tokens in
               itertools.product((3, 4), repeat=n)]
    outputs += [list(tokens) for tokens in itertools.product((3, 4), repeat=4)]
    beam = model.beam_decode(source, lengths, beam_size=32, max_length=4)
    for row in range(12):
        scores = model.sequence_log_probs(source[row : row + 1].expand(len(outputs), -1),
                                          lengths[row : row + 1].expand(len(outputs)), outputs)
        best = outputs[int(scores.argmax())]
        assert beam[row] == (best[:-1] if best[-1] == EOS else best)


def test_decoding_leaves_the_model_in_training_mode():
    model = _model("lstm", attention="general", dropout=0.5).train()
    source, lengths = _sources(2, 4)
    first = model.greedy_decode(source, lengths, max_length=6)
    assert model.training
    assert model.greedy_decode(source, lengths, max_length=6) == first


def test_the_loss_is_the_cross_entropy_of_the_targets_that_are_not_padding():
    model = _model("gru", attention="general")
    source, lengths = _sources(3, 6)
    target_input = torch.randint(3, 9, (3, 4))
    targets = torch.randint(3, 9, (3, 4))
    targets[1, 2:] = PAD
    logits, _, loss = model(source, lengths, target_input, targets)
    valid = targets != PAD
    torch.testing.assert_close(loss, F.cross_entropy(logits[valid], targets[valid]))
