"""Timed workloads, side by side with PyTorch when it is installed.

``python -m benchmarks`` (or ``scratchnet bench``) imports every ``benchmarks/bench_*.py``, times
the workloads they register and prints: workload | scratchnet ms | torch ms | ratio.
How to add a family's workloads is described in ``benchmarks/harness.py``.
"""
