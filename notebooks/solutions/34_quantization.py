"""Reference solutions for notebooks/34-quantization.ipynb's "your turn" cells (chapter 34)."""
import numpy as np

import scratchnet.functional as F
from scratchnet.exercises import check_pair

YOUR_TURN = ["my_fake_quant", "my_fake_quant_backward"]


def my_fake_quant(x, scale, zero_point, *, qmin, qmax, residual=None):
    """x̂ = (clip(round(x/s) + z, q_min, q_max) − z)·s, per tensor; round(u) = u + residual when given."""
    u = x / scale  # the value in steps
    r = np.round(u) if residual is None else u + residual  # rounded (or frozen-rounded)
    v = r + zero_point  # the unclipped code
    q = np.clip(v, qmin, qmax)
    inside = (v >= qmin) & (v <= qmax)
    return (q - zero_point) * scale, (inside, r - u, q - zero_point)


def my_fake_quant_backward(dy, cache):
    """STE: dx = dy where the code was inside the range; ds = Σ dy·(δ inside, q − z clipped)."""
    inside, delta, q_minus_z = cache
    dx = dy * inside  # round passes the gradient straight through; the clip blocks it
    ds = np.sum(dy * np.where(inside, delta, q_minus_z))  # ∂x̂/∂s: δ inside, q − z where clipped
    return dx, np.asarray(ds)


def check(strict=True):
    """The notebook's check, run on these solutions."""
    r0 = np.random.default_rng(0)
    s, z = np.array(0.3), -2
    x = 2.0 * r0.standard_normal((6, 5))
    code = np.round(x / s) + z
    x = x + s * ((code == 7).astype(float) - (code == -8))  # no code exactly on a clip point
    delta = F.rounding_residual(x, s)  # frozen rounding: the STE is then the exact gradient
    return [check_pair((my_fake_quant, my_fake_quant_backward), (F.fake_quant, F.fake_quant_backward),
                       [x, s, z], options=dict(qmin=-8, qmax=7, residual=delta), title="your fake quantisation",
                       strict=strict)]
