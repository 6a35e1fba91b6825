"""Masked (pruned) layers: ``masked_linear`` and ``masked_conv2d``, the forward uses w ⊙ mask.

Legend: N batch (any leading axes ``...``), D input features, M output features, C channels,
KH, KW kernel. The mask has the weight's shape, 1 where a weight is kept and 0 where it is pruned;
it is an option (``mask=``, like dropout's) and gets no gradient.
See chapters/33-pruning.md#masked-gradient.
"""
from __future__ import annotations

from .._checks import check_float, check_grad
from .conv import conv2d, conv2d_backward
from .linear import linear, linear_backward

__all__ = ["masked_linear", "masked_linear_backward", "masked_conv2d", "masked_conv2d_backward"]


def _check_mask(op, mask, w):
    """ValueError unless ``mask`` is an array of the weight's shape."""
    if not hasattr(mask, "shape"):
        raise TypeError(f"{op}: mask must be an array of the weight's shape {tuple(w.shape)}, "
                        f"got {type(mask).__name__}")
    if tuple(mask.shape) != tuple(w.shape):
        raise ValueError(f"{op}: expected mask of the weight's shape {tuple(w.shape)}, got {tuple(mask.shape)}")


# start-masked-linear
def masked_linear(x, w, b=None, *, mask):
    """y = x @ (w ⊙ mask) + b: an affine map whose pruned weights are held at zero.

    x (..., D), w (D, M), mask (D, M) of 0/1 (any dtype), b (M,) or None → y (..., M).
    Backward: dx = dy (w ⊙ mask)ᵀ, dw = (xᵀ dy) ⊙ mask, db = Σ dy.
    See chapters/33-pruning.md#eq-masked-dw.
    """
    check_float("masked_linear", "w", w)
    _check_mask("masked_linear", mask, w)
    w_eff = w * mask.astype(w.dtype)  # (D, M) the weights the layer really uses
    y, cache = linear(x, w_eff, b)  # (..., M)
    return y, (cache, mask)


def masked_linear_backward(dy, cache):
    """dx, dw, db of ``masked_linear``: the affine backward, then dw ⊙ mask (the chain rule through w ⊙ mask)."""
    linear_cache, mask = cache
    check_grad("masked_linear_backward", "dy", dy, linear_cache[0].shape[:-1] + (mask.shape[1],),
               linear_cache[0].dtype)
    dx, dw_eff, db = linear_backward(dy, linear_cache)  # dw_eff = xᵀ dy, the gradient of w ⊙ mask
    dw = dw_eff * mask.astype(dw_eff.dtype)  # (D, M) ∂(w ⊙ mask)/∂w = mask: a pruned weight gets 0
    return dx, dw, db
# end-masked-linear


def masked_conv2d(x, w, b=None, *, mask, stride=1, padding=0, dilation=1, groups=1):
    """y = conv2d(x, w ⊙ mask) + b: a convolution whose pruned taps are held at zero.

    x (N, C_in, H, W), w and mask (C_out, C_in/groups, KH, KW), b (C_out,) or None → y (N, C_out, OH, OW).
    Backward: dx and db as conv2d with w ⊙ mask, dw = dw_conv ⊙ mask. See chapters/33-pruning.md#eq-masked-dw.
    """
    check_float("masked_conv2d", "w", w)
    _check_mask("masked_conv2d", mask, w)
    w_eff = w * mask.astype(w.dtype)  # (C_out, C_in/groups, KH, KW)
    y, cache = conv2d(x, w_eff, b, stride=stride, padding=padding, dilation=dilation, groups=groups)
    return y, (cache, mask, y.shape, y.dtype)


def masked_conv2d_backward(dy, cache):
    """dx, dw, db of ``masked_conv2d``."""
    conv_cache, mask, y_shape, y_dtype = cache
    check_grad("masked_conv2d_backward", "dy", dy, y_shape, y_dtype)
    dx, dw_eff, db = conv2d_backward(dy, conv_cache)
    dw = dw_eff * mask.astype(dw_eff.dtype)  # (C_out, C_in/groups, KH, KW) pruned taps get 0
    return dx, dw, db
