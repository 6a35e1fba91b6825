"""The int8 path of chapter 34 against float32: a linear layer and three convolutions (LeNet-5's second
conv, a MobileNet pointwise 1×1 and a depthwise 3×3), inference only.

Legend: N batch, D / M input / output features, C channels, H×W spatial size.

Each ``int8.*`` workload times scratchnet's int8 layer (the int32-accumulating Numba kernel plus
requantisation to int8) beside PyTorch's quantised layer (``torch.ao.nn.quantized``, the x86/fbgemm
engine) when PyTorch is installed; the ``int8.float32_*`` workloads time the same layer in float32
(scratchnet's ``F.linear`` / ``F.conv2d`` beside ``torch.nn.functional``), so the harness's table shows
int8 against float32 too. ``python -m benchmarks.bench_int8`` prints the ratios directly, with the CPU
model from ``lscpu``. The measured numbers, and why the int8 path is not faster here, are in
chapters/34-quantization.md#int8-speed.
"""
from __future__ import annotations

import subprocess
import time

import numpy as np

import scratchnet.functional as F
from scratchnet.kernels.int8 import qconv2d_acc, qlinear_acc, quantize_multiplier, requantize

from .harness import torch_or_none, workload

# name → (kind, shape, conv options): N, D, M for linear; N, C_in, H, C_out, K for conv
LAYERS = {
    "linear_784x300": ("linear", (64, 784, 300), {}),
    "conv_lenet_c3": ("conv", (64, 6, 14, 16, 5), {}),
    "conv_pointwise": ("conv", (32, 96, 14, 192, 1), {}),
    "conv_depthwise": ("conv", (32, 96, 14, 96, 3), dict(padding=1, groups=96)),
}


def _setup(name):
    """Float32 operands, their int8 codes (activations asymmetric, weights symmetric) and the multipliers."""
    kind, shape, opts = LAYERS[name]
    rng = np.random.default_rng(0)
    if kind == "linear":
        N, D, M = shape
        x, w = rng.random((N, D), dtype=np.float32), rng.standard_normal((D, M), dtype=np.float32) * 0.05
    else:
        N, C, H, C_out, K = shape
        x = rng.random((N, C, H, H), dtype=np.float32)  # post-ReLU activations are non-negative
        w = rng.standard_normal((C_out, C // opts.get("groups", 1), K, K), dtype=np.float32) * 0.1
    b = np.zeros(w.shape[0] if kind == "conv" else w.shape[1], np.float32)
    s_x, z_x = 1.0 / 255, -128
    s_w = float(np.abs(w).max() / 127)
    x_q = np.clip(np.round(x / s_x) + z_x, -128, 127).astype(np.int8)
    w_q = np.clip(np.round(w / s_w), -127, 127).astype(np.int8)
    m0, shift = quantize_multiplier(np.full(b.shape, s_x * s_w / 0.05))
    return kind, opts, (x, w, b), (x_q, w_q, np.zeros(b.shape, np.int32), z_x, m0, shift), (s_x, s_w)


def _scratchnet_fns(name):
    kind, opts, (x, w, b), (x_q, w_q, b_q, z_x, m0, shift), _ = _setup(name)
    if kind == "linear":
        def run_int8():
            requantize(qlinear_acc(x_q, w_q, b_q, x_zero_point=z_x), m0, shift, zero_point=-128)

        def run_float():
            F.linear(x, w, b)
    else:
        def run_int8():
            requantize(qconv2d_acc(x_q, w_q, b_q, x_zero_point=z_x, **opts), m0, shift, zero_point=-128)

        def run_float():
            F.conv2d(x, w, b, **opts)
    run_int8()  # compile outside the timing
    return run_int8, run_float


def _torch_fns(name):
    """PyTorch's quantised (fbgemm) and float32 versions of the layer, or (None, None)."""
    torch = torch_or_none()
    if torch is None:
        return None, None
    kind, opts, (x, w, b), _, (s_x, s_w) = _setup(name)
    tx, tb = torch.from_numpy(x), torch.from_numpy(b)
    try:
        import torch.ao.nn.quantized as nnq
        xq = torch.quantize_per_tensor(tx, s_x, 0, torch.quint8)
        if kind == "linear":
            layer = nnq.Linear(w.shape[0], w.shape[1])
            tw = torch.from_numpy(np.ascontiguousarray(w.T))
        else:
            layer = nnq.Conv2d(x.shape[1], w.shape[0], w.shape[2], padding=opts.get("padding", 0),
                               groups=opts.get("groups", 1))
            tw = torch.from_numpy(w)
        layer.set_weight_bias(torch.quantize_per_tensor(tw, s_w, 0, torch.qint8), tb)
        layer.scale, layer.zero_point = 0.05, 0
        layer(xq)
        run_q = lambda: layer(xq)  # noqa: E731
    except Exception:  # a build without a quantised engine
        run_q = None
    tw_f = torch.from_numpy(np.ascontiguousarray(w.T) if kind == "linear" else w)
    if kind == "linear":
        run_f = lambda: torch.nn.functional.linear(tx, tw_f, tb)  # noqa: E731
    else:
        run_f = lambda: torch.nn.functional.conv2d(tx, tw_f, tb, **opts)  # noqa: E731
    return run_q, run_f


def _register(name, description):
    @workload(f"int8.{name}", description=f"int8 {description} (int32 accumulate + requantise)")
    def int8_layer():
        return _scratchnet_fns(name)[0], _torch_fns(name)[0]

    @workload(f"int8.float32_{name}", description=f"float32 {description} (the int8 workload's baseline)")
    def float_layer():
        return _scratchnet_fns(name)[1], _torch_fns(name)[1]


_register("linear_784x300", "linear 784→300, N=64")
_register("conv_lenet_c3", "conv 6→16, 5×5, 14×14, N=64 (LeNet-5's C3)")
_register("conv_pointwise", "conv 96→192, 1×1, 14×14, N=32 (MobileNet pointwise)")
_register("conv_depthwise", "depthwise conv 96 channels, 3×3, 14×14, N=32 (MobileNet depthwise)")


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=5).stdout
    except Exception:
        return "unknown CPU"
    rows = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    return f"{rows.get('Model name', '?').strip()}, {rows.get('CPU(s)', '?').strip()} CPUs"


def best_ms(fn, repeats):
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * min(times)


def ratio_report(repeats=7):
    """float32 / int8 time for each layer (> 1: int8 faster), scratchnet's and PyTorch's; minimum of ``repeats``."""
    print(f"CPU: {cpu_model()}; fastest of {repeats} runs, inference only")
    print(f"{'layer':16s} {'f32 ms':>8s} {'int8 ms':>8s} {'f32/int8':>9s} {'torch f32':>10s} {'torch int8':>11s} "
          f"{'torch f32/int8':>15s}")
    rows = {}
    for name in LAYERS:
        q, f = (best_ms(fn, repeats) for fn in _scratchnet_fns(name))
        tq, tf = (best_ms(fn, repeats) if fn else float("nan") for fn in _torch_fns(name))
        rows[name] = dict(float32_ms=f, int8_ms=q, torch_float32_ms=tf, torch_int8_ms=tq)
        print(f"{name:16s} {f:8.3f} {q:8.3f} {f / q:9.2f} {tf:10.3f} {tq:11.3f} {tf / tq:15.2f}")
    return rows


if __name__ == "__main__":
    ratio_report()
