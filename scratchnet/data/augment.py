"""Data augmentation for image batches: random crops of a padded image, horizontal flips, the
fixed shifted copies of a training set that batch-mode learners (the DSN) train on, and bilinear
resizing (the resolution multipliers of MobileNet and EfficientNet).

Legend: N batch, C channels, H, W height and width. Every function takes an explicit ``rng`` (a
``numpy.random.Generator``) so an augmented run is reproducible; arrays may be NumPy or CuPy
(the random draws are made on the CPU).
"""
from __future__ import annotations

from .._checks import check_ndim
from .._random import get_rng
from ..backend import get_array_module

__all__ = ["random_crop", "random_hflip", "augment", "shift", "shifted_copies", "resize_bilinear"]


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
