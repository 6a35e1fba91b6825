"""Channel plumbing of the multi-branch networks: concatenation (Inception, DenseNet) and
per-channel gating (squeeze-and-excitation).

Legend: N batch, C channels (C_i of the i-th input), H, W spatial size.
See chapters/09-googlenet.md#eq-concat-backward and chapters/13-efficientnet.md#eq-se-backward.
"""
from __future__ import annotations

from .._checks import check_float, check_grad, check_ndim
from ..backend import get_array_module

__all__ = ["concat", "concat_backward", "scale_channels", "scale_channels_backward"]


def concat(xs, *, axis=1):
    """y = [x_1, x_2, ..., x_B] stacked along ``axis`` (channels by default).

    Every input must have the same dtype and the same size on every other axis.
    Backward: dx_i = dy[..., offset_i : offset_i + C_i, ...], the slice of dy each input filled.
    """
    xs = list(xs)
    if not xs:
        raise ValueError("concat: needs at least one array")
    for i, x in enumerate(xs):
        check_float("concat", f"xs[{i}]", x)
    first = xs[0]
    ax = axis % first.ndim if first.ndim else 0
    for i, x in enumerate(xs[1:], 1):
        other = [d for j, d in enumerate(x.shape) if j != ax]
        want = [d for j, d in enumerate(first.shape) if j != ax]
        if x.ndim != first.ndim or other != want or x.dtype != first.dtype:
            raise ValueError(f"concat: xs[{i}] of shape {tuple(x.shape)} and dtype {x.dtype} cannot join xs[0] "
                             f"of shape {tuple(first.shape)} and dtype {first.dtype} along axis {axis}")
    xp = get_array_module(*xs)
    y = xp.concatenate(xs, axis=ax)  # (..., Σ C_i, ...)
    sizes = tuple(x.shape[ax] for x in xs)
    return y, (sizes, ax, y.shape, y.dtype)


def concat_backward(dy, cache):
    sizes, ax, shape, dtype = cache
    check_grad("concat_backward", "dy", dy, shape, dtype)
    # each input receives the slice of dy it filled: the sum's gradient splits, never mixes
    dxs, start = [], 0
    for c in sizes:
        index = [slice(None)] * dy.ndim
        index[ax] = slice(start, start + c)
        dxs.append(dy[tuple(index)])  # (..., C_i, ...)
        start += c
    return tuple(dxs)


def scale_channels(x, s):
    """y[n, c, h, w] = x[n, c, h, w] · s[n, c]: a gate per sample and channel (SE's "scale").

    x (N, C, H, W), s (N, C). Backward: dx = dy ⊙ s, ds[n, c] = Σ_{h,w} dy[n, c, h, w] · x[n, c, h, w].
    """
    check_float("scale_channels", "x", x)
    check_float("scale_channels", "s", s)
    check_ndim("scale_channels", "x", x, 4)
    if s.shape != x.shape[:2] or s.dtype != x.dtype:
        raise ValueError(f"scale_channels: expected s of shape {tuple(x.shape[:2])} and dtype {x.dtype} (one gate "
                         f"per sample and channel of x {tuple(x.shape)}), got {tuple(s.shape)} {s.dtype}")
    y = x * s[:, :, None, None]  # (N, C, H, W)
    return y, (x, s)


def scale_channels_backward(dy, cache):
    x, s = cache
    check_grad("scale_channels_backward", "dy", dy, x.shape, x.dtype)
    dx = dy * s[:, :, None, None]  # (N, C, H, W)
    ds = (dy * x).sum(axis=(2, 3))  # (N, C): the gate saw the whole map
    return dx, ds
