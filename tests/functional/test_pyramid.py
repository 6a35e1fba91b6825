"""The pyramidal time reduction and location-aware attention of chapter 24 (LAS): values, gradient
checks at several shapes and options, wrong inputs, and a PyTorch twin of the attention."""
import numpy as np
import pytest

import scratchnet.functional as F
from scratchnet.gradcheck import assert_gradients
from scratchnet.gradcheck.cases.las import location_args

NAMES = ["query", "keys", "values", "prev_alpha", "wq", "wk", "filters", "wf", "v"]


@pytest.mark.parametrize("shape", [(2, 6, 3), (2, 7, 3), (1, 2, 1), (3, 5, 4)])
def test_pyramid_concat_gradcheck(rng, shape):
    assert_gradients(F.pyramid_concat, F.pyramid_concat_backward, [rng.standard_normal(shape)])


def test_pyramid_concat_values_and_the_odd_frame(rng):
    x = rng.standard_normal((2, 5, 3))
    y, cache = F.pyramid_concat(x)
    assert y.shape == (2, 2, 6)
    np.testing.assert_array_equal(y[:, 1, :3], x[:, 2])
    np.testing.assert_array_equal(y[:, 1, 3:], x[:, 3])
    dx = F.pyramid_concat_backward(np.ones_like(y), cache)
    assert dx.shape == x.shape and np.all(dx[:, 4] == 0) and np.all(dx[:, :4] == 1)  # the dropped frame


def test_pyramid_concat_keeps_float32(rng):
    y, cache = F.pyramid_concat(rng.standard_normal((2, 4, 3)).astype(np.float32))
    assert y.dtype == np.float32 and F.pyramid_concat_backward(np.ones_like(y), cache).dtype == np.float32


def test_pyramid_lengths():
    np.testing.assert_array_equal(F.pyramid_lengths([9, 8, 3]), [4, 4, 1])
    np.testing.assert_array_equal(F.pyramid_lengths([9, 8, 3], levels=3), [1, 1, 0])


@pytest.mark.parametrize("bad", [np.ones((2, 1, 3)), np.ones((4, 3)), np.ones((2, 4, 3), dtype=np.int64)])
def test_pyramid_concat_rejects_bad_input(bad):
    with pytest.raises((ValueError, TypeError), match="pyramid_concat"):
        F.pyramid_concat(bad)


@pytest.mark.parametrize("width,masked", [(3, False), (3, True), (1, False), (5, True)])
def test_location_attention_gradcheck(rng, width, masked):
    args = location_args(rng, Tk=7, width=width)
    mask = None
    if masked:
        mask = rng.random((3, 7)) > 0.4
        mask[:, 0] = True
    assert_gradients(F.location_attention, F.location_attention_backward, args, names=NAMES, mask=mask)


def test_location_attention_without_location_term_is_additive_attention(rng):
    """With wf = 0 the location features add nothing: Bahdanau's additive attention remains."""
    q, k, v_, prev, wq, wk, filters, wf, v = location_args(rng)
    (c1, a1), _ = F.location_attention(q, k, v_, prev, wq, wk, filters, np.zeros_like(wf), v)
    (c2, a2), _ = F.additive_attention(q, k, v_, wq, wk, v)
    np.testing.assert_allclose(c1, c2, atol=1e-12)
    np.testing.assert_allclose(a1, a2, atol=1e-12)


def test_location_attention_masked_weights_are_zero(rng):
    args = location_args(rng)
    mask = np.ones((3, 6), bool)
    mask[1, 4:] = False
    (_, alpha), _ = F.location_attention(*args, mask=mask)
    assert np.all(alpha[1, 4:] == 0) and np.allclose(alpha.sum(axis=1), 1)


def test_location_attention_rejects_bad_shapes(rng):
    args = location_args(rng)
    with pytest.raises(ValueError, match=r"location_attention: expected prev_alpha .* filters \(K, r\) with r odd"):
        F.location_attention(*args[:6], rng.standard_normal((3, 4)), *args[7:])  # an even filter width
    with pytest.raises(ValueError, match="location_attention: expected prev_alpha"):
        F.location_attention(*args[:3], args[3][:, :5], *args[4:])
    with pytest.raises(TypeError, match="location_attention: all float inputs"):
        F.location_attention(*args[:3], args[3].astype(np.float32), *args[4:])


def test_location_attention_matches_pytorch(rng):
    torch = pytest.importorskip("torch")
    args = location_args(rng, Tk=7, width=5)
    mask = np.ones((3, 7), bool)
    mask[2, 5:] = False
    (c, a), cache = F.location_attention(*args, mask=mask)
    dc, da = rng.standard_normal(c.shape), rng.standard_normal(a.shape)
    grads = F.location_attention_backward((dc, da), cache)
    t = [torch.tensor(x, requires_grad=True) for x in args]
    q, k, vals, prev, wq, wk, filt, wf, v = t
    f = torch.nn.functional.conv1d(prev[:, None, :], filt[:, None, :], padding=2).transpose(1, 2)  # (N, Tk, K)
    e = torch.tanh((q @ wq)[:, None] + k @ wk + f @ wf) @ v
    ta = torch.softmax(e.masked_fill(~torch.tensor(mask), -torch.inf), dim=1)
    tc = (ta[:, :, None] * vals).sum(1)
    (tc * torch.tensor(dc)).sum().add((ta * torch.tensor(da)).sum()).backward()
    np.testing.assert_allclose(c, tc.detach().numpy(), atol=1e-12)
    np.testing.assert_allclose(a, ta.detach().numpy(), atol=1e-12)
    for g, x in zip(grads, t):
        np.testing.assert_allclose(g, x.grad.numpy(), atol=1e-10)
