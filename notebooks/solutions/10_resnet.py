"""Reference solutions for notebooks/10-resnet.ipynb's "your turn" cells (chapter 10)."""
import numpy as np

import scratchnet.functional as F
from scratchnet.exercises import check_pair
from scratchnet.models.resnet import BasicBlock

YOUR_TURN = ["my_projection_block", "my_projection_block_backward"]


def my_projection_block(x, w1, g1, b1, w2, g2, b2, ws, gs, bs, *, stride=2):
    """y = relu(F(x) + S(x)): F = BN2(W2 * relu(BN1(W1 *_stride x))), S = BNs(Ws *_stride x), a 1×1 projection."""
    def bn(a, g, b):
        return F.batch_norm(a, g, b, None, None, training=True)

    a1, c_a1 = F.conv2d(x, w1, None, stride=stride, padding=1)  # W1 * x, strided
    z1, c_z1 = bn(a1, g1, b1)
    r1, c_r1 = F.relu(z1)
    a2, c_a2 = F.conv2d(r1, w2, None, padding=1)  # W2 * r1
    f, c_f = bn(a2, g2, b2)  # F(x)
    a_s, c_as = F.conv2d(x, ws, None, stride=stride)  # Ws * x: 1×1, strided
    sc, c_sc = bn(a_s, gs, bs)  # S(x)
    y, c_y = F.relu(f + sc)
    return y, (c_a1, c_z1, c_r1, c_a2, c_f, c_as, c_sc, c_y)


def my_projection_block_backward(dy, cache):
    """ds = relu'(s) dy reaches both addends; dx is the sum of the branch's and the shortcut's dx."""
    c_a1, c_z1, c_r1, c_a2, c_f, c_as, c_sc, c_y = cache
    ds = F.relu_backward(dy, c_y)  # the sum hands ds to F(x) and to S(x)
    # the shortcut path
    da_s, dgs, dbs = F.batch_norm_backward(ds, c_sc)
    dx_short, dws, _ = F.conv2d_backward(da_s, c_as)
    # the residual branch, in reverse
    da2, dg2, db2 = F.batch_norm_backward(ds, c_f)
    dr1, dw2, _ = F.conv2d_backward(da2, c_a2)
    dz1 = F.relu_backward(dr1, c_r1)
    da1, dg1, db1 = F.batch_norm_backward(dz1, c_z1)
    dx_branch, dw1, _ = F.conv2d_backward(da1, c_a1)
    return dx_short + dx_branch, dw1, dg1, db1, dw2, dg2, db2, dws, dgs, dbs


def library_projection_block(x, w1, g1, b1, w2, g2, b2, ws, gs, bs, *, stride=2):
    """The library's ``BasicBlock`` with a projection shortcut, as a functional pair (forward)."""
    blk = BasicBlock(w1.shape[1], w1.shape[0], stride, rng=0, dtype=x.dtype)
    conv1, bn1, _, conv2, bn2 = blk.branch.layers
    conv_s, bn_s = blk.shortcut.layers
    for p, v in [(conv1.weight, w1), (bn1.weight, g1), (bn1.bias, b1), (conv2.weight, w2), (bn2.weight, g2),
                 (bn2.bias, b2), (conv_s.weight, ws), (bn_s.weight, gs), (bn_s.bias, bs)]:
        p.data[...] = v
    return blk(x), blk


def library_projection_block_backward(dy, blk):
    """Backward of ``library_projection_block``: dx and the nine parameters' gradients, in input order."""
    blk.zero_grad()
    dx = blk.backward(dy)
    conv1, bn1, _, conv2, bn2 = blk.branch.layers
    conv_s, bn_s = blk.shortcut.layers
    return (dx,) + tuple(p.grad.copy() for p in (conv1.weight, bn1.weight, bn1.bias, conv2.weight, bn2.weight,
                                                 bn2.bias, conv_s.weight, bn_s.weight, bn_s.bias))


def block_inputs(rng, cin=3, cout=4):
    """x and the nine parameters of a projection block, float64."""
    x = rng.standard_normal((2, cin, 6, 6))
    params = [rng.standard_normal((cout, cin, 3, 3)) * 0.5, 1 + rng.random(cout), rng.standard_normal(cout),
              rng.standard_normal((cout, cout, 3, 3)) * 0.5, 1 + rng.random(cout), rng.standard_normal(cout),
              rng.standard_normal((cout, cin, 1, 1)), 1 + rng.random(cout), rng.standard_normal(cout)]
    return [x] + params


def check(strict=True):
    """The notebook's checks, run on these solutions."""
    return [
        check_pair((my_projection_block, my_projection_block_backward),
                   (library_projection_block, library_projection_block_backward),
                   block_inputs(np.random.default_rng(0)), options=dict(stride=2),
                   title="your projection block", strict=strict),
    ]
