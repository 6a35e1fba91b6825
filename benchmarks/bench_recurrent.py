"""LSTM and GRU forward + backward over a whole sequence against PyTorch's (CPU)."""
import numpy as np

import scratchnet.functional as F
from benchmarks.harness import torch_or_none, workload

N, T, D, H = 32, 100, 40, 128


def _setup(kind):
    rng = np.random.default_rng(0)
    G = {"lstm": 4, "gru": 3}[kind]
    bound = 1.0 / np.sqrt(H)
    x = rng.standard_normal((N, T, D), dtype=np.float32)
    wx = rng.uniform(-bound, bound, (D, G * H)).astype(np.float32)
    wh = rng.uniform(-bound, bound, (H, G * H)).astype(np.float32)
    b = rng.uniform(-bound, bound, (G * H,)).astype(np.float32)
    dy = rng.standard_normal((N, T, H), dtype=np.float32)

    def run_scratchnet():
        if kind == "lstm":
            _, cache = F.lstm(x, None, None, wx, wh, b)
            F.lstm_backward((dy, None, None), cache)
        else:
            _, cache = F.gru(x, None, wx, wh, b, b)
            F.gru_backward((dy, None), cache)

    torch = torch_or_none()
    if torch is None:
        return run_scratchnet, None
    cls = torch.nn.LSTM if kind == "lstm" else torch.nn.GRU
    net = cls(D, H, batch_first=True)
    x_t = torch.tensor(x).requires_grad_()
    dy_t = torch.tensor(dy)

    def run_torch():
        x_t.grad = None
        net.zero_grad()
        y, _ = net(x_t)
        y.backward(dy_t)

    return run_scratchnet, run_torch


@workload("recurrent.lstm_fwd_bwd", description=f"N={N}, T={T}, D={D}, H={H}, float32, dy on every step")
def lstm_fwd_bwd():
    return _setup("lstm")


@workload("recurrent.gru_fwd_bwd", description=f"N={N}, T={T}, D={D}, H={H}, float32, dy on every step")
def gru_fwd_bwd():
    return _setup("gru")
