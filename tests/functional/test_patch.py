"""patchify / unpatchify / prepend_token: gradchecks, the inverse pair, the strided-conv identity, errors."""
import numpy as np
import pytest

import scratchnet.functional as F
from scratchnet.gradcheck import assert_gradients


@pytest.mark.parametrize("shape,p", [((2, 1, 4, 4), 2), ((1, 3, 6, 9), 3), ((2, 2, 4, 6), 1), ((1, 1, 4, 4), 4)])
def test_patchify_gradcheck(rng, shape, p):
    assert_gradients(F.patchify, F.patchify_backward, [rng.standard_normal(shape)], patch_size=p)


@pytest.mark.parametrize("channels,image,p", [(1, 4, 2), (3, (4, 6), 2)])
def test_unpatchify_gradcheck(rng, channels, image, p):
    H, W = (image, image) if isinstance(image, int) else image
    y = rng.standard_normal((2, (H // p) * (W // p), channels * p * p))
    assert_gradients(F.unpatchify, F.unpatchify_backward, [y], patch_size=p, image_size=image, channels=channels)


@pytest.mark.parametrize("N,L,D", [(1, 1, 3), (3, 4, 5)])
def test_prepend_token_gradcheck(rng, N, L, D):
    assert_gradients(F.prepend_token, F.prepend_token_backward, [rng.standard_normal((N, L, D)),
                                                                  rng.standard_normal(D)])


def test_patch_layout_and_inverse(rng):
    x = np.arange(2 * 3 * 4 * 6, dtype=np.float32).reshape(2, 3, 4, 6)
    y, cache = F.patchify(x, patch_size=2)
    assert y.shape == (2, 6, 12) and y.dtype == np.float32
    # patch (i, j) = row i·(W/p) + j; its features run over (c, u, v)
    np.testing.assert_array_equal(y[1, 1 * 3 + 2], x[1, :, 2:4, 4:6].reshape(-1))
    back, _ = F.unpatchify(y, patch_size=2, image_size=(4, 6), channels=3)
    np.testing.assert_array_equal(back, x)
    np.testing.assert_array_equal(F.patchify_backward(y, cache), x)  # a permutation: backward = inverse


def test_patchify_then_linear_is_a_strided_conv(rng):
    x, w, b = rng.standard_normal((2, 3, 8, 8)), rng.standard_normal((12, 5)), rng.standard_normal(5)
    y, _ = F.linear(F.patchify(x, patch_size=2)[0], w, b)  # (N, L, D)
    conv, _ = F.conv2d(x, w.T.reshape(5, 3, 2, 2), b, stride=2)  # (N, D, 4, 4)
    np.testing.assert_allclose(y, conv.reshape(2, 5, 16).transpose(0, 2, 1), atol=1e-12)


def test_prepend_token_values(rng):
    x, tok = rng.standard_normal((3, 2, 4)), rng.standard_normal(4)
    y, cache = F.prepend_token(x, tok)
    np.testing.assert_array_equal(y[:, 0], np.broadcast_to(tok, (3, 4)))
    np.testing.assert_array_equal(y[:, 1:], x)
    dx, dtok = F.prepend_token_backward(np.ones_like(y), cache)
    np.testing.assert_array_equal(dtok, np.full(4, 3.0))  # used by 3 sequences
    assert dx.shape == x.shape


def test_patch_errors(rng):
    with pytest.raises(ValueError, match="patchify.*divisible"):
        F.patchify(rng.standard_normal((1, 1, 5, 4)), patch_size=2)
    with pytest.raises(ValueError, match="patchify"):
        F.patchify(rng.standard_normal((4, 4)), patch_size=2)
    with pytest.raises(ValueError, match="unpatchify"):
        F.unpatchify(rng.standard_normal((1, 4, 5)), patch_size=2, image_size=4)
    with pytest.raises(ValueError, match="prepend_token"):
        F.prepend_token(rng.standard_normal((1, 2, 3)), rng.standard_normal(4))
    _, cache = F.patchify(rng.standard_normal((1, 1, 4, 4)), patch_size=2)
    with pytest.raises(ValueError, match="patchify_backward"):
        F.patchify_backward(rng.standard_normal((1, 4, 3)), cache)
