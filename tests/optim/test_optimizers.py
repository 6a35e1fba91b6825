"""Optimizers: hand-computed steps, PyTorch parity over 20 steps, state round trip, errors."""
import itertools

import numpy as np
import pytest

from scratchnet.nn import Parameter
from scratchnet.optim import SGD, Adam, AdamW, RMSprop

G1, G2 = [0.5, 1.0], [-1.0, 2.0]  # the two gradients of the hand-computed examples


def _two_steps(xp, make_opt, dtype=np.float64):
    """Run two steps on p = [1, −2] with gradients G1 then G2; return p after each step."""
    p = Parameter(xp.asarray([1.0, -2.0], dtype=dtype))
    opt = make_opt([p])
    out = []
    for g in (G1, G2):
        opt.zero_grad()
        p.grad += xp.asarray(g, dtype=dtype)
        opt.step()
        out.append(np.asarray(p.data.get() if hasattr(p.data, "get") else p.data).copy())
    return out


@pytest.mark.parametrize("name, make_opt, step1, step2", [
    # b1 = g1; p = p − 0.1 b1.   b2 = 0.9 b1 + g2 = [−0.55, 2.9]; p = [0.95 + 0.055, −2.1 − 0.29]
    ("sgd_momentum", lambda ps: SGD(ps, lr=0.1, momentum=0.9), [0.95, -2.1], [1.005, -2.39]),
    # d1 = g1 + 0.9 b1 = 1.9 g1; d2 = g2 + 0.9 [−0.55, 2.9] = [−1.495, 4.61]
    ("sgd_nesterov", lambda ps: SGD(ps, lr=0.1, momentum=0.9, nesterov=True), [0.905, -2.19], [1.0545, -2.651]),
    # d1 = g1 + 0.1 p = [0.6, 0.8]; d2 = g2 + 0.1 [0.94, −2.08] = [−0.906, 1.792]
    ("sgd_weight_decay", lambda ps: SGD(ps, lr=0.1, weight_decay=0.1), [0.94, -2.08], [1.0306, -2.2592]),
    # t=1: m̂ = g, v̂ = g², step = 0.1 g/(|g| + 1e-8).  t=2: m = [−0.055, 0.29], v = [0.00124975, 0.004999],
    # bias corrections 0.19 and 0.001999: p −= 0.1 · (m/0.19) / (√(v/0.001999) + 1e-8)
    ("adam", lambda ps: Adam(ps, lr=0.1), [0.900000002, -2.099999999], [0.9366103542405654, -2.1965182009718336]),
    # p ← 0.99 p first (ηλ = 0.01), then the same Adam step: [0.99 − 0.099999998, −1.98 − 0.099999999]
    ("adamw", lambda ps: AdamW(ps, lr=0.1, weight_decay=0.1), [0.890000002, -2.079999999], None),
    # s1 = 0.01 g² = [0.0025, 0.01], √s1 = [0.05, 0.1]: step 0.01 · g/(√s + 1e-8) ≈ 0.1 sign(g).
    # s2 = 0.99 s1 + 0.01 g2² = [0.012475, 0.0499]
    ("rmsprop", lambda ps: RMSprop(ps, lr=0.01), [0.900000019999996, -2.099999990000001],
     [0.9895323081911337, -2.189532282199154]),
])
def test_two_steps_by_hand(xp, name, make_opt, step1, step2):
    p1, p2 = _two_steps(xp, make_opt)
    np.testing.assert_allclose(p1, step1, rtol=0, atol=1e-12)
    if step2 is not None:
        np.testing.assert_allclose(p2, step2, rtol=0, atol=1e-12)


def test_rmsprop_centered_momentum_by_hand():
    # centred: a1 = 0.01 g1, r1 = √(0.01 g1² − 0.0001 g1²) = √0.0099 |g1|; momentum: b1 = g1 / r1
    p1, p2 = _two_steps(np, lambda ps: RMSprop(ps, lr=0.01, centered=True, momentum=0.5, eps=0.0))
    step = 0.01 / np.sqrt(0.0099)
    np.testing.assert_allclose(p1, [1.0 - step, -2.0 - step], rtol=1e-14)
    s2 = 0.99 * 0.01 * np.square(G1) + 0.01 * np.square(G2)
    a2 = 0.99 * 0.01 * np.array(G1) + 0.01 * np.array(G2)
    b2 = 0.5 * np.sign(G1) / np.sqrt(0.0099) + np.array(G2) / np.sqrt(s2 - a2 ** 2)
    np.testing.assert_allclose(p2, p1 - 0.01 * b2, rtol=1e-14)


@pytest.mark.parametrize("cls", [SGD, Adam, AdamW, RMSprop])
def test_float32_in_place_keeps_dtype_and_array(xp, cls):
    p = Parameter(xp.ones((3, 2), dtype=np.float32))
    before = p.data
    opt = cls([p], lr=0.1, **({"momentum": 0.9} if cls in (SGD, RMSprop) else {}))
    for _ in range(2):
        p.grad[...] = 0.5
        opt.step()
    assert p.data is before and p.data.dtype == np.float32
    for value in opt.state[id(p)].values():
        assert not hasattr(value, "dtype") or value.dtype == np.float32


# ---- PyTorch parity ---------------------------------------------------------------------------------

CONFIGS = (
    [("SGD", dict(lr=0.05, momentum=m, dampening=d, nesterov=n, weight_decay=w))
     for m, d, n, w in itertools.product([0.0, 0.9], [0.0, 0.3], [False, True], [0.0, 0.01])
     if not (n and (m == 0 or d != 0))]
    + [("Adam", dict(lr=0.01, betas=b, eps=1e-8, weight_decay=w, amsgrad=a))
       for b, w, a in itertools.product([(0.9, 0.999), (0.5, 0.9)], [0.0, 0.1], [False, True])]
    + [("AdamW", dict(lr=0.01, betas=(0.8, 0.99), weight_decay=w, amsgrad=a))
       for w, a in itertools.product([0.0, 0.01, 0.5], [False, True])]
    + [("RMSprop", dict(lr=0.01, alpha=al, eps=1e-6, weight_decay=w, momentum=m, centered=c))
       for al, w, m, c in itertools.product([0.99, 0.9], [0.0, 0.1], [0.0, 0.8], [False, True])]
)


@pytest.mark.parametrize("cls_name, opts", CONFIGS, ids=[f"{c}-{i}" for i, (c, _) in enumerate(CONFIGS)])
def test_matches_pytorch_20_steps(cls_name, opts):
    torch = pytest.importorskip("torch")
    import scratchnet.optim as optim
    rng = np.random.default_rng(1)
    shapes = [(4, 3), (5,), (2, 2, 2)]
    ours = [Parameter(rng.standard_normal(s)) for s in shapes]
    theirs = [torch.tensor(p.data.copy(), requires_grad=True) for p in ours]
    opt = getattr(optim, cls_name)(ours, **opts)
    topt = getattr(torch.optim, cls_name)(theirs, **opts)
    for step in range(20):
        grads = [rng.standard_normal(s) for s in shapes]
        opt.zero_grad()
        for p, tp, g in zip(ours, theirs, grads):
            p.grad += g
            tp.grad = torch.tensor(g)
        opt.step()
        topt.step()
        for p, tp in zip(ours, theirs):
            np.testing.assert_allclose(p.data, tp.detach().numpy(), rtol=1e-11, atol=1e-13,
                                       err_msg=f"{cls_name}{opts} differs from PyTorch at step {step + 1}")


def test_param_groups_match_pytorch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    w, b = Parameter(rng.standard_normal((3, 3))), Parameter(rng.standard_normal(3))
    tw, tb = (torch.tensor(p.data.copy(), requires_grad=True) for p in (w, b))
    opt = AdamW([{"params": [w]}, {"params": [b], "weight_decay": 0.0}], lr=0.1, weight_decay=0.2)
    topt = torch.optim.AdamW([{"params": [tw]}, {"params": [tb], "weight_decay": 0.0}], lr=0.1, weight_decay=0.2)
    for _ in range(5):
        for p, tp in ((w, tw), (b, tb)):
            g = rng.standard_normal(p.shape)
            p.grad[...] = g
            tp.grad = torch.tensor(g)
        opt.step()
        topt.step()
    np.testing.assert_allclose(w.data, tw.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(b.data, tb.detach().numpy(), rtol=1e-12)


# ---- bookkeeping ------------------------------------------------------------------------------------

def test_shared_parameter_updated_once():
    p = Parameter(np.array([1.0]))
    opt = SGD([p, p], lr=0.5)
    assert len(opt.params) == 1
    p.grad[...] = 1.0
    opt.step()
    assert p.data[0] == 0.5


def test_zero_grad_and_none_grad_skipped():
    p, q = Parameter(np.ones(2)), Parameter(np.ones(2))
    opt = SGD([p, q], lr=1.0)
    p.grad[...] = 3.0
    opt.zero_grad()
    assert not p.grad.any()
    q.grad = None  # a parameter without a gradient is left alone, as in PyTorch
    p.grad[...] = 1.0
    opt.step()
    np.testing.assert_array_equal(p.data, [0.0, 0.0])
    np.testing.assert_array_equal(q.data, [1.0, 1.0])


@pytest.mark.parametrize("make_opt", [
    lambda ps: SGD(ps, lr=0.1, momentum=0.9),
    lambda ps: Adam(ps, lr=0.1, amsgrad=True),
    lambda ps: AdamW(ps, lr=0.1),
    lambda ps: RMSprop(ps, lr=0.1, momentum=0.5, centered=True),
])
def test_state_dict_round_trip_through_npz(tmp_path, make_opt):
    rng = np.random.default_rng(3)
    start = [rng.standard_normal((3, 2)).astype(np.float32), rng.standard_normal(4).astype(np.float32)]
    grads = [[rng.standard_normal(a.shape).astype(np.float32) for a in start] for _ in range(6)]
    ps = [Parameter(a.copy()) for a in start]
    opt = make_opt(ps)

    def run(params, optimizer, gs):
        for g_list in gs:
            for p, g in zip(params, g_list):
                p.grad[...] = g
            optimizer.step()

    run(ps, opt, grads[:3])
    opt.lr = 0.05
    np.savez(tmp_path / "opt.npz", **opt.state_dict())
    qs = [Parameter(p.data.copy()) for p in ps]
    opt2 = make_opt(qs)
    with np.load(tmp_path / "opt.npz", allow_pickle=False) as z:
        opt2.load_state_dict({k: z[k] for k in z.files})
    assert opt2.lr == 0.05
    run(ps, opt, grads[3:])
    run(qs, opt2, grads[3:])
    for p, q in zip(ps, qs):
        np.testing.assert_array_equal(p.data, q.data)


def test_load_state_dict_errors():
    p = Parameter(np.zeros(3))
    opt = SGD([p], lr=0.1, momentum=0.9)
    with pytest.raises(KeyError, match="unexpected key"):
        opt.load_state_dict({"state.0.exp_avg": np.zeros(3)})
    with pytest.raises(ValueError, match="shape"):
        opt.load_state_dict({"state.0.momentum_buffer": np.zeros(4)})
    with pytest.raises(KeyError, match="parameter 3"):
        opt.load_state_dict({"state.3.momentum_buffer": np.zeros(3)})


def test_state_follows_astype():
    p = Parameter(np.ones(2, dtype=np.float32))
    opt = Adam([p], lr=0.1)
    p.grad[...] = 1.0
    opt.step()
    p.data, p.grad = p.data.astype(np.float64), p.grad.astype(np.float64)  # what Module.astype does
    opt.step()
    assert p.data.dtype == np.float64 and opt.state[id(p)]["exp_avg"].dtype == np.float64


# ---- errors -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("make, match", [
    (lambda ps: SGD(ps, lr=-0.1), "lr >= 0"),
    (lambda ps: Adam(ps, lr=-1e-3), "lr >= 0"),
    (lambda ps: Adam(ps, betas=(0.9, 1.0)), r"betas\[1\] in \[0.0, 1.0\)"),
    (lambda ps: Adam(ps, betas=(-0.1, 0.999)), r"betas\[0\]"),
    (lambda ps: Adam(ps, betas=(0.9,)), "pair"),
    (lambda ps: AdamW(ps, weight_decay=-1.0), "weight_decay"),
    (lambda ps: RMSprop(ps, alpha=-0.5), "alpha"),
    (lambda ps: Adam(ps, eps=float("nan")), "eps"),
    (lambda ps: SGD(ps, lr=0.1, nesterov=True), "nesterov"),
    (lambda ps: SGD(ps, lr=0.1, momentum=0.9, dampening=0.1, nesterov=True), "nesterov"),
    (lambda ps: SGD([], lr=0.1), "empty parameter list"),
    (lambda ps: Adam([{"params": ps, "lr": 0.1}]), "per-group 'lr'"),
    (lambda ps: Adam([{"params": ps, "momentum": 0.1}]), "unknown option"),
])
def test_clear_errors(make, match):
    with pytest.raises(ValueError, match=match):
        make([Parameter(np.zeros(2))])


def test_type_errors():
    p = Parameter(np.zeros(2))
    with pytest.raises(TypeError, match="Parameters"):
        SGD([np.zeros(2)], lr=0.1)
    with pytest.raises(TypeError, match="single Parameter"):
        SGD(p, lr=0.1)
    opt = SGD([p], lr=0.1)
    with pytest.raises(ValueError, match="lr >= 0"):
        opt.lr = -1.0
    p.grad = np.zeros(3)
    with pytest.raises(ValueError, match=r"SGD.step: gradient of shape \(3,\)"):
        opt.step()
