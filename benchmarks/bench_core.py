"""Core workloads: an MLP training step, batch norm (1d; 2d is in bench_conv), softmax cross-entropy, an Adam step.

Legend: N batch, C channels, K classes. All float32; the PyTorch twins do the same work
(forward, backward, update) with PyTorch's default thread count.

Batch norm (training) and softmax cross-entropy run the fused Numba loops of
scratchnet/kernels/norm.py and loss.py: two passes over the batch each way for batch norm, one per
row each way for cross-entropy. Medians of 30, one thread everywhere (OPENBLAS_NUM_THREADS=1,
NUMBA_NUM_THREADS=1, ``--torch-threads 1``), 2-core AMD EPYC with AVX-512 shared with a training
run (so absolute times are inflated), ms, vectorised reference (SCRATCHNET_JIT=0) → fused loops:
batch_norm2d_fwd_bwd (the conv family's workload) 9.78 → 6.22 (PyTorch 6.38), batch_norm_fwd_bwd 0.41 → 0.19 (0.18),
cross_entropy_fwd_bwd 0.59 → 0.40 (0.32). On that machine the parallel (prange) batch-norm loops
were 4-10x slower than the serial ones at 2-4 M elements, their threads waiting for a busy core;
hence the high ``PARALLEL_MIN_SIZE`` in scratchnet/kernels/norm.py.

On the GPU (``--device gpu``) every workload here runs on CuPy arrays beside PyTorch on CUDA: the
inputs are drawn with NumPy as on the CPU and moved, so both devices time the same numbers.

Elementwise kernels: NumPy's float32 tanh is a scalar loop (≈ 2.7 ns per element on the development
machine); ``tanh_float32`` in scratchnet/kernels/activation_loops.py, a rational approximation,
vectorises, which the fused recurrent cells of chapters 15 and 16 use.
"""
from __future__ import annotations

import numpy as np

import scratchnet.functional as F
from scratchnet import nn
from scratchnet.backend import asnumpy, to_device
from scratchnet.optim import SGD, Adam

from .harness import torch_device, torch_for, torch_train_step, train_step, workload

GPU = ("cpu", "gpu")  # the workloads of this file run on either device (``--device gpu``)

MLP_SIZES = (784, 512, 512, 10)
ADAM_SHAPES = [(1000, 500), (500, 800), (100, 1000)]  # 500k + 400k + 100k = 1,000,000 values


@workload("core.mlp_train_step", description="Linear+ReLU MLP 784-512-512-10, N=128, softmax CE, "
          "forward + backward + SGD update, float32", devices=GPU)
def mlp_train_step(device="cpu"):
    rng = np.random.default_rng(0)
    N = 128
    x = rng.standard_normal((N, MLP_SIZES[0]), dtype=np.float32)  # (N, 784)
    y = rng.integers(0, MLP_SIZES[-1], N)  # (N,)
    layers = []
    for d_in, d_out in zip(MLP_SIZES[:-1], MLP_SIZES[1:]):  # one Linear + ReLU per layer
        layers += [nn.Linear(d_in, d_out, rng=rng), nn.ReLU()]
    model = nn.Sequential(*layers[:-1]).to(device)  # no ReLU after the logits
    crit = nn.CrossEntropyLoss()
    opt = SGD(model.parameters(), lr=0.01)
    xs, ys = to_device(x, device), to_device(y, device)

    def run_scratchnet():
        train_step(model, crit, opt, xs, ys)

    torch = torch_for(device)
    if torch is None:
        return run_scratchnet, None
    tlayers = []
    for layer in model.layers:  # the PyTorch twin, layer by layer
        if isinstance(layer, nn.Linear):
            t = torch.nn.Linear(layer.in_features, layer.out_features)
            with torch.no_grad():  # same weights (scratchnet's Linear is (D_in, D_out), PyTorch's is transposed)
                t.weight.copy_(torch.from_numpy(asnumpy(layer.weight.data).T.copy()))
                t.bias.copy_(torch.from_numpy(asnumpy(layer.bias.data)))
            tlayers.append(t)
        else:
            tlayers.append(torch.nn.ReLU())
    tdev = torch_device(device)
    tmodel = torch.nn.Sequential(*tlayers).to(tdev)
    topt = torch.optim.SGD(tmodel.parameters(), lr=0.01)
    tx, ty = torch.from_numpy(x).to(tdev), torch.from_numpy(y).to(tdev)

    def run_torch():
        torch_train_step(tmodel, topt, tx, ty)

    return run_scratchnet, run_torch


@workload("core.batch_norm_fwd_bwd", description="batch_norm training forward + backward, N=256, C=512, float32",
          devices=GPU)
def batch_norm_fwd_bwd(device="cpu"):
    rng = np.random.default_rng(1)
    N, C = 256, 512
    x = rng.standard_normal((N, C), dtype=np.float32)  # (N, C)
    dy = rng.standard_normal((N, C), dtype=np.float32)  # (N, C)
    gamma, beta = np.ones(C, np.float32), np.zeros(C, np.float32)  # (C,)
    running_mean, running_var = np.zeros(C, np.float32), np.ones(C, np.float32)  # (C,)
    xs, dys, gs, bs, rms, rvs = (to_device(a, device) for a in (x, dy, gamma, beta, running_mean, running_var))

    def run_scratchnet():
        _, cache = F.batch_norm(xs, gs, bs, rms, rvs, training=True)
        F.batch_norm_backward(dys, cache)

    torch = torch_for(device)
    if torch is None:
        return run_scratchnet, None
    tdev = torch_device(device)
    tx = torch.from_numpy(x).to(tdev).requires_grad_()
    tgamma, tbeta = torch.from_numpy(gamma).to(tdev).requires_grad_(), torch.from_numpy(beta).to(tdev).requires_grad_()
    trm, trv, tdy = torch.zeros(C, device=tdev), torch.ones(C, device=tdev), torch.from_numpy(dy).to(tdev)

    def run_torch():
        tx.grad = tgamma.grad = tbeta.grad = None
        out = torch.nn.functional.batch_norm(tx, trm, trv, tgamma, tbeta, training=True)
        out.backward(tdy)

    return run_scratchnet, run_torch


@workload("core.cross_entropy_fwd_bwd", description="softmax cross-entropy forward + backward, N=256, K=1000, float32",
          devices=GPU)
def cross_entropy_fwd_bwd(device="cpu"):
    rng = np.random.default_rng(2)
    N, K = 256, 1000
    logits = rng.standard_normal((N, K), dtype=np.float32)  # (N, K)
    target = rng.integers(0, K, N)  # (N,)
    logits_s, target_s = to_device(logits, device), to_device(target, device)

    def run_scratchnet():
        _, cache = F.cross_entropy(logits_s, target_s)
        F.cross_entropy_backward(1.0, cache)

    torch = torch_for(device)
    if torch is None:
        return run_scratchnet, None
    tdev = torch_device(device)
    tlogits, ttarget = torch.from_numpy(logits).to(tdev).requires_grad_(), torch.from_numpy(target).to(tdev)

    def run_torch():
        tlogits.grad = None
        torch.nn.functional.cross_entropy(tlogits, ttarget).backward()

    return run_scratchnet, run_torch


@workload("core.adam_step_1M", description="one Adam update of 1,000,000 float32 values in 3 tensors", devices=GPU)
def adam_step_1m(device="cpu"):
    rng = np.random.default_rng(3)
    params = []
    for shape in ADAM_SHAPES:  # one parameter and its gradient per shape, moved together
        p = nn.Parameter(rng.standard_normal(shape, dtype=np.float32))
        p.grad[...] = rng.standard_normal(shape, dtype=np.float32)
        p.data, p.grad = to_device(p.data, device), to_device(p.grad, device)
        params.append(p)
    opt = Adam(params, lr=1e-3)

    torch = torch_for(device)
    if torch is None:
        return opt.step, None
    tdev = torch_device(device)
    tparams = []
    for p in params:  # the same values as PyTorch leaves on its device
        t = torch.from_numpy(asnumpy(p.data).copy()).to(tdev).requires_grad_()
        t.grad = torch.from_numpy(asnumpy(p.grad).copy()).to(tdev)
        tparams.append(t)
    topt = torch.optim.Adam(tparams, lr=1e-3)
    return opt.step, topt.step
