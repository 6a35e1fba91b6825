"""Reference solutions for notebooks/27-rcnn.ipynb's "your turn" cells (chapter 27)."""
import numpy as np

import scratchnet.functional as F
from scratchnet.exercises import check_pair
from scratchnet.gradcheck.cases.rcnn import head_problem

YOUR_TURN = ["my_fast_rcnn_loss", "my_fast_rcnn_loss_backward"]


def my_fast_rcnn_loss(scores, deltas, labels, targets, *, lambda_reg=1.0, beta=1.0):
    """(1/R) Σ CE(scores_r, u_r) + (λ/R) Σ_{u_r ≥ 1} smoothL1_β(deltas[r, 4u:4u+4] − targets_r)."""
    R, K1 = scores.shape
    z = scores - scores.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))  # (R, K + 1) log-softmax
    fg = np.flatnonzero(labels >= 1)  # (R_fg,) foreground rows
    cols = 4 * labels[fg][:, None] + np.arange(4)  # (R_fg, 4) the true class's deltas
    d = deltas[fg[:, None], cols] - targets[fg]  # (R_fg, 4)
    a = np.abs(d)
    sl1 = np.where(a < beta, 0.5 * d * d / beta, a - 0.5 * beta)
    loss = (-logp[np.arange(R), labels].sum() + lambda_reg * sl1.sum()) / R
    return loss, (logp, labels, fg, cols, d, lambda_reg, beta, deltas.shape)


def my_fast_rcnn_loss_backward(dloss, cache):
    """dscores = (softmax − onehot)/R; ddeltas = λ/R · s'(d) on the true class's columns of fg rows."""
    logp, labels, fg, cols, d, lambda_reg, beta, d_shape = cache
    R = logp.shape[0]
    dscores = np.exp(logp)
    dscores[np.arange(R), labels] -= 1.0
    dscores *= dloss / R
    ddeltas = np.zeros(d_shape, dtype=logp.dtype)
    slope = np.where(np.abs(d) < beta, d / beta, np.sign(d))  # s'(d)
    ddeltas[fg[:, None], cols] = slope * lambda_reg * dloss / R
    return dscores, ddeltas


def check(strict=True):
    """The notebook's check, run on these solutions."""
    return [check_pair((my_fast_rcnn_loss, my_fast_rcnn_loss_backward),
                       (F.fast_rcnn_loss, F.fast_rcnn_loss_backward), head_problem(R=9, K=4, seed=11),
                       options=dict(lambda_reg=1.5), wrt=[0, 1], title="your Fast R-CNN loss", strict=strict)]
