"""Peak memory of one training step (forward, loss, backward, update): scratchnet beside PyTorch.

``python -m benchmarks.memory [MODEL ...]`` with MODEL among lenet5, resnet20, gpt (default: all).

Legend: N batch, T context, D model width. Each (model, library) pair runs in a fresh child process,
one thread, so neither library's earlier arrays or caches are counted for the other. In the child:
build the model and a batch, run one warm-up step (the optimizer's state exists from then on, as in
training), free what can be freed (``gc.collect``, glibc ``malloc_trim``), reset the kernel's
high-water mark of resident memory (``/proc/self/clear_refs``), run ONE step and read it back:

- step RSS: peak resident memory during the step minus the resident memory before it (both
  libraries; what the step costs the machine);
- traced: for scratchnet, ``tracemalloc``'s peak over a further step (NumPy reports its arrays to
  it): the bytes of arrays alive at the worst moment of the step;
- process RSS: the whole process's peak (interpreter, libraries, compiled kernels, model).

The workloads: LeNet-5 (paper variant, N 64, 1×32×32, SGD with momentum), ResNet-20 (width 16,
N 128, 1×28×28, SGD with momentum), the chapter-21 GPT (6 layers, D 192, 6 heads, T 128, N 32,
65-character vocabulary, AdamW). The PyTorch twins have the same layers and sizes.
"""
from __future__ import annotations

import ctypes
import gc
import json
import os
import subprocess
import sys

MODELS = ("lenet5", "resnet20", "gpt")
__all__ = ["MODELS", "measure_child", "main"]


def _status(key):
    """A field of /proc/self/status in bytes (VmRSS, VmHWM), or None off Linux."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _settle():
    """Free what the allocator holds: collect garbage and give glibc's free pages back to the system."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _reset_peak():
    """Reset VmHWM to the current RSS (Linux ≥ 4.0); False when not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


# -- the workloads: each returns a zero-argument training step ------------------------------------
def _scratchnet(name):
    import numpy as np

    from scratchnet import nn
    from scratchnet.optim import SGD, AdamW

    from .harness import train_step
    rng = np.random.default_rng(0)
    if name == "lenet5":
        from scratchnet.models.lenet import LeNet5
        model, x, y = LeNet5(rng=0), rng.standard_normal((64, 1, 32, 32), dtype=np.float32), rng.integers(0, 10, 64)
        opt = SGD(model.parameters(), lr=0.01, momentum=0.9)
    elif name == "resnet20":
        from scratchnet.models.resnet import ResNet
        model = ResNet(20, width=16, rng=0)
        x, y = rng.standard_normal((128, 1, 28, 28), dtype=np.float32), rng.integers(0, 10, 128)
        opt = SGD(model.parameters(), lr=0.1, momentum=0.9)
    else:
        from scratchnet.models.gpt import GPT
        model = GPT(65, 128, n_layer=6, n_head=6, d_model=192, rng=0)
        x, y = rng.integers(0, 65, (32, 128)), rng.integers(0, 65, (32, 128))
        opt = AdamW(model.parameters(), lr=3e-4)
    crit = nn.CrossEntropyLoss()
    model.train()
    return lambda: train_step(model, crit, opt, x, y)


def _torch(name):
    import numpy as np
    import torch

    from .harness import torch_train_step
    tnn = torch.nn
    rng = np.random.default_rng(0)
    if name == "lenet5":
        from scratchnet.models.lenet import LeNet5

        from .bench_conv import torch_lenet5
        model = torch_lenet5(LeNet5(rng=0))
        x, y = rng.standard_normal((64, 1, 32, 32), dtype=np.float32), rng.integers(0, 10, 64)
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    elif name == "resnet20":
        model = _torch_resnet20(tnn)
        x, y = rng.standard_normal((128, 1, 28, 28), dtype=np.float32), rng.integers(0, 10, 128)
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    else:
        model = _torch_gpt(torch, 65, 128, 6, 6, 192)
        x, y = rng.integers(0, 65, (32, 128)), rng.integers(0, 65, (32, 128))
        opt = torch.optim.AdamW(model.parameters(), lr=3e-4)
    model.train()
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    return lambda: torch_train_step(model, opt, tx, ty)


def _torch_resnet20(tnn):
    """CIFAR-style ResNet-20 (3 stages of 3 basic blocks, 16/32/64 channels, 1×1 projection shortcuts)."""
    class Block(tnn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.c1, self.b1 = tnn.Conv2d(cin, cout, 3, stride, 1, bias=False), tnn.BatchNorm2d(cout)
            self.c2, self.b2 = tnn.Conv2d(cout, cout, 3, 1, 1, bias=False), tnn.BatchNorm2d(cout)
            self.short = (tnn.Identity() if stride == 1 and cin == cout else
                          tnn.Sequential(tnn.Conv2d(cin, cout, 1, stride, bias=False), tnn.BatchNorm2d(cout)))

        def forward(self, t):
            h = tnn.functional.relu(self.b1(self.c1(t)))
            return tnn.functional.relu(self.b2(self.c2(h)) + self.short(t))

    layers, cin = [tnn.Conv2d(1, 16, 3, 1, 1, bias=False), tnn.BatchNorm2d(16), tnn.ReLU()], 16
    for stage, cout in enumerate((16, 32, 64)):
        for i in range(3):
            layers.append(Block(cin, cout, 2 if stage and not i else 1))
            cin = cout
    return tnn.Sequential(*layers, tnn.AdaptiveAvgPool2d(1), tnn.Flatten(), tnn.Linear(64, 10))


def _torch_gpt(torch, V, T, n_layer, n_head, D):
    """GPT: token + learned position embeddings, pre-LN causal GELU blocks, final LayerNorm, tied head."""
    tnn = torch.nn

    class GPT(tnn.Module):
        def __init__(self):
            super().__init__()
            self.tok, self.pos = tnn.Embedding(V, D), tnn.Parameter(torch.zeros(T, D))
            self.blocks = tnn.ModuleList(tnn.TransformerEncoderLayer(D, n_head, 4 * D, 0.0, "gelu", batch_first=True,
                                                                     norm_first=True) for _ in range(n_layer))
            self.ln = tnn.LayerNorm(D)
            self.mask = tnn.Transformer.generate_square_subsequent_mask(T)

        def forward(self, ids):
            h = self.tok(ids) + self.pos[:ids.shape[1]]
            for blk in self.blocks:
                h = blk(h, src_mask=self.mask, is_causal=True)
            return self.ln(h) @ self.tok.weight.T

    return GPT()


def measure_child(name, lib):
    """In this process: one warm-up step, then the peaks of one step (bytes); a dict."""
    if lib == "torch":
        import torch
        torch.set_num_threads(1)
    step = (_torch if lib == "torch" else _scratchnet)(name)
    step()  # warm-up: the optimizer's state and every lazily built buffer exist from here on
    _settle()
    rss0, can_reset = _status("VmRSS"), _reset_peak()
    step()
    hwm = _status("VmHWM")
    out = {"model": name, "lib": lib, "step_rss": hwm - rss0 if can_reset and hwm and rss0 else None,
           "process_rss": hwm}
    if lib == "scratchnet":
        import tracemalloc
        _settle()
        tracemalloc.start()
        step()
        out["traced"] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return out


def _mib(v):
    return "-" if v is None else f"{v / 2 ** 20:.1f}"


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        print(json.dumps(measure_child(argv[1], argv[2])))
        return 0
    models = argv or list(MODELS)
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", NUMBA_NUM_THREADS="1", OMP_NUM_THREADS="1",
               MKL_NUM_THREADS="1")
    print("| model | scratchnet step RSS MiB | torch step RSS MiB | ratio | scratchnet traced MiB "
          "| scratchnet process MiB | torch process MiB |")
    print("|---|--:|--:|--:|--:|--:|--:|")
    for name in models:
        res = {}
        for lib in ("scratchnet", "torch"):
            run = subprocess.run([sys.executable, "-m", "benchmarks.memory", "--child", name, lib], env=env,
                                 capture_output=True, text=True)
            if run.returncode:
                print(f"  {name}/{lib} failed:\n{run.stderr[-2000:]}", file=sys.stderr)
                res[lib] = {}
                continue
            res[lib] = json.loads(run.stdout.strip().splitlines()[-1])
        s, t = res["scratchnet"], res["torch"]
        ratio = s["step_rss"] / t["step_rss"] if s.get("step_rss") and t.get("step_rss") else None
        print(f"| {name} | {_mib(s.get('step_rss'))} | {_mib(t.get('step_rss'))} | "
              f"{'-' if ratio is None else f'{ratio:.2f}'} | {_mib(s.get('traced'))} | "
              f"{_mib(s.get('process_rss'))} | {_mib(t.get('process_rss'))} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
