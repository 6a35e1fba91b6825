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

On the GPU (``--device gpu``) the same sequences run on CuPy arrays through the readable references (per
step one GEMM and the gate arithmetic as separate CuPy kernels) beside PyTorch's CUDA LSTM and GRU.
"""
import numpy as np

import scratchnet.functional as F
from benchmarks.harness import torch_device, torch_for, workload
from scratchnet.backend import to_device

N, T, D, H = 32, 100, 40, 128


def _setup(kind, device="cpu"):
    """forward + backward of an LSTM or GRU layer over x (N, T, D) with dy on every step, on ``device``."""
    rng = np.random.default_rng(0)
    G = {"lstm": 4, "gru": 3}[kind]
    bound = 1.0 / np.sqrt(H)
    x = rng.standard_normal((N, T, D), dtype=np.float32)
    wx = rng.uniform(-bound, bound, (D, G * H)).astype(np.float32)
    wh = rng.uniform(-bound, bound, (H, G * H)).astype(np.float32)
    b = rng.uniform(-bound, bound, (G * H,)).astype(np.float32)
    dy = rng.standard_normal((N, T, H), dtype=np.float32)
    xs, wxs, whs, bs, dys = (to_device(a, device) for a in (x, wx, wh, b, dy))

    def run_scratchnet():
        if kind == "lstm":
            _, cache = F.lstm(xs, None, None, wxs, whs, bs)
            F.lstm_backward((dys, None, None), cache)
        else:
            _, cache = F.gru(xs, None, wxs, whs, bs, bs)
            F.gru_backward((dys, None), cache)

    torch = torch_for(device)
    if torch is None:
        return run_scratchnet, None
    tdev = torch_device(device)
    cls = torch.nn.LSTM if kind == "lstm" else torch.nn.GRU
    net = cls(D, H, batch_first=True).to(tdev)
    x_t = torch.tensor(x, device=tdev).requires_grad_()
    dy_t = torch.tensor(dy, device=tdev)

    def run_torch():
        x_t.grad = None
        net.zero_grad()
        y, _ = net(x_t)
        y.backward(dy_t)

    return run_scratchnet, run_torch


@workload("recurrent.lstm_fwd_bwd", description=f"N={N}, T={T}, D={D}, H={H}, float32, dy on every step",
          devices=("cpu", "gpu"))
def lstm_fwd_bwd(device="cpu"):
    return _setup("lstm", device)


@workload("recurrent.gru_fwd_bwd", description=f"N={N}, T={T}, D={D}, H={H}, float32, dy on every step",
          devices=("cpu", "gpu"))
def gru_fwd_bwd(device="cpu"):
    return _setup("gru", device)
