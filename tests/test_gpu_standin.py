"""The GPU tests run against a CuPy stand-in (tests/cupy_standin.py), in a fresh interpreter.

Without a GPU the tests marked for one skip; the stand-in lets the ones that check host/device
hygiene run anyway: every gradient-check case's forward and backward on device arrays against
NumPy, one training step of every model on both, the CUDA kernels called through ``cupy.RawModule``
(run by the CUDA emulator), the routes on device arrays, the device's random draws. A NumPy array
mixed into a device operation, an implicit conversion, or a kernel argument of the wrong type fails
here as it would on a GPU. Numbers, speed and memory still need a GPU (benchmarks/gpu_check.sh).
"""
import re
import subprocess
import sys
from pathlib import Path

import pytest

from scratchnet import backend

ROOT = Path(__file__).resolve().parents[1]
# every test whose id names cupy or gpu, in the whole suite (the xp fixture's CuPy half included), but:
# what the stand-in cannot stand in for, a timing, and the checks of a machine without a GPU
DESELECT = ("not dropout_step_cost and not without and not missing_cupy and not request_on_this_machine "
            "and not on_this_machine")
RUN = """
import sys
sys.path.insert(0, {tests!r})
import cupy_standin
cupy_standin.install()
import pytest
sys.exit(pytest.main(sys.argv[1:]))
"""


@pytest.mark.skipif(backend.gpu_available(), reason="a real GPU runs these tests itself")
def test_gpu_tests_pass_on_the_cupy_standin():
    args = ["-q", "-p", "no:cacheprovider", "-o", "addopts=", "-k", f"(cupy or gpu) and ({DESELECT})", "tests/",
            f"--ignore={Path(__file__).relative_to(ROOT)}"]
    done = subprocess.run([sys.executable, "-c", RUN.format(tests=str(ROOT / "tests")), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=900)
    tail = "\n".join((done.stdout + done.stderr).splitlines()[-60:])
    assert done.returncode == 0, tail
    summary = re.findall(r"^.*\d+ passed.*$", done.stdout, re.M)  # pytest's last line (warnings go elsewhere)
    assert summary and "skipped" not in summary[-1], tail  # the GPU tests ran, none skipped
    assert int(re.search(r"(\d+) passed", summary[-1]).group(1)) >= 100, summary[-1]
