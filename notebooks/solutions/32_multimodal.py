"""Reference solutions for notebooks/32-multimodal.ipynb's "your turn" cells (chapter 32)."""
import numpy as np

import scratchnet.functional as F
from scratchnet.exercises import check_pair

YOUR_TURN = ["my_late_fusion", "my_late_fusion_backward"]


def my_late_fusion(logps, w):
    """y = Σ_m α_m logp_m, α = softmax(w): logps (N, M, K), w (M,) → y (N, K)."""
    e = np.exp(w - w.max())  # (M,) a stable softmax
    alpha = e / e.sum()
    y = (alpha[None, :, None] * logps).sum(axis=1)  # (N, K)
    return y, (logps, alpha)


def my_late_fusion_backward(dy, cache):
    """dlogps = α_m dy for each m; dw = α ⊙ (s − αᵀs) with s_m = Σ_{n,k} dy ⊙ logp_m."""
    logps, alpha = cache
    dlogps = alpha[None, :, None] * dy[:, None, :]  # (N, M, K)
    s = (dy[:, None, :] * logps).sum(axis=(0, 2))  # (M,) ∂L/∂α
    dw = alpha * (s - (alpha * s).sum())  # (M,) through the softmax
    return dlogps, dw


def check(strict=True):
    """The notebook's check, run on these solutions."""
    r0 = np.random.default_rng(0)
    logps = F.log_softmax(r0.standard_normal((5, 2, 4)))[0]
    w = np.array([0.3, -0.8])
    return [check_pair((my_late_fusion, my_late_fusion_backward), (F.late_fusion, F.late_fusion_backward),
                       [logps, w], title="your late fusion", strict=strict)]
