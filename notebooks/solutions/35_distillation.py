"""Reference solutions for notebooks/35-distillation.ipynb's "your turn" cells (chapter 35)."""
import numpy as np

import scratchnet.functional as F
from scratchnet.exercises import check_pair

YOUR_TURN = ["my_distillation_loss", "my_distillation_loss_backward"]


def _log_softmax(z):
    zs = z - z.max(axis=1, keepdims=True)  # (N, K) every exponent ≤ 0
    return zs - np.log(np.exp(zs).sum(axis=1, keepdims=True))


def my_distillation_loss(student_logits, teacher_logits, target, *, T, alpha):
    """L = alpha · T² · mean_n KL(q ‖ p) + (1 − alpha) · mean_n CE(s, y)."""
    N = student_logits.shape[0]
    logp, logq = _log_softmax(student_logits / T), _log_softmax(teacher_logits / T)  # (N, K)
    p, q = np.exp(logp), np.exp(logq)
    soft = T * T * (q * (logq - logp)).sum() / N
    log_s = _log_softmax(student_logits)  # (N, K) at T = 1 for the hard labels
    hard = -log_s[np.arange(N), target].mean()
    return alpha * soft + (1 - alpha) * hard, (p, q, np.exp(log_s), target, T, alpha)


def my_distillation_loss_backward(dloss, cache):
    """ds = dloss · [alpha T (p − q) + (1 − alpha)(softmax(s) − onehot(y))] / N."""
    p, q, prob, target, T, alpha = cache
    N = p.shape[0]
    onehot = np.zeros_like(prob)
    onehot[np.arange(N), target] = 1.0
    return dloss * (alpha * T * (p - q) + (1 - alpha) * (prob - onehot)) / N


def check(strict=True):
    """The notebook's check, run on these solutions."""
    r0 = np.random.default_rng(0)
    s, t, y = r0.standard_normal((6, 5)), 2 * r0.standard_normal((6, 5)), r0.integers(0, 5, 6)
    return [check_pair((my_distillation_loss, my_distillation_loss_backward),
                       (F.distillation_loss, F.distillation_loss_backward), [s, t, y],
                       options={"T": 4.0, "alpha": 0.7}, wrt=[0], title="your distillation loss", strict=strict)]
