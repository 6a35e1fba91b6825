"""Device selection and randomness on the device: the clear errors of a machine without a GPU, fit's
``device`` argument, ``scratchnet run --device``, and the CPU paths of dropout / clipping / sampling
kept bit-for-bit. The tests named ``*cupy*`` need CuPy and a CUDA device and skip elsewhere."""
import math
import os

import numpy as np
import pytest

import scratchnet.functional as F
from scratchnet import backend, cli, nn, runs
from scratchnet.functional.energy import sample_bernoulli, sample_gaussian
from scratchnet.functional.gumbel import gumbel_noise
from scratchnet.optim import SGD, clip_grad_norm
from scratchnet.train import evaluate, fit

needs_gpu = pytest.mark.skipif(not backend.gpu_available(), reason="needs CuPy and a CUDA device")
no_gpu = pytest.mark.skipif(backend.gpu_available(), reason="checks the errors of a machine without a GPU")


def blobs(rng, n=120):
    y = rng.integers(0, 2, n)
    x = rng.standard_normal((n, 2)) * 0.6 + np.where(y[:, None] == 1, 1.5, -1.5)
    return x.astype(np.float32), y.astype(np.int64)


def mlp(seed=0, p=0.0):
    rng = np.random.default_rng(seed)
    return nn.Sequential(nn.Linear(2, 16, rng=rng), nn.ReLU(), nn.Dropout(p, rng=rng), nn.Linear(16, 2, rng=rng))


# -- the errors of a machine without a usable GPU -----------------------------------------------------------
def test_missing_cupy_is_named(monkeypatch):
    monkeypatch.setattr(backend, "_cupy", None)
    monkeypatch.setattr(backend, "_CUPY_ERROR", ImportError("No module named 'cupy'"))
    with pytest.raises(RuntimeError, match=r"fit: no usable GPU: CuPy is not installed.*scratchnet\[gpu\]"):
        backend.require_gpu("fit")
    with pytest.raises(RuntimeError, match="no usable GPU: CuPy is not installed"):
        backend.to_device(np.zeros(3), "gpu")


def test_cupy_without_cuda_device_is_named(monkeypatch):
    class FakeCupy:
        ndarray = type("ndarray", (), {})

        @staticmethod
        def is_available():
            return False

    monkeypatch.setattr(backend, "_cupy", FakeCupy)
    with pytest.raises(RuntimeError, match=r"no usable GPU: CuPy is installed but finds no CUDA device"):
        backend.check_device("gpu", "scratchnet run")


@no_gpu
def test_gpu_request_on_this_machine_fails_clearly():
    with pytest.raises(RuntimeError, match="no usable GPU: CuPy"):
        backend.check_device("gpu")


def test_check_device_rejects_unknown_names():
    assert backend.check_device("cpu") == "cpu"
    for bad in ("cuda", "GPU", None, 0):
        with pytest.raises(ValueError, match="device must be 'cpu' or 'gpu'"):
            backend.check_device(bad, "fit")


def test_device_from_env(monkeypatch):
    monkeypatch.delenv("SCRATCHNET_DEVICE", raising=False)
    assert backend.device_from_env() == "cpu"
    monkeypatch.setenv("SCRATCHNET_DEVICE", " CPU ")
    assert backend.device_from_env() == "cpu"
    monkeypatch.setenv("SCRATCHNET_DEVICE", "tpu")
    with pytest.raises(ValueError, match="SCRATCHNET_DEVICE: device must be 'cpu' or 'gpu', got 'tpu'"):
        backend.device_from_env()
    if not backend.gpu_available():
        monkeypatch.setenv("SCRATCHNET_DEVICE", "gpu")
        with pytest.raises(RuntimeError, match="SCRATCHNET_DEVICE: no usable GPU"):
            backend.device_from_env()


# -- fit's device argument ------------------------------------------------------------------------------------
def test_fit_rejects_a_bad_device_before_touching_the_model():
    data = blobs(np.random.default_rng(0))
    model = mlp()
    before = [p.data.copy() for p in model.parameters()]
    with pytest.raises(ValueError, match="fit: device must be 'cpu' or 'gpu', got 'cuda'"):
        fit(model, nn.CrossEntropyLoss(), SGD(model.parameters(), lr=0.1), data, epochs=1, batch_size=20,
            disable=True, device="cuda")
    with pytest.raises(ValueError, match="evaluate: device must be"):
        evaluate(model, nn.CrossEntropyLoss(), data, device="cuda")
    if not backend.gpu_available():
        with pytest.raises(RuntimeError, match="fit: no usable GPU"):
            fit(model, nn.CrossEntropyLoss(), SGD(model.parameters(), lr=0.1), data, epochs=1, batch_size=20,
                disable=True, device="gpu")
    assert all(np.array_equal(a, p.data) and isinstance(p.data, np.ndarray) for a, p in zip(before, model.parameters()))


def test_fit_device_cpu_is_the_default_path_bit_for_bit():
    data, val = blobs(np.random.default_rng(0)), blobs(np.random.default_rng(1), 40)
    runs_ = []
    for device in (None, "cpu"):
        model = mlp(p=0.2)
        hist = fit(model, nn.CrossEntropyLoss(), SGD(model.parameters(), lr=0.1), data, val, epochs=2, batch_size=20,
                   rng=np.random.default_rng(3), clip_norm=1.0, disable=True, device=device)
        runs_.append((hist.step_loss, hist["val_loss"], [p.data.copy() for p in model.parameters()]))
    (la, va, wa), (lb, vb, wb) = runs_
    assert la == lb and va == vb and all(np.array_equal(a, b) for a, b in zip(wa, wb))


def test_fit_budget_passes_the_device_on():
    from scratchnet.train import fit_budget
    data, val = blobs(np.random.default_rng(0)), blobs(np.random.default_rng(1), 40)
    runs_ = []
    for device in (None, "cpu"):
        model = mlp(p=0.2)
        hist = fit_budget(model, nn.CrossEntropyLoss(), SGD(model.parameters(), lr=0.1), data, val, epochs=3,
                          batch_size=20, max_minutes=60, rng=np.random.default_rng(3), disable=True, device=device)
        runs_.append((hist.step_loss, hist.best_epoch, [p.data.copy() for p in model.parameters()]))
    (la, ea, wa), (lb, eb, wb) = runs_
    assert la == lb and ea == eb and all(np.array_equal(a, b) for a, b in zip(wa, wb))
    with pytest.raises(ValueError, match="fit: device must be 'cpu' or 'gpu', got 'cuda'"):
        fit_budget(mlp(), nn.CrossEntropyLoss(), SGD(mlp().parameters(), lr=0.1), data, val, epochs=1,
                   batch_size=20, max_minutes=1, disable=True, device="cuda")


# -- scratchnet run --device ----------------------------------------------------------------------------------
def test_run_device_sets_the_kernel_setting(monkeypatch, capsys):
    seen = {}

    def fake_run_notebook(name, **kw):
        seen["device"] = os.environ.get("SCRATCHNET_DEVICE")
        return {"val_loss": 1.5}

    monkeypatch.setattr(runs, "run_notebook", fake_run_notebook)
    monkeypatch.delenv("SCRATCHNET_DEVICE", raising=False)
    assert cli.main(["run", "21", "--device", "cpu"]) == 0
    assert seen["device"] == "cpu" and "SCRATCHNET_DEVICE" not in os.environ  # set for the run only
    assert cli.main(["run", "21"]) == 0 and seen["device"] is None  # no flag: nothing set
    with pytest.raises(SystemExit):
        cli.main(["run", "21", "--device", "tpu"])
    capsys.readouterr()
    if not backend.gpu_available():
        seen.clear()
        assert cli.main(["run", "21", "--device", "gpu"]) == 1
        assert "no usable GPU" in capsys.readouterr().err and not seen  # refused before running anything


# -- CPU paths unchanged ----------------------------------------------------------------------------------------
def clip_reference(params, max_norm, eps=1e-6):
    """The per-parameter loop clip_grad_norm used before (one float() per parameter)."""
    grads = [p.grad for p in params if p.grad is not None]
    squares = 0.0
    for g in grads:
        norm_i = float(np.linalg.norm(g.reshape(-1)))
        squares += norm_i * norm_i
    total = math.sqrt(squares)
    scale = max_norm / (total + eps)
    if not scale >= 1.0:
        for g in grads:
            g *= scale
    return total


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("max_norm", [0.5, 1e6])
def test_clip_grad_norm_results_unchanged_on_numpy(dtype, max_norm):
    rng = np.random.default_rng(7)
    shapes = [(3, 4), (4,), (2, 3, 5), (1,)]
    a = [nn.Parameter(rng.standard_normal(s).astype(dtype)) for s in shapes]
    b = [nn.Parameter(p.data.copy()) for p in a]
    for pa, pb in zip(a, b):
        pa.grad[...] = pb.grad[...] = rng.standard_normal(pa.shape).astype(dtype) * 3
    assert clip_grad_norm(a, max_norm) == clip_reference(b, max_norm)
    assert all(pa.grad.dtype == dtype and np.array_equal(pa.grad, pb.grad) for pa, pb in zip(a, b))


@pytest.mark.parametrize("p", [0.0, 0.2, 0.5])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dropout_cpu_masks_unchanged(p, dtype):
    shape = (4, 3, 5)
    expected = (np.random.default_rng(11).random(shape) >= p).astype(dtype) / (1.0 - p)  # the old recipe
    rng = np.random.default_rng(11)
    m = F.dropout_mask(shape, p, rng=rng, dtype=dtype)
    assert m.dtype == dtype and np.array_equal(m, expected)
    assert rng.random() == np.random.default_rng(11).random(expected.size + 1)[-1]  # same draws consumed
    x = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    y, _ = F.dropout(x, p=p, rng=np.random.default_rng(11))
    assert np.array_equal(y, x * expected) if p else y is x
    y, _ = F.drop_path(x, p=p, rng=np.random.default_rng(11))
    keep = (np.random.default_rng(11).random((4,)) >= p).astype(dtype) / (1.0 - p)
    assert np.array_equal(y, x * keep[:, None, None]) if p else y is x


def test_noise_drawers_cpu_unchanged():
    pr = np.random.default_rng(0).random((6, 5)).astype(np.float32)
    u = np.random.default_rng(2).random(pr.shape, dtype=np.float32)
    assert np.array_equal(sample_bernoulli(pr, rng=np.random.default_rng(2)), (u < pr).astype(np.float32))
    z = np.random.default_rng(3).standard_normal(pr.shape).astype(np.float32)
    assert np.array_equal(sample_gaussian(pr, rng=np.random.default_rng(3)), pr + z)
    uu = np.random.default_rng(4).random((3, 7)).clip(1e-10, 1 - 1e-10)
    assert np.array_equal(gumbel_noise((3, 7), rng=np.random.default_rng(4)), -np.log(-np.log(uu)))


def test_gpu_branch_draws_one_seed_and_float32_uniforms(monkeypatch):
    """The structure of the GPU branch, with a stand-in device generator: one seed per call from rng."""
    calls = []

    class StandIn:
        def random_sample(self, shape, dtype):
            calls.append(dtype)
            return np.random.default_rng(seeds[-1]).random(shape, dtype=dtype)

    seeds = []

    def fake_generator(rng):
        seeds.append(int(rng.integers(2**63)))
        return StandIn()

    monkeypatch.setattr(backend, "_device_generator", fake_generator)
    rng = np.random.default_rng(5)
    keep = backend.keep_mask(rng, (8, 8), 0.25, xp=object())  # any module other than numpy takes the device path
    assert keep.dtype == bool and calls == [np.float32] and len(seeds) == 1
    assert seeds[0] == int(np.random.default_rng(5).integers(2**63))  # exactly one draw from the module's rng


# -- on a GPU (skipped elsewhere) ---------------------------------------------------------------------------------
@needs_gpu
def test_dropout_mask_cupy_drawn_on_device_reproducible():
    import cupy
    m1 = F.dropout_mask((64, 6, 32, 32), 0.2, rng=np.random.default_rng(0), dtype=np.float32, xp=cupy)
    m2 = F.dropout_mask((64, 6, 32, 32), 0.2, rng=np.random.default_rng(0), dtype=np.float32, xp=cupy)
    assert isinstance(m1, cupy.ndarray) and m1.dtype == np.float32
    assert bool((m1 == m2).all())  # same seed, same device: same mask
    values = set(cupy.unique(m1).get().tolist())
    assert values <= {0.0, np.float32(1 / 0.8)}
    assert abs(float((m1 > 0).mean()) - 0.8) < 0.01
    cpu = F.dropout_mask((64, 6, 32, 32), 0.2, rng=np.random.default_rng(0), dtype=np.float32)
    assert not np.array_equal(cupy.asnumpy(m1), cpu)  # documented: CPU and GPU masks differ


@needs_gpu
def test_noise_drawers_cupy_stay_on_device():
    import cupy
    pr = cupy.full((50, 40), 0.3, dtype=cupy.float32)
    b = sample_bernoulli(pr, rng=np.random.default_rng(0))
    g = sample_gaussian(pr, rng=np.random.default_rng(0))
    n = gumbel_noise((50, 40), rng=np.random.default_rng(0), dtype="float32", xp=cupy)
    assert all(isinstance(a, cupy.ndarray) and a.dtype == cupy.float32 for a in (b, g, n))
    assert abs(float(b.mean()) - 0.3) < 0.05 and abs(float(g.mean()) - 0.3) < 0.1


@needs_gpu
def test_clip_grad_norm_cupy_matches_numpy():
    import cupy
    rng = np.random.default_rng(1)
    a = [nn.Parameter(rng.standard_normal(s).astype(np.float32)) for s in [(30, 20), (20,), (5, 5, 5)]]
    for p in a:
        p.grad[...] = rng.standard_normal(p.shape) * 4
    b = [nn.Parameter(cupy.asarray(p.data)) for p in a]
    for pa, pb in zip(a, b):
        pb.grad = cupy.asarray(pa.grad)
    na, nb = clip_grad_norm(a, 1.0), clip_grad_norm(b, 1.0)
    assert isinstance(nb, float) and nb == pytest.approx(na, rel=1e-5)
    for pa, pb in zip(a, b):
        np.testing.assert_allclose(cupy.asnumpy(pb.grad), pa.grad, rtol=1e-5, atol=1e-6)


@needs_gpu
def test_fit_device_gpu_cupy_trains_like_cpu():
    import cupy
    data, val = blobs(np.random.default_rng(0)), blobs(np.random.default_rng(1), 40)
    hists = {}
    for device in ("cpu", "gpu"):
        model = mlp()
        hists[device] = fit(model, nn.CrossEntropyLoss(), SGD(model.parameters(), lr=0.1), data, val, epochs=2,
                            batch_size=20, rng=np.random.default_rng(3), clip_norm=1.0, disable=True, device=device)
    assert all(isinstance(p.data, cupy.ndarray) for p in model.parameters())  # fit moved the model
    np.testing.assert_allclose(hists["gpu"].step_loss, hists["cpu"].step_loss, rtol=1e-4, atol=1e-5)


@needs_gpu
def test_gpt_step_cupy_same_loss_and_grads_as_numpy():
    import cupy

    from scratchnet.models.gpt import GPT
    ids = np.random.default_rng(0).integers(0, 11, (3, 8))
    out = {}
    for device in ("cpu", "gpu"):
        model = GPT(11, 8, n_layer=2, n_head=2, d_model=16, dropout=0.0, rng=0).to(device)
        crit = nn.CrossEntropyLoss()
        x = backend.to_device(ids, device)
        loss = float(crit(model(x[:, :-1]), x[:, 1:]))
        model.backward(crit.backward())
        out[device] = loss, [backend.asnumpy(p.grad) for p in model.parameters()]
    assert all(isinstance(p.data, cupy.ndarray) for p in model.parameters())
    assert out["gpu"][0] == pytest.approx(out["cpu"][0], rel=1e-5)
    for g_gpu, g_cpu in zip(out["gpu"][1], out["cpu"][1]):
        np.testing.assert_allclose(g_gpu, g_cpu, rtol=1e-3, atol=1e-5)


@needs_gpu
def test_gpt_dropout_step_cost_cupy():
    """nanoGPT's baby GPT step (batch 64, block 256) with dropout 0.2 costs at most 1.2x the step without."""
    import time

    import cupy

    from scratchnet.models.gpt import GPT
    from scratchnet.optim import AdamW

    def median_step(dropout):
        model = GPT(65, 256, n_layer=6, n_head=6, d_model=384, dropout=dropout, rng=0).to("gpu")
        opt, crit = AdamW(model.parameters(), lr=1e-3), nn.CrossEntropyLoss()
        ids = cupy.asarray(np.random.default_rng(0).integers(0, 65, (64, 257)))
        times = []
        for i in range(7):  # 2 warm-up steps, then 5 timed
            t0 = time.perf_counter()
            crit(model(ids[:, :-1]), ids[:, 1:])
            opt.zero_grad()
            model.backward(crit.backward())
            clip_grad_norm(model.parameters(), 1.0)
            opt.step()
            cupy.cuda.Device().synchronize()
            times.append(time.perf_counter() - t0)
        return float(np.median(times[2:]))

    with_dropout, without = median_step(0.2), median_step(0.0)
    assert with_dropout <= 1.2 * without, f"dropout step {with_dropout:.3f} s vs {without:.3f} s without"


@needs_gpu
def test_fit_budget_device_gpu_cupy_keeps_the_best_weights_on_the_gpu():
    import cupy

    from scratchnet.train import fit_budget
    data, val = blobs(np.random.default_rng(0)), blobs(np.random.default_rng(1), 40)
    model = mlp()
    hist = fit_budget(model, nn.CrossEntropyLoss(), SGD(model.parameters(), lr=0.1), data, val, epochs=3,
                      batch_size=20, max_minutes=60, rng=np.random.default_rng(3), disable=True, device="gpu")
    assert 1 <= hist.best_epoch <= 3 and all(isinstance(p.data, cupy.ndarray) for p in model.parameters())


@needs_gpu
def test_notebook_patterns_cupy_speech_classifier_and_pruning():
    """What notebooks 15/16 and 33 do around fit(device="gpu"): (x, lengths) batches with mean pooling; a
    pruning step on the CPU model while the optimizer's state is still on the GPU."""
    import cupy

    from scratchnet.models.pruning import LeNet300100, apply_masks, magnitude_masks
    from scratchnet.models.speech_classifier import SpeechClassifier, bucketed_batches
    r = np.random.default_rng(0)
    feats = [r.standard_normal((int(n), 6)).astype(np.float32) for n in r.integers(3, 9, 24)]
    lengths, labels = np.array([len(f) for f in feats]), r.integers(0, 3, 24)
    clf = SpeechClassifier(6, 8, 3, cell="lstm", pool="mean", rng=0)
    hist = fit(clf, nn.CrossEntropyLoss(), SGD(clf.parameters(), lr=0.1),
               lambda: bucketed_batches(feats, lengths, labels, batch_size=8, rng=r), epochs=2, batch_size=8,
               disable=True, device="gpu")
    assert all(math.isfinite(v) for v in hist.step_loss)

    x, y = r.standard_normal((64, 784)).astype(np.float32), r.integers(0, 10, 64)
    net = LeNet300100(rng=0)
    opt = SGD(net.parameters(), lr=0.05, momentum=0.9)
    fit(net, nn.CrossEntropyLoss(), opt, (x, y), epochs=1, batch_size=32, disable=True, device="gpu")
    net.to("cpu")
    apply_masks(net, magnitude_masks(net, 0.5), opt)  # the momentum buffers are CuPy arrays here
    assert any(isinstance(v, cupy.ndarray) for st in opt.state.values() for v in st.values())
    fit(net, nn.CrossEntropyLoss(), opt, (x, y), epochs=1, batch_size=32, disable=True, device="gpu")
    net.to("cpu")
    assert all(np.all(m.weight.data[m.mask == 0] == 0) for m in net.layers if hasattr(m, "mask"))
