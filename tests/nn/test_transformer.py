"""MultiHeadAttention, positional encodings and transformer layers: gradchecks, errors, caching,
and parity with PyTorch's nn.MultiheadAttention / nn.TransformerEncoderLayer / DecoderLayer."""
import numpy as np
import pytest

import scratchnet as sn
import scratchnet.nn as nn
from scratchnet.gradcheck import assert_module_gradients


def f64(m):
    return m.astype(np.float64)


@pytest.mark.parametrize("heads,causal", [(1, False), (2, True), (4, False)])
def test_mha_self_attention_gradcheck(rng, heads, causal):
    mha = f64(nn.MultiHeadAttention(8, heads, rng=0))
    assert_module_gradients(mha, [rng.standard_normal((2, 4, 8))], forward_kwargs=dict(causal=causal))


def test_mha_cross_attention_gradcheck_padding_and_dropout(rng):
    mha = f64(nn.MultiHeadAttention(8, 2, kdim=5, vdim=3, dropout=0.3, rng=0))
    pad = np.zeros((2, 6), bool)
    pad[0, 4:] = True
    ins = [rng.standard_normal((2, 3, 8)), rng.standard_normal((2, 6, 5)), rng.standard_normal((2, 6, 3))]
    assert_module_gradients(mha, ins, forward_kwargs=dict(key_padding_mask=pad))


def test_mha_memory_mode_gradcheck(rng):
    mha = f64(nn.MultiHeadAttention(8, 2, rng=1))
    attn_mask = np.triu(np.ones((3, 6), bool), 4)  # PyTorch convention: True = not allowed
    assert_module_gradients(mha, [rng.standard_normal((2, 3, 8)), rng.standard_normal((2, 6, 8))],
                            forward_kwargs=dict(attn_mask=attn_mask))


def test_padded_keys_get_zero_gradient(rng):
    mha = f64(nn.MultiHeadAttention(8, 2, rng=0))
    pad = np.zeros((2, 5), bool)
    pad[1, 3:] = True
    x, mem = rng.standard_normal((2, 4, 8)), rng.standard_normal((2, 5, 8))
    mha(x, mem, key_padding_mask=pad)
    _, dmem = mha.backward(rng.standard_normal((2, 4, 8)))
    assert np.all(dmem[1, 3:] == 0.0) and np.any(dmem[0, 3:] != 0.0)


@pytest.mark.parametrize("layer", ["encoder", "decoder"])
@pytest.mark.parametrize("norm_first", [False, True])
def test_transformer_layers_gradcheck(rng, layer, norm_first):
    x = rng.standard_normal((2, 4, 8))
    if layer == "encoder":
        m = f64(nn.TransformerEncoderLayer(8, 2, 12, 0.2, "gelu", norm_first=norm_first, rng=0))
        pad = np.array([[False] * 4, [False, False, False, True]])
        assert_module_gradients(m, [x], forward_kwargs=dict(src_key_padding_mask=pad))
        assert_module_gradients(m, [x], forward_kwargs=dict(causal=True))
    else:
        m = f64(nn.TransformerDecoderLayer(8, 2, 12, 0.2, "relu", norm_first=norm_first, rng=0))
        assert_module_gradients(m, [x, rng.standard_normal((2, 5, 8))], forward_kwargs=dict(causal=True))


def test_positional_encodings(rng):
    sin = nn.SinusoidalPositionalEncoding(10, 6)
    x = rng.standard_normal((2, 4, 6)).astype(np.float32)
    y = sin(x, offset=3)
    np.testing.assert_allclose(y - x, np.broadcast_to(nn.sinusoidal_table(10, 6)[3:7], x.shape), atol=1e-6)
    assert y.dtype == np.float32 and sin.backward(y) is y
    learned = f64(nn.LearnedPositionalEncoding(10, 6, rng=0))
    assert_module_gradients(learned, [rng.standard_normal((2, 4, 6))])
    with pytest.raises(ValueError, match="longer than the positional table"):
        sin(rng.standard_normal((1, 11, 6)))
    with pytest.raises(ValueError, match="longer than the positional table"):
        learned(rng.standard_normal((1, 8, 6)), offset=3)


def test_errors(rng):
    with pytest.raises(ValueError, match="not divisible"):
        nn.MultiHeadAttention(10, 3)
    with pytest.raises(ValueError, match="not divisible"):
        nn.TransformerEncoderLayer(10, 4)
    mha = nn.MultiHeadAttention(8, 2)
    x = rng.standard_normal((2, 4, 8)).astype(np.float32)
    with pytest.raises(ValueError, match="key_padding_mask"):
        mha(x, key_padding_mask=np.zeros((2, 5), bool))
    with pytest.raises(ValueError, match="attn_mask"):
        mha(x, attn_mask=np.zeros((4, 5), bool))
    with pytest.raises(ValueError, match=r"expected query \(N, Tq, 8\)"):
        mha(x[..., :6])
    with pytest.raises(ValueError, match="activation"):
        nn.TransformerEncoderLayer(8, 2, activation="tanh")
    with pytest.raises(RuntimeError, match="no cached forward"):
        nn.MultiHeadAttention(8, 2).backward(x)


def test_kv_cache_matches_full_causal_pass(rng):
    mha = f64(nn.MultiHeadAttention(8, 2, rng=0)).eval()
    x = rng.standard_normal((2, 5, 8))
    with sn.no_grad():
        full = mha(x, causal=True)
        steps = [mha(x[:, :2], causal=True, use_cache=True)] + [mha(x[:, t:t + 1], causal=True, use_cache=True)
                                                                 for t in range(2, 5)]
    mha.reset_cache()
    np.testing.assert_allclose(np.concatenate(steps, axis=1), full, atol=1e-12)
    with pytest.raises(RuntimeError, match="no_grad"):
        mha(x, causal=True, use_cache=True)


# -- PyTorch parity ------------------------------------------------------------------------------------
def _load_mha(torch, tm, m):
    E = m.embed_dim
    with torch.no_grad():
        if m.kdim == E and m.vdim == E:
            tm.in_proj_weight.copy_(torch.tensor(np.concatenate([m.q_proj.weight.data.T, m.k_proj.weight.data.T,
                                                                 m.v_proj.weight.data.T])))
        else:
            tm.q_proj_weight.copy_(torch.tensor(m.q_proj.weight.data.T))
            tm.k_proj_weight.copy_(torch.tensor(m.k_proj.weight.data.T))
            tm.v_proj_weight.copy_(torch.tensor(m.v_proj.weight.data.T))
        biases = [m.q_proj.bias.data, m.k_proj.bias.data, m.v_proj.bias.data]
        tm.in_proj_bias.copy_(torch.tensor(np.concatenate(biases)))
        tm.out_proj.weight.copy_(torch.tensor(m.out_proj.weight.data.T))
        tm.out_proj.bias.copy_(torch.tensor(m.out_proj.bias.data))


def _randomise(m, rng):
    for p in m.parameters():  # non-trivial biases and norms, so the parity test sees every term
        p.data[...] = p.data + 0.1 * rng.standard_normal(p.shape)


@pytest.mark.parametrize("kdim", [None, 5])
def test_mha_parity_with_torch(rng, kdim):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    m = f64(nn.MultiHeadAttention(8, 2, kdim=kdim, vdim=kdim, rng=0))
    _randomise(m, rng)
    tm = torch.nn.MultiheadAttention(8, 2, batch_first=True, kdim=kdim, vdim=kdim).double()
    _load_mha(torch, tm, m)
    q, kv = rng.standard_normal((2, 3, 8)), rng.standard_normal((2, 6, kdim or 8))
    pad = np.zeros((2, 6), bool)
    pad[1, 4:] = True
    am = np.triu(np.ones((3, 6), bool), 4)
    y, w = m(q, kv, kv, key_padding_mask=pad, attn_mask=am, need_weights=True)
    tq, tkv = torch.tensor(q, requires_grad=True), torch.tensor(kv, requires_grad=True)
    ty, tw = tm(tq, tkv, tkv, key_padding_mask=torch.tensor(pad), attn_mask=torch.tensor(am), need_weights=True)
    np.testing.assert_allclose(y, ty.detach().numpy(), atol=1e-10)
    np.testing.assert_allclose(w, tw.detach().numpy(), atol=1e-10)
    dy = rng.standard_normal(y.shape)
    dq, dk, dv = m.backward(dy)
    ty.backward(torch.tensor(dy))
    np.testing.assert_allclose(dq, tq.grad.numpy(), atol=1e-10)
    np.testing.assert_allclose(dk + dv, tkv.grad.numpy(), atol=1e-10)
    np.testing.assert_allclose(m.out_proj.weight.grad, tm.out_proj.weight.grad.numpy().T, atol=1e-10)


def _load_block(torch, t, m):
    _load_mha(torch, t.self_attn, m.self_attn)
    if hasattr(m, "cross_attn"):
        _load_mha(torch, t.multihead_attn, m.cross_attn)
    with torch.no_grad():
        for name in ("linear1", "linear2"):
            getattr(t, name).weight.copy_(torch.tensor(getattr(m.ff, name).weight.data.T))
            getattr(t, name).bias.copy_(torch.tensor(getattr(m.ff, name).bias.data))
        for name in ("norm1", "norm2", "norm3"):
            if hasattr(m, name):
                getattr(t, name).weight.copy_(torch.tensor(getattr(m, name).weight.data))
                getattr(t, name).bias.copy_(torch.tensor(getattr(m, name).bias.data))


@pytest.mark.parametrize("norm_first", [False, True])
def test_encoder_layer_parity_with_torch(rng, norm_first):
    torch = pytest.importorskip("torch")
    m = f64(nn.TransformerEncoderLayer(8, 2, 16, 0.0, "gelu", norm_first=norm_first, rng=0))
    _randomise(m, rng)
    t = torch.nn.TransformerEncoderLayer(8, 2, 16, 0.0, "gelu", batch_first=True, norm_first=norm_first).double()
    _load_block(torch, t, m)
    x = rng.standard_normal((2, 5, 8))
    pad = np.zeros((2, 5), bool)
    pad[0, 3:] = True
    y = m(x, src_key_padding_mask=pad)
    tx = torch.tensor(x, requires_grad=True)
    ty = t(tx, src_key_padding_mask=torch.tensor(pad))
    np.testing.assert_allclose(y, ty.detach().numpy(), atol=1e-10)
    dy = rng.standard_normal(y.shape)
    dx = m.backward(dy)
    ty.backward(torch.tensor(dy))
    np.testing.assert_allclose(dx, tx.grad.numpy(), atol=1e-10)
    np.testing.assert_allclose(m.ff.linear1.weight.grad, t.linear1.weight.grad.numpy().T, atol=1e-10)
    np.testing.assert_allclose(m.norm1.weight.grad, t.norm1.weight.grad.numpy(), atol=1e-10)


@pytest.mark.parametrize("norm_first", [False, True])
def test_decoder_layer_parity_with_torch(rng, norm_first):
    torch = pytest.importorskip("torch")
    m = f64(nn.TransformerDecoderLayer(8, 2, 16, 0.0, "relu", norm_first=norm_first, rng=0))
    _randomise(m, rng)
    t = torch.nn.TransformerDecoderLayer(8, 2, 16, 0.0, "relu", batch_first=True, norm_first=norm_first).double()
    _load_block(torch, t, m)
    x, mem = rng.standard_normal((2, 4, 8)), rng.standard_normal((2, 6, 8))
    y = m(x, mem, causal=True)
    tx, tmem = torch.tensor(x, requires_grad=True), torch.tensor(mem, requires_grad=True)
    ty = t(tx, tmem, tgt_mask=torch.triu(torch.ones(4, 4, dtype=torch.bool), 1))
    np.testing.assert_allclose(y, ty.detach().numpy(), atol=1e-10)
    dy = rng.standard_normal(y.shape)
    dx, dmem = m.backward(dy)
    ty.backward(torch.tensor(dy))
    np.testing.assert_allclose(dx, tx.grad.numpy(), atol=1e-10)
    np.testing.assert_allclose(dmem, tmem.grad.numpy(), atol=1e-10)


def test_last_attention_weights_are_the_per_head_weights(rng):
    m = nn.MultiHeadAttention(8, 2, rng=0)
    with pytest.raises(RuntimeError, match="no cached forward pass"):
        m.last_attention_weights()
    x = rng.standard_normal((3, 5, 8)).astype(np.float32)
    _, avg = m(x, need_weights=True, causal=True)
    w = m.last_attention_weights()
    assert w.shape == (3, 2, 5, 5)
    np.testing.assert_allclose(w.mean(axis=1), avg, rtol=1e-6)
    np.testing.assert_allclose(w.sum(-1), 1.0, rtol=1e-5)
    assert np.all(np.triu(w[0, 0], 1) == 0)  # causal: no weight on the future
