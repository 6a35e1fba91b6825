"""Every registered gradcheck case, run on a second device against NumPy (``device_parity``).

The catalogue (``scratchnet/gradcheck/cases``) builds every op, block and tiny model with every option
that changes the math. Inside ``device_parity("gpu")`` each of its checks runs one forward and one
backward on CuPy arrays (a module copied and moved with ``.to("gpu")``) and compares outputs and
gradients with NumPy's: the op-level half of "the same code runs on a GPU". On a machine without a
GPU the same harness runs NumPy against NumPy, so what the GPU run relies on is tested everywhere.
"""
import numpy as np
import pytest

from scratchnet import backend
from scratchnet.gradcheck import catalogue_names, check_function, run_case
from scratchnet.gradcheck.checker import device_parity

needs_gpu = pytest.mark.skipif(not backend.gpu_available(), reason="needs CuPy and a CUDA device")

# case-name prefixes left out of the GPU comparison, and why (chapter 34's notebook runs on the CPU only)
GPU_EXCLUDED = {"quant.": "quantisation parameters (scales, zero points, observers) are host NumPy values "
                          "and the int8 kernels are Numba-only"}


def _run_catalogue(device, exclude=()):
    """(reports, failures): every case in parity mode (but those starting with ``exclude``); a failure is
    a case that raised or a row off."""
    reports, failures = [], []
    with device_parity(device):
        for name in catalogue_names():
            if name.startswith(tuple(exclude)):
                continue
            try:
                got = run_case(name)
            except Exception as e:  # a case that cannot run on the device: named, with the error
                failures.append(f"{name}: raised {type(e).__name__}: {e}")
                continue
            reports += [(name, r) for r in got]
            failures += [f"{name}:\n{r}" for r in got if not r.ok]
    return reports, failures


def test_parity_harness_on_numpy_covers_every_case():
    """NumPy against NumPy: every report comes from the parity mode (no case bypasses it) and agrees."""
    reports, failures = _run_catalogue("cpu")
    assert not failures, "\n\n".join(failures[:10])
    assert len(reports) >= 238  # the catalogue's report count (tests/test_gradcheck_catalogue.py)
    bypassed = sorted({name for name, r in reports if r.device != "cpu"})
    assert not bypassed, f"cases whose reports did not come from device_parity: {bypassed}"
    assert all(r.results for _, r in reports)


def test_parity_names_a_difference():
    """A forward that changes between the two runs shows up as a failing row naming the output."""
    calls = []

    def forward(x):
        calls.append(1)
        return x * len(calls), None

    def backward(dy, cache):
        return dy

    with device_parity("cpu"):
        report = check_function(forward, backward, [np.ones(3)], names=["x"])
    assert report.device == "cpu" and not report.ok
    assert [r.name for r in report.results if not r.ok] == ["output0"]
    assert "parity" in str(report) and "numpy" in str(report)


def test_parity_leaves_gradchecks_alone_outside_the_block():
    with device_parity("cpu"):
        pass
    report = check_function(lambda x: (x * x, x), lambda dy, x: 2 * x * dy, [np.arange(3.0)])
    assert report.device is None and report.ok and "gradcheck" in str(report)


def test_parity_refuses_an_unknown_device():
    with pytest.raises(ValueError, match="device must be 'cpu' or 'gpu'"):
        with device_parity("tpu"):
            pass


def test_same_draws_as_cpu_copies_the_host_draws(monkeypatch):
    """Inside the block a device draw is the NumPy generator's own numbers, moved with ``xp.asarray``."""
    class Device:  # stands in for cupy: the draw must arrive through asarray, not a device generator
        @staticmethod
        def asarray(a):
            return ("on device", a)

    monkeypatch.setattr(backend, "_device_generator", lambda rng: pytest.fail("drew on the device"))
    with backend.same_draws_as_cpu():
        where, mask = backend.keep_mask(np.random.default_rng(5), (4, 6), 0.3, xp=Device)
        _, u = backend.random_uniform(np.random.default_rng(5), (3,), dtype=np.float32, xp=Device)
        _, z = backend.random_standard_normal(np.random.default_rng(5), (3,), dtype=np.float32, xp=Device)
    assert where == "on device"
    np.testing.assert_array_equal(mask, backend.keep_mask(np.random.default_rng(5), (4, 6), 0.3))
    np.testing.assert_array_equal(u, np.random.default_rng(5).random(3, dtype=np.float32))
    np.testing.assert_array_equal(z, np.random.default_rng(5).standard_normal(3).astype(np.float32))
    assert not backend._HOST_DRAWS[0]  # restored on exit


@needs_gpu
def test_every_catalogue_case_on_gpu_equals_numpy():
    reports, failures = _run_catalogue("gpu", exclude=GPU_EXCLUDED)
    assert not failures, f"{len(failures)} cases differ on the GPU:\n\n" + "\n\n".join(failures)
    assert all(r.device == "gpu" for _, r in reports)
