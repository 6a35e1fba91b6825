"""Images ↔ patch sequences, and the [CLS] token prepend of the Vision Transformer (pure reshapes/copies).

Legend: N batch, C channels, H, W image size, p patch size, L = (H/p)(W/p) patches, P = C·p·p, D features.
See chapters/23-vit.md#patchify.
"""
from __future__ import annotations

from .._checks import check_grad
from ..backend import get_array_module

__all__ = ["patchify", "patchify_backward", "unpatchify", "unpatchify_backward",
           "prepend_token", "prepend_token_backward"]


def _grid(op, shape, p):
    if len(shape) != 4 or shape[2] % p or shape[3] % p:
        raise ValueError(f"{op}: expected an image batch (N, C, H, W) with H and W divisible by patch_size={p}, "
                         f"got shape {tuple(shape)}")
    N, C, H, W = shape
    return N, C, H // p, W // p


# start-patchify
def patchify(x, *, patch_size):
    """(N, C, H, W) → (N, L, C·p·p): patch (i, j) becomes row i·(W/p) + j, flattened channel-first (c, u, v).

    A pure permutation of x's entries, so backward puts every entry back:
    dx = unpatchify(dy), i.e. dy reshaped to (N, H/p, W/p, C, p, p) and the axes transposed back.
    See chapters/23-vit.md#eq-patchify.
    """
    p = patch_size
    N, C, Hp, Wp = _grid("patchify", x.shape, p)
    t = x.reshape(N, C, Hp, p, Wp, p)  # (N, C, H/p, p, W/p, p): split each image axis in two
    t = t.transpose(0, 2, 4, 1, 3, 5)  # (N, H/p, W/p, C, p, p): the patch grid first
    y = t.reshape(N, Hp * Wp, C * p * p)  # (N, L, P) a copy (the transpose is not contiguous)
    return y, (x.shape, p, y.dtype)


def patchify_backward(dy, cache):
    """dx (N, C, H, W): the inverse permutation of the forward, applied to dy (N, L, P)."""
    shape, p, dtype = cache
    N, C, Hp, Wp = shape[0], shape[1], shape[2] // p, shape[3] // p
    check_grad("patchify_backward", "dy", dy, (N, Hp * Wp, C * p * p), dtype)
    t = dy.reshape(N, Hp, Wp, C, p, p)  # (N, H/p, W/p, C, p, p) undo the last reshape
    t = t.transpose(0, 3, 1, 4, 2, 5)  # (N, C, H/p, p, W/p, p) the inverse transpose
    return t.reshape(shape)  # (N, C, H, W)
# end-patchify


def unpatchify(y, *, patch_size, image_size, channels=1):
    """(N, L, C·p·p) → (N, C, H, W), the inverse of ``patchify``; image_size is H = W or (H, W).

    Backward: dy = patchify(dx). See chapters/23-vit.md#patchify.
    """
    H, W = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    p = patch_size
    if y.ndim != 3 or H % p or W % p or y.shape[1:] != ((H // p) * (W // p), channels * p * p):
        raise ValueError(f"unpatchify: expected (N, L, P) = (N, {(H // p) * (W // p)}, {channels * p * p}) for "
                         f"{channels}×{H}×{W} images and patch_size={p}, got shape {tuple(y.shape)}")
    shape = (y.shape[0], channels, H, W)
    x = patchify_backward(y, (shape, p, y.dtype))  # (N, C, H, W): the same inverse permutation
    return x, (shape, p, x.dtype)


def unpatchify_backward(dx, cache):
    """dy (N, L, P) = patchify(dx)."""
    shape, p, dtype = cache
    check_grad("unpatchify_backward", "dx", dx, shape, dtype)
    return patchify(dx, patch_size=p)[0]


# start-prepend
def prepend_token(x, token):
    """[token; x_1; ...; x_L]: x (N, L, D), token (D,) shared by every sequence → (N, L + 1, D).

    Backward: dx = dy[:, 1:], dtoken = Σ_n dy[n, 0] (one vector used N times sums its gradients).
    See chapters/23-vit.md#eq-cls.
    """
    if x.ndim != 3 or token.shape != (x.shape[2],):
        raise ValueError(f"prepend_token: expected x (N, L, D) and token (D,), got {tuple(x.shape)} and "
                         f"{tuple(token.shape)}")
    xp = get_array_module(x, token)
    N, L, D = x.shape
    first = xp.broadcast_to(token.astype(x.dtype, copy=False), (N, 1, D))  # (N, 1, D) the same row N times
    y = xp.concatenate([first, x], axis=1)  # (N, L + 1, D)
    return y, (y.shape, y.dtype)


def prepend_token_backward(dy, cache):
    """dx (N, L, D), dtoken (D,)."""
    shape, dtype = cache
    check_grad("prepend_token_backward", "dy", dy, shape, dtype)
    return dy[:, 1:], dy[:, 0].sum(axis=0)  # the sequences' rows; the token's N copies summed
# end-prepend
