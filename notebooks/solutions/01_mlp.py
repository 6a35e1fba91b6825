"""Reference solutions for notebooks/01-mlp.ipynb's "your turn" cells (chapter 01)."""
import numpy as np

import scratchnet.functional as F
from scratchnet import nn
from scratchnet.exercises import check_pair, check_train_step
from scratchnet.optim import SGD

YOUR_TURN = ["my_linear", "my_linear_backward", "train_step", "my_layer_norm", "my_layer_norm_backward"]


def my_linear(x, w, b):
    """y = x W + b for x (N, D), w (D, M), b (M,)."""
    y = x @ w + b  # (N, M)
    return y, (x, w)


def my_linear_backward(dy, cache):
    """dx = dy Wᵀ, dW = xᵀ dy, db = Σ_n dy."""
    x, w = cache
    dx = dy @ w.T  # (N, D)
    dw = x.T @ dy  # (D, M)
    db = dy.sum(axis=0)  # (M,)
    return dx, dw, db


def train_step(model, loss_fn, optimizer, xb, yb):
    """One mini-batch step: forward, loss, zero_grad, backward, step; returns the loss."""
    logits = model(xb)
    loss = loss_fn(logits, yb)
    optimizer.zero_grad()
    model.backward(loss_fn.backward())
    optimizer.step()
    return float(loss)


def my_layer_norm(x, gamma, beta, eps=1e-5):
    """Layer norm over the last axis, staged as batch norm is in section 2 (x (N, D))."""
    mu = x.mean(axis=-1, keepdims=True)  # (N, 1)
    c = x - mu  # (N, D)
    v = (c ** 2).mean(axis=-1, keepdims=True)  # (N, 1)
    s = (v + eps) ** -0.5  # (N, 1)
    xhat = c * s  # (N, D)
    y = gamma * xhat + beta  # (N, D)
    return y, (c, v, s, xhat, gamma, eps)


def my_layer_norm_backward(dy, cache):
    """The same nodes in reverse, one d-line each."""
    c, v, s, xhat, gamma, eps = cache
    D = c.shape[-1]
    dbeta = dy.sum(axis=0)
    dgamma = (dy * xhat).sum(axis=0)
    dxhat = dy * gamma
    ds = (dxhat * c).sum(axis=-1, keepdims=True)
    dv = -0.5 * (v + eps) ** -1.5 * ds
    dc = dxhat * s + 2.0 / D * c * dv  # two paths into c: through xhat and through v
    dmu = -dc.sum(axis=-1, keepdims=True)
    dx = dc + dmu / D
    return dx, dgamma, dbeta


def _tiny_model():
    rng = np.random.default_rng(0)
    return nn.Sequential(nn.Linear(12, 8, rng=rng), nn.ReLU(), nn.Linear(8, 3, rng=rng)).astype(np.float64)


def check(strict=True):
    """The notebook's checks, run on these solutions."""
    rng = np.random.default_rng(0)  # one generator per check, as the notebook's cells draw them
    x, w, b = rng.standard_normal((5, 4)), rng.standard_normal((4, 3)), rng.standard_normal(3)
    rng = np.random.default_rng(1)
    xb, yb = rng.standard_normal((16, 12)), rng.integers(0, 3, 16)
    rng = np.random.default_rng(2)
    xl, g, bl = rng.standard_normal((6, 5)), 1 + rng.random(5), rng.standard_normal(5)
    return [
        check_pair((my_linear, my_linear_backward), (F.linear, F.linear_backward), [x, w, b], strict=strict),
        check_train_step(train_step, _tiny_model, lambda m: SGD(m.parameters(), lr=0.1, momentum=0.9),
                         nn.CrossEntropyLoss(), xb, yb, strict=strict),
        check_pair((my_layer_norm, my_layer_norm_backward), (F.layer_norm, F.layer_norm_backward), [xl, g, bl],
                   strict=strict),
    ]
