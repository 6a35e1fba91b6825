"""CTC decoding: collapse, greedy best path, prefix beam search against brute force."""
import itertools

import numpy as np
import pytest

from scratchnet.decode import ctc_beam_search, ctc_collapse, ctc_greedy_decode


def test_collapse():
    assert ctc_collapse([1, 1, 0, 1, 2, 2, 0, 0]) == [1, 1, 2]
    assert ctc_collapse([0, 0, 0]) == []
    assert ctc_collapse([3, 3, 3], blank=3) == []
    assert ctc_collapse([2, 0, 2, 1], blank=1) == [2, 0, 2]


def test_greedy_hand_made():
    probs = np.array([[0.1, 0.8, 0.1], [0.1, 0.8, 0.1], [0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8]])
    assert ctc_greedy_decode(np.log(probs)) == [[1, 1, 2]]
    batch = np.log(np.stack([probs, probs[::-1]]))
    assert ctc_greedy_decode(batch, lengths=np.array([2, 5])) == [[1], [2, 1, 1]]


def test_beam_finds_what_greedy_misses():
    # every frame: blank 0.6, label 0.4. Best path "_ _" gives "", but "a" owns three paths: 0.64 > 0.36
    lp = np.log(np.array([[0.6, 0.4], [0.6, 0.4]]))
    assert ctc_greedy_decode(lp) == [[]]
    labels, scores = ctc_beam_search(lp, beam_width=4, return_scores=True)
    assert labels == [[1]]
    np.testing.assert_allclose(scores[0], np.log(0.64))


def _labelling_probs(lp, blank):
    out = {}
    for path in itertools.product(range(lp.shape[1]), repeat=lp.shape[0]):  # every path
        key = tuple(ctc_collapse(path, blank=blank))
        out[key] = out.get(key, 0.0) + np.exp(sum(lp[t, k] for t, k in enumerate(path)))
    return out


@pytest.mark.parametrize("blank", [0, 2])
def test_wide_beam_is_exact(rng, blank):
    for _ in range(5):
        x = 2 * rng.standard_normal((5, 3))
        lp = x - np.log(np.exp(x).sum(-1, keepdims=True))
        probs = _labelling_probs(lp, blank)
        best = max(probs, key=probs.get)
        labels, scores = ctc_beam_search(lp, beam_width=1000, blank=blank, return_scores=True)
        assert tuple(labels[0]) == best
        np.testing.assert_allclose(np.exp(scores[0]), probs[best], rtol=1e-10)


def test_beam_errors():
    with pytest.raises(ValueError, match="beam_width"):
        ctc_beam_search(np.zeros((2, 3)), beam_width=0)
    with pytest.raises(ValueError, match="lengths"):
        ctc_greedy_decode(np.zeros((1, 2, 3)), lengths=np.array([4]))
