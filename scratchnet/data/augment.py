"""Data augmentation for image batches: random crops of a padded image, horizontal flips, the
fixed shifted copies of a training set that batch-mode learners (the DSN) train on, bilinear
resizing (the resolution multipliers of MobileNet and EfficientNet), and the distortions of
LeNet-5 and Simard et al. (2003): random affine maps and elastic deformations, both an inverse map
followed by bilinear sampling.

Legend: N batch, C channels, H, W height and width. Every function takes an explicit ``rng`` (a
``numpy.random.Generator``) so an augmented run is reproducible; arrays may be NumPy or CuPy
(the random draws are made on the CPU).
"""
from __future__ import annotations

import math

import numpy as np

from .._checks import check_ndim
from .._random import get_rng
from ..backend import get_array_module

__all__ = ["random_crop", "random_hflip", "augment", "shift", "shifted_copies", "resize_bilinear",
           "random_affine", "elastic_distort"]


def random_crop(x, *, padding, size=None, rng=None, fill=0.0):
    """Pad each image by ``padding`` (value ``fill``) and cut a ``size`` crop at a random offset.

    x (N, C, H, W) → (N, C, h, w) with (h, w) = size (default (H, W)); one offset per image, drawn
    uniformly among the (H + 2p − h + 1)·(W + 2p − w + 1) positions (the CIFAR recipe: p=4).
    """
    check_ndim("random_crop", "x", x, 4)
    xp = get_array_module(x)
    rng = get_rng(rng)
    N, C, H, W = x.shape
    h, w = (H, W) if size is None else ((size, size) if isinstance(size, int) else tuple(size))
    if h > H + 2 * padding or w > W + 2 * padding:
        raise ValueError(f"random_crop: crop {h}×{w} is larger than the padded image "
                         f"{H + 2 * padding}×{W + 2 * padding} (x shape {tuple(x.shape)}, padding {padding})")
    xpad = xp.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)), constant_values=fill)
    oy = rng.integers(0, H + 2 * padding - h + 1, size=N)  # (N,) top offsets
    ox = rng.integers(0, W + 2 * padding - w + 1, size=N)  # (N,) left offsets
    out = xp.empty((N, C, h, w), dtype=x.dtype)  # (N, C, h, w)
    for n in range(N):  # one crop per image
        out[n] = xpad[n, :, oy[n]:oy[n] + h, ox[n]:ox[n] + w]
    return out


def random_hflip(x, *, p=0.5, rng=None):
    """Mirror each image left–right with probability ``p``. x (N, C, H, W) → same shape (a copy)."""
    check_ndim("random_hflip", "x", x, 4)
    xp = get_array_module(x)
    flip = xp.asarray(get_rng(rng).random(x.shape[0]) < p)  # (N,) which images flip
    return xp.where(flip[:, None, None, None], x[..., ::-1], x)


def augment(x, *, padding=4, flip=True, rng=None, fill=0.0):
    """The standard CIFAR-style recipe: ``random_crop`` with ``padding`` then ``random_hflip``."""
    rng = get_rng(rng)
    y = random_crop(x, padding=padding, rng=rng, fill=fill) if padding else x
    return random_hflip(y, rng=rng) if flip else y


def shift(x, dy, dx, *, fill=0.0):
    """Move every image dy pixels down and dx pixels right (negative: up, left); the pixels that enter
    from the border are ``fill``. x (N, C, H, W) → same shape (a copy)."""
    check_ndim("shift", "x", x, 4)
    H, W = x.shape[2:]
    if abs(dy) >= H or abs(dx) >= W:
        raise ValueError(f"shift: a shift of ({dy}, {dx}) pixels leaves nothing of a {H}×{W} image")
    xp = get_array_module(x)
    out = xp.full_like(x, fill)  # (N, C, H, W)
    out[:, :, max(dy, 0):H + min(dy, 0), max(dx, 0):W + min(dx, 0)] = \
        x[:, :, max(-dy, 0):H + min(-dy, 0), max(-dx, 0):W + min(-dx, 0)]
    return out


def shifted_copies(x, *, pixels=1, fill=0.0):
    """The images and four copies moved ``pixels`` down, up, right and left: x (N, C, H, W) →
    (5N, C, H, W), in that order (the labels of the result are ``np.tile(labels, 5)``). A fixed,
    five-times-larger training set for learners that fit the whole batch at once (chapter 04)."""
    check_ndim("shifted_copies", "x", x, 4)
    if not isinstance(pixels, int) or pixels < 1:
        raise ValueError(f"shifted_copies: pixels must be a positive int, got {pixels!r}")
    xp = get_array_module(x)
    moves = [(pixels, 0), (-pixels, 0), (0, pixels), (0, -pixels)]
    return xp.concatenate([x] + [shift(x, dy, dx, fill=fill) for dy, dx in moves])


def resize_bilinear(x, size):
    """Bilinear resize of (N, C, H, W) to (N, C, OH, OW), ``size`` = OH or (OH, OW); PyTorch's
    ``interpolate(mode="bilinear", align_corners=False)`` without antialiasing. Returns x itself when
    the size does not change."""
    check_ndim("resize_bilinear", "x", x, 4)
    N, C, H, W = x.shape
    oh, ow = (size, size) if isinstance(size, (int,)) or not hasattr(size, "__len__") else size
    oh, ow = int(oh), int(ow)
    if oh < 1 or ow < 1:
        raise ValueError(f"resize_bilinear: output size must be positive, got {(oh, ow)}")
    if (H, W) == (oh, ow):
        return x
    xp = get_array_module(x)

    def taps(n_in, n_out):
        """The two source indices and the weight of the second, for each output index."""
        src = xp.clip((xp.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, 0, n_in - 1)  # pixel centres aligned
        i0 = xp.floor(src).astype(xp.intp)
        return i0, xp.minimum(i0 + 1, n_in - 1), (src - i0).astype(x.dtype)

    r0, r1, tr = taps(H, oh)
    c0, c1, tc = taps(W, ow)
    rows = x[:, :, r0] * (1 - tr)[:, None] + x[:, :, r1] * tr[:, None]  # (N, C, OH, W): along H first
    return rows[..., c0] * (1 - tc) + rows[..., c1] * tc  # (N, C, OH, OW): then along W


def _bilinear_sample(x, sy, sx, fill):
    """Sample every image of x (N, C, H, W) at its own source coordinates sy, sx (N, H', W') (rows,
    columns; float) by bilinear interpolation; pixels outside the image read ``fill``. → (N, C, H', W')."""
    xp = get_array_module(x)
    N, C, H, W = x.shape
    xpad = xp.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)), constant_values=fill)  # (N, C, H+2, W+2): a frame of fill

    def taps(s, n):
        """Lower tap (in padded coordinates) and the weight of the upper one; far-away points read the frame."""
        s = xp.clip(xp.asarray(s), -1.0, float(n))
        i0 = xp.clip(xp.floor(s), -1, n - 1)
        return i0.astype(xp.intp) + 1, (s - i0).astype(x.dtype)

    r0, wr = taps(sy, H)  # (N, H', W') each
    c0, wc = taps(sx, W)
    P = (H + 2) * (W + 2)
    base = (xp.arange(N * C).reshape(N, C, 1) * P + (r0 * (W + 2) + c0).reshape(N, 1, -1)).ravel()  # top-left taps
    flat = xpad.ravel()

    def at(offset):
        return xp.take(flat, base + offset).reshape(N, C, -1)  # (N, C, H'W'): one gather for the whole batch

    wr, wc = wr.reshape(N, 1, -1), wc.reshape(N, 1, -1)
    top = at(0) * (1 - wc) + at(1) * wc  # along the columns first
    bottom = at(W + 2) * (1 - wc) + at(W + 3) * wc
    return (top * (1 - wr) + bottom * wr).reshape(N, C, *sy.shape[1:])  # (N, C, H', W')


def _range(op, name, value, centre=0.0):
    """A number m → the interval [centre − m, centre + m]; a pair (lo, hi) → itself."""
    lo, hi = (centre - value, centre + value) if np.ndim(value) == 0 else tuple(value)
    if not lo <= hi:
        raise ValueError(f"{op}: {name} must be a number ≥ 0 or a pair (lo, hi) with lo ≤ hi, got {value!r}")
    return float(lo), float(hi)


def random_affine(x, *, degrees, scale, translate, shear=0, rng=None, fill=0.0):
    """One random affine map per image: rotation, isotropic scaling, shear and translation about the
    image centre, applied as an inverse map (each output pixel asks where it comes from) followed by
    bilinear sampling. x (N, C, H, W) → same shape and dtype; pixels from outside read ``fill``.

    Each parameter is a number m (drawn uniformly in [−m, m]; scale in [1 − m, 1 + m]) or a pair
    (lo, hi): degrees of rotation (counter-clockwise as displayed), scale factor, translate in pixels
    (the same range for rows and columns, drawn independently), shear in degrees (horizontal).
    See chapters/06-lenet5.md#eq-affine-inverse.
    """
    check_ndim("random_affine", "x", x, 4)
    xp = get_array_module(x)
    rng = get_rng(rng)
    N, _, H, W = x.shape
    deg, (s_lo, s_hi) = _range("random_affine", "degrees", degrees), _range("random_affine", "scale", scale, 1.0)
    if s_lo <= 0:
        raise ValueError(f"random_affine: scale factors must stay positive, got the range {(s_lo, s_hi)}")
    t_rng, sh = _range("random_affine", "translate", translate), _range("random_affine", "shear", shear)
    theta = np.deg2rad(rng.uniform(*deg, size=N))  # (N,) rotation
    s = rng.uniform(s_lo, s_hi, size=N)  # (N,) scale
    ty, tx = rng.uniform(*t_rng, size=(2, N))  # (N,) each: shift in pixels
    k = np.tan(np.deg2rad(rng.uniform(*sh, size=N)))  # (N,) shear: column += k · row
    cos, sin = np.cos(theta), np.sin(theta)
    # forward map on centred (row u, column v): p_out = s · R(θ) · Sh(k) · p_in + t; invert it here
    a, b = s * (cos - sin * k), -s * sin  # row:    u_out = a u + b v   (s · R(θ) · Sh(k), per image)
    c, d = s * (sin + cos * k), s * cos  # column: v_out = c u + d v
    det = a * d - b * c  # = s², never 0
    cy, cx = (H - 1) / 2, (W - 1) / 2
    u = np.arange(H)[None, :, None] - cy - ty[:, None, None]  # (N, H, 1) output row minus centre and shift
    v = np.arange(W)[None, None, :] - cx - tx[:, None, None]  # (N, 1, W)
    inv = [m[:, None, None] / det[:, None, None] for m in (d, -b, -c, a)]  # the inverse matrix's entries
    sy = inv[0] * u + inv[1] * v + cy  # (N, H, W) source rows
    sx = inv[2] * u + inv[3] * v + cx  # (N, H, W) source columns
    return _bilinear_sample(x, xp.asarray(sy), xp.asarray(sx), fill)


def _gaussian_matrix(n, sigma):
    """The (n, n) matrix of a 1-D Gaussian blur (std ``sigma`` pixels, truncated at 4σ, reflecting
    borders as ``scipy.ndimage``'s default): row i holds the weights that output pixel i gives its inputs."""
    r = max(1, int(math.ceil(4 * sigma)))
    g = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    g /= g.sum()  # (2r+1,) normalised kernel
    padded = np.pad(np.eye(n), ((r, r), (0, 0)), mode="symmetric")  # (n+2r, n): reflected copies of the basis
    return sum(gt * padded[t:t + n] for t, gt in enumerate(g))  # (n, n): row i sums g over i's window


def elastic_distort(x, *, alpha, sigma, rng=None, fill=0.0):
    """Simard et al. (2003)'s elastic distortion: per image, a displacement field with entries
    uniform(−1, 1), smoothed by a Gaussian of std ``sigma`` pixels and scaled by ``alpha``; each
    output pixel (i, j) reads the input at (i + Δy, j + Δx) by bilinear sampling (outside: ``fill``).
    x (N, C, H, W) → same shape and dtype. Simard's MNIST setting: sigma = 4, alpha = 34.
    See chapters/06-lenet5.md#eq-elastic.
    """
    check_ndim("elastic_distort", "x", x, 4)
    if not sigma > 0 or not alpha >= 0:
        raise ValueError(f"elastic_distort: need sigma > 0 and alpha >= 0, got sigma={sigma!r}, alpha={alpha!r}")
    xp = get_array_module(x)
    rng = get_rng(rng)
    N, _, H, W = x.shape
    field = rng.uniform(-1.0, 1.0, size=(2 * N, H, W))  # (2N, H, W): Δy then Δx of every image
    smooth = _gaussian_matrix(H, sigma) @ field @ _gaussian_matrix(W, sigma).T  # separable blur: columns, rows
    dy, dx = np.split(alpha * smooth, 2)  # (N, H, W) each, in pixels
    sy = np.arange(H)[None, :, None] + dy  # (N, H, W) source rows
    sx = np.arange(W)[None, None, :] + dx  # (N, H, W) source columns
    return _bilinear_sample(x, xp.asarray(sy), xp.asarray(sx), fill)
