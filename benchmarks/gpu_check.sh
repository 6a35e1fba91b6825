#!/usr/bin/env bash
# The GPU check of scratchnet, in one script for a machine with an NVIDIA GPU and CuPy (Python 3.12,
# CuPy, PyTorch, pytest; no internet needed). It copies nothing from outside the repository. Parts,
# each with its own timeout (all four by default; name some to run only those):
#   tests    the GPU tests (every test whose id names cupy/numpy/gpu/device: the CUDA kernels against the
#            emulator and the references, every gradcheck case's forward and backward on CuPy against
#            NumPy, one training step of every model on both, dropout's cost), at most 4 min;
#   timings  training steps, CuPy beside NumPy (LeNet-5; a 6-layer GPT; CTC loss + backward on the CUDA
#            kernels and on the reference's time loop), and the cost of dropout on the GPU: nanoGPT's
#            baby GPT step with dropout 0.2 over the same step without (target <= 1.2x), at most 2.5 min;
#   bench    `python -m benchmarks --device gpu`: the GPU-capable workloads on CuPy beside PyTorch CUDA
#            (targets: LeNet-5 steps and the ResNet 3x3 conv within 3x, the GPT step within 2x), at most 2 min;
#   gpt      chapter 21's notebook on the GPU (nanoGPT's baby GPT, SCRATCHNET_DEVICE=gpu) with training
#            capped at $GPT_MINUTES (default 3.5) minutes, at most 5.5 min. The notebook's own cap is
#            10 minutes (`scratchnet run 21-gpt --device gpu`).
# In 10-minute slots: `bash benchmarks/gpu_check.sh tests timings bench`, then `bash benchmarks/gpu_check.sh gpt`
# (and benchmarks/gpu_notebooks.sh for the notebooks in quick mode).
# Data: Tiny Shakespeare from datasets/tinyshakespeare/input.txt inside the repository (git-ignored by
# the datasets/*/ rule in .gitignore; the file itself is never committed). Bring it along with the
# working tree; a copy comes from `scratchnet data` or the registry's URL.
# Logs: $OUT if set, else runs/gpu_check/ (git-ignored). Exit status: the number of failed parts.
#
#   bash benchmarks/gpu_check.sh            # all parts; or: GPT_MINUTES=2 bash benchmarks/gpu_check.sh gpt
set -u
cd "$(dirname "$0")/.."
LOG="${OUT:-runs/gpu_check}"
mkdir -p "$LOG" && LOG="$(cd "$LOG" && pwd)"
MINUTES="${GPT_MINUTES:-3.5}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 SCRATCHNET_PROGRESS=0 MPLBACKEND=Agg
export SCRATCHNET_DATA="$PWD/datasets"
PY="${PYTHON:-python3}"
PARTS=" ${*:-tests timings bench gpt} "
for part in $PARTS; do
    case "$part" in tests|timings|bench|gpt) ;; *) echo "gpu_check: unknown part '$part' (tests timings bench gpt)"; exit 2;; esac
done
wants() { [[ "$PARTS" == *" $1 "* ]]; }
failed=0

echo "== environment" | tee "$LOG/env.log"
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 || true
  "$PY" -c "import sys, numpy, cupy; print(sys.version.split()[0], 'numpy', numpy.__version__, 'cupy', cupy.__version__,
'gpu usable:', cupy.is_available())" 2>&1
  "$PY" -c "import scratchnet.backend as b; print('scratchnet gpu_available:', b.gpu_available())" 2>&1
  ls -l datasets/tinyshakespeare/input.txt 2>&1; } | tee -a "$LOG/env.log"

if wants tests; then
echo "== tests: the GPU tests" | tee "$LOG/tests.log"
# addopts cleared: the project's ini adds --nbmake, which a bare GPU image may lack.
timeout 240 "$PY" -m pytest -q -o addopts="" -p no:cacheprovider --continue-on-collection-errors \
    -k "cupy or numpy or gpu or device" -rs tests/ 2>&1 | tee -a "$LOG/tests.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || failed=$((failed + 1))
fi

if wants timings; then
echo "== timings: training steps on the GPU" | tee "$LOG/timings.log"
timeout 150 "$PY" - "$LOG/timings.json" <<'PYEOF' 2>&1 | tee -a "$LOG/timings.log"
"""Median seconds per training step (forward, backward, clip, optimizer step; synchronised) on NumPy and CuPy."""
import json
import sys
import time

import cupy
import numpy as np

from scratchnet import nn
from scratchnet.backend import to_device
from scratchnet.models.gpt import GPT, get_batch
from scratchnet.models.lenet import LeNet5Modern
from scratchnet.optim import SGD, AdamW, clip_grad_norm


def timed(step, device, warmup, reps):
    for _ in range(warmup):
        step()
    cupy.cuda.Device().synchronize()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        step()
        if device == "gpu":
            cupy.cuda.Device().synchronize()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def gpt_step(device, batch, dropout, block=256):
    model = GPT(65, block, n_layer=6, n_head=6, d_model=384, dropout=dropout, rng=0).to(device)
    opt, crit = AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.99), weight_decay=0.1), nn.CrossEntropyLoss()
    rng = np.random.default_rng(0)
    data = rng.integers(0, 65, 200_000)

    def step():
        xb, yb = (to_device(a, device) for a in get_batch(data, block, batch, rng))
        loss = crit(model(xb), yb)
        opt.zero_grad()
        model.backward(crit.backward())
        clip_grad_norm(model.parameters(), 1.0)
        opt.step()
        return float(loss)
    return step


def lenet_step(device, batch=256):
    model = LeNet5Modern(rng=0).to(device)
    opt, crit = SGD(model.parameters(), lr=0.01, momentum=0.9), nn.CrossEntropyLoss()
    rng = np.random.default_rng(0)
    x = to_device(rng.standard_normal((batch, 1, 32, 32)).astype(np.float32), device)
    y = to_device(rng.integers(0, 10, batch), device)

    def step():
        loss = crit(model(x), y)
        opt.zero_grad()
        model.backward(crit.backward())
        opt.step()
        return float(loss)
    return step


def ctc_step(device, N=64, T=200, C=29, S=40):
    """CTC loss + backward (the issue's N 64, T 200, 40 labels): 204 ms on the reference's time loop."""
    from scratchnet.functional import ctc_loss, ctc_loss_backward
    rng = np.random.default_rng(0)
    z = rng.standard_normal((N, T, C)).astype(np.float32)
    lp = to_device(z - np.log(np.exp(z).sum(-1, keepdims=True)), device)
    args = [to_device(a, device) for a in (rng.integers(1, C, (N, S)), np.full(N, T), np.full(N, S))]

    def step():
        loss, cache = ctc_loss(lp, *args)
        ctc_loss_backward(np.float32(1.0), cache)
        return float(loss)
    return step


def reference_only(step):
    """``step`` with SCRATCHNET_JIT=0: the vectorised reference instead of the kernels."""
    import os

    def run():
        os.environ["SCRATCHNET_JIT"] = "0"
        try:
            return step()
        finally:
            os.environ.pop("SCRATCHNET_JIT")
    return run


rows = []


def row(name, cpu_s, gpu_s):
    rows.append({"workload": name, "numpy_s": cpu_s, "cupy_s": gpu_s,
                 "speedup": None if cpu_s is None else cpu_s / gpu_s})
    speed = "" if cpu_s is None else f"{cpu_s * 1e3:10.1f} ms {cpu_s / gpu_s:8.1f}x"
    print(f"{name:<44}{gpu_s * 1e3:10.1f} ms {speed}", flush=True)


print(f"{'workload (median s per training step)':<44}{'CuPy':>13} {'NumPy':>13} {'speed-up':>9}")
row("LeNet-5 (modern), batch 256", timed(lenet_step("cpu"), "cpu", 2, 5), timed(lenet_step("gpu"), "gpu", 3, 20))
row("GPT 6x384, block 256, batch 8, dropout 0.2", timed(gpt_step("cpu", 8, 0.2), "cpu", 1, 3),
    timed(gpt_step("gpu", 8, 0.2), "gpu", 3, 10))
row("CTC loss+backward N64 T200 S40, CUDA kernels", timed(ctc_step("cpu"), "cpu", 2, 10),
    timed(ctc_step("gpu"), "gpu", 3, 20))
row("CTC loss+backward, reference time loop", None, timed(reference_only(ctc_step("gpu")), "gpu", 1, 3))
with_drop = timed(gpt_step("gpu", 64, 0.2), "gpu", 3, 10)
without = timed(gpt_step("gpu", 64, 0.0), "gpu", 3, 10)
row("baby GPT (batch 64), dropout 0.2", None, with_drop)
row("baby GPT (batch 64), no dropout", None, without)
ratio = with_drop / without
print(f"dropout cost on the GPU: {ratio:.2f}x the step without dropout (target <= 1.2x): "
      f"{'PASS' if ratio <= 1.2 else 'FAIL'}; 5,000 baby-GPT steps would take {5000 * with_drop / 60:.1f} min")
with open(sys.argv[1], "w") as f:
    name = cupy.cuda.runtime.getDeviceProperties(0)["name"]
    json.dump({"device": name.decode() if isinstance(name, bytes) else str(name), "rows": rows,
               "dropout_ratio": ratio}, f, indent=1)
sys.exit(0 if ratio <= 1.2 else 1)
PYEOF
[ "${PIPESTATUS[0]}" -eq 0 ] || failed=$((failed + 1))
fi

if wants bench; then
echo "== bench: python -m benchmarks --device gpu" | tee "$LOG/bench.log"
timeout 120 "$PY" -m benchmarks --device gpu --warmup 3 --repeats 5 --json "$LOG/bench.json" 2>&1 \
    | tee -a "$LOG/bench.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || failed=$((failed + 1))
fi

if wants gpt; then
echo "== gpt: chapter 21 on the GPU (training capped at $MINUTES min)" | tee "$LOG/21-gpt.log"
export SCRATCHNET_DEVICE=gpu SCRATCHNET_MAX_MINUTES="$MINUTES" SCRATCHNET_QUICK=0
if "$PY" -c "import nbclient, nbformat, ipykernel" 2>/dev/null; then
    timeout 330 "$PY" -m scratchnet.cli run 21-gpt --device gpu --json --out "$LOG" 2>&1 | tee -a "$LOG/21-gpt.log"
    [ "${PIPESTATUS[0]}" -eq 0 ] || failed=$((failed + 1))
else  # no Jupyter here: run the notebook's code cells in order in one Python process, as its kernel would
    echo "(nbclient/ipykernel missing: executing the code cells in-process)" | tee -a "$LOG/21-gpt.log"
    SCRATCHNET_RECORD="$LOG/21-gpt.metrics.json" timeout 330 "$PY" benchmarks/run_cells.py notebooks/21-gpt.ipynb \
        2>&1 | tee -a "$LOG/21-gpt.log"
    [ "${PIPESTATUS[0]}" -eq 0 ] || failed=$((failed + 1))
fi
[ -f "$LOG/21-gpt.metrics.json" ] && cat "$LOG/21-gpt.metrics.json"
fi

echo "== gpu_check ($PARTS): $failed part(s) failed; logs in $LOG"
exit "$failed"
