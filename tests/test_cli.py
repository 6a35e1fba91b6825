"""The `scratchnet` command: list, gradcheck, run (on tiny generated notebooks), bench."""
import json

import pytest

from scratchnet import cli

nbformat = pytest.importorskip("nbformat")
pytest.importorskip("nbclient")


def write_notebook(path, *sources):
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
                   "import os\nimport scratchnet as sn\nfrom scratchnet.train import progress_disabled",
                   "assert progress_disabled() and 'inline' in os.environ['MPLBACKEND']\n"
                   "err = float(open('input.txt').read())  # relative to the notebooks folder",
                   "sn.record(test_error=err, quick=os.environ['SCRATCHNET_QUICK'])",
                   "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3]);")
    monkeypatch.chdir(tmp_path)  # ./notebooks is searched first
    assert cli.main(["run", "99", "--quick", "--json", "--out", str(tmp_path / "runs"), "--timeout", "60"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    metrics = json.loads(lines[-1])
    assert metrics["test_error"] == 0.25 and metrics["quick"] == 1.0 and metrics["seconds"] > 0
    assert "test_error: 0.25" in lines
    assert json.loads((tmp_path / "runs" / "99-tiny.metrics.json").read_text()) == metrics
    executed = nbformat.read(tmp_path / "runs" / "99-tiny.ipynb", as_version=4)
    assert executed.cells[2].outputs  # the executed copy keeps its outputs
    assert any("image/png" in o.get("data", {}) for o in executed.cells[3].outputs)  # and its plots
    assert cli.main(["list"]) == 0  # the recorded run shows up
    assert "test_error=0.25" in capsys.readouterr().out


def test_run_failing_cell_names_notebook_and_cell(tmp_path):
    from scratchnet.runner import NotebookError, run_notebook
    path = write_notebook(tmp_path / "98-broken.ipynb", "x = 1", "raise ValueError('boom')")
    with pytest.raises(NotebookError, match=r"98-broken failed in cell 1 .*ValueError: boom") as info:
        run_notebook(str(path), out_dir=tmp_path / "runs")
    assert info.value.executed_path.exists()


def test_run_unknown_notebook_is_a_clear_error(capsys):
    assert cli.main(["run", "no-such-notebook"]) == 1
    assert "no notebook called 'no-such-notebook'" in capsys.readouterr().err


def test_bench_unknown_pattern_exits_1(capsys):
    assert cli.main(["bench", "no-such-workload-anywhere", "--repeats", "1"]) == 1
