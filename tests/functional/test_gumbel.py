"""The Gumbel-softmax pair: gradchecks of the soft sample (fixed noise, several shapes and temperatures),
the straight-through form (a one-hot forward whose backward is the soft sample's), the noise's law, parity
with PyTorch, and errors."""
import numpy as np
import pytest

import scratchnet.functional as F
from scratchnet.gradcheck import check_function
from scratchnet.gradcheck.cases import wav2vec2 as cases


def _ok(reports):
    reports = reports if isinstance(reports, list) else [reports]
    bad = [str(r) for r in reports if not r.ok]
    assert not bad, "\n\n".join(bad)


def test_registered_cases():
    _ok(cases.gumbel_case())


@pytest.mark.parametrize("shape,tau", [((4, 6), 1.0), ((2, 3, 2, 4), 0.3), ((5,), 3.0)])
def test_soft_gradcheck_more_shapes(shape, tau):
    r = np.random.default_rng(len(shape))
    logits, noise = cases.gumbel_inputs(r, shape)
    _ok(check_function(F.gumbel_softmax, F.gumbel_softmax_backward, [logits], tau=tau, hard=False, noise=noise))


def test_hard_forward_is_one_hot_of_the_perturbed_argmax_and_backward_is_straight_through():
    r = np.random.default_rng(1)
    logits, noise = cases.gumbel_inputs(r, (6, 2, 5))
    y, cache = F.gumbel_softmax(logits, tau=0.5, hard=True, noise=noise)
    assert set(np.unique(y)) == {0.0, 1.0} and np.all(y.sum(-1) == 1)
    np.testing.assert_array_equal(y.argmax(-1), (logits + noise).argmax(-1))
    y_soft, cache_soft = F.gumbel_softmax(logits, tau=0.5, hard=False, noise=noise)
    dy = r.standard_normal(y.shape)
    np.testing.assert_allclose(F.gumbel_softmax_backward(dy, cache), F.gumbel_softmax_backward(dy, cache_soft))
    # the surrogate: the finite difference of the hard forward is zero almost everywhere
    num = (F.gumbel_softmax(logits + 1e-6, tau=0.5, noise=noise)[0] - y) / 1e-6
    assert not num.any()


def test_noise_is_standard_gumbel_and_the_sample_follows_the_softmax():
    g = F.gumbel_noise((200_000,), rng=0)
    assert abs(g.mean() - 0.5772) < 0.01 and abs(g.var() - np.pi ** 2 / 6) < 0.03
    logits = np.log(np.array([0.1, 0.2, 0.7]))  # the Gumbel-max trick: argmax(l + g) ~ softmax(l)
    y, _ = F.gumbel_softmax(np.broadcast_to(logits, (50_000, 3)).copy(), tau=1.0, rng=np.random.default_rng(3))
    np.testing.assert_allclose(y.mean(0), [0.1, 0.2, 0.7], atol=0.01)


def test_float32_stays_float32_and_rng_draws_are_reproducible():
    logits = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    y1, c1 = F.gumbel_softmax(logits, tau=2.0, rng=np.random.default_rng(5))
    y2, _ = F.gumbel_softmax(logits, tau=2.0, rng=np.random.default_rng(5))
    assert y1.dtype == np.float32 and F.gumbel_softmax_backward(np.ones_like(y1), c1).dtype == np.float32
    np.testing.assert_array_equal(y1, y2)


def test_matches_pytorch_straight_through():
    torch = pytest.importorskip("torch")
    r = np.random.default_rng(2)
    logits, noise = cases.gumbel_inputs(r, (4, 2, 6))
    dy = r.standard_normal(logits.shape)
    y, cache = F.gumbel_softmax(logits, tau=0.7, hard=True, noise=noise)
    t = torch.tensor(logits, requires_grad=True)
    soft = torch.softmax((t + torch.tensor(noise)) / 0.7, dim=-1)
    hard = torch.nn.functional.one_hot(soft.argmax(-1), 6).double()
    yt = hard - soft.detach() + soft  # PyTorch's straight-through idiom
    yt.backward(torch.tensor(dy))
    np.testing.assert_allclose(y, yt.detach().numpy(), atol=1e-12)
    np.testing.assert_allclose(F.gumbel_softmax_backward(dy, cache), t.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_errors():
    x = np.zeros((2, 3))
    with pytest.raises(ValueError, match="gumbel_softmax.*tau"):
        F.gumbel_softmax(x, tau=0.0)
    with pytest.raises(ValueError, match="gumbel_softmax.*noise"):
        F.gumbel_softmax(x, noise=np.zeros((2, 4)))
    with pytest.raises(TypeError, match="gumbel_softmax.*float"):
        F.gumbel_softmax(np.zeros((2, 3), int))
    _, cache = F.gumbel_softmax(x, noise=np.zeros((2, 3)))
    with pytest.raises(ValueError, match="gumbel_softmax_backward"):
        F.gumbel_softmax_backward(np.zeros((2, 2)), cache)
