"""Timing harness: a registry of workloads, each timed in scratchnet and (if installed) PyTorch.

A workload is a *setup* function registered with ``@workload("family.name")``. It builds its inputs
and models (not timed) and returns two callables, ``(scratchnet_fn, torch_fn)``; ``torch_fn`` is None
when PyTorch is missing or has no counterpart. Each callable runs the work once and is timed with
``time.perf_counter`` as the median of ``repeats`` calls after ``warmup`` untimed calls. The table
reads: workload | scratchnet ms | torch ms | ratio (scratchnet / torch), so a ratio above 1 means
scratchnet is slower.

Devices: a workload runs on the CPU unless it declares more, ``@workload(..., devices=("cpu", "gpu"))``;
its setup then takes ``device`` ('cpu' by default): scratchnet's side on CuPy arrays
(``model.to(device)``, ``backend.to_device``), PyTorch's on ``torch_device(device)`` ('cuda'), with
``torch_for(device)`` giving None where PyTorch has no CUDA device. ``--device gpu`` times only those
workloads, and synchronises the device after every timed call (``cupy.cuda.Device().synchronize()``,
``torch.cuda.synchronize()``), so a time is the work done, not its launch.

Adding benchmarks for a family: create ``benchmarks/bench_<family>.py`` (it is found by name)::

    import numpy as np
    import scratchnet.functional as F
    from benchmarks.harness import torch_or_none, workload

    @workload("conv.conv2d_fwd_bwd", description="N=32, 64→64 channels, 3×3, 32×32, float32")
    def conv2d_fwd_bwd():
        rng = np.random.default_rng(0)
        x = rng.standard_normal((32, 64, 32, 32), dtype=np.float32)
        ...                                   # everything here is set-up, not timed

        def run_scratchnet():
            y, cache = F.conv2d(x, w, b, padding=1)
            F.conv2d_backward(dy, cache)

        torch = torch_or_none()
        if torch is None:
            return run_scratchnet, None
        ...
        def run_torch():
            ...
        return run_scratchnet, run_torch

Rules for workloads: name them ``<family>.<what>``; fix every random input with a seeded
generator; use float32 as training does; keep one call well under a second; never import torch
at module level (use ``torch_or_none()``); build the NumPy inputs first and move them, so that
both devices time the same numbers. A workload that raises is reported as an error row, and the
others still run.

Run: ``python -m benchmarks [PATTERN] [--repeats N] [--warmup N] [--json out.json] [--list]
[--device cpu|gpu]`` or ``scratchnet bench``. PATTERN selects workloads by name: a glob
(``core.*adam*``) or a substring.
"""
from __future__ import annotations

import argparse
import dataclasses
import fnmatch
import importlib
import importlib.util
import inspect
import json
import os
import pathlib
import platform
import statistics
import sys
import time
import traceback
from typing import Callable, Optional

__all__ = ["Workload", "Result", "workload", "register", "torch_or_none", "torch_for", "torch_device",
           "train_step", "torch_train_step", "discover", "select", "time_callable", "synchronizers", "run",
           "format_table", "environment", "gpu_environment", "main", "REGISTRY", "DEVICES"]

BENCH_DIR = pathlib.Path(__file__).resolve().parent
DEVICES = ("cpu", "gpu")


@dataclasses.dataclass
class Workload:
    """A named benchmark: ``setup()`` → (scratchnet callable, torch callable or None); a workload with
    ``devices`` beyond ('cpu',) has ``setup(device)``."""
    name: str
    setup: Callable[..., tuple]
    description: str = ""
    devices: tuple = ("cpu",)

    def make(self, device: str = "cpu") -> tuple:
        """The two callables on ``device``: ``setup()`` for a CPU-only workload, else ``setup(device)``."""
        if device not in self.devices:
            raise ValueError(f"benchmarks: workload {self.name!r} runs on {', '.join(self.devices)}, "
                             f"not on {device!r}")
        return self.setup(device) if self.devices != ("cpu",) else self.setup()


@dataclasses.dataclass
class Result:
    """Median times in milliseconds (None where not run) and every repeat's time."""
    name: str
    description: str
    scratchnet_ms: Optional[float]
    torch_ms: Optional[float]
    ratio: Optional[float]
    repeats: int
    scratchnet_times_ms: list
    torch_times_ms: list
    error: Optional[str] = None
    device: str = "cpu"


REGISTRY: "dict[str, Workload]" = {}
_TORCH = []  # cached result of the one torch import attempt


def workload(name: str, *, description: str = "", devices=("cpu",)):
    """Decorator registering a setup function under ``name`` (``family.what``; unique). ``devices``:
    where it runs, ('cpu',) or ('cpu', 'gpu'); with 'gpu' the setup takes ``device``."""
    def deco(setup):
        register(name, setup, description=description or (setup.__doc__ or "").strip().split("\n")[0],
                 devices=devices)
        return setup
    return deco


def register(name: str, setup: Callable[..., tuple], *, description: str = "", devices=("cpu",)) -> Workload:
    """Register ``setup`` (returns ``(scratchnet_fn, torch_fn_or_None)``) under ``name``.

    ``devices``: ('cpu',) (``setup()``) or ('cpu', 'gpu') (``setup(device)``, 'cpu' by default).
    Re-registering a name from the same module (a re-import) replaces it; from another module it
    is an error, so two families cannot silently shadow each other.
    """
    if not callable(setup):
        raise TypeError(f"benchmarks.register: setup for {name!r} must be callable")
    devices = tuple(devices)
    if "cpu" not in devices or not set(devices) <= set(DEVICES) or len(set(devices)) != len(devices):
        raise ValueError(f"benchmarks.register: devices of {name!r} must be ('cpu',) or ('cpu', 'gpu'), "
                         f"got {devices!r}")
    if devices != ("cpu",) and "device" not in inspect.signature(setup).parameters:
        raise TypeError(f"benchmarks.register: {name!r} runs on {devices}, so its setup must take a "
                        f"'device' argument; {setup.__qualname__}{inspect.signature(setup)} does not")
    old = REGISTRY.get(name)
    if old is not None and getattr(old.setup, "__module__", None) != getattr(setup, "__module__", None):
        raise ValueError(f"benchmarks.register: workload {name!r} is already registered by {old.setup.__module__}")
    REGISTRY[name] = Workload(name, setup, description, devices)
    return REGISTRY[name]


def torch_or_none():
    """The ``torch`` module, or None when it is not installed (imported once, lazily)."""
    if not _TORCH:
        try:
            import torch  # noqa: F401  (optional: benchmarks only)
            _TORCH.append(torch)
        except Exception:
            _TORCH.append(None)
    return _TORCH[0]


def torch_device(device: str) -> str:
    """PyTorch's name for ``device``: 'cuda' for 'gpu', 'cpu' for 'cpu'."""
    if device not in DEVICES:
        raise ValueError(f"benchmarks.torch_device: device must be 'cpu' or 'gpu', got {device!r}")
    return "cuda" if device == "gpu" else "cpu"


def torch_for(device: str):
    """``torch_or_none()``, or None on 'gpu' when this PyTorch has no CUDA device (a CPU-only build)."""
    torch = torch_or_none()
    if torch is None or (device == "gpu" and not torch.cuda.is_available()):
        return None
    return torch


def train_step(model, criterion, optimizer, x, y):
    """One scratchnet training step: forward, loss, backward through the model, update; the loss."""
    loss = criterion(model(x), y)
    optimizer.zero_grad()
    model.backward(criterion.backward())
    optimizer.step()
    return loss


def torch_train_step(model, optimizer, x, y):
    """The PyTorch twin of ``train_step`` with softmax cross-entropy on (N, K) or (N, T, K) logits."""
    torch = torch_or_none()
    logits = model(x)
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss


def discover(directory=None, *, quiet: bool = False) -> list:
    """Import every ``bench_*.py`` in ``directory`` (default: this package) so its workloads register.

    Returns the module names imported; a file that fails to import is reported on stderr and skipped.
    """
    directory = pathlib.Path(directory).resolve() if directory is not None else BENCH_DIR
    package = __name__.rpartition(".")[0] or "benchmarks"
    imported = []
    for path in sorted(directory.glob("bench_*.py")):
        try:
            if directory == BENCH_DIR:
                modname = f"{package}.{path.stem}"
                importlib.import_module(modname)
            else:  # a folder outside the package: load the file under a private name
                modname = f"_scratchnet_bench_{abs(hash(str(path)))}_{path.stem}"
                if modname not in sys.modules:
                    spec = importlib.util.spec_from_file_location(modname, path)
                    module = importlib.util.module_from_spec(spec)
                    sys.modules[modname] = module
                    spec.loader.exec_module(module)
            imported.append(modname)
        except Exception as exc:  # one broken family must not stop the others
            if directory != BENCH_DIR:
                sys.modules.pop(modname, None)
            if not quiet:
                print(f"benchmarks: skipping {path.name}: {type(exc).__name__}: {exc}", file=sys.stderr)
    return imported


def select(pattern: Optional[str] = None) -> list:
    """Registered workloads whose name matches ``pattern`` (glob if it has * ? [, else substring)."""
    names = sorted(REGISTRY)
    if pattern:
        pat = pattern.lower()
        if any(c in pat for c in "*?["):
            names = [n for n in names if fnmatch.fnmatch(n.lower(), pat)]
        else:
            names = [n for n in names if pat in n.lower()]
    return [REGISTRY[n] for n in names]


def time_callable(fn: Callable[[], object], *, repeats: int, warmup: int = 1, sync=None) -> list:
    """Milliseconds of each of ``repeats`` calls to ``fn`` after ``warmup`` untimed calls.

    ``sync`` (a callable, e.g. ``cupy.cuda.Device().synchronize``) waits for the device's queued work:
    it runs after the warm-up and inside each timed call, so a time covers the work, not its launch.
    """
    for _ in range(warmup):  # untimed: compilation, caches, the memory pools fill
        fn()
    if sync is not None:
        sync()
    times = []
    for _ in range(repeats):  # one timed call per pass
        start = time.perf_counter()
        fn()
        if sync is not None:
            sync()
        times.append((time.perf_counter() - start) * 1e3)
    return times


def synchronizers(device: str) -> tuple:
    """(scratchnet's, PyTorch's) device synchronisation for timing on ``device``: (None, None) on the CPU;
    on the GPU ``cupy.cuda.Device().synchronize`` and ``torch.cuda.synchronize`` (None without a CUDA torch)."""
    if device == "cpu":
        return None, None
    import cupy  # only reached after backend.require_gpu: CuPy imports and sees a device
    torch = torch_for(device)

    def sync_cupy():
        cupy.cuda.Device().synchronize()

    return sync_cupy, (torch.cuda.synchronize if torch is not None else None)


def _run_one(w: Workload, repeats: int, warmup: int, device: str = "cpu") -> Result:
    try:
        sn_sync, torch_sync = synchronizers(device)
        fns = w.make(device)
        sn_fn, torch_fn = fns if isinstance(fns, tuple) else (fns, None)
        sn_times = time_callable(sn_fn, repeats=repeats, warmup=warmup, sync=sn_sync)
        torch_times = (time_callable(torch_fn, repeats=repeats, warmup=warmup, sync=torch_sync)
                       if torch_fn is not None else [])
    except Exception as exc:
        traceback.print_exc(file=sys.stderr)
        return Result(w.name, w.description, None, None, None, repeats, [], [], f"{type(exc).__name__}: {exc}",
                      device)
    sn_ms = statistics.median(sn_times)
    torch_ms = statistics.median(torch_times) if torch_times else None
    ratio = sn_ms / torch_ms if torch_ms else None
    return Result(w.name, w.description, sn_ms, torch_ms, ratio, repeats, sn_times, torch_times, device=device)


def environment() -> dict:
    """What the numbers depend on: versions, thread counts, the CPU."""
    import numpy as np
    env = {"python": platform.python_version(), "numpy": np.__version__, "machine": platform.machine(),
           "processor": platform.processor() or platform.machine(), "cpu_count": os.cpu_count()}
    env.update(_cpu())
    try:  # BLAS threads NumPy will use, when threadpoolctl can tell
        from threadpoolctl import threadpool_info
        blas = [i for i in threadpool_info() if i.get("user_api") == "blas"]
        if blas:
            env["numpy_blas"] = f"{blas[0].get('internal_api')} {blas[0].get('version')}"
            env["numpy_blas_threads"] = blas[0].get("num_threads")
    except Exception:
        pass
    try:
        import numba
        env["numba"] = numba.__version__
    except Exception:
        pass
    torch = torch_or_none()
    if torch is not None:
        env["torch"] = torch.__version__
        env["torch_threads"] = torch.get_num_threads()
    return env


def gpu_environment() -> dict:
    """The GPU side of the numbers: the device's name (``cupy.cuda.runtime.getDeviceProperties(0)``),
    CuPy and its CUDA runtime, and PyTorch's CUDA build and device (call after ``backend.require_gpu``)."""
    import cupy
    props = cupy.cuda.runtime.getDeviceProperties(0)
    name = props["name"]
    env = {"gpu": name.decode() if isinstance(name, bytes) else str(name), "cupy": cupy.__version__,
           "cuda_runtime": cupy.cuda.runtime.runtimeGetVersion()}
    torch = torch_for("gpu")
    if torch is not None:
        env["torch_cuda"] = torch.version.cuda
        env["torch_gpu"] = torch.cuda.get_device_name(0)
    return env


def _cpu() -> dict:
    """The CPU model and which of the vector extensions AVX2 / AVX-512F it has (Linux: /proc/cpuinfo)."""
    try:
        lines = pathlib.Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return {}
    field = lambda key: next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith(key)), "")  # noqa: E731
    flags = set(field("flags").split())
    return {"cpu": field("model name") or "unknown",
            "vector_ext": "+".join(f for f in ("avx2", "avx512f") if f in flags) or "none"}


def _fmt(v, spec):
    return "-" if v is None else format(v, spec)


def format_table(results: list) -> str:
    """A Markdown table: workload | scratchnet ms | torch ms | ratio."""
    rows = [("workload", "scratchnet ms", "torch ms", "ratio (sn/torch)")]
    for r in results:
        if r.error:
            rows.append((r.name, "error", "-", r.error[:60]))
        else:
            rows.append((r.name, _fmt(r.scratchnet_ms, ".2f"), _fmt(r.torch_ms, ".2f"), _fmt(r.ratio, ".2f")))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    line = lambda row: "| " + " | ".join(c.ljust(w) if i == 0 else c.rjust(w)  # noqa: E731
                                        for i, (c, w) in enumerate(zip(row, widths))) + " |"
    sep = "|" + "|".join("-" * (w + 1) + (":" if i else "-") for i, w in enumerate(widths)) + "|"
    return "\n".join([line(rows[0]), sep] + [line(r) for r in rows[1:]])


def run(pattern: Optional[str] = None, *, repeats: int = 10, warmup: int = 1, json_path=None,
        file=None, directory=None, torch_threads: Optional[int] = None, device: str = "cpu") -> list:
    """Discover, select, time and print; returns the list of ``Result``. Optionally writes JSON.

    ``device='gpu'`` needs CuPy and a CUDA device (else ``RuntimeError`` from ``backend.require_gpu``,
    before anything runs): it times the workloads that declare the GPU, scratchnet on CuPy beside
    PyTorch on CUDA, each timed call synchronised; the others are listed as skipped.

    First applies ``scratchnet.keep_freed_memory()`` (glibc keeps freed blocks for reuse), as
    ``fit`` does: ``import scratchnet`` changes no allocator setting, and the timings assume this one.

    ``torch_threads`` calls ``torch.set_num_threads`` first; by default PyTorch keeps its own
    default (one thread per core, like NumPy's BLAS). On a machine shared with other jobs, its
    thread team can stall while one of its threads waits for a core: compare with
    ``torch_threads=1`` there.
    """
    if repeats < 1 or warmup < 0:
        raise ValueError(f"benchmarks.run: expected repeats >= 1 and warmup >= 0, got {repeats}, {warmup}")
    if device not in DEVICES:
        raise ValueError(f"benchmarks.run: device must be 'cpu' or 'gpu', got {device!r}")
    if device == "gpu":
        from scratchnet.backend import require_gpu
        require_gpu("python -m benchmarks --device gpu")
    import scratchnet
    scratchnet.keep_freed_memory()  # what fit does for a training loop: reuse freed large arrays
    file = sys.stdout if file is None else file
    if torch_threads is not None and torch_or_none() is not None:
        torch_or_none().set_num_threads(int(torch_threads))
    discover(directory)
    matched = select(pattern)
    chosen = [w for w in matched if device in w.devices]
    env = environment()
    if device == "gpu":
        env.update(gpu_environment())
        print("scratchnet benchmarks on the GPU ({}): median of {} repeats after {} warm-up call(s), each call "
              "synchronised, milliseconds".format(env["gpu"], repeats, warmup), file=file)
    else:
        print("scratchnet benchmarks: median of {} repeats after {} warm-up call(s), milliseconds".format(
            repeats, warmup), file=file)
    print("  " + ", ".join(f"{k} {v}" for k, v in env.items()), file=file)
    if env.get("torch") is None:
        print("  (PyTorch is not installed: the torch column stays empty)", file=file)
    elif device == "gpu" and torch_for("gpu") is None:
        print("  (this PyTorch has no CUDA device: the torch column stays empty)", file=file)
    if len(chosen) < len(matched):
        skipped = sorted(w.name for w in matched if w not in chosen)
        print(f"  {len(skipped)} workload(s) run on the CPU only, skipped: {', '.join(skipped)}", file=file)
    if not matched:
        print(f"  no workload matches {pattern!r}; registered: {', '.join(sorted(REGISTRY)) or 'none'}", file=file)
    results = []
    for w in chosen:  # one workload at a time, each side timed in full
        print(f"  timing {w.name} ...", file=sys.stderr, flush=True)
        results.append(_run_one(w, repeats, warmup, device))
    print(format_table(results), file=file)
    for r in results:
        if r.description:
            print(f"  {r.name}: {r.description}", file=file)
    if json_path is not None:
        payload = {"device": device, "environment": env, "repeats": repeats, "warmup": warmup,
                   "results": [dataclasses.asdict(r) for r in results]}
        pathlib.Path(json_path).write_text(json.dumps(payload, indent=2))
        print(f"  results written to {json_path}", file=file)
    return results


def main(argv=None) -> int:
    """``python -m benchmarks`` / ``scratchnet bench``."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description="Time scratchnet workloads "
                                     "(and their PyTorch twins when PyTorch is installed).")
    parser.add_argument("pattern", nargs="?", default=None, help="workload names: glob or substring")
    parser.add_argument("--repeats", type=int, default=10, help="timed calls per workload (median reported)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed calls before timing")
    parser.add_argument("--json", metavar="PATH", default=None, help="also write the results as JSON")
    parser.add_argument("--torch-threads", type=int, default=None, metavar="N",
                        help="torch.set_num_threads(N) before timing (default: PyTorch's own default)")
    parser.add_argument("--device", choices=DEVICES, default="cpu",
                        help="cpu (default): NumPy beside PyTorch on the CPU; gpu: the GPU-capable workloads on "
                             "CuPy beside PyTorch on CUDA, each call synchronised (needs CuPy and a CUDA device)")
    parser.add_argument("--list", action="store_true", help="list the workloads (of --device) and exit")
    args = parser.parse_args(argv)
    if args.list:
        discover()
        for w in select(args.pattern):  # one line per workload that runs on the device asked for
            if args.device in w.devices:
                print(f"{w.name:40s} {w.description}")
        return 0
    if args.device == "gpu":
        from scratchnet.backend import require_gpu
        try:
            require_gpu("python -m benchmarks --device gpu")
        except RuntimeError as exc:  # no CuPy or no CUDA device: one clear line, nothing run
            print(exc, file=sys.stderr)
            return 2
    results = run(args.pattern, repeats=args.repeats, warmup=args.warmup, json_path=args.json,
                  torch_threads=args.torch_threads, device=args.device)
    return 1 if any(r.error for r in results) else 0
