"""Accuracy, the confusion matrix, edit distance, CER and WER on hand-worked cases."""
import numpy as np
import pytest

from scratchnet.metrics import accuracy, cer, confusion_matrix, edit_distance, wer


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


def test_accuracy_and_confusion_matrix_by_hand():
    logits = np.array([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 3.0], [1.0, 0.0, 0.0]])
    y = np.array([0, 1, 1, 2])
    assert accuracy(logits, y) == pytest.approx(0.5)
    assert accuracy(logits, np.array([0, 1, -100, -100])) == pytest.approx(1.0)  # ignored targets
    cm = confusion_matrix(logits, y, 3)
    np.testing.assert_array_equal(cm, [[1, 0, 0], [0, 1, 1], [1, 0, 0]])
    np.testing.assert_array_equal(confusion_matrix(np.array([2, 2]), np.array([0, 2]), 3).sum(axis=0), [0, 0, 2])
    with pytest.raises(ValueError, match="confusion_matrix"):
        confusion_matrix(np.array([3]), np.array([0]), 3)
    with pytest.raises(ValueError, match="accuracy"):
        accuracy(logits, y.astype(np.float32))
