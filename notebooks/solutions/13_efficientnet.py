"""Reference solutions for notebooks/13-efficientnet.ipynb's "your turn" cell (chapter 13)."""
import numpy as np

import scratchnet.functional as F
from scratchnet.exercises import check_pair
from scratchnet.models.efficientnet import SqueezeExcite

YOUR_TURN = ["my_squeeze_excite", "my_squeeze_excite_backward"]


def my_squeeze_excite(x, w1, b1, w2, b2):
    """y = x · σ(SiLU(pool(x) W1 + b1) W2 + b2): pool → reduce → silu → expand → sigmoid → scale."""
    p, c_p = F.global_avg_pool2d(x)  # squeeze: (N, C)
    z, c_z = F.linear(p, w1, b1)  # reduce: (N, R)
    a, c_a = F.silu(z)
    e, c_e = F.linear(a, w2, b2)  # expand: (N, C)
    s, c_s = F.sigmoid(e)  # the gate
    y, c_y = F.scale_channels(x, s)  # y = x · s
    return y, (c_p, c_z, c_a, c_e, c_s, c_y)


def my_squeeze_excite_backward(dy, cache):
    """dx = dy·s + poolᵀ(W1ᵀ SiLU'(W2ᵀ σ'(Σ_hw dy·x))): the direct path plus the gate path; then dW1, db1, dW2, db2."""
    c_p, c_z, c_a, c_e, c_s, c_y = cache
    dx_direct, ds = F.scale_channels_backward(dy, c_y)  # dy·s and Σ_hw dy·x
    de = F.sigmoid_backward(ds, c_s)  # ds · s(1 − s)
    da, dw2, db2 = F.linear_backward(de, c_e)
    dz = F.silu_backward(da, c_a)
    dp, dw1, db1 = F.linear_backward(dz, c_z)
    dx_gate = F.global_avg_pool2d_backward(dp, c_p)  # dp / (H·W) on every pixel
    return dx_direct + dx_gate, dw1, db1, dw2, db2


def library_squeeze_excite(x, w1, b1, w2, b2):
    """The library's ``SqueezeExcite`` module as a functional pair (forward)."""
    se = SqueezeExcite(w1.shape[0], w1.shape[1], rng=0, dtype=x.dtype)
    for p, v in [(se.reduce.weight, w1), (se.reduce.bias, b1), (se.expand.weight, w2), (se.expand.bias, b2)]:
        p.data[...] = v
    return se(x), se


def library_squeeze_excite_backward(dy, se):
    """Backward of ``library_squeeze_excite``: dx, dW1, db1, dW2, db2."""
    se.zero_grad()
    dx = se.backward(dy)
    return (dx,) + tuple(p.grad.copy() for p in (se.reduce.weight, se.reduce.bias, se.expand.weight, se.expand.bias))


def se_inputs(rng, C=6, R=2):
    """x (3, C, 4, 5) and the SE block's four parameters, float64."""
    return [rng.standard_normal((3, C, 4, 5)), rng.standard_normal((C, R)), rng.standard_normal(R),
            rng.standard_normal((R, C)), rng.standard_normal(C)]


def check(strict=True):
    """The notebook's check, run on these solutions."""
    return [
        check_pair((my_squeeze_excite, my_squeeze_excite_backward),
                   (library_squeeze_excite, library_squeeze_excite_backward),
                   se_inputs(np.random.default_rng(0)), title="your squeeze-and-excitation block", strict=strict),
    ]
