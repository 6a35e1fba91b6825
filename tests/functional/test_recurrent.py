"""Recurrent pairs: gradchecks of every step and sequence pair (lengths, initial states, relu,
state gradients), exact zeros past a sequence's length, dtype, errors, and PyTorch parity."""
import numpy as np
import pytest

import scratchnet.functional as F
from scratchnet.backend import asnumpy
from scratchnet.gradcheck import assert_gradients, run_cases

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


def test_registered_recurrent_cases_pass():
    reports = list(run_cases("recurrent."))
    assert len(reports) >= 12
    bad = [str(rep) for _, rep in reports if not rep.ok]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("shape", [(3, 5, 4, 3), (1, 1, 2, 2), (2, 7, 1, 4)])
@pytest.mark.parametrize("lengths", [False, True])
def test_sequence_gradcheck(rng, kind, shape, lengths):
    N, T, D, H = shape
    inputs = make_inputs(kind, rng, N, T, D, H)
    lens = rng.integers(0, T + 1, size=N) if lengths else None
    if lengths:
        lens[0] = T  # one full sequence, the others shorter (possibly empty)
    fwd, bwd = pair(kind)
    assert_gradients(fwd, bwd, inputs, lengths=lens)


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


def test_rnn_relu_gradcheck(rng):
    inputs = make_inputs("rnn", rng, T=6)
    inputs[1] = np.abs(inputs[1]) + 0.1
    assert_gradients(F.rnn, F.rnn_backward, inputs, nonlinearity="relu", lengths=np.array([6, 3, 1]))


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
def test_step_gradcheck(rng, kind):
    inputs = make_inputs(kind, rng)
    inputs[0] = inputs[0][:, 0]
    fwd, bwd = pair(kind, step=True)
    assert_gradients(fwd, bwd, inputs)
    if kind == "rnn":
        assert_gradients(fwd, bwd, inputs, nonlinearity="relu")


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
        up = tuple((dy[:, t] if k == 0 else 0) + (0 if s is None else s) for k, s in enumerate(dstate))
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
        gates = np.empty((N, 3 * H))
        return _gru_cell(xw, hw, h, H, gates), (h, gates, hw[:, 2 * H:])

    def bwd(dh_new, cache):
        h, gates, hn = cache
        dxw, dhw = np.empty((N, 3 * H)), np.empty((N, 3 * H))
        dh = _gru_cell_backward(dh_new, h, gates, hn, H, dxw, dhw)
        return dxw, dhw, dh

    inputs = [rng.standard_normal((N, 3 * H)), rng.standard_normal((N, 3 * H)), rng.standard_normal((N, H))]
    assert_gradients(fwd, bwd, inputs)


def test_lstm_cell_helper_gradcheck(rng):
    from scratchnet.functional.lstm import _gate_affine, _lstm_cell, _lstm_cell_backward
    N, H = 3, 4

    def fwd(z, c):
        affine = _gate_affine(H, z.dtype, np)
        gates, c_new, tanh_c, h_new = np.empty((N, 4 * H)), np.empty((N, H)), np.empty((N, H)), np.empty((N, H))
        _lstm_cell(z * affine[0], c, H, affine, gates, c_new, tanh_c, h_new)
        return (h_new, c_new), (gates, tanh_c, c)

    def bwd(grads, cache):
        dh_new, dc_new = grads
        gates, tanh_c, c = cache
        dz = np.empty((N, 4 * H))
        dc_prev = _lstm_cell_backward(dh_new, dc_new, gates, tanh_c, c, H, dz)
        return dz, dc_prev

    assert_gradients(fwd, bwd, [rng.standard_normal((N, 4 * H)), rng.standard_normal((N, H))])


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
    dy, dh, dc = rng.standard_normal((N, T, H)).astype(np.float32), *(rng.standard_normal((N, H)).astype(np.float32) for _ in range(2))
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
