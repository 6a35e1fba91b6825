"""CTC loss forward + backward against PyTorch's (CPU).

The route (scratchnet/kernels/ctc.py) runs the prange kernels from CTC_PARALLEL_MIN lattice cells
N·T·L on and the serial twins below; this workload's lattice (32 × 100 × 41 = 131,200 cells) takes
the parallel ones. The kernels also scan each sequence's frames for a NaN (NaN in → NaN out): one
pass over N·T·C numbers, next to the N·T·L cells of each of the two lattice passes.
On the GPU (``--device gpu``) the loss runs on CuPy arrays (lengths and targets on the device too)
beside PyTorch's CUDA CTC.
"""
import numpy as np

import scratchnet.functional as F
from benchmarks.harness import torch_device, torch_for, workload
from scratchnet.backend import to_device


@workload("ctc.loss_fwd_bwd", description="N=32, T=100, C=28, S=20, float32, reduction=mean", devices=("cpu", "gpu"))
def ctc_loss_fwd_bwd(device="cpu"):
    rng = np.random.default_rng(0)
    N, T, C, S = 32, 100, 28, 20
    logits = rng.standard_normal((N, T, C), dtype=np.float32)
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))  # (N, T, C)
    targets = rng.integers(1, C, size=(N, S))  # (N, S) never the blank 0
    input_lengths = np.full(N, T)
    target_lengths = np.full(N, S)
    lp_s, tg_s, il_s, tl_s = (to_device(a, device) for a in (log_probs, targets, input_lengths, target_lengths))

    def run_scratchnet():
        loss, cache = F.ctc_loss(lp_s, tg_s, il_s, tl_s)
        F.ctc_loss_backward(1.0, cache)

    torch = torch_for(device)
    if torch is None:
        return run_scratchnet, None
    tdev = torch_device(device)
    lp_t = torch.tensor(log_probs, device=tdev).transpose(0, 1).contiguous().requires_grad_()  # (T, N, C)
    tg_t, il_t, tl_t = (torch.tensor(a, device=tdev) for a in (targets, input_lengths, target_lengths))

    def run_torch():
        lp_t.grad = None
        loss = torch.nn.functional.ctc_loss(lp_t, tg_t, il_t, tl_t)
        loss.backward()

    return run_scratchnet, run_torch
