"""Smoke tests of the benchmark harness (no timing assertions)."""
import inspect
import io
import json

import pytest

from scratchnet import backend
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


# -- devices: --device gpu, the GPU-capable workloads, their CPU runs ---------------------------------------------
ISSUE_GPU_TARGETS = ("conv.lenet5_100_steps", "conv.resnet3x3_fwd_bwd", "attention.gpt_train_step")


def _harness():
    run_benchmarks("no-such-workload", repeats=1, file=io.StringIO())  # imports the harness, discovers the families
    from benchmarks import harness
    return harness


def test_device_option_parsing(capsys):
    harness = _harness()
    with pytest.raises(SystemExit):
        harness.main(["--device", "cuda"])
    assert "invalid choice: 'cuda'" in capsys.readouterr().err
    assert harness.main(["--list", "--device", "gpu"]) == 0
    listed = {line.split()[0] for line in capsys.readouterr().out.splitlines()}
    gpu = {w.name for w in harness.select() if "gpu" in w.devices}
    assert listed == gpu and set(ISSUE_GPU_TARGETS) <= gpu
    cpu_only = {w.name for w in harness.select() if w.devices == ("cpu",)}
    assert "core.adam_step_1M" in gpu and any(n.startswith("int8.") for n in cpu_only) and not listed & cpu_only
    assert harness.main(["--list"]) == 0  # the CPU list: every workload, the format as before
    assert len(capsys.readouterr().out.splitlines()) == len(harness.select())
    with pytest.raises(ValueError, match="device must be 'cpu' or 'gpu', got 'tpu'"):
        harness.run("core.*", repeats=1, device="tpu", file=io.StringIO())


def test_device_gpu_without_a_gpu_is_one_clear_line(monkeypatch, capsys):
    """No CuPy (simulated, so this runs on any machine): exit status 2, one line naming the cause, nothing timed."""
    harness = _harness()
    monkeypatch.setattr(backend, "_cupy", None)
    monkeypatch.setattr(backend, "_CUPY_ERROR", ImportError("No module named 'cupy'"))
    monkeypatch.setattr(harness, "_run_one", lambda *a, **k: pytest.fail("a workload ran without a GPU"))
    assert harness.main(["core.*", "--device", "gpu"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 1
    assert err.startswith("python -m benchmarks --device gpu: no usable GPU: CuPy is not installed")
    with pytest.raises(RuntimeError, match="--device gpu: no usable GPU"):
        run_benchmarks("core.*", repeats=1, device="gpu", file=io.StringIO())


@pytest.mark.skipif(backend.gpu_available(), reason="checks a machine without a GPU")
def test_device_gpu_on_this_machine_fails_clearly(capsys):
    assert _harness().main(["--device", "gpu"]) == 2
    assert "no usable GPU" in capsys.readouterr().err


def test_registration_checks_devices():
    harness = _harness()
    with pytest.raises(ValueError, match=r"devices of 'toy.gpu_only' must be \('cpu',\) or \('cpu', 'gpu'\)"):
        harness.register("toy.gpu_only", lambda device="gpu": (None, None), devices=("gpu",))
    with pytest.raises(TypeError, match="its setup must take a 'device' argument"):
        harness.register("toy.no_device", lambda: (None, None), devices=("cpu", "gpu"))
    cpu_only = harness.Workload("toy.cpu", lambda: ("sn", None))
    assert cpu_only.make() == ("sn", None)
    with pytest.raises(ValueError, match="workload 'toy.cpu' runs on cpu, not on 'gpu'"):
        cpu_only.make("gpu")
    assert not {"toy.gpu_only", "toy.no_device"} & set(harness.REGISTRY)


def test_time_callable_synchronises_each_timed_call():
    harness = _harness()
    events = []
    times = harness.time_callable(lambda: events.append("call"), repeats=3, warmup=2,
                                  sync=lambda: events.append("sync"))
    assert len(times) == 3 and events == ["call", "call", "sync"] + ["call", "sync"] * 3
    assert harness.synchronizers("cpu") == (None, None)


def test_gpu_run_with_stand_ins(monkeypatch, tmp_path):
    """The --device gpu branch on any machine: the GPU check, the synchronisers and the GPU's name replaced by
    stand-ins; only workloads declaring the GPU run (setup(device='gpu')), the others are listed as skipped."""
    harness = _harness()
    seen, syncs = [], []
    monkeypatch.setattr(backend, "require_gpu", lambda who="scratchnet": None)
    monkeypatch.setattr(harness, "synchronizers", lambda device: (lambda: syncs.append("sn"), None))
    monkeypatch.setattr(harness, "gpu_environment", lambda: {"gpu": "Stand-in GPU"})

    def both(device="cpu"):
        seen.append(device)
        return (lambda: None), None

    harness.register("toy.both", both, description="runs anywhere", devices=("cpu", "gpu"))
    harness.register("toy.cpu_only", lambda: ((lambda: None), None), description="CPU only")
    try:
        out, path = io.StringIO(), tmp_path / "gpu.json"
        results = harness.run("toy.*", repeats=2, warmup=1, json_path=path, file=out, device="gpu")
        assert [r.name for r in results] == ["toy.both"] and seen == ["gpu"] and len(syncs) == 3
        text = out.getvalue()
        assert "on the GPU (Stand-in GPU)" in text and "each call synchronised" in text
        assert "run on the CPU only, skipped: toy.cpu_only" in text
        payload = json.loads(path.read_text())
        assert payload["device"] == "gpu" and payload["environment"]["gpu"] == "Stand-in GPU"
        assert payload["results"][0]["device"] == "gpu"
        seen.clear()
        results = harness.run("toy.*", repeats=1, warmup=0, json_path=path, file=io.StringIO())
        assert [r.name for r in results] == ["toy.both", "toy.cpu_only"] and seen == ["cpu"]
        assert json.loads(path.read_text())["device"] == "cpu"
    finally:
        harness.REGISTRY.pop("toy.both", None)
        harness.REGISTRY.pop("toy.cpu_only", None)


def test_gpu_capable_setups_run_on_the_cpu():
    """Every workload that declares the GPU takes device='cpu' by default and runs once on the CPU (scratchnet's
    side, and PyTorch's where installed): the code its GPU run shares. The heaviest (a 6-layer GPT step, 100
    LeNet-5 steps, a 2048² GEMM) only build here."""
    harness = _harness()
    heavy = {"attention.gpt_train_step", "conv.lenet5_100_steps", "conv.gemm_2048"}
    for w in (w for w in harness.select() if "gpu" in w.devices):  # one workload per pass
        assert inspect.signature(w.setup).parameters["device"].default == "cpu", w.name
        sn, tf = w.make("cpu")
        if w.name not in heavy:
            sn()
            if tf is not None:
                tf()
