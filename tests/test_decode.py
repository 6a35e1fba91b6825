"""CTC decoding: collapse, greedy best path, prefix beam search against brute force."""
import itertools

import numpy as np
import pytest

from scratchnet.decode import CharNGramLM, ctc_beam_search, ctc_collapse, ctc_greedy_decode


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


@pytest.mark.parametrize("order", [1, 2, 3])
def test_ngram_lm_is_a_distribution(order):
    lm = CharNGramLM(order, k_add=0.1).fit([[1, 3, 2], [2, 3, 1], [1]], num_labels=4)
    for prefix in [(), (1,), (1, 3), (2, 2, 2)]:
        outcomes = list(range(4)) + [CharNGramLM.END]
        assert sum(np.exp(lm.log_prob(prefix, k)) for k in outcomes) == pytest.approx(1.0)
    bigram = CharNGramLM(2, k_add=1e-6).fit([[1, 3, 2], [2, 1, 3]], num_labels=4)
    assert np.exp(bigram.log_prob((1,), 3)) == pytest.approx(1.0, abs=1e-4)  # 3 always follows 1
    assert np.exp(bigram.log_prob((), 2)) == pytest.approx(0.5, abs=1e-4)  # half the transcripts start with 2


def test_lm_with_zero_weight_changes_nothing(rng):
    x = 2 * rng.standard_normal((3, 6, 4))
    lp = x - np.log(np.exp(x).sum(-1, keepdims=True))
    lm = CharNGramLM(2).fit([[1, 2], [3]], num_labels=4)
    plain = ctc_beam_search(lp, beam_width=6, return_scores=True)
    fused = ctc_beam_search(lp, beam_width=6, return_scores=True, lm=lm, lm_weight=0.0)
    assert plain[0] == fused[0]
    np.testing.assert_allclose(plain[1], fused[1])


@pytest.mark.parametrize("weight,bonus", [(0.5, 0.0), (1.0, 0.7)])
def test_wide_beam_with_lm_is_exact(rng, weight, bonus):
    lm = CharNGramLM(2, k_add=0.5).fit([[1, 2, 1], [2, 2], [1]], num_labels=3)
    for _ in range(3):
        x = 2 * rng.standard_normal((4, 3))
        lp = x - np.log(np.exp(x).sum(-1, keepdims=True))
        scored = {}
        for c, p in _labelling_probs(lp, 0).items():  # log P_ctc + w log P_lm + bonus |c|
            lm_lp = sum(lm.log_prob(c[:i], k) for i, k in enumerate(c)) + lm.log_prob(c, CharNGramLM.END)
            scored[c] = np.log(p) + weight * lm_lp + bonus * len(c)
        best = max(scored, key=scored.get)
        labels, scores = ctc_beam_search(lp, beam_width=1000, return_scores=True, lm=lm, lm_weight=weight,
                                         insertion_bonus=bonus)
        assert tuple(labels[0]) == best
        np.testing.assert_allclose(scores[0], scored[best], rtol=1e-10)


def test_lm_restores_a_missing_separator():
    # classes: 0 blank, 1 "1", 2 "2", 3 space. The space frame is weak: alone, "12" wins.
    probs = np.array([[0.05, 0.9, 0.02, 0.03], [0.6, 0.05, 0.05, 0.3], [0.05, 0.02, 0.9, 0.03]])
    lp = np.log(probs / probs.sum(-1, keepdims=True))
    assert ctc_beam_search(lp, beam_width=8) == [[1, 2]]
    lm = CharNGramLM(2).fit([[1, 3, 2], [2, 3, 1], [1, 3, 1, 3, 2]], num_labels=4)  # digits always spaced
    assert ctc_beam_search(lp, beam_width=8, lm=lm, lm_weight=0.5) == [[1, 3, 2]]


def test_lm_errors():
    with pytest.raises(RuntimeError, match="fit"):
        CharNGramLM(2).log_prob((), 1)
    with pytest.raises(ValueError, match="order"):
        CharNGramLM(0)
    with pytest.raises(TypeError, match="CharNGramLM"):
        ctc_beam_search(np.zeros((2, 3)), lm={"a": 1})
    with pytest.raises(ValueError, match="fitted for 5 classes"):
        ctc_beam_search(np.zeros((2, 3)), lm=CharNGramLM(2).fit([[1]], num_labels=5))
