"""Region-of-interest pooling: a fixed-size feature map (PH × PW) cut out of a feature map for each
box, so boxes of any size feed one classifier head. RoI pooling (Fast R-CNN) max-pools over bins
snapped to the pixel grid; RoIAlign (Mask R-CNN) averages bilinear samples at exact positions.

Legend: N images, C channels, H, W feature-map size, R regions, PH, PW output size, G samples
per bin along one axis. ``rois`` (R, 5) rows are [batch index, x1, y1, x2, y2] in input-image
pixels; ``spatial_scale`` (e.g. 1/16) maps them onto the feature map. Semantics are exactly
torchvision.ops.roi_pool / roi_align (coordinates in x's dtype); the rois get no gradient.
Each pair makes one call into ``scratchnet/kernels/roi.py`` (the Numba loops or the references
below). See chapters/27-rcnn.md#roi-pooling and chapters/29-mask-rcnn.md#roialign.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .._checks import check_float, check_grad, check_ndim
from ..backend import asnumpy, get_array_module, scatter_add
from ..kernels import roi as _kernels

__all__ = ["roi_pool", "roi_pool_backward", "roi_align", "roi_align_backward"]


def _check(op, x, rois, output_size):
    """Validate the inputs → (batch indices (R,) int64, rois (R, 5) in x's dtype, (PH, PW))."""
    check_float(op, "x", x)
    check_ndim(op, "x", x, 4)
    if not hasattr(rois, "shape") or rois.ndim != 2 or rois.shape[1] != 5:
        raise ValueError(f"{op}: expected rois of shape (R, 5) as [batch_index, x1, y1, x2, y2], "
                         f"got {tuple(getattr(rois, 'shape', ())) or type(rois).__name__}")
    PH, PW = (output_size, output_size) if np.isscalar(output_size) else tuple(output_size)
    if int(PH) != PH or int(PW) != PW or PH < 1 or PW < 1:
        raise ValueError(f"{op}: output_size must be a positive int or (PH, PW), got {output_size!r}")
    rois = rois.astype(x.dtype, copy=False)
    batch = rois[:, 0].astype(np.int64)  # (R,)
    if batch.size and (int(batch.min()) < 0 or int(batch.max()) >= x.shape[0]):
        raise ValueError(f"{op}: roi batch indices must lie in [0, {x.shape[0]}) for x of shape "
                         f"{tuple(x.shape)}, got range [{int(batch.min())}, {int(batch.max())}]")
    return batch, rois, (int(PH), int(PW))


# -- RoI pooling (Girshick 2015) ----------------------------------------------------------------------
class RoIPoolCache(NamedTuple):
    """What roi_pool_backward needs: each output's winning pixel (h·W + w, −1 for an empty bin), the
    batch index of each roi, the input's shape and dtype."""
    arg: object  # (R, C, PH, PW) int64
    batch: object  # (R,) int64
    x_shape: tuple
    dtype: object


def _c_round(v):
    """C's round(): halves away from zero (NumPy's rounds halves to even)."""
    xp = get_array_module(v)
    a = xp.abs(v)
    whole = xp.floor(a)
    return (xp.sign(v) * (whole + (a - whole >= 0.5))).astype(np.int64)  # a − ⌊a⌋ is exact: no double rounding


# start-roi-pool
def roi_pool(x, rois, output_size, spatial_scale=1.0):
    """y[r, c, i, j] = max of x[b_r, c] over bin (i, j) of roi r, 0 for an empty bin.

    The roi is snapped to the feature grid (corners rounded after scaling, size ≥ 1 pixel), split
    into PH × PW bins [⌊i·h/PH⌋, ⌈(i+1)·h/PH⌉) × [⌊j·w/PW⌋, ⌈(j+1)·w/PW⌉) offset by its corner and
    clipped to the map. x (N, C, H, W), rois (R, 5) → y (R, C, PH, PW).
    Backward: dx[b_r, c, h, w] += dy[r, c, i, j] at each bin's winner (first maximum, row-major).
    See chapters/27-rcnn.md#eq-roi-pool.
    """
    batch, rois, (PH, PW) = _check("roi_pool", x, rois, output_size)
    corners = _c_round(rois[:, 1:] * spatial_scale)  # (R, 4) x1, y1, x2, y2 on the feature grid
    rows = _bin_edges(corners[:, 1], corners[:, 3], PH, x.shape[2], x.dtype)  # (R, PH) lo, hi
    cols = _bin_edges(corners[:, 0], corners[:, 2], PW, x.shape[3], x.dtype)  # (R, PW) lo, hi
    y, arg = _kernels.roi_pool(x, batch, rows, cols, reference=_roi_pool_ref)
    return y, RoIPoolCache(arg, batch, x.shape, x.dtype)


def roi_pool_backward(dy, cache):
    """dx of ``roi_pool``."""
    arg, batch, x_shape, dtype = cache
    check_grad("roi_pool_backward", "dy", dy, (batch.shape[0], x_shape[1], *arg.shape[2:]), dtype)
    return _kernels.roi_pool_backward(dy, arg, batch, x_shape, reference=_roi_pool_backward_ref)


def _bin_edges(start, end, bins, limit, dtype):
    """Integer bin edges [lo, hi) along one axis, clipped to [0, limit]: two (R, bins) int64 arrays.
    The bin size is computed in x's dtype, as torchvision does, so the floors and ceilings agree."""
    xp = get_array_module(start)
    size = xp.maximum(end - start + 1, 1).astype(dtype)  # (R,) roi size in pixels, at least 1
    step = size / dtype.type(bins)  # (R,) bin size
    i = xp.arange(bins + 1).astype(dtype)  # (bins + 1,)
    edge = i[None, :] * step[:, None]  # (R, bins + 1)
    lo = xp.floor(edge[:, :-1]).astype(np.int64) + start[:, None]
    hi = xp.ceil(edge[:, 1:]).astype(np.int64) + start[:, None]
    return xp.clip(lo, 0, limit), xp.clip(hi, 0, limit)


def _roi_pool_ref(x, batch, rows, cols):
    """Reference forward: for each roi and bin, the first maximum (row-major) of its window."""
    xp = get_array_module(x)
    (h_lo, h_hi), (w_lo, w_hi) = [tuple(asnumpy(e) for e in pair) for pair in (rows, cols)]
    R, (PH, PW), (C, W) = len(batch), h_lo.shape[1:] + w_lo.shape[1:], (x.shape[1], x.shape[3])
    y = xp.zeros((R, C, PH, PW), dtype=x.dtype)  # (R, C, PH, PW), 0 for empty bins
    arg = xp.full(y.shape, -1, dtype=np.int64)  # (R, C, PH, PW) winner h·W + w, −1 for none
    for r, n in enumerate(asnumpy(batch)):  # one roi at a time
        for i in range(PH):  # one band of rows
            for j in range(PW):  # one band of columns
                (a, b), (u, v) = (h_lo[r, i], h_hi[r, i]), (w_lo[r, j], w_hi[r, j])
                if b <= a or v <= u:
                    continue  # an empty bin: 0, no winner
                k = x[n, :, a:b, u:v].reshape(C, -1).argmax(axis=1)  # (C,) first maximum, row-major
                arg[r, :, i, j] = (a + k // (v - u)) * W + u + k % (v - u)
                y[r, :, i, j] = x[n].reshape(C, -1)[xp.arange(C), arg[r, :, i, j]]
    return y, arg


def _roi_pool_backward_ref(dy, arg, batch, x_shape):
    """Reference backward: one scatter-add of dy to the winners (repeated winners accumulate)."""
    xp = get_array_module(dy)
    N, C, H, W = x_shape
    dx = xp.zeros((N, C, H * W), dtype=dy.dtype)  # (N, C, H·W)
    keep = arg >= 0  # (R, C, PH, PW) bins with a winner
    n = xp.broadcast_to(batch[:, None, None, None], arg.shape)[keep]
    c = xp.broadcast_to(xp.arange(C)[None, :, None, None], arg.shape)[keep]
    scatter_add(dx, (n, c, arg[keep]), dy[keep])
    return dx.reshape(x_shape)
# end-roi-pool


# -- RoIAlign (He et al. 2017) -------------------------------------------------------------------------
class RoIAlignCache(NamedTuple):
    """What roi_align_backward needs: the batch index of each roi, the bilinear taps of the rows and
    of the columns (recomputing them would repeat the forward's geometry), the input's shape and dtype."""
    batch: object  # (R,) int64
    rows: tuple  # lo, hi (R, PH, G) int64; w_lo, w_hi (R, PH, G) weights (÷ samples, 0 where unused)
    cols: tuple  # the same for the columns, (R, PW, G)
    x_shape: tuple
    dtype: object


# start-roi-align
def roi_align(x, rois, output_size, spatial_scale=1.0, *, sampling_ratio=2, aligned=True):
    """y[r, c, i, j] = mean over the G_y × G_x sample points of bin (i, j) of bilinear(x[b_r, c], point).

    The scaled roi (shifted by −½ pixel when ``aligned``; without it, sizes are at least 1) is cut into
    PH × PW bins of size (h/PH, w/PW); bin i has sample rows y = y1 + i·h/PH + (s + ½)·h/(PH·G_y),
    s < G_y = sampling_ratio (or ⌈h/PH⌉ when sampling_ratio ≤ 0), and likewise columns. A sample
    outside [−1, H] × [−1, W] is 0; one inside is clamped to the map. x (N, C, H, W), rois (R, 5)
    → y (R, C, PH, PW). Bilinear weights factor into rows × columns, so y[r, c] = A_r x[b_r, c] B_rᵀ
    with A_r (PH, H), B_r (PW, W). Backward: dx[b_r, c] += A_rᵀ dy[r, c] B_r.
    See chapters/29-mask-rcnn.md#eq-roialign.
    """
    batch, rois, (PH, PW) = _check("roi_align", x, rois, output_size)
    offset = x.dtype.type(0.5 if aligned else 0.0)
    start = rois[:, 1:3] * spatial_scale - offset  # (R, 2) x1, y1 on the feature map
    size = rois[:, 3:5] * spatial_scale - offset - start  # (R, 2) roi width, height
    if not aligned:
        size = get_array_module(x).maximum(size, 1)  # malformed rois forced to 1 × 1 (the original)
    rows = _bilinear_taps(start[:, 1], size[:, 1], PH, sampling_ratio, x.shape[2])
    cols = _bilinear_taps(start[:, 0], size[:, 0], PW, sampling_ratio, x.shape[3])
    y = _kernels.roi_align(x, batch, rows, cols, reference=_roi_align_ref)
    return y, RoIAlignCache(batch, rows, cols, x.shape, x.dtype)


def roi_align_backward(dy, cache):
    """dx of ``roi_align``."""
    batch, rows, cols, x_shape, dtype = cache
    check_grad("roi_align_backward", "dy", dy, (batch.shape[0], x_shape[1], rows[0].shape[1], cols[0].shape[1]),
               dtype)
    return _kernels.roi_align_backward(dy, batch, rows, cols, x_shape, reference=_roi_align_backward_ref)


def _bilinear_taps(start, size, bins, sampling_ratio, limit):
    """The two pixels (lo, hi) and weights of every sample point along one axis: four (R, bins, G)
    arrays; the weights already divided by the bin's sample count and 0 for unused or outside points."""
    xp = get_array_module(start)
    dt = start.dtype.type
    step = size / dt(bins)  # (R,) bin size
    grid = (xp.full(start.shape, sampling_ratio, dtype=np.int64) if sampling_ratio > 0
            else xp.maximum(xp.ceil(size / dt(bins)), 0).astype(np.int64))  # (R,) samples per bin
    G = max(int(grid.max()) if grid.size else 1, 1)
    p = xp.arange(bins).astype(start.dtype)[None, :, None]  # (1, bins, 1)
    s = xp.arange(G).astype(start.dtype)[None, None, :] + dt(0.5)  # (1, 1, G)
    gridf = xp.maximum(grid, 1).astype(start.dtype)[:, None, None]  # (R, 1, 1)
    v = start[:, None, None] + p * step[:, None, None] + s * step[:, None, None] / gridf  # (R, bins, G)
    used = (s < grid[:, None, None]) & (v >= -1) & (v <= limit)  # (R, bins, G) points that count
    v = xp.maximum(v, 0)
    lo = xp.minimum(xp.floor(v).astype(np.int64), limit - 1)  # a point past the last pixel sits on it
    hi = xp.minimum(lo + 1, limit - 1)
    frac = xp.where(lo >= limit - 1, 0, v - lo).astype(start.dtype)  # weight of hi
    w = used / gridf  # (R, bins, G) 1/G for the points that count
    return lo, hi, ((1 - frac) * w).astype(start.dtype), (frac * w).astype(start.dtype)


def _axis_matrix(taps, limit):
    """The (R, bins, limit) matrix that averages the bilinear samples of each bin along one axis."""
    xp = get_array_module(taps[0])
    lo, hi, w_lo, w_hi = taps
    pixels = xp.arange(limit)  # (limit,)
    return ((lo[..., None] == pixels) * w_lo[..., None]
            + (hi[..., None] == pixels) * w_hi[..., None]).sum(axis=2)  # (R, bins, limit)


def _roi_align_ref(x, batch, rows, cols):
    """Reference forward: y[r, c] = A_r x[b_r, c] B_rᵀ, the rois of one image at a time."""
    xp = get_array_module(x)
    A, B = _axis_matrix(rows, x.shape[2]), _axis_matrix(cols, x.shape[3])  # (R, PH, H), (R, PW, W)
    y = xp.zeros((len(batch), x.shape[1], A.shape[1], B.shape[1]), dtype=x.dtype)  # (R, C, PH, PW)
    for n in range(x.shape[0]):  # one image at a time: no (R, C, H, W) gather
        idx = xp.flatnonzero(batch == n)
        if idx.size:
            t = xp.einsum("rph,chw->rcpw", A[idx], x[n])  # (r, C, PH, W) rows sampled
            y[idx] = xp.einsum("rcpw,rqw->rcpq", t, B[idx])  # (r, C, PH, PW) then columns
    return y


def _roi_align_backward_ref(dy, batch, rows, cols, x_shape):
    """Reference backward: dx[n, c] = Σ over the rois r of image n of A_rᵀ dy[r, c] B_r."""
    xp = get_array_module(dy)
    A, B = _axis_matrix(rows, x_shape[2]), _axis_matrix(cols, x_shape[3])
    dx = xp.zeros(x_shape, dtype=dy.dtype)  # (N, C, H, W)
    for n in range(x_shape[0]):  # one image at a time
        idx = xp.flatnonzero(batch == n)
        if idx.size:
            t = xp.einsum("rcpq,rqw->rcpw", dy[idx], B[idx])  # (r, C, PH, W)
            dx[n] = xp.einsum("rph,rcpw->chw", A[idx], t)  # (C, H, W) summed over rois and rows
    return dx
# end-roi-align
