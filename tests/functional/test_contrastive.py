"""wav2vec 2.0's losses: gradchecks of the contrastive loss (fixed distractors, several sizes and κ) and
of the diversity loss, their values at known points, parity with PyTorch, the distractor sampler, errors."""
import numpy as np
import pytest

import scratchnet.functional as F
from scratchnet.gradcheck import check_function
from scratchnet.gradcheck.cases import wav2vec2 as cases
from scratchnet.models.wav2vec2 import sample_negatives


def _ok(reports):
    reports = reports if isinstance(reports, list) else [reports]
    bad = [str(r) for r in reports if not r.ok]
    assert not bad, "\n\n".join(bad)


def test_registered_cases():
    _ok(cases.contrastive_case())
    _ok(cases.diversity_case())


@pytest.mark.parametrize("M,D,K,kappa", [(4, 3, 1, 0.1), (10, 6, 5, 1.0)])
def test_contrastive_gradcheck_more_shapes(M, D, K, kappa):
    r = np.random.default_rng(M)
    _ok(check_function(F.contrastive_loss, F.contrastive_loss_backward, cases.contrastive_inputs(r, M, D, K),
                       kappa=kappa))


def test_contrastive_values():
    r = np.random.default_rng(0)
    c = r.standard_normal((4, 3))
    neg = np.array([[1], [0], [3], [2]])
    loss, cache = F.contrastive_loss(c, 2.5 * c, neg, kappa=0.1)  # every target parallel to its context
    cos = (c / np.linalg.norm(c, axis=1, keepdims=True))[[1, 0, 3, 2]] @ (c / np.linalg.norm(c, axis=1)[:, None]).T
    expect = np.mean(np.log1p(np.exp((np.diag(cos) - 1) / 0.1)))
    assert loss == pytest.approx(expect)
    assert (cache.prob.argmax(1) == 0).all() and np.allclose(np.exp(cache.logits).sum(1), 1)


def test_contrastive_matches_pytorch():
    torch = pytest.importorskip("torch")
    r = np.random.default_rng(3)
    c, q, neg = cases.contrastive_inputs(r, 8, 5, 4)
    loss, cache = F.contrastive_loss(c, q, neg, kappa=0.2)
    tc, tq = torch.tensor(c, requires_grad=True), torch.tensor(q, requires_grad=True)
    cand = torch.cat([torch.arange(8)[:, None], torch.tensor(neg)], 1)
    logits = torch.cosine_similarity(tc[:, None, :], tq[cand], dim=-1) / 0.2
    ref = torch.nn.functional.cross_entropy(logits, torch.zeros(8, dtype=torch.long))
    ref.backward()
    assert float(loss) == pytest.approx(ref.item(), rel=1e-10)
    dc, dq = F.contrastive_loss_backward(1.0, cache)
    np.testing.assert_allclose(dc, tc.grad.numpy(), rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(dq, tq.grad.numpy(), rtol=1e-8, atol=1e-12)


def test_diversity_values_and_pytorch():
    G, V = 2, 4
    loss, cache = F.diversity_loss(np.zeros((3, G, V)))  # every entry equally likely: the minimum
    assert loss == pytest.approx(0.0) and np.allclose(cache.perplexity, V)
    peaked = np.full((5, G, V), -50.0)
    peaked[:, :, 0] = 50.0  # every row picks entry 0: perplexity 1 per group
    assert F.diversity_loss(peaked)[0] == pytest.approx((G * V - G) / (G * V))
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(1).standard_normal((6, 3, 5))
    t = torch.tensor(x, requires_grad=True)
    p = torch.softmax(t, -1).mean(0)
    ref = (15 - torch.exp(-(p * torch.log(p)).sum(-1)).sum()) / 15
    ref.backward()
    loss, cache = F.diversity_loss(x)
    assert float(loss) == pytest.approx(ref.item(), rel=1e-10)
    np.testing.assert_allclose(F.diversity_loss_backward(1.0, cache), t.grad.numpy(), rtol=1e-8, atol=1e-14)


def test_sample_negatives_stay_in_their_utterance_and_skip_themselves():
    r = np.random.default_rng(0)
    mask = np.zeros((3, 12), dtype=bool)
    mask[0, 2:7] = mask[1, [0, 5]] = mask[2, 3:12] = True
    neg = sample_negatives(mask, 6, r)
    utt = np.nonzero(mask)[0]  # the utterance of every masked row
    assert neg.shape == (mask.sum(), 6) and neg.dtype == np.int64
    assert (utt[neg] == utt[:, None]).all() and (neg != np.arange(len(utt))[:, None]).all()
    with pytest.raises(ValueError, match="sample_negatives.*2 masked"):
        sample_negatives(np.eye(3, dtype=bool), 2, r)


def test_errors():
    c = np.zeros((4, 3))
    with pytest.raises(ValueError, match="contrastive_loss.*negatives"):
        F.contrastive_loss(c, c, np.array([[1], [4], [0], [0]]))
    with pytest.raises(ValueError, match="contrastive_loss.*\\(M, D\\)"):
        F.contrastive_loss(c, c[:3], np.zeros((4, 1), int))
    with pytest.raises(TypeError, match="contrastive_loss.*negatives"):
        F.contrastive_loss(c, c, np.zeros((4, 1)))
    with pytest.raises(ValueError, match="diversity_loss.*\\(M, G, V\\)"):
        F.diversity_loss(np.zeros((4, 3)))
    _, cache = F.diversity_loss(np.zeros((4, 2, 3)))
    with pytest.raises(ValueError, match="diversity_loss_backward"):
        F.diversity_loss_backward(np.ones(2), cache)


@pytest.mark.parametrize("shape", [(5, 3), (2, 4, 6)])
def test_unit_normalisation_backward(shape):
    # the cosine similarity's inner step: u = x / ||x|| per row and its backward (du - u (u.du)) / ||x||
    from scratchnet.functional.contrastive import _unit, _unit_backward
    x = np.random.default_rng(len(shape)).standard_normal(shape)

    def forward(x):
        u, n = _unit(x)
        return u, (u, n)

    _ok(check_function(forward, lambda du, cache: (_unit_backward(du, *cache),), [x]))
