"""Reference solutions for notebooks/23-vit.ipynb's "your turn" cells (chapter 23)."""
import numpy as np

import scratchnet.functional as F
from scratchnet.exercises import check_function_output, check_pair
from scratchnet.models.vit import sincos_2d_table

YOUR_TURN = ["my_patchify", "my_patchify_backward"]


def my_patchify(x, *, patch_size):
    """(N, C, H, W) → (N, L, C·p·p); cache what the backward needs."""
    N, C, H, W = x.shape
    p = patch_size
    t = x.reshape(N, C, H // p, p, W // p, p)  # split each image axis into (grid, within-patch)
    t = t.transpose(0, 2, 4, 1, 3, 5)  # (N, H/p, W/p, C, p, p): the grid axes first
    return t.reshape(N, (H // p) * (W // p), C * p * p), (x.shape, p)


def my_patchify_backward(dy, cache):
    """dx (N, C, H, W) from dy (N, L, C·p·p): undo the reshapes and the transpose."""
    (N, C, H, W), p = cache
    t = dy.reshape(N, H // p, W // p, C, p, p)
    return t.transpose(0, 3, 1, 4, 2, 5).reshape(N, C, H, W)  # the inverse permutation of the axes


def my_sincos_2d(grid, d_model):
    """Fixed 2-D sine-cosine positions (grid², d_model) for a grid × grid patch layout (exercise 1)."""
    i, j = np.meshgrid(np.arange(grid), np.arange(grid), indexing="ij")
    w = 1.0 / 10000 ** (np.arange(d_model // 4) / (d_model // 4))  # (D/4,)
    a, b = i.reshape(-1, 1) * w, j.reshape(-1, 1) * w  # (L, D/4)
    return np.concatenate([np.sin(a), np.cos(a), np.sin(b), np.cos(b)], axis=1).astype(np.float32)


def check(strict=True):
    """The notebook's checks, run on these solutions."""
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 6))
    return [
        check_pair((my_patchify, my_patchify_backward), (F.patchify, F.patchify_backward), [x],
                   options=dict(patch_size=2), title="your patchify", strict=strict),
        check_function_output(my_sincos_2d, sincos_2d_table, [4, 16], title="exercise 1: my_sincos_2d",
                              strict=strict),
    ]
