"""Edit distance, CER and WER on hand-worked cases."""
import pytest

from scratchnet.metrics import cer, edit_distance, wer


def test_edit_distance():
    assert edit_distance("kitten", "sitting") == 3
    assert edit_distance("", "abc") == 3
    assert edit_distance("abc", "") == 3
    assert edit_distance("abc", "abc") == 0
    assert edit_distance([1, 2, 3], [1, 3]) == 1
    assert edit_distance("ab", "ba") == 2  # no transpositions in Levenshtein


def test_cer_wer():
    assert cer("3 7 1", "3 7 1") == 0.0
    assert cer("3 7 1", "3 1") == pytest.approx(2 / 5)  # "7" and one space deleted
    assert wer("3 7 1", "3 1") == pytest.approx(1 / 3)
    assert wer("3 7 1", "3 9 1 4") == pytest.approx(2 / 3)  # one substitution, one insertion
    assert wer(["1 2", "3 4 5"], ["1 2", "3 5"]) == pytest.approx(1 / 5)  # pooled over the corpus
    assert cer(["ab", "cd"], ["ab", "c"]) == pytest.approx(1 / 4)
    assert wer("", "") == 0.0


def test_errors():
    with pytest.raises(ValueError):
        cer(["a"], ["a", "b"])
    with pytest.raises(TypeError):
        wer("a", ["a"])
