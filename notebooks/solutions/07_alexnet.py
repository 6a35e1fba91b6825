"""Reference solutions for notebooks/07-alexnet.ipynb's "your turn" cells (chapter 07)."""
import numpy as np

import scratchnet.functional as F
from scratchnet.exercises import check_pair

YOUR_TURN = ["my_lrn", "my_lrn_backward"]


def channel_window_sum(a, before, after):
    """out[:, c] = Σ_{c' = c − before}^{c + after} a[:, c'] (channels outside [0, C) count as zero)."""
    C = a.shape[1]
    out = np.zeros_like(a)
    for d in range(-before, after + 1):  # one shifted copy per offset
        if d >= 0:
            out[:, :C - d] += a[:, d:]
        else:
            out[:, -d:] += a[:, :C + d]
    return out


def my_lrn(x, *, size=5, alpha=1e-4, beta=0.75, k=2.0):
    """y_c = x_c s_c^(−β), s_c = k + (α/size) Σ_{c' ∈ W(c)} x_c'², W(c) = [c − ⌊size/2⌋, c + ⌊(size−1)/2⌋]."""
    s = k + alpha / size * channel_window_sum(x * x, size // 2, (size - 1) // 2)
    u = s ** (-beta)
    return x * u, (x, s, u, size, alpha, beta)


def my_lrn_backward(dy, cache):
    """Closed form: dx_j = dy_j u_j − (2αβ/size) x_j Σ_{c : j ∈ W(c)} dy_c x_c s_c^(−β−1) (the mirrored window)."""
    x, s, u, size, alpha, beta = cache
    t = dy * x * u / s  # dy_c x_c s_c^(−β−1)
    back = channel_window_sum(t, (size - 1) // 2, size // 2)  # the two offsets exchanged
    return dy * u - 2.0 * alpha * beta / size * x * back


def check(strict=True):
    """The notebook's checks, run on these solutions."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 7, 3, 3))
    return [
        check_pair((my_lrn, my_lrn_backward), (F.local_response_norm, F.local_response_norm_backward), [x],
                   options=dict(size=size, alpha=0.5, beta=0.75, k=2.0), title=f"your LRN, size={size}",
                   strict=strict)
        for size in (4, 5)
    ]
