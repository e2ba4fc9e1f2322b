"""Tests for rnnkit.models.ctc: CTC loss, decoding, line accuracy and the line recognizer."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from rnnkit.models.ctc import (
    BLANK,
    LineRecognizer,
    LineRecognizerConfig,
    beam_decode,
    collapse_path,
    ctc_loss,
    greedy_decode,
    line_accuracy,
    prefix_beam_search,
    reverse_within,
)


def labelling_probabilities(log_probs: torch.Tensor) -> dict[tuple[int, ...], float]:
    """Every labelling's probability by brute force: the sum over all its paths."""
    steps, classes = log_probs.shape
    found: dict[tuple[int, ...], float] = {}
    for path in itertools.product(range(classes), repeat=steps):
        labelling = tuple(collapse_path(path))
        found[labelling] = found.get(labelling, 0.0) + math.exp(
            sum(log_probs[t, c].item() for t, c in enumerate(path)))
    return found


def test_collapse_path_merges_repeats_then_drops_blanks() -> None:
    assert collapse_path([1, 1, 0, 1, 2, 2, 0, 0, 3]) == [1, 1, 2, 3]
    assert collapse_path([0, 0, 0]) == []


def test_greedy_decode_takes_each_steps_best_class_within_each_length() -> None:
    paths = torch.tensor([[1, 1, 0, 1, 2, 3], [2, 0, 2, 2, 1, 1]])
    log_probs = torch.nn.functional.one_hot(paths, 4).float().clamp(1e-3).log()
    assert greedy_decode(log_probs, lengths=[6, 4]) == [[1, 1, 2, 3], [2, 2]]


def test_beam_search_finds_the_likeliest_labelling_where_the_likeliest_path_misleads() -> None:
    # Two steps, classes (blank, a), p(a) = 0.4 at each: the best path is "blank blank"
    # (0.36), but the labelling "a" has three paths: aa, a-, -a (0.16 + 0.24 + 0.24 = 0.64).
    table = torch.tensor([[0.6, 0.4], [0.6, 0.4]]).log()
    assert greedy_decode(table) == [[]]
    beams = prefix_beam_search(table, beam_size=4)
    assert beams[0][0] == [1]
    assert math.exp(beams[0][1]) == pytest.approx(0.64)


def test_beam_search_does_not_double_a_label_without_a_blank_between() -> None:
    # "a" at every step is one label "a"; "a a" needs a blank in between, which is unlikely.
    table = torch.tensor([[0.05, 0.9, 0.05]] * 3).log()
    assert prefix_beam_search(table, beam_size=5)[0][0] == [1]


def test_beam_search_prefers_the_labelling_greedy_splits_across_paths() -> None:
    # Classes (blank, a, b). "b" is the most likely class at no step, so best path reads "a"
    # (blank, blank, a); yet the paths of "b" add up to 0.324 against 0.273 for "a".
    table = torch.tensor([[0.8, 0.1, 0.1], [0.6, 0.1, 0.3], [0.3, 0.4, 0.3]]).log()
    exact = labelling_probabilities(table)
    assert greedy_decode(table) == [[1]]
    assert exact[(2,)] == pytest.approx(0.324) and exact[(1,)] == pytest.approx(0.273)
    beams = prefix_beam_search(table, beam_size=3)
    assert beams[0][0] == [2] and math.exp(beams[0][1]) == pytest.approx(0.324)


def test_beam_search_with_a_full_beam_gives_exact_labelling_probabilities() -> None:
    generator = torch.Generator().manual_seed(3)
    for _ in range(10):
        table = torch.randn(5, 3, generator=generator).log_softmax(-1)
        exact = labelling_probabilities(table)
        beams = prefix_beam_search(table, beam_size=len(exact) + 10)
        assert {tuple(labels) for labels, _ in beams} == set(exact)
        for labels, score in beams:
            assert math.exp(score) == pytest.approx(exact[tuple(labels)], abs=1e-12)
        assert tuple(beams[0][0]) == max(exact, key=exact.get)


def test_beam_of_one_equals_greedy_on_peaked_distributions() -> None:
    generator = torch.Generator().manual_seed(0)
    for _ in range(30):
        path = torch.randint(0, 5, (12,), generator=generator)
        logits = torch.randn(12, 5, generator=generator)
        logits[torch.arange(12), path] += 8.0
        table = logits.log_softmax(-1)
        assert prefix_beam_search(table, beam_size=1)[0][0] == greedy_decode(table)[0]


def test_beam_decode_reads_each_sequence_within_its_length() -> None:
    paths = torch.tensor([[1, 0, 2, 2, 0], [3, 3, 0, 3, 1]])
    log_probs = torch.nn.functional.one_hot(paths, 4).float().clamp(1e-3).log()
    assert beam_decode(log_probs, lengths=[5, 3]) == [[1, 2], [3]]


def test_ctc_loss_is_minus_log_probability_of_the_target_labelling() -> None:
    generator = torch.Generator().manual_seed(1)
    table = torch.randn(5, 3, generator=generator).log_softmax(-1)
    exact = labelling_probabilities(table)
    loss = ctc_loss(table.unsqueeze(0), [5], torch.tensor([[2, 1]]), [2])
    assert math.exp(-loss.item()) == pytest.approx(exact[(2, 1)], rel=1e-4)


def test_line_accuracy_counts_lines_read_exactly() -> None:
    assert line_accuracy([[1, 2], [3], [4, 5]], [[1, 2], [3, 3], [4, 5]]) == pytest.approx(2 / 3)


def test_line_recognizer_rows_of_a_padded_batch_equal_single_lines() -> None:
    model = LineRecognizer(LineRecognizerConfig(hidden_size=16, feature_size=8)).eval()
    columns = torch.rand(2, 40, 32)
    columns[1, 25:] = 0.0
    batched = model(columns, lengths=[40, 25]).outputs
    alone = model(columns[1:, :25], lengths=[25]).outputs
    assert torch.allclose(batched[1, :25], alone[0], atol=1e-5)
    assert torch.equal(batched[1, 25:].argmax(-1), torch.full((15,), BLANK))
    assert torch.all(batched[1, 25:, BLANK] == 0.0)


@pytest.mark.parametrize("cell", ["gru", "mingru", "cifg-lstm"])
def test_line_recognizer_trains_over_any_cell(cell: str) -> None:
    model = LineRecognizer(LineRecognizerConfig(cell=cell, hidden_size=12, feature_width=1))
    labels, label_lengths = torch.tensor([[1, 2], [3, 0], [4, 4]]), torch.tensor([2, 1, 2])
    log_probs, _, loss = model(torch.rand(3, 30, 32), [30, 20, 12], (labels, label_lengths))
    # The loss is CTC's in nats per label: the batch's total over its 5 labels.
    per_line = ctc_loss(log_probs, [30, 20, 12], labels, label_lengths)
    torch.testing.assert_close(loss, per_line * 3 / 5)
    loss.backward()
    assert log_probs.shape == (3, 30, 11) and math.isfinite(loss.item())
    assert all(p.grad is not None for p in model.directions.parameters())


def test_ctc_loss_equals_torchs_on_a_ragged_batch() -> None:
    generator = torch.Generator().manual_seed(2)
    log_probs = torch.randn(3, 9, 5, generator=generator).log_softmax(-1).requires_grad_()
    lengths, target_lengths = [9, 6, 4], [3, 2, 1]
    targets = torch.tensor([[1, 2, 2], [3, 4, 0], [4, 0, 0]])
    ours = ctc_loss(log_probs, lengths, targets, target_lengths)
    theirs = torch.nn.functional.ctc_loss(log_probs.transpose(0, 1), targets, lengths,
                                          target_lengths, reduction="sum") / 3
    assert ours.item() == pytest.approx(theirs.item(), rel=1e-6)
    (grad_ours,) = torch.autograd.grad(ours, log_probs)
    (grad_theirs,) = torch.autograd.grad(theirs, log_probs)
    assert torch.allclose(grad_ours, grad_theirs, atol=1e-6)


def test_beam_search_keeps_a_repeat_split_by_a_blank() -> None:
    # "a - a" is the labelling "a a"; "a a a" would be just "a".
    table = torch.tensor([[0.02, 0.96, 0.02], [0.96, 0.02, 0.02], [0.02, 0.96, 0.02]]).log()
    assert prefix_beam_search(table, beam_size=4)[0][0] == [1, 1]
    assert greedy_decode(table) == [[1, 1]]


def test_beam_and_greedy_agree_on_peaked_batches_of_ragged_sequences() -> None:
    generator = torch.Generator().manual_seed(5)
    paths = torch.randint(0, 4, (4, 15), generator=generator)
    logits = torch.randn(4, 15, 4, generator=generator)
    logits.scatter_add_(2, paths.unsqueeze(-1), torch.full((4, 15, 1), 10.0))
    log_probs, lengths = logits.log_softmax(-1), [15, 11, 7, 1]
    assert beam_decode(log_probs, lengths, beam_size=6) == greedy_decode(log_probs, lengths)


def test_reverse_within_flips_each_row_inside_its_length_and_undoes_itself() -> None:
    rows = torch.arange(12.0).view(2, 6, 1)
    flipped = reverse_within(rows, [6, 4])
    assert flipped[:, :, 0].tolist() == [[5, 4, 3, 2, 1, 0], [9, 8, 7, 6, 10, 11]]
    assert torch.equal(reverse_within(flipped, [6, 4]), rows)


def test_unidirectional_recognizer_is_causal() -> None:
    model = LineRecognizer(LineRecognizerConfig(hidden_size=8, bidirectional=False)).eval()
    columns = torch.rand(1, 20, 32)
    changed = columns.clone()
    changed[0, 12:] = torch.rand(8, 32)
    before, after = model(columns).outputs, model(changed).outputs
    assert torch.allclose(before[0, :11], after[0, :11], atol=1e-6)
    assert not torch.allclose(before[0, 13:], after[0, 13:])


def test_docstring_examples_of_the_module_run() -> None:
    import doctest

    import rnnkit.models.ctc as module

    result = doctest.testmod(module, extraglobs={"torch": torch, "math": math})
    assert result.attempted >= 4 and result.failed == 0
