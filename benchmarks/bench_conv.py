"""Convolutional workloads: conv forward+backward (LeNet C1, C3, a ResNet 3×3 layer, a MobileNet
depthwise 3×3 layer), max pooling, 2-D batch norm, 100 LeNet-5 training steps, and a float32 GEMM
(the roof the convs run under).

Legend: N batch, C channels, H×W spatial size, k kernel. All float32.
``python -m benchmarks.bench_conv`` also prints the ResNet conv's GFLOP/s beside NumPy's GEMM peak.
Every workload here also runs on the GPU (``--device gpu``: CuPy beside PyTorch on CUDA).

The measurements behind the route choices of ``scratchnet/kernels/conv.py`` and
``scratchnet/kernels/pool.py`` and the shape of their loop kernels (two cores, float32, forward and
backward, median of interleaved rounds; rerun these workloads to check them on another machine):

- conv2d, one GEMM per group over the whole batch against one GEMM per sample (NumPy's stacked
  matmul, no transposes, single-threaded in OpenBLAS), per sample → whole batch on 2 idle cores:
  LeNet C3 (N 64, 6→16, 14×14, k 5) 3.02 → 2.24 ms, C1 2.52 → 2.44 ms, C3 at N 8 0.38 → 0.34 ms,
  a conv_transpose2d 16→8, 7→14: 2.24 → 1.96 ms. Never faster, so the per-sample GEMM route is
  gone. With the other core taken by another job the whole-batch GEMMs wait on it (C3 3.0 → 5.5 ms;
  PyTorch's threads suffer alike).
- conv2d streamed sample by sample (STREAM_MIN_SAMPLE_COLS = 2^17 column entries per sample),
  whole batch → streamed on 2 idle cores: ResNet 64→64 3×3 at 32×32, N 32: 85.0 → 68.5 ms; 32→32 at
  28×28, N 128: 96.5 → 83.8 ms. A whole-batch unfold writes K times the input to main memory
  (75 MB for the ResNet layer, plus the page faults of a fresh allocation) and its GEMMs read it
  back. Below ~2^17 numbers per sample (64 channels at 14×14) the whole-batch GEMMs win. With one
  core taken by another job the per-sample BLAS calls wait on it (ResNet layer 139 → 256 ms;
  PyTorch's own time there: 148 ms, from 47 idle).
- Issue 25, one thread everywhere (OPENBLAS_NUM_THREADS=1, NUMBA_NUM_THREADS=1, ``--torch-threads 1``),
  AMD EPYC with AVX-512F, both cores busy with other jobs: CPU time (``python -m benchmarks.cputime``),
  medians of 10-15 interleaved rounds. Streaming also once the whole batch's columns pass
  STREAM_MIN_BATCH_BYTES = 4 MiB: per-sample GEMMs beat the whole batch's on one thread for every such
  layer measured (fwd+bwd, whole → streamed): LeNet C1 at N 64 (4.8 MiB of columns) 3.3 → 2.2 ms,
  ResNet-20's 16-channel 3×3 at 28×28, N 128 (55 MiB) 76 → 30 ms, 32 channels at 14×14 39 → 28 ms,
  64 at 7×7 32 → 29 ms; LeNet C3 at N 64 (3.7 MiB) stays whole batch (2.5 against 3.2 ms). It also
  stops a layer from holding K copies of its input until the backward: one ResNet-20 training step at
  batch 128 peaked at 759 MiB of RSS with the cached columns, 200 MiB without (PyTorch 237 MiB;
  ``python -m benchmarks.memory``). A 1×1 stride-1 layer streams with x[n] as its columns (no copy).
- Wide columns (stride 1: output rows W + 2pw long, one contiguous copy per tap), two idle threads on
  an Intel Xeon (AVX-512), fwd+bwd, whole batch → streamed wide: LeNet C3 at N 64 2.49 → 1.77 ms, at
  N 8 0.38 → 0.24 ms, 16→16 3×3 at 28², N 128 32.0 → 25.0 ms; but 32→32 3×3 at 16², N 128 19.7 → 22.8 ms
  and 64→64 at 8², N 64 7.65 → 8.98 ms: hence WIDE_MAX_FILTERS = 16 for streaming a small stride-1
  layer; the ResNet 64→64 layer (already streamed) 49.8 → 49.9 ms. Exact streamed C1 1.27 → wide 1.20.
- Winograd F(4×4, 3×3) for 3×3 stride-1 layers (``scratchnet/kernels/winograd.py``), two idle
  threads on an Intel Xeon (AVX-512), fwd+bwd, float32, medians of 7 alternated rounds, the columns'
  route (whole batch or streamed, whichever the layer took) → Winograd: ResNet 64→64 at 32², N 32
  46.4 → 25.4 ms; 16→16 at 28², N 128 25.4 → 14.7; 16→16 at 32², N 128 33.1 → 20.1; 32→32 at 14²
  16.2 → 12.3; at 16² 24.7 → 12.3; 64→64 at 7², N 128 16.0 → 9.7; at 8² 17.4 → 10.5; 128→128 at 16²,
  N 32 37.6 → 19.2; 128→128 at 8², N 64 26.0 → 14.5; 256→256 at 4², N 32 27.2 → 13.5; 24→24 at 32²,
  N 32 12.9 → 8.3; 64→64 at 56², N 8 30.1 → 18.5. Small layers (N 64 at 32² unless noted): 8→16 8.95 →
  5.61, 12→12 12.4 → 6.2, 8→8 4.04 → 4.09, 16→4 5.40 → 5.64, 4→16 3.18 → 4.43, 3→16 (N 128) 5.19 →
  8.12, 1→16 at 28² (N 128) 2.84 → 8.50, 6→16 at 14² 1.19 → 1.54: hence WINOGRAD_MIN_CHANNELS = 8 and
  WINOGRAD_MIN_PLANES = 128. Keeping the tiles for the backward (WINOGRAD_CACHE_BYTES) saved one
  transform pass, 29.5 → 26.5 ms for the ResNet layer with the filters kept too. What the transforms
  cost there (ms, of 26.5): input tiles 3.3, output 2.2, their transposes 2.1 and 4.7, the 108 GEMMs
  ~10. Tried and dropped: splitting each plane by column phase so every pass is unit-stride (slower,
  4.6 against 3.2 ms for the input tiles: the loops of 8 to 9 tiles are too short); the transforms in
  parallel over channels (no faster with OMP_WAIT_POLICY=PASSIVE, and 44-92 ms instead of 36 by
  default, the OpenMP and OpenBLAS threads spinning against each other); the planes C·T apart (a power
  of two for the ResNet layer: the six streams of a pass then share cache sets; C·T + 16 apart the
  input tiles took 2.9 instead of 4.6 ms).
- The streamed backward computes dWᵀ = X[n] dY[n]ᵀ into a reused buffer instead of dY[n] X[n]ᵀ: for
  the ResNet layer's (64 × 1024) · (1024 × 576) shapes OpenBLAS runs the transposed product at
  ~86 GFLOP/s against ~65 (one thread), and the backward went 80 → 69 ms. The other orientations were
  tried and dropped: Yᵀ = Xᵀ Wᵀ plus a transposing copy in the forward (no gain), splitting the
  columns into channel blocks that stay in L2 (the smaller GEMMs lose more than the cache gains),
  tiles of 128-512 output positions (no gain). What is left is the GEMMs: 3 × 2.4 GFLOP at 70-90
  GFLOP/s, against ~100 for a large square GEMM.
- depthwise conv2d (groups = C_in, ``conv.depthwise3x3``: N 64, C 128, 16×16, 3×3, padding 1) by the
  direct loops of ``conv_loops.depthwise_*_kernel`` instead of im2col + one GEMM per group (G = 128
  products of a 1×9 row), AMD EPYC, 2 cores shared with other jobs (medians of 15 interleaved rounds):
  one thread, CPU time: grouped GEMM 50 ms → direct loops 19 ms (PyTorch 30 ms); two threads, wall
  time: 70 → 31 ms (PyTorch 96 ms). Splitting each padded plane into its stride phases, so that a tap
  over a whole output plane is one unit-stride loop, took the loops from 52 to 19 ms (rows of 16 do not
  vectorise); the per-position partial sums of dw keep that loop elementwise without fastmath. Layers
  under DEPTHWISE_PARALLEL_MIN_MACS = 2^20 use the serial compilation (a gradcheck's blocks ran 10× slower
  with the parallel one on a busy machine).
- unfold/fold use the serial kernels below UNFOLD_PARALLEL_MIN_SIZE = 2^25 column entries: on 2
  busy cores a ResNet 64→64 3×3 layer (19M column entries) runs 10 % faster with them, since a
  parallel region leaves its workers spinning while the next GEMM wants the cores.
- The unfold/fold row copies compiled as two small kernels of their own run 1.3–1.9× faster than
  the same loops inlined in the padding branches (one thread, LeNet's C1/C3 and a 14×14 3×3 layer;
  equal on a 32×32 ResNet layer, which is memory-bound); 1-D views instead of 6-D indexing: ~3×.
- max pooling: the parallel kernels from PARALLEL_MIN_SIZE = 2^21 elements (a 2M-element max-pool
  runs 2× faster in parallel, LeNet-sized inputs do not); the 2×2 / stride-2 kernels serial only
  (on 2 busy cores the parallel forward was 4–8× slower); 2-D plane views halve the time of the
  prange loop; in the 2×2 kernel the NaN-aware comparison costs ~9× the plain ``>``.
- avg_pool2d's 2×2 / stride-2 window as four strided slices: 2.5× faster than unfold and sum.
- local_response_norm's β = 3/4 as 1/(√s·√√s): 14 ms → 3 ms against NumPy's general power on
  2.4M float32 numbers.
"""
from __future__ import annotations

import time

import numpy as np

import scratchnet.functional as F
from scratchnet import nn
from scratchnet.backend import asnumpy, to_device

from .harness import torch_device, torch_for, torch_train_step, train_step, workload

GPU = ("cpu", "gpu")  # every workload of this file runs on either device (``--device gpu``)

# name: (N, C_in, C_out, H, k, padding)
CONV_SHAPES = {
    "lenet_c1": (64, 1, 6, 32, 5, 0),
    "lenet_c3": (64, 6, 16, 14, 5, 0),
    "resnet3x3": (32, 64, 64, 32, 3, 1),
}


def _conv_setup(N, C_in, C_out, H, k, p, groups=1, device="cpu"):
    """conv2d forward + backward of x (N, C_in, H, H) with w (C_out, C_in/groups, k, k) on ``device``."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, C_in, H, H), dtype=np.float32)  # (N, C_in, H, W)
    fan_in = C_in // groups * k * k
    w = (rng.standard_normal((C_out, C_in // groups, k, k), dtype=np.float32) / np.sqrt(fan_in)).astype(np.float32)
    b = np.zeros(C_out, np.float32)  # (C_out,)
    OH = H + 2 * p - k + 1
    dy = rng.standard_normal((N, C_out, OH, OH), dtype=np.float32)  # (N, C_out, OH, OW)
    xs, ws, bs, dys = (to_device(a, device) for a in (x, w, b, dy))

    def run_scratchnet():
        _, cache = F.conv2d(xs, ws, bs, padding=p, groups=groups)
        F.conv2d_backward(dys, cache)

    torch = torch_for(device)
    if torch is None:
        return run_scratchnet, None
    tdev = torch_device(device)
    tx = torch.from_numpy(x).to(tdev).requires_grad_(True)
    tw = torch.from_numpy(w.copy()).to(tdev).requires_grad_(True)
    tb = torch.from_numpy(b.copy()).to(tdev).requires_grad_(True)
    tdy = torch.from_numpy(dy).to(tdev)

    def run_torch():
        tx.grad = tw.grad = tb.grad = None
        torch.nn.functional.conv2d(tx, tw, tb, padding=p, groups=groups).backward(tdy)

    return run_scratchnet, run_torch


def _register_conv(name, shape):
    N, C_in, C_out, H, k, p = shape

    def setup(device="cpu"):
        return _conv_setup(*shape, device=device)

    workload(f"conv.{name}_fwd_bwd", description=f"conv2d forward+backward, N={N}, {C_in}→{C_out}, "
             f"{H}×{H}, k={k}, padding={p}", devices=GPU)(setup)


for _name, _shape in CONV_SHAPES.items():
    _register_conv(_name, _shape)


@workload("conv.depthwise3x3", description="depthwise conv2d (groups=C) forward+backward, N=64, C=128, "
          "16×16, k=3, padding=1 (MobileNet's 3×3)", devices=GPU)
def depthwise3x3(device="cpu"):
    return _conv_setup(64, 128, 128, 16, 3, 1, groups=128, device=device)


@workload("conv.max_pool2d_fwd_bwd", description="max_pool2d 2×2 forward+backward, N=32, C=64, 32×32", devices=GPU)
def max_pool_fwd_bwd(device="cpu"):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((32, 64, 32, 32), dtype=np.float32)  # (N, C, H, W)
    dy = rng.standard_normal((32, 64, 16, 16), dtype=np.float32)  # (N, C, OH, OW)
    xs, dys = to_device(x, device), to_device(dy, device)

    def run_scratchnet():
        _, cache = F.max_pool2d(xs, kernel_size=2)
        F.max_pool2d_backward(dys, cache)

    torch = torch_for(device)
    if torch is None:
        return run_scratchnet, None
    tdev = torch_device(device)
    tx, tdy = torch.from_numpy(x).to(tdev).requires_grad_(True), torch.from_numpy(dy).to(tdev)

    def run_torch():
        tx.grad = None
        torch.nn.functional.max_pool2d(tx, 2).backward(tdy)

    return run_scratchnet, run_torch


@workload("conv.batch_norm2d_fwd_bwd", description="batch_norm (N, C, H, W) training forward+backward, "
          "N=32, C=64, 32×32", devices=GPU)
def batch_norm2d_fwd_bwd(device="cpu"):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((32, 64, 32, 32), dtype=np.float32)  # (N, C, H, W)
    dy = rng.standard_normal(x.shape, dtype=np.float32)
    gamma, beta = np.ones(64, np.float32), np.zeros(64, np.float32)  # (C,)
    rm, rv = np.zeros(64, np.float32), np.ones(64, np.float32)  # (C,)
    xs, dys, gs, bs, rms, rvs = (to_device(a, device) for a in (x, dy, gamma, beta, rm, rv))

    def run_scratchnet():
        _, cache = F.batch_norm(xs, gs, bs, rms, rvs, training=True)
        F.batch_norm_backward(dys, cache)

    torch = torch_for(device)
    if torch is None:
        return run_scratchnet, None
    tdev = torch_device(device)
    tx = torch.from_numpy(x).to(tdev).requires_grad_(True)
    tg, tb = torch.ones(64, requires_grad=True, device=tdev), torch.zeros(64, requires_grad=True, device=tdev)
    trm, trv, tdy = torch.zeros(64, device=tdev), torch.ones(64, device=tdev), torch.from_numpy(dy).to(tdev)

    def run_torch():
        tx.grad = tg.grad = tb.grad = None
        torch.nn.functional.batch_norm(tx, trm, trv, tg, tb, training=True).backward(tdy)

    return run_scratchnet, run_torch


def torch_lenet5(model, device="cpu"):
    """The PyTorch twin of ``scratchnet.models.lenet.LeNet5`` (paper variant): the same layers, C3 with
    the model's Table I connection mask, fresh weights; on ``device`` ('cpu' or 'gpu')."""
    torch = torch_for(device)
    tnn = torch.nn

    class Sub(tnn.Module):  # the paper's trainable subsampling
        def __init__(self, c):
            super().__init__()
            self.coef, self.bias = tnn.Parameter(torch.ones(c)), tnn.Parameter(torch.zeros(c))

        def forward(self, t):
            s = 4 * torch.nn.functional.avg_pool2d(t, 2)
            return s * self.coef.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)

    class Act(tnn.Module):
        def forward(self, t):
            return 1.7159 * torch.tanh(t * (2 / 3))

    mask = torch.from_numpy(asnumpy(model.layers[4].mask)).to(torch_device(device))

    class TableConv(tnn.Conv2d):  # C3 with Table I's connections
        def forward(self, t):
            return torch.nn.functional.conv2d(t, self.weight * mask, self.bias)

    tmodel = tnn.Sequential(tnn.Conv2d(1, 6, 5), Act(), Sub(6), Act(), TableConv(6, 16, 5), Act(), Sub(16), Act(),
                            tnn.Conv2d(16, 120, 5), Act(), tnn.Flatten(), tnn.Linear(120, 84), Act(),
                            tnn.Linear(84, 10))
    return tmodel.to(torch_device(device))


@workload("conv.lenet5_100_steps", description="100 LeNet-5 (paper variant) SGD training steps, batch 64, "
          "32×32 inputs, forward+backward+update", devices=GPU)
def lenet5_100_steps(device="cpu"):
    from scratchnet.models.lenet import LeNet5
    from scratchnet.optim import SGD
    rng = np.random.default_rng(3)
    x = rng.standard_normal((64, 1, 32, 32), dtype=np.float32)  # (N, 1, 32, 32)
    y = rng.integers(0, 10, 64)  # (N,)
    model, crit = LeNet5(rng=0).to(device), nn.CrossEntropyLoss()
    opt = SGD(model.parameters(), lr=0.01, momentum=0.9)
    xs, ys = to_device(x, device), to_device(y, device)

    def run_scratchnet():
        for _ in range(100):  # one training step per iteration
            train_step(model, crit, opt, xs, ys)

    torch = torch_for(device)
    if torch is None:
        return run_scratchnet, None
    tmodel = torch_lenet5(model, device)
    topt = torch.optim.SGD(tmodel.parameters(), lr=0.01, momentum=0.9)
    tdev = torch_device(device)
    tx, ty = torch.from_numpy(x).to(tdev), torch.from_numpy(y).to(tdev)

    def run_torch():
        for _ in range(100):  # one training step per iteration
            torch_train_step(tmodel, topt, tx, ty)

    return run_scratchnet, run_torch


@workload("conv.gemm_2048", description="float32 GEMM 2048×2048 @ 2048×2048 (the machine's matmul roof)",
          devices=GPU)
def gemm_2048(device="cpu"):
    rng = np.random.default_rng(4)
    a = rng.standard_normal((2048, 2048), dtype=np.float32)
    b = rng.standard_normal((2048, 2048), dtype=np.float32)
    a_s, b_s = to_device(a, device), to_device(b, device)
    torch = torch_for(device)
    if torch is None:
        return (lambda: a_s @ b_s), None
    tdev = torch_device(device)
    ta, tb = torch.from_numpy(a).to(tdev), torch.from_numpy(b).to(tdev)
    return (lambda: a_s @ b_s), (lambda: ta @ tb)


def gflops_report(repeats=5):
    """GFLOP/s of the ResNet 3×3 conv (forward+backward = 3 GEMMs' worth) beside NumPy's GEMM peak. The
    flops counted are direct convolution's; the Winograd route does 2.25× fewer, so its figure is the
    direct-equivalent rate and may pass the GEMM's."""
    N, C_in, C_out, H, k, p = CONV_SHAPES["resnet3x3"]
    flop = 3 * 2 * N * C_out * H * H * C_in * k * k  # fwd, dW and dX each 2·N·C_out·L·C_in·K
    run, _ = _conv_setup(*CONV_SHAPES["resnet3x3"])
    gemm, _ = gemm_2048()
    best = {}
    for name, fn, f in (("resnet3x3 conv fwd+bwd", run, flop), ("numpy GEMM 2048³", gemm, 2 * 2048 ** 3)):
        fn()
        t = min((lambda s: (fn(), time.perf_counter() - s)[1])(time.perf_counter()) for _ in range(repeats))
        best[name] = f / t / 1e9
        print(f"{name:<26} {t * 1e3:9.1f} ms  {best[name]:7.1f} GFLOP/s")
    return best


if __name__ == "__main__":
    gflops_report()
