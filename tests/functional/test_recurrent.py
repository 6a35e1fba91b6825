"""Recurrent pairs: gradchecks of optional inputs and of the final states alone, exact zeros past a
sequence's length, dtype, errors, and PyTorch parity. The step and sequence gradchecks (shapes,
lengths, h0=None, relu) are the registered ``recurrent.*`` cases, run by test_gradcheck_catalogue.py."""
import numpy as np
import pytest

import scratchnet.functional as F
from scratchnet.backend import asnumpy
from scratchnet.gradcheck import assert_gradients

G = {"rnn": 1, "lstm": 4, "gru": 3}


def make_inputs(kind, rng, N=3, T=5, D=4, H=3, *, h0=True, bias=True, scale=0.6):
    """Positional inputs of F.<kind> in float64."""
    x = rng.standard_normal((N, T, D))
    states = [rng.standard_normal((N, H)) if h0 else None for _ in range(2 if kind == "lstm" else 1)]
    wx = rng.standard_normal((D, G[kind] * H)) * scale
    wh = rng.standard_normal((H, G[kind] * H)) * scale
    biases = [rng.standard_normal(G[kind] * H) * scale if bias else None for _ in range(2 if kind == "gru" else 1)]
    return [x, *states, wx, wh, *biases]


def pair(kind, step=False):
    name = f"{kind}_step" if step else kind
    return getattr(F, name), getattr(F, f"{name}_backward")


def float_positions(inputs):
    return [i for i, a in enumerate(inputs) if a is not None]


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("h0,bias", [(False, True), (True, False), (False, False)])
def test_sequence_gradcheck_optional_inputs(rng, kind, h0, bias):
    inputs = make_inputs(kind, rng, h0=h0, bias=bias)
    fwd, bwd = pair(kind)
    wrt = float_positions(inputs)
    # backward keeps one slot per positional input, with None where the input was None
    _, cache = fwd(*inputs)
    k = 3 if kind == "lstm" else 2  # outputs: y and the final state(s)
    grads = bwd((None,) * k, cache)
    assert len(grads) == len(inputs)
    assert all((g is None) == (a is None) for g, a in zip(grads, inputs))
    wrapped_bwd = lambda g, c: tuple(d for d in bwd(g, c) if d is not None)  # noqa: E731
    assert_gradients(fwd, wrapped_bwd, inputs, wrt=wrt)


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_state_gradients_only(rng, kind):
    """Only dh_n (and dc_n) upstream, dy None: the classification use of the final state."""
    inputs = make_inputs(kind, rng)
    fwd, bwd = pair(kind)
    (y, *finals), cache = fwd(*inputs, lengths=np.array([5, 2, 4]))
    up = [rng.standard_normal(f.shape) for f in finals]
    g1 = bwd((None, *up), cache)
    g2 = bwd((np.zeros_like(y), *up), cache)
    for a, b in zip(g1, g2):
        np.testing.assert_allclose(a, b)
    # the gradcheck of that objective: L = Σ ⟨u, h_n⟩
    nfin = len(finals)
    assert_gradients(lambda *a, **k: (lambda o, c: (o[1:], c))(*fwd(*a, **k)),
                     lambda g, c: bwd((None, *(g if nfin > 1 else (g,))), c), inputs, lengths=np.array([5, 2, 4]))


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_sequence_equals_steps(rng, kind):
    """The sequence op is the step op applied T times (same outputs and same gradients)."""
    inputs = make_inputs(kind, rng)
    x, rest = inputs[0], inputs[1:]
    nstates = 2 if kind == "lstm" else 1
    states, params = tuple(rest[:nstates]), rest[nstates:]
    (y, *finals), cache = pair(kind)[0](*inputs)
    step, step_bwd = pair(kind, step=True)
    caches, ys = [], []
    for t in range(x.shape[1]):
        out, c = step(x[:, t], *states, *params)
        states = out if isinstance(out, tuple) else (out,)
        ys.append(states[0])
        caches.append(c)
    np.testing.assert_allclose(np.stack(ys, 1), y, rtol=1e-12)
    for a, b in zip(states, finals):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    dy = rng.standard_normal(y.shape)
    ref = pair(kind)[1]((dy,), cache)
    dstate, dparams, dxs = (None,) * nstates, None, []
    for t in reversed(range(x.shape[1])):
        up = tuple(dy[:, t] + (0 if s is None else s) if k == 0 else s for k, s in enumerate(dstate))
        g = step_bwd(up if nstates > 1 else up[0], caches[t])
        dxs.append(g[0])
        dstate = g[1:1 + nstates]
        dp = g[1 + nstates:]
        dparams = dp if dparams is None else [a + b for a, b in zip(dparams, dp)]
    np.testing.assert_allclose(np.stack(dxs[::-1], 1), ref[0], rtol=1e-10, atol=1e-12)
    for a, b in zip(dstate + tuple(dparams), ref[1:]):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_past_length_is_exactly_zero(rng, kind):
    inputs = make_inputs(kind, rng, N=3, T=6)
    lens = np.array([6, 2, 0])
    fwd, bwd = pair(kind)
    (y, *finals), cache = fwd(*inputs, lengths=lens)
    grads = bwd((rng.standard_normal(y.shape), *[rng.standard_normal(f.shape) for f in finals]), cache)
    dx = grads[0]
    for n, L in enumerate(lens):
        assert np.all(y[n, L:] == 0.0)
        assert np.all(dx[n, L:] == 0.0)
    # the final state is the state at each sequence's own length: running sequence 1 alone,
    # truncated to its length, gives the same final state
    nstates = len(finals)
    short = [inputs[0][1:2, :2]] + [s if s is None else s[1:2] for s in inputs[1:1 + nstates]] + inputs[1 + nstates:]
    (_, *finals2), _ = fwd(*short)
    for f, f2 in zip(finals, finals2):
        np.testing.assert_allclose(f[1], f2[0], rtol=1e-12)
    # an empty sequence keeps its initial state
    np.testing.assert_array_equal(finals[0][2], inputs[1][2])


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_float32_keeps_dtype(kind, xp):
    rng = np.random.default_rng(0)
    inputs = [xp.asarray(a.astype(np.float32)) for a in make_inputs(kind, rng)]
    fwd, bwd = pair(kind)
    outs, cache = fwd(*inputs, lengths=np.array([5, 3, 1]))
    assert all(o.dtype == xp.float32 for o in outs)
    grads = bwd(tuple(xp.ones_like(o) for o in outs), cache)
    assert all(g.dtype == xp.float32 for g in grads)
    ref, _ = fwd(*[asnumpy(a).astype(np.float64) for a in inputs], lengths=np.array([5, 3, 1]))
    np.testing.assert_allclose(asnumpy(outs[0]), ref[0], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_clear_errors(rng, kind):
    inputs = make_inputs(kind, rng)
    fwd, _ = pair(kind)
    with pytest.raises(ValueError, match=f"{kind}: lengths must lie in"):
        fwd(*inputs, lengths=np.array([6, 1, 1]))
    with pytest.raises(ValueError, match="lengths of shape"):
        fwd(*inputs, lengths=np.array([5, 1]))
    with pytest.raises(TypeError, match="integer"):
        fwd(*inputs, lengths=np.array([5.0, 1.0, 1.0]))
    with pytest.raises(ValueError, match=f"{kind}: expected x to be 3-D"):
        fwd(inputs[0][0], *inputs[1:])
    bad = list(inputs)
    k = 3 if kind == "lstm" else 2  # wx's position
    bad[k] = bad[k][:-1]
    with pytest.raises(ValueError, match=f"{kind}: expected wx of shape"):
        fwd(*bad)
    bad = list(inputs)
    bad[k + 1] = bad[k + 1][:, :-1]
    with pytest.raises(ValueError, match=f"{kind}: expected wh of shape"):
        fwd(*bad)
    bad = list(inputs)
    bad[1] = bad[1][:, :-1]
    with pytest.raises(ValueError, match="of shape \\(N, H\\)"):
        fwd(*bad)
    bad = list(inputs)
    bad[0] = bad[0].astype(np.float32)
    with pytest.raises(TypeError, match="share one dtype"):
        fwd(*bad)


# -- upstream gradients are checked against the forward's outputs, before any kernel runs -------------
UPSTREAM = {"rnn_step": ("dh_new",), "lstm_step": ("dh_new", "dc_new"), "gru_step": ("dh_new",),
            "rnn": ("dy", "dh_n"), "lstm": ("dy", "dh_n", "dc_n"), "gru": ("dy", "dh_n")}


def _run_forward(name, dtype, lengths=None):
    """Outputs (as a tuple) and cache of F.<name> on small inputs of ``dtype``."""
    kind, step = name.removesuffix("_step"), name.endswith("_step")
    inputs = [a.astype(dtype) for a in make_inputs(kind, np.random.default_rng(0))]
    if step:
        inputs[0] = inputs[0][:, 0]
    out, cache = pair(kind, step)[0](*inputs, **({} if step else {"lengths": lengths}))
    return (out if isinstance(out, tuple) else (out,)), cache


@pytest.mark.parametrize("jit", ["1", "0"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", list(UPSTREAM))
def test_backward_rejects_wrong_upstream_gradients(monkeypatch, jit, dtype, name):
    """Every upstream gradient of every recurrent backward is checked (shape and dtype), whichever
    route runs: a dh_n of the wrong width used to reach the fused LSTM walk and corrupt the heap."""
    monkeypatch.setenv("SCRATCHNET_JIT", jit)
    lengths = None if name.endswith("_step") else np.array([5, 2, 4])
    outs, cache = _run_forward(name, dtype, lengths=lengths)
    bwd = getattr(F, f"{name}_backward")
    other = np.float64 if dtype == np.float32 else np.float32
    pack = (lambda g: tuple(g)) if len(outs) > 1 else (lambda g: g[0])
    for k, slot in enumerate(UPSTREAM[name]):
        shape = outs[k].shape
        wrong_shapes = [shape[:-1] + (shape[-1] + 1,), (shape[0] + 1,) + shape[1:], shape[1:]]
        wrong = [(ValueError, np.ones(s, dtype=dtype)) for s in wrong_shapes]
        wrong.append((TypeError, np.ones(shape, dtype=other)))
        for error, g in wrong:
            for rest in ("given", "None"):  # the other upstream gradients given, or None (zeros)
                grads = [np.ones_like(o) if rest == "given" else None for o in outs]
                grads[k] = g
                with pytest.raises(error, match=f"{name}_backward: expected upstream gradient {slot}"):
                    bwd(pack(grads), cache)
    # the cache survives the refused calls: a correct backward still matches a fresh forward's
    ref = bwd(pack([np.ones_like(o) for o in outs]), _run_forward(name, dtype, lengths=lengths)[1])
    got = bwd(pack([np.ones_like(o) for o in outs]), cache)
    for a, b in zip(got, ref):
        if a is not None:
            np.testing.assert_array_equal(a, b)


def test_lstm_backward_wrong_width_dh_n_is_a_clear_error():
    """The reproducer: dh_n (N, H + 3) on the fused float32 walk."""
    outs, cache = _run_forward("lstm", np.float32)
    N, H = outs[1].shape
    with pytest.raises(ValueError, match=r"lstm_backward: expected upstream gradient dh_n of shape \(3, 3\)"):
        F.lstm_backward((None, np.ones((N, H + 3), np.float32), None), cache)


def test_gru_backward_wrong_dy_or_dh_n_is_a_clear_error():
    outs, cache = _run_forward("gru", np.float32)
    (N, T, H) = outs[0].shape
    with pytest.raises(ValueError, match="gru_backward: expected upstream gradient dy"):
        F.gru_backward((np.ones((N, T - 1, H), np.float32), None), cache)
    with pytest.raises(ValueError, match="gru_backward: expected upstream gradient dh_n"):
        F.gru_backward((None, np.ones((N, 2 * H), np.float32)), cache)


def test_backward_rejects_too_many_upstream_gradients():
    outs, cache = _run_forward("gru", np.float64)
    with pytest.raises(ValueError, match="gru_backward: expected at most 2 upstream gradients"):
        F.gru_backward((None, None, np.ones_like(outs[1])), cache)


def test_reverse_padded_backward_checks_dy():
    x = np.zeros((3, 4, 2))
    for lengths in (None, np.array([4, 2, 0])):
        _, cache = F.reverse_padded(x, lengths)
        assert F.reverse_padded_backward(np.zeros((3, 4, 5)), cache).shape == (3, 4, 5)  # any trailing shape
        with pytest.raises(ValueError, match="reverse_padded_backward: expected upstream gradient dy"):
            F.reverse_padded_backward(np.zeros((3, 5, 2)), cache)


# -- float16 takes the vectorised reference (Numba has no float16 arithmetic) ----------------------
@pytest.mark.parametrize("name", list(UPSTREAM))
def test_float16_forward_and_backward_keep_dtype(monkeypatch, name):
    monkeypatch.setenv("SCRATCHNET_JIT", "1")
    lengths = None if name.endswith("_step") else np.array([5, 3, 1])
    outs, cache = _run_forward(name, np.float16, lengths=lengths)
    assert all(o.dtype == np.float16 for o in outs)
    bwd = getattr(F, f"{name}_backward")
    grads = bwd(tuple(np.ones_like(o) for o in outs) if len(outs) > 1 else np.ones_like(outs[0]), cache)
    assert all(g.dtype == np.float16 and np.all(np.isfinite(g)) for g in grads if g is not None)
    ref_outs, ref_cache = _run_forward(name, np.float64, lengths=lengths)
    ref = bwd(tuple(np.ones_like(o) for o in ref_outs) if len(outs) > 1 else np.ones_like(ref_outs[0]), ref_cache)
    for a, r in zip(outs + tuple(grads), ref_outs + tuple(ref)):
        if a is not None:
            np.testing.assert_allclose(a.astype(np.float64), r, rtol=2e-2, atol=2e-2 * max(1.0, np.abs(r).max()))


# -- the routes: the fused kernels run for float32 NumPy data, the reference otherwise -------------
KERNELS = ("lstm_cell_float32_kernel", "lstm_backward_step_kernel", "gru_cell_float32_kernel",
           "gru_backward_step_kernel")


@pytest.mark.parametrize("dtype,jit,expected", [
    (np.float32, "1", set(KERNELS)),
    (np.float64, "1", {"lstm_backward_step_kernel", "gru_backward_step_kernel"}),
    (np.float16, "1", set()),
    (np.float32, "0", set()),
])
def test_routes_take_the_fused_kernels_for_numpy_float32(monkeypatch, dtype, jit, expected):
    import scratchnet.kernels.recurrent_loops as loops
    monkeypatch.setenv("SCRATCHNET_JIT", jit)
    calls = set()
    for name in KERNELS:
        monkeypatch.setattr(loops, name, lambda *a, _f=getattr(loops, name), _n=name: (calls.add(_n), _f(*a))[1])
    for kind in ("lstm", "gru"):
        outs, cache = _run_forward(kind, dtype, lengths=np.array([5, 2, 4]))
        getattr(F, f"{kind}_backward")(tuple(np.ones_like(o) for o in outs), cache)
    assert calls == expected
    calls.clear()
    for kind in ("lstm_step", "gru_step"):
        _run_forward(kind, dtype)
    assert calls == expected & {"lstm_cell_float32_kernel", "gru_cell_float32_kernel"}


def test_recurrent_family_has_no_import_cycle():
    """lstm.py and gru.py take their helpers from _seq.py; recurrent.py (the Elman RNN) imports neither."""
    import ast
    import pathlib

    import scratchnet.functional as pkg
    root = pathlib.Path(pkg.__file__).parent

    def local_imports(name):
        tree = ast.parse((root / f"{name}.py").read_text(encoding="utf-8"))
        return {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level == 1}

    assert not local_imports("recurrent") & {"lstm", "gru"}
    assert "recurrent" not in local_imports("lstm") | local_imports("gru")
    assert not local_imports("_seq") & {"recurrent", "lstm", "gru"}


def test_rnn_unknown_nonlinearity(rng):
    with pytest.raises(ValueError, match="nonlinearity"):
        F.rnn(*make_inputs("rnn", rng), nonlinearity="sigmoid")


def test_reverse_padded(rng):
    x = np.arange(12.0).reshape(3, 4)
    y, cache = F.reverse_padded(x, np.array([4, 2, 0]))
    np.testing.assert_array_equal(y, [[3, 2, 1, 0], [5, 4, 6, 7], [8, 9, 10, 11]])
    np.testing.assert_array_equal(F.reverse_padded_backward(y, cache), x)
    y, cache = F.reverse_padded(x[..., None])
    np.testing.assert_array_equal(y[..., 0], x[:, ::-1])


# -- PyTorch parity of the functional pairs (weights transposed into torch's layout) ----------------
def _torch_ref(kind, inputs, torch):
    x, rest = inputs[0], inputs[1:]
    t = lambda a: torch.tensor(a, requires_grad=True)  # noqa: E731
    tx = t(x)
    if kind == "lstm":
        h0, c0, wx, wh, b = map(t, rest)
        cell = torch.nn.LSTM(x.shape[2], wh.shape[0], batch_first=True, dtype=torch.float64)
        params = dict(weight_ih_l0=wx.T, weight_hh_l0=wh.T, bias_ih_l0=b, bias_hh_l0=torch.zeros_like(b))
        hx, leaves = (h0[None], c0[None]), [tx, h0, c0, wx, wh, b]
    elif kind == "gru":
        h0, wx, wh, bx, bh = map(t, rest)
        cell = torch.nn.GRU(x.shape[2], wh.shape[0], batch_first=True, dtype=torch.float64)
        params = dict(weight_ih_l0=wx.T, weight_hh_l0=wh.T, bias_ih_l0=bx, bias_hh_l0=bh)
        hx, leaves = h0[None], [tx, h0, wx, wh, bx, bh]
    else:
        h0, wx, wh, b = map(t, rest)
        cell = torch.nn.RNN(x.shape[2], wh.shape[0], batch_first=True, dtype=torch.float64)
        params = dict(weight_ih_l0=wx.T, weight_hh_l0=wh.T, bias_ih_l0=b, bias_hh_l0=torch.zeros_like(b))
        hx, leaves = h0[None], [tx, h0, wx, wh, b]
    out = torch.func.functional_call(cell, params, (tx, hx))
    return out, leaves


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_functional_matches_torch(rng, kind):
    torch = pytest.importorskip("torch")
    inputs = make_inputs(kind, rng, N=2, T=4, D=3, H=5)
    (y, *finals), cache = pair(kind)[0](*inputs)
    out, leaves = _torch_ref(kind, inputs, torch)
    ty, thx = out
    tfinals = thx if isinstance(thx, tuple) else (thx,)
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-10, atol=1e-12)
    for a, b in zip(finals, tfinals):
        np.testing.assert_allclose(a, b[0].detach().numpy(), rtol=1e-10, atol=1e-12)
    dy = rng.standard_normal(y.shape)
    dfin = [rng.standard_normal(f.shape) for f in finals]
    grads = pair(kind)[1]((dy, *dfin), cache)
    loss = (ty * torch.tensor(dy)).sum() + sum((b[0] * torch.tensor(g)).sum() for b, g in zip(tfinals, dfin))
    loss.backward()
    for ours, leaf in zip(grads, leaves):
        np.testing.assert_allclose(ours, leaf.grad.numpy(), rtol=1e-9, atol=1e-11)


# -- the cell helpers shared by the step and sequence pairs, checked on their own ----------------
def test_gru_cell_helper_gradcheck(rng):
    from scratchnet.functional.gru import _gru_cell, _gru_cell_backward
    N, H = 3, 4

    def fwd(xw, hw, h):
        gates, h_new = _gru_cell(xw, hw, h)
        return h_new, (h, gates, hw[:, 2 * H:])

    def bwd(dh_new, cache):
        h, gates, hn = cache
        dxw, dhw = np.empty((N, 3 * H)), np.empty((N, 3 * H))
        dh = _gru_cell_backward(dh_new, h, gates, hn, H, dxw, dhw)
        return dxw, dhw, dh

    inputs = [rng.standard_normal((N, 3 * H)), rng.standard_normal((N, 3 * H)), rng.standard_normal((N, H))]
    assert_gradients(fwd, bwd, inputs)


def test_lstm_cell_helper_gradcheck(rng):
    from scratchnet.functional.lstm import _lstm_cell, _lstm_cell_backward
    N, H = 3, 4

    def fwd(z, c):
        gates, c_new, tanh_c, h_new = _lstm_cell(z, c)
        return (h_new, c_new), (gates, tanh_c, c)

    def bwd(grads, cache):
        dh_new, dc_new = grads
        gates, tanh_c, c = cache
        dz = np.empty((N, 4 * H))
        dc_prev = _lstm_cell_backward(dh_new, dc_new, gates, tanh_c, c, H, dz)
        return dz, dc_prev

    assert_gradients(fwd, bwd, [rng.standard_normal((N, 4 * H)), rng.standard_normal((N, H))])


def test_lstm_cell_reads_as_the_gate_equations(rng):
    """The reference cell is the chapter's eq-lstm written plainly (σ = 1/(1 + e^{−z}))."""
    from scratchnet.functional.lstm import _lstm_cell
    N, H = 2, 3
    z, c = rng.standard_normal((N, 4 * H)) * 3, rng.standard_normal((N, H))
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    i, f, g, o = sig(z[:, :H]), sig(z[:, H:2 * H]), np.tanh(z[:, 2 * H:3 * H]), sig(z[:, 3 * H:])
    gates, c_new, tanh_c, h_new = _lstm_cell(z, c)
    np.testing.assert_allclose(gates, np.concatenate([i, f, g, o], 1), rtol=1e-14)
    np.testing.assert_allclose(c_new, f * c + i * g, rtol=1e-14)
    np.testing.assert_allclose(tanh_c, np.tanh(f * c + i * g), rtol=1e-14)
    np.testing.assert_allclose(h_new, o * np.tanh(f * c + i * g), rtol=1e-14)


def test_tanh_float32_is_accurate_to_float32():
    from scratchnet.kernels.activation_loops import tanh_float32
    x = np.concatenate([np.linspace(-12, 12, 4001), [0.0, 1e-6, -1e-6, 40.0, -40.0]]).astype(np.float32)
    got = np.array([tanh_float32(v) for v in x], dtype=np.float64)
    assert np.abs(got - np.tanh(x.astype(np.float64))).max() < 5e-7
    assert tanh_float32(np.float32(0.0)) == 0.0 and abs(tanh_float32(np.float32(1e-6)) - 1e-6) < 1e-12


@pytest.mark.parametrize("lengths", [None, [7, 3, 5]])
def test_lstm_float32_cell_kernel_matches_reference(rng, monkeypatch, lengths):
    N, T, D, H = 3, 7, 5, 6
    x = rng.standard_normal((N, T, D)).astype(np.float32)
    h0, c0 = (rng.standard_normal((N, H)).astype(np.float32) for _ in range(2))
    wx, wh = (0.5 * rng.standard_normal(s).astype(np.float32) for s in ((D, 4 * H), (H, 4 * H)))
    b = rng.standard_normal(4 * H).astype(np.float32)
    dy = rng.standard_normal((N, T, H)).astype(np.float32)
    dh, dc = (rng.standard_normal((N, H)).astype(np.float32) for _ in range(2))
    lens = None if lengths is None else np.array(lengths)
    out = {}
    for flag in ("1", "0"):
        monkeypatch.setenv("SCRATCHNET_JIT", flag)
        fwd, cache = F.lstm(x, h0, c0, wx, wh, b, lengths=lens)
        (hs, cs), step_cache = F.lstm_step(x[:, 0], h0, c0, wx, wh, b)
        out[flag] = (*fwd, *F.lstm_backward((dy, dh, dc), cache), hs, cs, *F.lstm_step_backward((dh, dc), step_cache))
    for a, r in zip(out["1"], out["0"]):
        assert a.dtype == np.float32
        np.testing.assert_allclose(a, r, rtol=2e-5, atol=2e-6)


@pytest.mark.parametrize("lengths", [None, [7, 3, 5]])
def test_gru_float32_kernels_match_reference(rng, monkeypatch, lengths):
    N, T, D, H = 3, 7, 5, 6
    x = rng.standard_normal((N, T, D)).astype(np.float32)
    h0 = rng.standard_normal((N, H)).astype(np.float32)
    wx, wh = (0.5 * rng.standard_normal(s).astype(np.float32) for s in ((D, 3 * H), (H, 3 * H)))
    bx, bh = (rng.standard_normal(3 * H).astype(np.float32) for _ in range(2))
    dy, dh = rng.standard_normal((N, T, H)).astype(np.float32), rng.standard_normal((N, H)).astype(np.float32)
    lens = None if lengths is None else np.array(lengths)
    out = {}
    for flag in ("1", "0"):
        monkeypatch.setenv("SCRATCHNET_JIT", flag)
        fwd, cache = F.gru(x, h0, wx, wh, bx, bh, lengths=lens)
        h1, step_cache = F.gru_step(x[:, 0], h0, wx, wh, bx, bh)
        out[flag] = (*fwd, *F.gru_backward((dy, dh), cache), h1, *F.gru_step_backward(dh, step_cache))
    for a, r in zip(out["1"], out["0"]):
        assert a.dtype == np.float32
        np.testing.assert_allclose(a, r, rtol=2e-5, atol=2e-6)
