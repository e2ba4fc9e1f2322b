"""Edit distance and the error rate of decoded sequences (rnnkit.models.metrics)."""

import pytest

from rnnkit.models.metrics import edit_distance, error_rate


@pytest.mark.parametrize(("a", "b", "distance"), [
    ("kitten", "sitting", 3),
    ("flaw", "lawn", 2),
    ("", "abc", 3),
    ("abc", "", 3),
    ("same", "same", 0),
    ("4071", "471", 1),
    ([1, 2, 3], [1, 2, 3], 0),
    (["K", "AE", "T"], ["K", "AA", "T", "S"], 2),
])
def test_edit_distance_of_known_pairs(a, b, distance):
    assert edit_distance(a, b) == distance
    assert edit_distance(b, a) == distance


def test_error_rate_is_total_edits_over_total_reference_length():
    references = [["K", "AE", "T"], ["D", "AO", "G"]]
    hypotheses = [["K", "AE", "T"], ["D", "AO"]]
    assert error_rate(references, hypotheses) == pytest.approx(1 / 6)
    assert error_rate(["123", "45"], ["13", "453"]) == pytest.approx(2 / 5)
    assert error_rate(["12"], ["12"]) == 0.0
    with pytest.raises(ValueError, match="hypotheses"):
        error_rate(references, hypotheses[:1])
    with pytest.raises(ValueError, match="references"):
        error_rate([[]], [["A"]])
