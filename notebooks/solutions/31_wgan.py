"""Reference solutions for notebooks/31-wgan.ipynb's "your turn" cells (chapter 31)."""
import numpy as np

import scratchnet.functional as F
from scratchnet.exercises import check_pair

YOUR_TURN = ["my_leaky_relu_input_grad", "my_leaky_relu_input_grad_backward", "my_gradient_penalty",
             "my_gradient_penalty_backward"]


def my_leaky_relu_input_grad(dy, x, *, slope=0.01):
    """dx = dy·s(x), s = 1 where x > 0 else slope."""
    s = np.where(x > 0, 1.0, slope).astype(x.dtype)
    return dy * s, (s,)


def my_leaky_relu_input_grad_backward(ddx, cache):
    """ddy = ddx·s(x); x gets nothing: s is piecewise constant."""
    (s,) = cache
    return ddx * s, np.zeros_like(s)


def my_gradient_penalty(g, *, lam=10.0):
    """P = λ·mean_n (‖g_n‖ − 1)²."""
    norms = np.sqrt((g.reshape(len(g), -1) ** 2).sum(axis=1))  # (N,)
    return lam * ((norms - 1.0) ** 2).mean(), (g, norms, lam)


def my_gradient_penalty_backward(dP, cache):
    """dg_n = dP·(2λ/N)(‖g_n‖ − 1)·g_n/‖g_n‖."""
    g, norms, lam = cache
    coef = dP * 2.0 * lam / len(g) * (norms - 1.0) / norms  # (N,)
    return coef.reshape((len(g),) + (1,) * (g.ndim - 1)) * g


def check(strict=True):
    """The notebook's checks, run on these solutions."""
    r0 = np.random.default_rng(5)
    x_chk = r0.standard_normal((4, 6))
    x_chk[np.abs(x_chk) < 0.05] = 0.3
    return [
        check_pair((my_leaky_relu_input_grad, my_leaky_relu_input_grad_backward),
                   (F.leaky_relu_input_grad, F.leaky_relu_input_grad_backward), [r0.standard_normal((4, 6)), x_chk],
                   options={"slope": 0.2}, strict=strict, title="your leaky_relu_input_grad"),
        check_pair((my_gradient_penalty, my_gradient_penalty_backward),
                   (F.gradient_penalty, F.gradient_penalty_backward), [r0.standard_normal((5, 1, 3, 3))],
                   options={"lam": 10.0}, strict=strict, title="your gradient_penalty"),
    ]
