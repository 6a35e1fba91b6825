"""The `scratchnet` command: list, gradcheck, run (on tiny generated notebooks), bench."""
import json
import math

import pytest

from scratchnet import _alloc, cli, runs


def strict_json(line):
    """json.loads that refuses NaN / Infinity, as strict parsers (JavaScript, jq, Go) do."""
    def reject(constant):
        raise ValueError(f"not strict JSON: {constant}")
    return json.loads(line, parse_constant=reject)


def write_notebook(path, *sources):
    nbformat = pytest.importorskip("nbformat")
    pytest.importorskip("nbclient")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    nbformat.write(nb, path)
    return path


def test_list_runs(capsys):
    assert cli.main(["list"]) == 0
    assert "NN" in capsys.readouterr().out


def test_gradcheck_linear_passes(capsys):
    assert cli.main(["gradcheck", "linear"]) == 0
    out = capsys.readouterr().out
    assert "PASS" in out and out.strip().splitlines()[-1].endswith("passed, 0 failed")


def test_gradcheck_unknown_pattern_fails(capsys):
    assert cli.main(["gradcheck", "no-such-op-anywhere"]) == 1
    assert "no gradcheck case matches" in capsys.readouterr().out


def test_run_records_metrics_and_prints_json(tmp_path, capsys, monkeypatch):
    nbdir = tmp_path / "notebooks"
    nbdir.mkdir()
    (nbdir / "input.txt").write_text("0.25")
    write_notebook(nbdir / "99-tiny.ipynb",
                   "import os\nimport scratchnet as sn\nfrom scratchnet.progress import progress_disabled",
                   "assert progress_disabled() and 'inline' in os.environ['MPLBACKEND']\n"
                   "assert os.environ['SCRATCHNET_MALLOC'] == 'keep' and sn._alloc._applied is not None\n"
                   "err = float(open('input.txt').read())  # relative to the notebooks folder",
                   "sn.record(test_error=err, quick=os.environ['SCRATCHNET_QUICK'], val_loss=float('nan'))",
                   "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3]);")
    monkeypatch.chdir(tmp_path)  # ./notebooks is searched first
    monkeypatch.delenv("SCRATCHNET_MALLOC", raising=False)
    assert cli.main(["run", "99", "--quick", "--json", "--out", str(tmp_path / "runs"), "--timeout", "60"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    metrics = strict_json(lines[-1])
    assert metrics["test_error"] == 0.25 and metrics["quick"] == 1.0 and metrics["seconds"] > 0
    assert metrics["val_loss"] is None  # NaN is written as null
    assert "test_error: 0.25" in lines and "val_loss: nan" in lines
    assert strict_json((tmp_path / "runs" / "99-tiny.metrics.json").read_text()) == metrics
    nbformat = pytest.importorskip("nbformat")
    executed = nbformat.read(tmp_path / "runs" / "99-tiny.ipynb", as_version=4)
    assert executed.cells[2].outputs  # the executed copy keeps its outputs
    assert any("image/png" in o.get("data", {}) for o in executed.cells[3].outputs)  # and its plots
    assert cli.main(["list"]) == 0  # the recorded run shows up
    assert "test_error=0.25" in capsys.readouterr().out


def test_run_json_writes_non_finite_metrics_as_null(monkeypatch, capsys):
    recorded = {"test_error": float("nan"), "cer": float("inf"), "wer": -float("inf"), "note": "x", "seconds": 1.5}
    monkeypatch.setattr(runs, "run_notebook", lambda *a, **kw: dict(recorded))
    assert cli.main(["run", "01", "--json"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert strict_json(lines[-1]) == {"test_error": None, "cer": None, "wer": None, "note": "x", "seconds": 1.5}
    assert "test_error: nan" in lines and "cer: inf" in lines  # the human-readable lines keep the value
    with pytest.raises(SystemExit):
        cli.main(["run", "--help"])
    assert "infinity as null" in " ".join(capsys.readouterr().out.split())  # documented


def test_json_safe_replaces_only_non_finite_floats():
    safe = runs.json_safe({"a": 0.5, "b": 3, "c": None, "d": float("nan"), "e": "text"})
    assert safe == {"a": 0.5, "b": 3, "c": None, "d": None, "e": "text"}
    assert math.isfinite(safe["a"])


def test_run_failing_cell_names_notebook_and_cell(tmp_path):
    from scratchnet.runs import NotebookError, run_notebook
    path = write_notebook(tmp_path / "98-broken.ipynb", "x = 1", "raise ValueError('boom')")
    with pytest.raises(NotebookError, match=r"98-broken failed in cell 1 .*ValueError: boom") as info:
        run_notebook(str(path), out_dir=tmp_path / "runs")
    assert info.value.executed_path.exists()


def test_run_unknown_notebook_is_a_clear_error(capsys):
    assert cli.main(["run", "no-such-notebook"]) == 1
    assert "no notebook called 'no-such-notebook'" in capsys.readouterr().err


def test_bench_unknown_pattern_exits_1_and_bench_keeps_freed_memory(capsys, monkeypatch):
    calls = []
    monkeypatch.setattr(_alloc, "keep_freed_memory", lambda: calls.append(1) or True)
    assert cli.main(["bench", "no-such-workload-anywhere", "--repeats", "1"]) == 1
    assert calls  # the command applies the allocator tuning (and so does the harness)


# -- run --device gpu: which notebooks read the setting ---------------------------------------------------------
def _fake_run(monkeypatch):
    """Replace run_notebook with a recorder of the device each run would have seen."""
    import os
    seen = []
    monkeypatch.setattr(runs, "run_notebook", lambda name, **kw: seen.append(os.environ.get("SCRATCHNET_DEVICE"))
                        or {"val_loss": 1.0})
    monkeypatch.delenv("SCRATCHNET_DEVICE", raising=False)
    return seen


def _pretend_gpu(monkeypatch):
    """A machine with a usable GPU, as far as the device check goes; returns the devices it was asked about."""
    from scratchnet import backend
    asked = []
    monkeypatch.setattr(backend, "gpu_available", lambda: True)
    monkeypatch.setattr(backend, "check_device", lambda device, who="scratchnet": asked.append(device) or device)
    return asked


def test_run_device_gpu_refuses_a_cpu_only_notebook_in_one_line(monkeypatch, capsys):
    seen, asked = _fake_run(monkeypatch), _pretend_gpu(monkeypatch)
    assert cli.main(["run", "02", "--device", "gpu"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("scratchnet run: notebook 02-rbm runs on the CPU only: ")
    assert runs.CPU_ONLY["02-rbm"] in err and "without --device gpu" in err
    assert not seen and not asked  # refused before the device check and before any kernel starts
    assert cli.main(["run", "02", "--device", "cpu"]) == 0 and seen == ["cpu"]  # the CPU is always fine
    assert cli.main(["run", "02"]) == 0 and seen == ["cpu", None]


def test_run_device_gpu_refusal_comes_first_on_a_machine_without_a_gpu(monkeypatch, capsys):
    from scratchnet import backend
    seen = _fake_run(monkeypatch)
    monkeypatch.setattr(backend, "_cupy", None)  # this machine, whatever it has
    assert cli.main(["run", "30-dcgan", "--device", "gpu"]) == 1
    err = capsys.readouterr().err
    assert "notebook 30-dcgan runs on the CPU only" in err and "no usable GPU" not in err and not seen


@pytest.mark.parametrize("name", ["21", "05-convolution", "mlp"])
def test_run_device_gpu_accepts_a_notebook_that_reads_the_setting(name, monkeypatch, capsys):
    from scratchnet import backend
    seen, asked = _fake_run(monkeypatch), _pretend_gpu(monkeypatch)
    assert cli.main(["run", name, "--device", "gpu"]) == 0
    assert asked == ["gpu"] and seen == ["gpu"]  # checked, then run with SCRATCHNET_DEVICE=gpu
    monkeypatch.undo()  # the real device check: accepted up to it, refused there without a GPU
    seen = _fake_run(monkeypatch)
    monkeypatch.setattr(backend, "_cupy", None)
    capsys.readouterr()
    assert cli.main(["run", name, "--device", "gpu"]) == 1
    err = capsys.readouterr().err
    assert "no usable GPU" in err and "CPU only" not in err and not seen


def test_reads_device_looks_at_code_lines_only(tmp_path, monkeypatch, capsys):
    import json as json_
    seen, _ = _fake_run(monkeypatch), _pretend_gpu(monkeypatch)

    def notebook(name, code, markdown=""):
        cells = [{"cell_type": "markdown", "metadata": {}, "source": [markdown]},
                 {"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [],
                  "source": code.splitlines(keepends=True)}]
        path = tmp_path / f"{name}.ipynb"
        path.write_text(json_.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
        return path

    reads = notebook("97-reads", "import os\nfrom scratchnet.backend import device_from_env\n"
                                 "DEVICE = device_from_env()  # the setting\n")
    comment = notebook("96-comment", "# DEVICE = device_from_env()\nx = 1  # device_from_env() one day\n",
                       markdown="Run it with `DEVICE = device_from_env()`.")
    imports = notebook("95-imports", "from scratchnet.backend import device_from_env\n")
    assert runs.reads_device(reads) and not runs.reads_device(comment) and not runs.reads_device(imports)
    assert cli.main(["run", str(reads), "--device", "gpu"]) == 0 and seen == ["gpu"]
    assert cli.main(["run", str(comment), "--device", "gpu"]) == 1
    err = capsys.readouterr().err
    assert "notebook 96-comment runs on the CPU only: it does not read the device setting" in err


# -- the GPU notebooks cannot drift from what they claim ----------------------------------------------------------
NOTEBOOKS = sorted((runs.PACKAGE_ROOT / "notebooks").glob("*.ipynb"))


def _code_tree(path):
    import ast
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    code = "\n".join(line for c in cells if c["cell_type"] == "code" for line in "".join(c["source"]).splitlines()
                     if not line.lstrip().startswith(("%", "!")))
    return ast.parse(code)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_gpu_notebooks_read_the_device_and_pass_it_to_every_fit(path):
    """A notebook either reads the setting (DEVICE = device_from_env(), and every fit / fit_budget call gets
    device=DEVICE) or is listed in runs.CPU_ONLY with its reason, never both."""
    import ast
    if path.stem in runs.CPU_ONLY:
        assert not runs.reads_device(path), f"{path.name} reads device_from_env: remove it from runs.CPU_ONLY"
        return
    assert runs.reads_device(path), (f"{path.name} does not read device_from_env: make it (DEVICE = "
                                     "device_from_env() and fit(..., device=DEVICE)) or list it in runs.CPU_ONLY")
    tree = _code_tree(path)
    assigned = [n for n in ast.walk(tree) if isinstance(n, ast.Assign)
                and ast.unparse(n) == "DEVICE = device_from_env()"]
    assert assigned, f"{path.name}: no `DEVICE = device_from_env()` line"
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
             and n.func.id in ("fit", "fit_budget")]
    missing = [ast.unparse(c)[:100] for c in calls
               if not any(k.arg == "device" and ast.unparse(k.value) == "DEVICE" for k in c.keywords)]
    assert not missing, f"{path.name}: fit calls without device=DEVICE: {missing}"


def test_cpu_only_table_names_existing_notebooks():
    stems = {p.stem for p in NOTEBOOKS}
    assert set(runs.CPU_ONLY) <= stems, sorted(set(runs.CPU_ONLY) - stems)
    assert all(isinstance(why, str) and why and "\n" not in why for why in runs.CPU_ONLY.values())


def test_bench_device_gpu_without_a_gpu_says_so_in_one_line(capsys, monkeypatch):
    from scratchnet import backend
    monkeypatch.setattr(backend, "_cupy", None)
    assert cli.main(["bench", "core.linear", "--device", "gpu"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("scratchnet bench:") and "no usable GPU" in err and "\n" not in err
