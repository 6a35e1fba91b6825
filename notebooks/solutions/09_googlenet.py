"""Reference solutions for notebooks/09-googlenet.ipynb's "your turn" cells (chapter 09)."""
import numpy as np

from scratchnet.exercises import check_pair
from scratchnet.models.googlenet import Inception

YOUR_TURN = ["my_inception", "my_inception_backward"]


def my_inception(x, *, block):
    """y = [B_1(x), B_2(x), B_3(x), B_4(x)] stacked along the channels, with ``block.branches`` the B_b."""
    outs = [branch(x) for branch in block.branches]  # every branch reads the same x: (N, C_b, H, W)
    y = np.concatenate(outs, axis=1)  # (N, Σ C_b, H, W)
    return y, (block, [o.shape[1] for o in outs])


def my_inception_backward(dy, cache):
    """dx = Σ_b B_bᵀ(dy_b), with dy_b the channel slice of dy that branch b filled."""
    block, sizes = cache
    dx, start = np.zeros((dy.shape[0], block.in_channels) + dy.shape[2:], dy.dtype), 0
    for branch, c in zip(block.branches, sizes):
        dx += branch.backward(dy[:, start:start + c])  # the slice goes back through its own branch
        start += c
    return dx


def library_inception(x, *, block):
    """The library's ``Inception`` module as a functional pair (forward) ..."""
    return block(x), block


def library_inception_backward(dy, block):
    """... and its backward: dx."""
    return block.backward(dy)


def inception_block(rng):
    """A float64 Inception module with all four branches (3 → 2 + 3 + 2 + 2 channels)."""
    return Inception(3, c1=2, c3_reduce=2, c3=3, c5_reduce=1, c5=2, pool_proj=2, rng=rng, dtype=np.float64)


def check(strict=True):
    """The notebook's check, run on these solutions."""
    rng = np.random.default_rng(0)
    block = inception_block(rng)
    x = rng.standard_normal((2, 3, 5, 5))
    return [
        check_pair((my_inception, my_inception_backward), (library_inception, library_inception_backward), [x],
                   options=dict(block=block), title="your Inception module", strict=strict),
    ]
