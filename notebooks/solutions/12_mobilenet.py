"""Reference solutions for notebooks/12-mobilenet.ipynb's "your turn" cells (chapter 12)."""
import numpy as np

import scratchnet.functional as F
from scratchnet.exercises import check_pair
from scratchnet.models.mobilenet import DepthwiseSeparable

YOUR_TURN = ["my_separable_block", "my_separable_block_backward"]


def my_separable_block(x, w_dw, g1, b1, w_pw, g2, b2, *, stride=1):
    """y = relu(BN2(P ⋆ relu(BN1(W_dw ⋆_stride x)))): depthwise 3×3 (groups = C_in), then pointwise 1×1."""
    def bn(a, g, b):
        return F.batch_norm(a, g, b, None, None, training=True)

    u, c_u = F.conv2d(x, w_dw, None, stride=stride, padding=1, groups=x.shape[1])  # depthwise
    a1, c_a1 = bn(u, g1, b1)
    h, c_h = F.relu(a1)
    v, c_v = F.conv2d(h, w_pw, None)  # pointwise: a 1×1 conv mixes the channels
    a2, c_a2 = bn(v, g2, b2)
    y, c_y = F.relu(a2)
    return y, (c_u, c_a1, c_h, c_v, c_a2, c_y)


def my_separable_block_backward(dy, cache):
    """dx, dw_dw, dg1, db1, dw_pw, dg2, db2: the forward's six nodes in reverse."""
    c_u, c_a1, c_h, c_v, c_a2, c_y = cache
    da2 = F.relu_backward(dy, c_y)
    dv, dg2, db2 = F.batch_norm_backward(da2, c_a2)
    dh, dw_pw, _ = F.conv2d_backward(dv, c_v)  # pointwise: dh = Pᵀ dv at every pixel
    da1 = F.relu_backward(dh, c_h)
    du, dg1, db1 = F.batch_norm_backward(da1, c_a1)
    dx, dw_dw, _ = F.conv2d_backward(du, c_u)  # depthwise: channel by channel
    return dx, dw_dw, dg1, db1, dw_pw, dg2, db2


def library_separable_block(x, w_dw, g1, b1, w_pw, g2, b2, *, stride=1):
    """The library's ``DepthwiseSeparable`` block as a functional pair (forward) ..."""
    blk = DepthwiseSeparable(x.shape[1], w_pw.shape[0], stride, rng=0, dtype=x.dtype)
    for p, v in [(blk.dw.weight, w_dw), (blk.bn1.weight, g1), (blk.bn1.bias, b1), (blk.pw.weight, w_pw),
                 (blk.bn2.weight, g2), (blk.bn2.bias, b2)]:
        p.data[...] = v
    return blk(x), blk


def library_separable_block_backward(dy, blk):
    """... and its backward: dx and the six parameters' gradients, in the order of the inputs."""
    blk.zero_grad()
    dx = blk.backward(dy)
    return (dx,) + tuple(p.grad.copy() for p in (blk.dw.weight, blk.bn1.weight, blk.bn1.bias, blk.pw.weight,
                                                 blk.bn2.weight, blk.bn2.bias))


def block_inputs(rng, cin=3, cout=5):
    """x and the six parameters of a depthwise-separable block, float64."""
    return [rng.standard_normal((2, cin, 6, 6)),
            rng.standard_normal((cin, 1, 3, 3)) * 0.5, 1 + rng.random(cin), rng.standard_normal(cin),
            rng.standard_normal((cout, cin, 1, 1)) * 0.5, 1 + rng.random(cout), rng.standard_normal(cout)]


def check(strict=True):
    """The notebook's checks, run on these solutions."""
    return [
        check_pair((my_separable_block, my_separable_block_backward),
                   (library_separable_block, library_separable_block_backward),
                   block_inputs(np.random.default_rng(0)), options=dict(stride=2),
                   title="your depthwise-separable block", strict=strict),
    ]
