"""Reference solutions for notebooks/06-lenet5.ipynb's "your turn" cells (chapter 06)."""
import numpy as np

from scratchnet.exercises import check_pair
from scratchnet.models.lenet import Subsampling

YOUR_TURN = ["my_subsampling", "my_subsampling_backward"]


def my_subsampling(x, coef, bias):
    """S2/S4 before the squashing: z_c = coef_c · (sum of each 2×2 block of x_c) + bias_c.

    x (N, C, H, W), coef and bias (C,) → z (N, C, H//2, W//2).
    """
    N, C, H, W = x.shape
    OH, OW = H // 2, W // 2
    xs = x[:, :, :2 * OH, :2 * OW]  # an odd last row/column is never read (as a 2×2 pool)
    s = xs.reshape(N, C, OH, 2, OW, 2).sum(axis=(3, 5))  # the 2×2 block sums: (N, C, OH, OW)
    z = coef.reshape(1, C, 1, 1) * s + bias.reshape(1, C, 1, 1)
    return z, (s, coef, x.shape)


def my_subsampling_backward(dz, cache):
    """dcoef_c = Σ dz_c s_c, dbias_c = Σ dz_c, and ds = coef_c dz_c copied to each 2×2 block."""
    s, coef, (N, C, H, W) = cache
    dcoef = (dz * s).sum(axis=(0, 2, 3))  # (C,)
    dbias = dz.sum(axis=(0, 2, 3))  # (C,)
    ds = dz * coef.reshape(1, C, 1, 1)  # (N, C, OH, OW)
    dx = np.zeros((N, C, H, W), dtype=dz.dtype)
    OH, OW = ds.shape[2:]
    dx[:, :, :2 * OH, :2 * OW] = np.repeat(np.repeat(ds, 2, axis=2), 2, axis=3)  # each block gets its ds
    return dx, dcoef, dbias


def library_subsampling(x, coef, bias):
    """The library's ``Subsampling`` layer as a functional pair (forward), for the one-call check."""
    layer = Subsampling(len(coef), rng=0, dtype=x.dtype)
    layer.coef.data[...] = coef
    layer.bias.data[...] = bias
    return layer(x), layer


def library_subsampling_backward(dz, layer):
    """Backward of ``library_subsampling``: the layer's dx and its parameters' gradients."""
    layer.zero_grad()
    dx = layer.backward(dz)
    return dx, layer.coef.grad.copy(), layer.bias.grad.copy()


def check(strict=True):
    """The notebook's checks, run on these solutions."""
    rng = np.random.default_rng(0)
    x, coef, bias = rng.standard_normal((2, 3, 6, 4)), rng.uniform(0.5, 1.5, 3), rng.standard_normal(3)
    return [
        check_pair((my_subsampling, my_subsampling_backward), (library_subsampling, library_subsampling_backward),
                   [x, coef, bias], title="your subsampling", strict=strict),
    ]
