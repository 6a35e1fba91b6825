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
