"""Reference solutions for notebooks/11-densenet.ipynb's "your turn" cells (chapter 11)."""
import numpy as np

import scratchnet.functional as F
from scratchnet.exercises import check_pair
from scratchnet.models.densenet import DenseBlock

YOUR_TURN = ["my_dense_block2", "my_dense_block2_backward"]


def _layer(x, g, b, w):
    """One composite function H = conv3×3(relu(BN(x))), BN in training mode without running statistics."""
    z, c_z = F.batch_norm(x, g, b, None, None, training=True)
    r, c_r = F.relu(z)
    h, c_h = F.conv2d(r, w, None, padding=1)
    return h, (c_z, c_r, c_h)


def _layer_backward(dh, cache):
    """dx, dgamma, dbeta, dw of ``_layer``, in reverse."""
    c_z, c_r, c_h = cache
    dr, dw, _ = F.conv2d_backward(dh, c_h)
    dz = F.relu_backward(dr, c_r)
    dx, dg, db = F.batch_norm_backward(dz, c_z)
    return dx, dg, db, dw


def my_dense_block2(x, g1, b1, w1, g2, b2, w2):
    """y = [x, h1, h2] with h1 = H1(x), h2 = H2([x, h1]); H = conv3×3 ∘ relu ∘ BN."""
    h1, c1 = _layer(x, g1, b1, w1)  # (N, k, H, W)
    inp2, c_cat2 = F.concat([x, h1], axis=1)  # (N, C0 + k, H, W)
    h2, c2 = _layer(inp2, g2, b2, w2)
    y, c_y = F.concat([x, h1, h2], axis=1)  # (N, C0 + 2k, H, W)
    return y, (c1, c_cat2, c2, c_y)


def my_dense_block2_backward(dy, cache):
    """dx, dg1, db1, dw1, dg2, db2, dw2: x is read by H1, H2 and the output, h1 by H2 and the output."""
    c1, c_cat2, c2, c_y = cache
    dx, dh1, dh2 = F.concat_backward(dy, c_y)  # the output's share of each map's gradient
    dinp2, dg2, db2, dw2 = _layer_backward(dh2, c2)  # through H2
    dx_2, dh1_2 = F.concat_backward(dinp2, c_cat2)  # H2 read x and h1
    dh1 = dh1 + dh1_2  # h1 is complete: the output and H2, its only consumers
    dx1, dg1, db1, dw1 = _layer_backward(dh1, c1)  # through H1
    dx = dx + dx_2 + dx1  # x: the output, H2 and H1
    return dx, dg1, db1, dw1, dg2, db2, dw2


def library_dense_block2(x, g1, b1, w1, g2, b2, w2):
    """The library's ``DenseBlock(C0, 2, k, bottleneck=False)`` with these weights, as a forward."""
    blk = DenseBlock(x.shape[1], 2, w1.shape[0], bottleneck=False, rng=0, dtype=x.dtype)
    for layer, (g, b, w) in zip(blk.layers, [(g1, b1, w1), (g2, b2, w2)]):
        bn, conv = layer.head.layers[0], layer.tail.layers[0]
        bn.weight.data[...], bn.bias.data[...], conv.weight.data[...] = g, b, w
    return blk(x), blk


def library_dense_block2_backward(dy, blk):
    """Backward of ``library_dense_block2``: dx and the six parameters' gradients, in input order."""
    blk.zero_grad()
    dx = blk.backward(dy)
    grads = []
    for layer in blk.layers:
        bn, conv = layer.head.layers[0], layer.tail.layers[0]
        grads += [bn.weight.grad.copy(), bn.bias.grad.copy(), conv.weight.grad.copy()]
    return (dx,) + tuple(grads)


def block_inputs(rng, c0=3, k=2):
    """x (2, c0, 5, 5) and the six parameters of a 2-layer dense block of growth k, float64."""
    x = rng.standard_normal((2, c0, 5, 5))
    return [x, 1 + rng.random(c0), rng.standard_normal(c0), rng.standard_normal((k, c0, 3, 3)) * 0.5,
            1 + rng.random(c0 + k), rng.standard_normal(c0 + k), rng.standard_normal((k, c0 + k, 3, 3)) * 0.5]


def check(strict=True):
    """The notebook's checks, run on these solutions."""
    return [
        check_pair((my_dense_block2, my_dense_block2_backward),
                   (library_dense_block2, library_dense_block2_backward),
                   block_inputs(np.random.default_rng(0)), title="your 2-layer dense block", strict=strict),
    ]
