"""The character GPT (tied weights, k/v cache) and the attention seq2seq toy."""
import numpy as np
import pytest

import scratchnet.nn as nn
from scratchnet.gradcheck import assert_module_gradients
from scratchnet.models.gpt import GPT, CharTokenizer, get_batch, load_text
from scratchnet.models.seq2seq import AttentionSeq2Seq, reversal_batch
from scratchnet.testing import overfit_batch


def tiny_gpt(tie=True, dropout=0.0, seed=0, n_layer=2):
    return GPT(7, 6, n_layer=n_layer, n_head=2, d_model=8, dim_feedforward=12, dropout=dropout, tie_weights=tie,
               rng=seed).astype(np.float64)


@pytest.mark.parametrize("tie,dropout,n_layer", [(True, 0.1, 2), (False, 0.0, 1)])
def test_tiny_gpt_gradcheck_end_to_end(rng, tie, dropout, n_layer):
    assert_module_gradients(tiny_gpt(tie, dropout, n_layer=n_layer), [rng.integers(0, 7, (2, 5))])


def test_tied_weight_gradient_accumulates_from_both_uses(rng):
    model = tiny_gpt(tie=True)
    ids = rng.integers(0, 7, (2, 5))
    dlogits = rng.standard_normal((2, 5, 7))
    model.zero_grad()
    model(ids)
    model.backward(dlogits)
    total = model.tok_emb.weight.grad.copy()
    # the head's share alone: ln_f output h, dW_head = (Σ h_tᵀ dlogits_t)ᵀ
    h = model.ln_f(model.blocks[1](model.blocks[0](model.pos_emb(model.tok_emb(ids)), causal=True), causal=True))
    head_share = (h.reshape(-1, 8).T @ dlogits.reshape(-1, 7)).T  # (V, D)
    model.clear_caches()
    assert np.abs(total - head_share).max() > 1e-6  # the lookup added its part
    assert len([p for p in model.parameters() if p is model.tok_emb.weight]) == 1


def test_generation_with_cache_equals_without(rng):
    model = tiny_gpt()
    prompt = rng.integers(0, 7, (2, 3))
    a = model.generate(prompt, 9, rng=np.random.default_rng(5), use_cache=True)  # passes block_size=6
    b = model.generate(prompt, 9, rng=np.random.default_rng(5), use_cache=False)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (2, 12) and np.array_equal(a[:, :3], prompt)
    assert model.blocks[0].self_attn.kv_cache is None


def test_cached_logits_equal_full_pass(rng):
    model = tiny_gpt().eval()
    ids = rng.integers(0, 7, (2, 6))
    import scratchnet as sn
    with sn.no_grad():
        full = model(ids)
        parts = [model(ids[:, :3], use_cache=True)] + [model(ids[:, t:t + 1], use_cache=True) for t in range(3, 6)]
        with pytest.raises(ValueError, match="block_size"):
            model(ids[:, :1], use_cache=True)
    model.reset_cache()
    np.testing.assert_allclose(np.concatenate(parts, axis=1), full, atol=1e-12)


def test_gpt_overfits_one_batch(rng):
    model = GPT(7, 8, n_layer=1, n_head=2, d_model=16, rng=0)
    x = rng.integers(0, 7, (4, 8))
    y = np.roll(x, -1, axis=1)
    assert overfit_batch(model, nn.CrossEntropyLoss(), x, y, steps=80, lr=1e-2) < 0.1


def test_too_long_input_errors(rng):
    with pytest.raises(ValueError, match="block_size"):
        tiny_gpt()(rng.integers(0, 7, (1, 7)))


def test_char_tools(rng):
    tok = CharTokenizer("hello world")
    assert tok.decode(tok.encode("hold")) == "hold" and tok.vocab_size == 8
    x, y = get_batch(np.arange(100), 5, 3, rng)
    np.testing.assert_array_equal(y, x + 1)


def test_tinyshakespeare_text(dataset_dir):
    dataset_dir("tinyshakespeare")
    text = load_text()
    assert len(text) == 1115394 and CharTokenizer(text).vocab_size == 65


@pytest.mark.parametrize("attention", ["additive", "dot", "general"])
def test_seq2seq_gradcheck(attention):
    model = AttentionSeq2Seq(10, 5, d_emb=4, d_hidden=6, d_attn=3, attention=attention, rng=0).astype(np.float64)
    x, _ = reversal_batch(3, 5, rng=0)
    assert_module_gradients(model, [x])


def test_seq2seq_overfits_one_batch():
    model = AttentionSeq2Seq(10, 5, d_emb=16, d_hidden=32, d_attn=16, rng=0)
    x, y = reversal_batch(8, 5, rng=1)
    assert overfit_batch(model, nn.CrossEntropyLoss(), x, y, steps=100, lr=1e-2) < 0.05
    assert model.last_weights.shape == (8, 5, 5)
