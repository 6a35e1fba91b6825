"""Attention workloads: MultiHeadAttention forward+backward and one GPT training step, beside PyTorch.

The GPT step is where the exact GELU's route matters (scratchnet/kernels/activation.py). Measured
on the development machine (2 cores): SciPy's erf, the vectorised reference's, costs ≈ 18 ns per
float32 element, a scalar routine behind a ufunc, which made GELU a fifth of a training step; the
fused Numba loop computes Φ and y in one pass. A ``parallel=True`` variant of that loop halves its
own time measured alone, but made the whole step (6 layers, d 256) ≈ 20 % slower than the serial
loop: its OpenMP workers keep spinning after the region and take the cores the GEMMs around it need.

Every workload here also runs on the GPU (``--device gpu``): CuPy arrays beside PyTorch on CUDA. The GPT
step is the issue's GPU target (within 2× of PyTorch).
"""
from __future__ import annotations

import numpy as np

from benchmarks.harness import torch_device, torch_for, torch_train_step, train_step, workload
from scratchnet.backend import to_device

GPU = ("cpu", "gpu")  # every workload of this file runs on either device


@workload("attention.mha_fwd_bwd", description="MultiHeadAttention self-attn N=16, T=128, d=128, 4 heads, float32",
          devices=GPU)
def mha_fwd_bwd(device="cpu"):
    import scratchnet.nn as nn
    rng = np.random.default_rng(0)
    N, T, E, H = 16, 128, 128, 4
    x = rng.standard_normal((N, T, E), dtype=np.float32)
    dy = rng.standard_normal((N, T, E), dtype=np.float32)
    mha = nn.MultiHeadAttention(E, H, rng=0).to(device)
    xs, dys = to_device(x, device), to_device(dy, device)

    def run_scratchnet():
        mha(xs)
        mha.backward(dys)

    torch = torch_for(device)
    if torch is None:
        return run_scratchnet, None
    tdev = torch_device(device)
    tmha = torch.nn.MultiheadAttention(E, H, batch_first=True).to(tdev)
    tx = torch.tensor(x, requires_grad=True, device=tdev)
    tdy = torch.tensor(dy, device=tdev)

    def run_torch():
        y, _ = tmha(tx, tx, tx, need_weights=False)
        y.backward(tdy)

    return run_scratchnet, run_torch


@workload("attention.gpt_train_step",
          description="GPT step (fwd+bwd+AdamW): 6 layers, d=256, 8 heads, T=128, batch 32, V=65, float32",
          devices=GPU)
def gpt_train_step(device="cpu"):
    import scratchnet.nn as nn
    from scratchnet.models.gpt import GPT
    from scratchnet.optim import AdamW
    rng = np.random.default_rng(0)
    V, T, B, L, D, H = 65, 128, 32, 6, 256, 8
    x = rng.integers(0, V, (B, T))
    y = rng.integers(0, V, (B, T))
    model = GPT(V, T, n_layer=L, n_head=H, d_model=D, dropout=0.0, rng=0).to(device)
    crit = nn.CrossEntropyLoss()
    opt = AdamW(model.parameters(), lr=3e-4)
    xs, ys = to_device(x, device), to_device(y, device)

    def run_scratchnet():
        return train_step(model, crit, opt, xs, ys)

    torch = torch_for(device)
    if torch is None:
        return run_scratchnet, None
    tnn = torch.nn

    class TorchGPT(tnn.Module):
        def __init__(self):
            super().__init__()
            self.tok = tnn.Embedding(V, D)
            self.pos = tnn.Parameter(torch.zeros(T, D))
            self.blocks = tnn.ModuleList(tnn.TransformerEncoderLayer(D, H, 4 * D, 0.0, "gelu", batch_first=True,
                                                                     norm_first=True) for _ in range(L))
            self.ln = tnn.LayerNorm(D)
            self.register_buffer("mask", torch.triu(torch.ones(T, T, dtype=torch.bool), 1))

        def forward(self, ids):
            h = self.tok(ids) + self.pos
            for b in self.blocks:
                h = b(h, src_mask=self.mask, is_causal=True)
            return self.ln(h) @ self.tok.weight.T

    tdev = torch_device(device)
    tmodel = TorchGPT().to(tdev)
    topt = torch.optim.AdamW(tmodel.parameters(), lr=3e-4)
    tx, ty = torch.tensor(x, device=tdev), torch.tensor(y, device=tdev)

    def run_torch():
        torch_train_step(tmodel, topt, tx, ty)

    return run_scratchnet, run_torch


@workload("attention.causal_softmax_fwd_bwd",
          description="masked softmax + backward, causal, scores (32, 6, 128, 128) float32 (a GPT layer's)",
          devices=GPU)
def causal_softmax_fwd_bwd(device="cpu"):
    import scratchnet.functional as F
    rng = np.random.default_rng(0)
    shape = (32, 6, 128, 128)
    s = rng.standard_normal(shape, dtype=np.float32)
    dp = rng.standard_normal(shape, dtype=np.float32)
    keep = F.causal_mask(128, 128)
    s_s, dp_s, keep_s = to_device(s, device), to_device(dp, device), to_device(keep, device)

    def run_scratchnet():
        p = F.masked_softmax(s_s, keep_s)
        F.masked_softmax_backward(dp_s, p)

    torch = torch_for(device)
    if torch is None:
        return run_scratchnet, None
    tdev = torch_device(device)
    ts = torch.tensor(s, requires_grad=True, device=tdev)
    tdp, tmask = torch.tensor(dp, device=tdev), torch.tensor(~keep, device=tdev)

    def run_torch():
        p = torch.softmax(ts.masked_fill(tmask, float("-inf")), dim=-1)
        p.backward(tdp)

    return run_scratchnet, run_torch


@workload("attention.layer_norm_fwd_bwd", description="layer_norm + backward, x (32, 128, 192) float32, γ and β",
          devices=GPU)
def layer_norm_fwd_bwd(device="cpu"):
    import scratchnet.functional as F
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 128, 192), dtype=np.float32)
    dy = rng.standard_normal(x.shape, dtype=np.float32)
    g, b = np.ones(192, np.float32), np.zeros(192, np.float32)
    xs, dys, gs, bs = (to_device(a, device) for a in (x, dy, g, b))

    def run_scratchnet():
        _, cache = F.layer_norm(xs, gs, bs)
        F.layer_norm_backward(dys, cache)

    torch = torch_for(device)
    if torch is None:
        return run_scratchnet, None
    tdev = torch_device(device)
    tx = torch.tensor(x, requires_grad=True, device=tdev)
    tg, tb = torch.tensor(g, requires_grad=True, device=tdev), torch.tensor(b, requires_grad=True, device=tdev)
    tdy = torch.tensor(dy, device=tdev)

    def run_torch():
        torch.nn.functional.layer_norm(tx, (192,), tg, tb).backward(tdy)

    return run_scratchnet, run_torch
