"""RNN / LSTM / GRU modules: gradchecks of stacks (bidirectional, multi-layer, lengths, dropout,
initial and final states), stateful truncated BPTT, errors, and parity with PyTorch (packed sequences)."""
import numpy as np
import pytest

import scratchnet.functional as F
from scratchnet.gradcheck import assert_module_gradients
from scratchnet.nn import GRU, LSTM, RNN, hidden_jacobian_norms

CLASSES = [RNN, LSTM, GRU]


def make(cls, D=3, H=2, **kw):
    return cls(D, H, rng=0, **kw).astype(np.float64)


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("layers,bidi", [(1, False), (1, True), (2, False), (2, True)])
def test_module_gradcheck(rng, cls, layers, bidi):
    m = make(cls, num_layers=layers, bidirectional=bidi)
    x = rng.standard_normal((3, 4, 3))
    assert_module_gradients(m, [x], forward_kwargs={"lengths": np.array([4, 2, 1])})


@pytest.mark.parametrize("cls", CLASSES)
def test_module_gradcheck_with_initial_states_and_dropout(rng, cls):
    m = make(cls, num_layers=2, bidirectional=True, dropout=0.25)
    N, K = 2, 4
    x = rng.standard_normal((N, 3, 3))
    states = [rng.standard_normal((K, N, 2)) for _ in range(2 if cls is LSTM else 1)]
    assert_module_gradients(m, [x, *states], forward_kwargs={"lengths": np.array([3, 2])})


@pytest.mark.parametrize("cls", CLASSES)
def test_relu_rnn_and_state_only_upstream(rng, cls):
    m = make(cls, num_layers=2, **({"nonlinearity": "relu"} if cls is RNN else {}))
    x = rng.standard_normal((2, 5, 3))
    y, *finals = m(x)
    dx = m.backward((None, *[np.ones_like(f) for f in finals]))
    assert dx.shape == x.shape
    m.zero_grad()
    m(x)
    dx2 = m.backward((np.zeros_like(y), *[np.ones_like(f) for f in finals]))
    np.testing.assert_allclose(dx, dx2)


@pytest.mark.parametrize("cls", CLASSES)
def test_outputs_and_layout(cls):
    m = cls(3, 4, num_layers=2, bidirectional=True, rng=0)
    x = np.random.default_rng(0).standard_normal((5, 6, 3)).astype(np.float32)
    out = m(x, lengths=np.array([6, 5, 3, 1, 2]))
    assert out[0].shape == (5, 6, 8) and out[0].dtype == np.float32
    assert all(s.shape == (4, 5, 4) for s in out[1:])
    assert len(out) == (3 if cls is LSTM else 2)
    assert np.all(out[0][3, 1:] == 0)
    names = [n for n, _ in m.named_parameters()]
    assert names[0] == "weight_ih_l0" and "weight_hh_l1_reverse" in names
    bound = 1 / np.sqrt(4)
    assert all(np.abs(p.data).max() <= bound for p in m.parameters())


def test_stateful_truncated_bptt_carries_state(rng):
    m = make(LSTM, stateful=True)
    x = rng.standard_normal((2, 6, 3))
    y_full, h_full, c_full = make(LSTM)(x)
    y1, *_ = m(x[:, :3])
    m.backward((np.ones_like(y1), None, None))  # returns dx only: the carried state is detached
    y2, h2, c2 = m(x[:, 3:])
    np.testing.assert_allclose(np.concatenate([y1, y2], 1), y_full)
    np.testing.assert_allclose(h2, h_full)
    dx = m.backward((np.ones_like(y2), None, None))
    assert dx.shape == (2, 3, 3)
    m.reset_state()
    y3, *_ = m(x[:, 3:])
    assert not np.allclose(y3, y2)


def test_module_errors(rng):
    m = LSTM(3, 2)
    with pytest.raises(ValueError, match="LSTM: expected input"):
        m(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="LSTM: expected input"):
        m(np.zeros((2, 3, 4), np.float32))
    with pytest.raises(ValueError, match="initial state of shape"):
        m(np.zeros((2, 3, 3), np.float32), np.zeros((2, 2, 2), np.float32))
    with pytest.raises(ValueError, match="lengths must lie"):
        m(np.zeros((2, 3, 3), np.float32), lengths=np.array([4, 1]))
    with pytest.raises(RuntimeError, match="no cached forward"):
        m.backward((None, None, None))
    with pytest.raises(ValueError, match="nonlinearity"):
        RNN(3, 2, nonlinearity="gelu")


@pytest.mark.parametrize("jit", ["1", "0"])
@pytest.mark.parametrize("cls", CLASSES)
def test_backward_rejects_wrong_upstream_gradients(monkeypatch, cls, jit):
    """dy (N, T, K·H) and the final-state gradients (L·K, N, H) are checked as a whole: slicing them
    per layer and direction used to drop an extra column or layer without a word."""
    monkeypatch.setenv("SCRATCHNET_JIT", jit)
    m = cls(3, 2, num_layers=2, bidirectional=True, rng=0)
    x = np.random.default_rng(0).standard_normal((2, 4, 3)).astype(np.float32)
    name = cls.__name__
    slots = ("dy", "dh_n", "dc_n")[:3 if cls is LSTM else 2]
    for k, slot in enumerate(slots):
        outs = m(x)
        shape = outs[k].shape
        for error, g in [(ValueError, np.ones(shape[:-1] + (shape[-1] + 1,), np.float32)),
                         (ValueError, np.ones((shape[0] + 1,) + shape[1:], np.float32)),
                         (TypeError, np.ones(shape, np.float64))]:
            grads = [None] * len(outs)
            grads[k] = g
            with pytest.raises(error, match=f"{name}.backward: expected upstream gradient {slot}"):
                m.backward(tuple(grads))
        m.clear_caches()
    m(x)
    with pytest.raises(ValueError, match=f"{name}.backward: expected at most {len(slots)} upstream"):
        m.backward((None,) * (len(slots) + 1))


@pytest.mark.parametrize("cls", CLASSES)
def test_hidden_jacobian_norms_match_finite_differences(rng, cls):
    m = make(cls, D=2, H=3)
    x = rng.standard_normal((2, 5, 2))
    norms = hidden_jacobian_norms(m, x, ord="fro")
    assert norms.shape == (5,)
    np.testing.assert_allclose(norms[-1], np.sqrt(3))
    # ∂h_4/∂h_1 by central differences through the step function (LSTM: c_1 held fixed)
    step = {RNN: F.rnn_step, LSTM: F.lstm_step, GRU: F.gru_step}[cls]
    params = [p.data for p in m._cells[0]]
    nst = 2 if cls is LSTM else 1

    def run(n, states, t0):
        for t in range(t0, 5):
            out, _ = step(x[n:n + 1, t], *states, *params)
            states = out if isinstance(out, tuple) else (out,)
        return states

    fro = []
    for n in range(2):
        states = tuple(np.zeros((1, 3)) for _ in range(nst))
        for t in range(2):
            out, _ = step(x[n:n + 1, t], *states, *params)
            states = out if isinstance(out, tuple) else (out,)
        J = np.zeros((3, 3))
        for k in range(3):
            e = np.zeros((1, 3))
            e[0, k] = 1e-6
            hp = run(n, (states[0] + e,) + states[1:], 2)[0]
            hm = run(n, (states[0] - e,) + states[1:], 2)[0]
            J[:, k] = ((hp - hm) / 2e-6)[0]
        fro.append(np.linalg.norm(J))
    np.testing.assert_allclose(norms[1], np.mean(fro), rtol=1e-5)


# -- PyTorch parity -------------------------------------------------------------------------------
def torch_twin(m, torch):
    """The PyTorch module with the same weights (ours are (D_in, G·H): transposed)."""
    cls = {"RNN": torch.nn.RNN, "LSTM": torch.nn.LSTM, "GRU": torch.nn.GRU}[type(m).__name__]
    kw = {"nonlinearity": m.nonlinearity} if type(m).__name__ == "RNN" else {}
    t = cls(m.input_size, m.hidden_size, m.num_layers, batch_first=True, bidirectional=m.bidirectional,
            dtype=torch.float64, **kw)
    ours = dict(m.named_parameters())
    with torch.no_grad():
        for name, p in t.named_parameters():
            if name.startswith("weight"):
                p.copy_(torch.tensor(ours[name].data.T))
            elif type(m).__name__ == "GRU":
                p.copy_(torch.tensor(ours[name].data))
            elif name.startswith("bias_ih"):
                p.copy_(torch.tensor(ours[name.replace("bias_ih", "bias")].data))
            else:
                p.zero_()
    return t


def ours_grad_of(m, tname):
    ours = dict(m.named_parameters())
    if tname in ours:
        return ours[tname].grad.T if tname.startswith("weight") else ours[tname].grad
    return ours[tname.replace("bias_ih", "bias")].grad if "bias_ih" in tname else None


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("layers,bidi", [(1, False), (2, True), (3, True)])
@pytest.mark.parametrize("packed", [False, True])
def test_matches_torch(cls, layers, bidi, packed):
    torch = pytest.importorskip("torch")
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
    rng = np.random.default_rng(3)
    N, T, D, H = 4, 6, 3, 5
    m = make(cls, D=D, H=H, num_layers=layers, bidirectional=bidi)
    tm = torch_twin(m, torch)
    x = rng.standard_normal((N, T, D))
    lengths = np.array([6, 3, 5, 1]) if packed else None
    nst = 2 if cls is LSTM else 1
    K = 2 if bidi else 1
    h0 = [rng.standard_normal((layers * K, N, H)) for _ in range(nst)]
    y, *finals = m(x, *h0, lengths=lengths)
    tx = torch.tensor(x, requires_grad=True)
    th0 = [torch.tensor(h, requires_grad=True) for h in h0]
    hx = tuple(th0) if nst == 2 else th0[0]
    if packed:
        out, thn = tm(pack_padded_sequence(tx, torch.tensor(lengths), batch_first=True, enforce_sorted=False), hx)
        ty, _ = pad_packed_sequence(out, batch_first=True, total_length=T)
    else:
        ty, thn = tm(tx, hx)
    thn = thn if isinstance(thn, tuple) else (thn,)
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-9, atol=1e-12)
    for a, b in zip(finals, thn):
        np.testing.assert_allclose(a, b.detach().numpy(), rtol=1e-9, atol=1e-12)
    dy = rng.standard_normal(y.shape)
    dfin = [rng.standard_normal(f.shape) for f in finals]
    dx, *dh0 = m.backward((dy, *dfin))
    loss = (ty * torch.tensor(dy)).sum() + sum((b * torch.tensor(g)).sum() for b, g in zip(thn, dfin))
    loss.backward()
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-8, atol=1e-10)
    for a, b in zip(dh0, th0):
        np.testing.assert_allclose(a, b.grad.numpy(), rtol=1e-8, atol=1e-10)
    for name, p in tm.named_parameters():
        g = ours_grad_of(m, name)
        if g is not None:
            np.testing.assert_allclose(g, p.grad.numpy(), rtol=1e-8, atol=1e-10, err_msg=name)
