"""Smoke tests of the benchmark harness (no timing assertions)."""
import io
import json

import pytest

from scratchnet.bench import repository_root, run_benchmarks


def test_core_workload_runs_once(tmp_path):
    out, path = io.StringIO(), tmp_path / "bench.json"
    results = run_benchmarks("core.cross_entropy*", repeats=1, warmup=0, json_path=path, file=out)
    assert [r.name for r in results] == ["core.cross_entropy_fwd_bwd"]
    r = results[0]
    assert r.error is None and r.scratchnet_ms > 0 and len(r.scratchnet_times_ms) == 1
    text = out.getvalue()
    assert "| workload" in text and "core.cross_entropy_fwd_bwd" in text
    payload = json.loads(path.read_text())
    assert payload["results"][0]["name"] == "core.cross_entropy_fwd_bwd"
    try:
        import torch  # noqa: F401
    except ImportError:
        assert r.torch_ms is None
    else:
        assert r.torch_ms > 0 and r.ratio == pytest.approx(r.scratchnet_ms / r.torch_ms)
        assert "torch_threads" in text


def test_family_file_is_discovered_and_errors_are_rows(tmp_path):
    run_benchmarks("no-such-workload", repeats=1, file=io.StringIO())  # imports the harness
    from benchmarks import harness
    (tmp_path / "bench_toy.py").write_text(
        "from benchmarks.harness import workload\n"
        "@workload('toy.sum', description='adds numbers')\n"
        "def toy():\n"
        "    return (lambda: sum(range(10))), None\n"
        "@workload('toy.broken')\n"
        "def broken():\n"
        "    raise RuntimeError('set-up failed')\n")
    (tmp_path / "bench_bad.py").write_text("raise ImportError('missing optional dependency')\n")
    try:
        out = io.StringIO()
        results = harness.run("toy.*", repeats=2, warmup=0, file=out, directory=tmp_path)
        by_name = {r.name: r for r in results}
        assert by_name["toy.sum"].torch_ms is None and by_name["toy.sum"].error is None
        assert "set-up failed" in by_name["toy.broken"].error
        assert "adds numbers" in out.getvalue()
        with pytest.raises(ValueError, match="already registered"):
            harness.register("toy.sum", lambda: (None, None))
    finally:
        harness.REGISTRY.pop("toy.sum", None)
        harness.REGISTRY.pop("toy.broken", None)


def test_list_and_bad_options(capsys):
    from benchmarks import harness
    assert harness.main(["--list", "core."]) == 0
    assert "core.adam_step_1M" in capsys.readouterr().out
    with pytest.raises(ValueError, match="repeats"):
        run_benchmarks(repeats=0)
    assert (repository_root() / "benchmarks" / "bench_core.py").is_file()
