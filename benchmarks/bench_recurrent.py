"""LSTM and GRU forward + backward over a whole sequence against PyTorch's (CPU).

float32 NumPy inputs take the fused routes of ``scratchnet/kernels/recurrent.py``: the forward
cells' gate math in one Numba loop per step (``lstm_cell_float32_kernel``,
``gru_cell_float32_kernel``) and the backward walks' elementwise work in one loop per step
(``lstm_backward_step_kernel``, ``gru_backward_step_kernel``); the GEMMs stay in NumPy. What those
routes were measured to save, at this workload's shapes on two cores:

- NumPy's float32 ``tanh`` is a scalar loop; in the vectorised LSTM cell its two calls per step
  alone cost more than the step's GEMM, hence the kernels' vectorisable rational tanh.
- The vectorised backward walks keep (T, N, ·) arrays of local derivatives; their page faults cost
  more than the few multiplications the fused walks repeat.
- In the backward step kernels, a literal ``1.0`` instead of ``one`` (1 in the arrays' dtype)
  widened the float32 arithmetic to float64 and made the kernel about 1.3× slower.
- Issue 25 (one thread everywhere, CPU time, a loaded 2-core AMD EPYC; ``python -m benchmarks.cputime
  recurrent``): LSTM 26.6 ms against PyTorch's 22.3 (1.19×), GRU 29.5 against 52.6 (0.56×). Per
  step, the fused kernels cost 9 µs (forward cell) and 11 µs (backward step) of the ~100 µs a step
  takes; the rest is the two (32 × 128) · (128 × 512) GEMMs per step (~5 ms each way over T = 100)
  and the whole-sequence GEMMs of dwx, dwh and dx. The backward walk now writes each step's dh into
  one buffer (``np.matmul(..., out=dh)``) instead of allocating it: no measurable change at this size.
"""
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
