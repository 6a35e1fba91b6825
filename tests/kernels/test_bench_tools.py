"""Smoke tests of the measuring scripts next to the kernels: benchmarks.cputime (wall and CPU time,
interleaved) and benchmarks.memory (peak memory of one training step)."""
import numpy as np

from benchmarks import cputime, memory
from benchmarks.harness import Workload


def test_cputime_measures_both_sides():
    calls = []
    w = Workload("t.x", lambda: (lambda: calls.append("sn"), lambda: calls.append("torch")))
    med = cputime.measure(w, repeats=3, warmup=1)
    assert calls == ["sn", "torch"] * 4  # interleaved, warm-up included
    assert all(v is not None and v >= 0 for v in med["sn"] + med["torch"])


def test_cputime_without_torch_twin():
    w = Workload("t.y", lambda: (lambda: np.ones(10).sum(), None))
    med = cputime.measure(w, repeats=2)
    assert med["torch"] == (None, None) and med["sn"][0] >= 0


def test_memory_child_reports_a_step():
    out = memory.measure_child("lenet5", "scratchnet")
    assert out["model"] == "lenet5" and out["traced"] > 1 << 20  # a LeNet-5 step at batch 64 holds MiBs
    assert out["process_rss"] is None or out["process_rss"] > out["traced"]
