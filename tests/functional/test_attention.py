"""Attention pairs: gradchecks with and without masks, exact zeros where masked, errors, PyTorch parity."""
import numpy as np
import pytest

import scratchnet.functional as F
from scratchnet.gradcheck import assert_gradients

SDPA = (F.scaled_dot_product_attention, F.scaled_dot_product_attention_backward)


def qkv(rng, lead=(2, 3), Tq=4, Tk=5, dk=6, dv=3, dtype=np.float64):
    return tuple(rng.standard_normal(lead + s).astype(dtype) for s in ((Tq, dk), (Tk, dk), (Tk, dv)))


@pytest.mark.parametrize("lead,Tq,Tk", [((), 3, 3), ((2,), 4, 5), ((2, 3), 5, 2)])
def test_sdpa_gradcheck_shapes(rng, lead, Tq, Tk):
    assert_gradients(*SDPA, list(qkv(rng, lead, Tq, Tk)))


@pytest.mark.parametrize("Tq,Tk", [(4, 4), (2, 5)])
def test_sdpa_gradcheck_causal(rng, Tq, Tk):
    assert_gradients(*SDPA, list(qkv(rng, (2,), Tq, Tk)), causal=True)


def test_sdpa_gradcheck_mask_and_dropout(rng):
    q, k, v = qkv(rng)
    keep = rng.random((2, 1, 4, 5)) > 0.3  # broadcast over heads
    dmask = (rng.random((2, 3, 4, 5)) > 0.2) / 0.8
    assert_gradients(*SDPA, [q, k, v], mask=keep)
    assert_gradients(*SDPA, [q, k, v], mask=keep, causal=True, dropout_mask=dmask)
    assert_gradients(*SDPA, [q, k, v], mask=rng.random((5,)) > 0.4)  # a key padding row, broadcast


def test_masked_keys_get_exactly_zero_gradient(rng):
    q, k, v = qkv(rng, (2,), 3, 5)
    keep = np.ones((2, 1, 5), bool)
    keep[0, 0, 3:] = False  # batch 0: keys 3, 4 are padding
    y, cache = F.scaled_dot_product_attention(q, k, v, mask=keep)
    dq, dk, dv = F.scaled_dot_product_attention_backward(rng.standard_normal(y.shape), cache)
    assert np.all(cache.p[0, :, 3:] == 0.0)
    assert np.all(dk[0, 3:] == 0.0) and np.all(dv[0, 3:] == 0.0)
    y2, _ = F.scaled_dot_product_attention(q, k, v * np.where(keep[:, 0, :, None], 1.0, 1e6), mask=keep)
    np.testing.assert_array_equal(y, y2)  # masked values cannot leak into the output


def test_causal_future_gets_zero_gradient(rng):
    q, k, v = qkv(rng, (1,), 4, 4)
    y, cache = F.scaled_dot_product_attention(q, k, v, causal=True)
    assert np.all(np.triu(cache.p[0], 1) == 0.0)
    dy = np.zeros_like(y)
    dy[0, 1] = 1.0  # only query 1 receives a gradient: keys 2, 3 are its future
    _, dk, dv = F.scaled_dot_product_attention_backward(dy, cache)
    assert np.all(dk[0, 2:] == 0.0) and np.all(dv[0, 2:] == 0.0)


def test_fully_masked_row_is_zero_not_nan(rng):
    q, k, v = qkv(rng, (1,), 3, 4)
    keep = np.ones((3, 4), bool)
    keep[1] = False
    y, cache = F.scaled_dot_product_attention(q, k, v, mask=keep)
    assert np.all(np.isfinite(y)) and np.all(y[0, 1] == 0.0)
    dq, dk, dv = F.scaled_dot_product_attention_backward(np.ones_like(y), cache)
    assert np.all(np.isfinite(dq)) and np.all(dq[0, 1] == 0.0)
    assert_gradients(*SDPA, [q, k, v], mask=keep)


def test_sdpa_matches_definition_and_keeps_dtype(xp, rng):
    from scratchnet.backend import asnumpy
    q, k, v = qkv(rng, (2,), 3, 4, dtype=np.float32)
    y, _ = F.scaled_dot_product_attention(xp.asarray(q), xp.asarray(k), xp.asarray(v), causal=True)
    assert y.dtype == np.float32
    s = q @ np.swapaxes(k, -1, -2) / np.sqrt(6)
    s = np.where(np.tril(np.ones((3, 4), bool), 1), s, -np.inf)  # bottom-right causal: j <= i + 1
    p = np.exp(s - s.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    np.testing.assert_allclose(asnumpy(y), p @ v, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("with_mask", [False, True])
def test_additive_attention_gradcheck(rng, with_mask):
    args = [rng.standard_normal(s) for s in ((3, 4), (3, 5, 6), (3, 5, 2), (4, 7), (6, 7), (7,))]
    mask = rng.random((3, 5)) > 0.3 if with_mask else None
    if mask is not None:
        mask[:, 0] = True
    assert_gradients(F.additive_attention, F.additive_attention_backward, args, mask=mask)


@pytest.mark.parametrize("general,with_mask", [(False, False), (True, False), (True, True)])
def test_dot_attention_gradcheck(rng, general, with_mask):
    Dq = 4 if general else 6
    args = [rng.standard_normal((3, Dq)), rng.standard_normal((3, 5, 6)), rng.standard_normal((3, 5, 2))]
    if general:
        args.append(rng.standard_normal((4, 6)))
    mask = rng.random((3, 5)) > 0.3 if with_mask else None
    if mask is not None:
        mask[:, 0] = True
    assert_gradients(F.dot_attention, F.dot_attention_backward, args, mask=mask)


def test_seq_attention_weights_sum_to_one_over_kept_keys(rng):
    mask = np.array([[True, True, False], [True, False, False]])
    (ctx, a), _ = F.dot_attention(rng.standard_normal((2, 4)), rng.standard_normal((2, 3, 4)),
                                  rng.standard_normal((2, 3, 2)), mask=mask)
    np.testing.assert_allclose(a.sum(-1), 1.0)
    assert np.all(a[~mask] == 0.0)


def test_errors(rng):
    q, k, v = qkv(rng, (2,), 3, 4)
    with pytest.raises(ValueError, match="does not broadcast"):
        F.scaled_dot_product_attention(q, k, v, mask=np.ones((3, 5), bool))
    with pytest.raises(TypeError, match="boolean"):
        F.scaled_dot_product_attention(q, k, v, mask=np.ones((3, 4)))
    with pytest.raises(ValueError, match="same leading axes"):
        F.scaled_dot_product_attention(q, k[:, :, :2], v)
    with pytest.raises(ValueError, match=r"mask of shape \(N, Tk\)"):
        F.additive_attention(*[rng.standard_normal(s) for s in ((3, 4), (3, 5, 6), (3, 5, 2), (4, 7), (6, 7), (7,))],
                             mask=np.ones((3, 4), bool))


def test_sdpa_parity_with_torch(rng):
    torch = pytest.importorskip("torch")
    q, k, v = qkv(rng, (2, 3), 5, 5)
    keep = rng.random((2, 1, 5, 5)) > 0.3
    keep[..., 0] = True
    for kw, tkw in ((dict(causal=True), dict(is_causal=True)), (dict(mask=keep), dict(attn_mask=torch.tensor(keep)))):
        y, cache = F.scaled_dot_product_attention(q, k, v, **kw)
        tq, tk, tv = (torch.tensor(a, requires_grad=True) for a in (q, k, v))
        ty = torch.nn.functional.scaled_dot_product_attention(tq, tk, tv, **tkw)
        dy = rng.standard_normal(y.shape)
        ty.backward(torch.tensor(dy))
        np.testing.assert_allclose(y, ty.detach().numpy(), atol=1e-10)
        for a, t in zip(F.scaled_dot_product_attention_backward(dy, cache), (tq, tk, tv)):
            np.testing.assert_allclose(a, t.grad.numpy(), atol=1e-10)


def test_masked_softmax_gradcheck_and_zero_rows(rng):
    from scratchnet.functional.attention import masked_softmax, masked_softmax_backward
    s = rng.standard_normal((2, 3, 5))
    keep = rng.random((2, 3, 5)) > 0.3
    keep[0, 1] = False  # a fully masked row

    def fwd(s):
        p = masked_softmax(s, keep)
        return p, p

    assert_gradients(fwd, masked_softmax_backward, [s])
    p = masked_softmax(s, keep)
    assert np.all(p[~keep] == 0.0) and np.all(p[0, 1] == 0.0) and np.all(np.isfinite(p))


@pytest.mark.parametrize("masked", [False, True])
def test_read_step_gradcheck(rng, masked):
    """The read-out both encoder–decoder attentions share: (context, weights) = _read(e, mask, values)."""
    from scratchnet.functional.attention import _read, _read_backward
    N, Tk, Dv = 3, 5, 4
    mask = np.array([[True] * 5, [True, True, True, False, False], [False, True, True, True, True]]) if masked else None

    def forward(e, values):
        context, alpha = _read(e, mask, values)
        return (context, alpha), (alpha, values)

    def backward(dout, cache):
        return _read_backward(dout, *cache)

    assert_gradients(forward, backward, [rng.standard_normal((N, Tk)), rng.standard_normal((N, Tk, Dv))])
    # masked keys get exactly zero gradient
    if masked:
        (_, alpha), cache = forward(rng.standard_normal((N, Tk)), rng.standard_normal((N, Tk, Dv)))
        de, dvalues = backward((rng.standard_normal((N, Dv)), rng.standard_normal((N, Tk))), cache)
        assert np.all(de[~mask] == 0) and np.all(dvalues[~mask] == 0)
