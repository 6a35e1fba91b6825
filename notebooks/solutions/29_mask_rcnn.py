"""Reference solutions for notebooks/29-mask-rcnn.ipynb's "your turn" cells (chapter 29)."""
import numpy as np

import scratchnet.functional as F
from scratchnet.exercises import check_pair
from scratchnet.gradcheck.cases.mask_rcnn import mask_problem

YOUR_TURN = ["my_mask_loss", "my_mask_loss_backward"]


def my_mask_loss(logits, labels, targets):
    """Mean over foreground pixels of softplus(z) − t·z, z = logits[r, u_r − 1] (the gt class's channel)."""
    fg = np.flatnonzero(labels >= 1)  # (R_fg,) foreground rows
    z = logits[fg, labels[fg] - 1]  # (R_fg, M, M)
    t = targets[fg].astype(logits.dtype)
    n = max(z.size, 1)
    softplus = np.maximum(z, 0) + np.log1p(np.exp(-np.abs(z)))  # log(1 + e^z), stable
    loss = np.asarray((softplus - t * z).sum() / n, dtype=logits.dtype)
    return loss, (fg, labels[fg] - 1, z, t, n, logits.shape)


def my_mask_loss_backward(dloss, cache):
    """(σ(z) − t)·dloss/n on the gt channel of foreground rows, zero elsewhere."""
    fg, channel, z, t, n, shape = cache
    dlogits = np.zeros(shape, dtype=z.dtype)
    dlogits[fg, channel] = (1 / (1 + np.exp(-z)) - t) * dloss / n
    return dlogits


def check(strict=True):
    """The notebook's check, run on these solutions."""
    return [check_pair((my_mask_loss, my_mask_loss_backward), (F.mask_loss, F.mask_loss_backward),
                       mask_problem(R=6, K=4, M=5, seed=12), wrt=[0], title="your mask loss", strict=strict)]
