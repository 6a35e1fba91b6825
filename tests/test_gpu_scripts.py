"""The GPU machine's scripts, checked where they can be without a GPU: shell syntax, the parts they
accept, and the notebook runner they fall back to without Jupyter."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from scratchnet import runs

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ["benchmarks/gpu_check.sh", "benchmarks/gpu_notebooks.sh"]
needs_bash = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


@needs_bash
@pytest.mark.parametrize("script", SCRIPTS)
def test_scripts_parse(script):
    done = subprocess.run(["bash", "-n", str(ROOT / script)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


@needs_bash
def test_gpu_check_refuses_an_unknown_part(tmp_path):
    done = subprocess.run(["bash", str(ROOT / "benchmarks/gpu_check.sh"), "tests", "everything"],
                          capture_output=True, text=True, env={"OUT": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 2 and "unknown part 'everything'" in done.stdout


def test_gpu_notebooks_default_list_reads_the_device():
    """Every notebook gpu_notebooks.sh runs by default honours SCRATCHNET_DEVICE (not refused as CPU-only)."""
    text = (ROOT / "benchmarks/gpu_notebooks.sh").read_text()
    line = next(x for x in text.splitlines() if x.strip().startswith("[ \"${#NOTEBOOKS[@]}\" -gt 0 ] ||"))
    names = line.split("NOTEBOOKS=(")[1].rstrip(")").split()
    assert names
    for name in names:
        assert runs.reads_device(ROOT / "notebooks" / f"{name}.ipynb"), name


def _notebook(path, cells):
    nb = {"cells": [{"cell_type": kind, "source": src, "metadata": {}, **({"outputs": [], "execution_count": None}
                                                                        if kind == "code" else {})}
                    for kind, src in cells], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    path.write_text(json.dumps(nb))
    return path


def test_run_cells_runs_code_cells_in_order_in_one_namespace(tmp_path):
    nb = _notebook(tmp_path / "t.ipynb", [("code", "import os\nx = 2"), ("markdown", "# not code"),
                                          ("code", ["y = x * 21\n", "open('out.txt', 'w').write(str(y))"])])
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks/run_cells.py"), str(nb)], capture_output=True,
                          text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out.txt").read_text() == "42"  # ran in the notebook's folder
    assert done.stdout.split() == ["---", "cell", "0", "---", "cell", "2"]


def test_run_cells_names_the_failing_cell(tmp_path):
    nb = _notebook(tmp_path / "bad.ipynb", [("code", "x = 1"), ("code", "raise ValueError('boom')")])
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks/run_cells.py"), str(nb)], capture_output=True,
                          text=True)
    assert done.returncode != 0
    assert "bad.ipynb cell 1" in done.stderr and "ValueError: boom" in done.stderr
