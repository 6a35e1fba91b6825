"""``scratchnet bench``: run the timed workloads of ``benchmarks/bench_*.py`` in a source checkout.

The benchmarks live beside the package (``<repository>/benchmarks``), not inside it, so this
module finds them relative to the repository root and imports them as the ``benchmarks`` package.
How to add workloads is described in ``benchmarks/harness.py``.
"""
from __future__ import annotations

import importlib
import pathlib
import sys

__all__ = ["repository_root", "run_benchmarks", "main"]


def repository_root() -> pathlib.Path:
    """The folder holding ``scratchnet/`` (and, in a checkout, ``benchmarks/``)."""
    return pathlib.Path(__file__).resolve().parent.parent


def _harness():
    root = repository_root()
    bench_dir = root / "benchmarks"
    if not (bench_dir / "harness.py").is_file():
        raise RuntimeError(f"scratchnet bench: no benchmarks/harness.py under {root}; the benchmarks ship with "
                           "the source repository, not the wheel (clone it and pip install -e .)")
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    package = importlib.import_module("benchmarks")
    found = pathlib.Path(package.__file__).resolve().parent
    if found != bench_dir.resolve():
        raise RuntimeError(f"scratchnet bench: the module 'benchmarks' was imported from {found}, "
                           f"not from {bench_dir}; rename or uninstall the other package")
    return importlib.import_module("benchmarks.harness")


def run_benchmarks(pattern=None, repeats=10, *, warmup=1, json_path=None, file=None, torch_threads=None,
                   device="cpu"):
    """Time every registered workload whose name matches ``pattern`` and print the table.

    ``pattern``: a glob (``"core.*"``) or a substring of the workload name; None runs all.
    Each side is the median of ``repeats`` calls after ``warmup`` calls. Returns the list of
    ``benchmarks.harness.Result``; with ``json_path`` the results are also written as JSON.
    ``torch_threads`` sets PyTorch's thread count (default: left as PyTorch sets it).
    ``device="gpu"``: the GPU-capable workloads on CuPy beside PyTorch on CUDA, each call synchronised
    (RuntimeError without CuPy and a CUDA device).
    The harness first applies ``scratchnet.keep_freed_memory()``, the allocator tuning ``fit`` uses.
    """
    return _harness().run(pattern, repeats=repeats, warmup=warmup, json_path=json_path, file=file,
                          torch_threads=torch_threads, device=device)


def main(argv=None) -> int:
    """Command-line entry (same options as ``python -m benchmarks``)."""
    return _harness().main(argv)
