"""Wall time AND CPU time of registered workloads, scratchnet and PyTorch interleaved round by round.

``python -m benchmarks.cputime [PATTERN] [--repeats N] [--torch-threads N]``

On a machine shared with other jobs the wall time of a call includes the time its thread waited
for a core; the process's CPU time (``time.process_time``: every thread of the process) does not.
With one thread everywhere (``OPENBLAS_NUM_THREADS=1 NUMBA_NUM_THREADS=1 --torch-threads 1``) the
CPU time is the work itself, and the two libraries' numbers compare fairly even on a loaded box.
Each round times the scratchnet callable and then the PyTorch one, so a change of load hits both.
The table: median wall ms and median CPU ms of each side, and the two ratios (scratchnet / torch).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

from .harness import discover, environment, select, torch_or_none

__all__ = ["time_both", "measure", "main"]


def time_both(fn):
    """(wall ms, process CPU ms) of one call of ``fn``."""
    w0, c0 = time.perf_counter(), time.process_time()
    fn()
    return (time.perf_counter() - w0) * 1e3, (time.process_time() - c0) * 1e3


def measure(w, repeats=10, warmup=1):
    """Median (wall, cpu) ms of the scratchnet and torch callables of workload ``w``, interleaved."""
    fns = w.setup()
    sn, tf = fns if isinstance(fns, tuple) else (fns, None)
    for _ in range(warmup):
        sn()
        if tf is not None:
            tf()
    rows = {"sn": [], "torch": []}
    for _ in range(repeats):
        rows["sn"].append(time_both(sn))
        if tf is not None:
            rows["torch"].append(time_both(tf))
    med = {k: (statistics.median(t[0] for t in v), statistics.median(t[1] for t in v)) if v else (None, None)
           for k, v in rows.items()}
    return med


def _f(v):
    return "-" if v is None else f"{v:.2f}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cputime")
    parser.add_argument("pattern", nargs="?", default=None)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--torch-threads", type=int, default=None)
    args = parser.parse_args(argv)
    import scratchnet
    scratchnet.keep_freed_memory()  # as the harness and fit do
    if args.torch_threads is not None and torch_or_none() is not None:
        torch_or_none().set_num_threads(args.torch_threads)
    discover()
    env = environment()
    print(f"median of {args.repeats} interleaved rounds, ms; " + ", ".join(f"{k} {v}" for k, v in env.items()))
    print("| workload | sn wall | torch wall | ratio wall | sn CPU | torch CPU | ratio CPU |")
    print("|---|--:|--:|--:|--:|--:|--:|")
    for w in select(args.pattern):
        print(f"  timing {w.name} ...", file=sys.stderr, flush=True)
        m = measure(w, args.repeats, args.warmup)
        (sw, sc), (tw, tc) = m["sn"], m["torch"]
        rw = sw / tw if tw else None
        rc = sc / tc if tc else None
        print(f"| {w.name} | {_f(sw)} | {_f(tw)} | {_f(rw)} | {_f(sc)} | {_f(tc)} | {_f(rc)} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
