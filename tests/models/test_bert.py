"""BERT (chapter 22): the masked-LM loss pair, the encoder with its three embeddings, the tied MLM head,
the [CLS] classifier, the masking rule, the data helpers and PyTorch parity of the whole encoder stack."""
import numpy as np
import pytest

import scratchnet as sn
import scratchnet.functional as F
import scratchnet.nn as nn
from scratchnet.data.tinyshakespeare import parse_speeches
from scratchnet.gradcheck import assert_gradients, assert_module_gradients
from scratchnet.models.bert import BertEncoder, BertForMaskedLM, BertForSequenceClassification
from scratchnet.models.bert_data import BertVocab, block_split, mask_tokens, mlm_windows, speaker_examples, trim_padding
from scratchnet.testing import overfit_batch

KW = dict(n_layer=2, n_head=2, d_model=8, dim_feedforward=12)


def _inputs(rng, N=2, T=5, V=9):
    ids = rng.integers(0, V, (N, T))
    segments = (np.arange(T)[None] >= 2).astype(np.int64).repeat(N, 0)
    pad = np.zeros((N, T), bool)
    pad[0, 3:] = True
    return ids, segments, pad


# -- the masked-LM loss ---------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(2, 5, 7), (1, 3, 4), (3, 6, 11)])
def test_masked_lm_loss_gradcheck(rng, shape):
    logits, target = rng.standard_normal(shape), rng.integers(0, shape[-1], shape[:2])
    selected = rng.random(shape[:2]) < 0.5
    selected[0, 0] = True
    assert_gradients(F.masked_lm_loss, F.masked_lm_loss_backward, [logits, target, selected])


def test_masked_lm_loss_equals_cross_entropy_with_ignore_index(rng):
    logits, target = rng.standard_normal((3, 6, 7)), rng.integers(0, 7, (3, 6))
    selected = rng.random((3, 6)) < 0.3
    selected[1, 2] = True
    loss, cache = F.masked_lm_loss(logits, target, selected)
    ce, ce_cache = F.cross_entropy(logits, np.where(selected, target, -100))
    np.testing.assert_allclose(loss, ce, rtol=1e-12)
    np.testing.assert_allclose(F.masked_lm_loss_backward(0.7, cache), F.cross_entropy_backward(0.7, ce_cache),
                               atol=1e-15)


def test_masked_lm_loss_ignores_unmasked_positions(rng):
    logits, target = rng.standard_normal((2, 8, 5)), rng.integers(0, 5, (2, 8))
    selected = np.zeros((2, 8), bool)
    selected[0, [1, 4]] = selected[1, 6] = True
    loss, cache = F.masked_lm_loss(logits, target, selected)
    dlogits = F.masked_lm_loss_backward(1.0, cache)
    assert np.all(dlogits[~selected] == 0.0)  # exactly zero, not merely small
    assert np.all(np.abs(dlogits[selected]).sum(-1) > 0)
    changed = logits.copy()
    changed[~selected] = 1e3 * rng.standard_normal(changed[~selected].shape)  # anything at unmasked positions
    assert F.masked_lm_loss(changed, target, selected)[0] == loss
    none, cache = F.masked_lm_loss(logits, target, np.zeros((2, 8), bool))  # nothing selected: 0, no NaN
    assert none == 0.0 and np.all(F.masked_lm_loss_backward(1.0, cache) == 0.0)


def test_masked_lm_loss_errors(rng):
    with pytest.raises(ValueError, match="masked_lm_loss: expected logits"):
        F.masked_lm_loss(rng.standard_normal((2, 5)), np.zeros((2,), int), np.ones((2,), bool))
    with pytest.raises(ValueError, match="masked_lm_loss: selected targets"):
        F.masked_lm_loss(rng.standard_normal((1, 2, 3)), np.array([[0, 7]]), np.ones((1, 2), bool))
    _, cache = F.masked_lm_loss(rng.standard_normal((1, 2, 3)), np.array([[0, 1]]), np.ones((1, 2), bool))
    with pytest.raises(ValueError, match="masked_lm_loss_backward: expected upstream gradient"):
        F.masked_lm_loss_backward(np.ones(2), cache)


# -- the models ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cls,extra,dropout,with_options,n_layer", [
    (BertEncoder, (), 0.1, True, 2),  # segments, padding, dropout (masks rewound), two blocks
    (BertForMaskedLM, (), 0.1, True, 1),
    (BertForMaskedLM, (), 0.0, False, 1),  # defaults: one segment, no padding
    (BertForSequenceClassification, (3,), 0.1, True, 1),
])
def test_models_gradcheck_end_to_end(rng, cls, extra, dropout, with_options, n_layer):
    kw = dict(KW, n_layer=n_layer)
    model = cls(9, 6, *extra, dropout=dropout, rng=0, **kw).astype(np.float64)
    ids, segments, pad = _inputs(rng)
    assert_module_gradients(model, [ids, segments, pad] if with_options else [ids])


def test_mlm_gradient_through_the_model_is_zero_only_above_the_encoder(rng):
    model = BertForMaskedLM(9, 8, rng=0, **KW).astype(np.float64)
    ids = rng.integers(0, 6, (2, 8))
    inputs, selected = mask_tokens(ids, n_chars=6, mask_id=8, p=0.3, rng=1)
    selected[0, 2] = True
    loss, cache = F.masked_lm_loss(model(inputs), ids, selected)
    dlogits = F.masked_lm_loss_backward(1.0, cache)
    dg, _, _ = F.linear_backward(dlogits, model.pop())
    dh = model.transform.backward(model.act.backward(model.transform_norm.backward(dg)))
    assert np.all(dh[~selected] == 0.0)  # the head is position-wise
    dx = model.encoder.ln_f.backward(dh)
    for blk in reversed(model.encoder.blocks):
        dx = blk.backward(dx)
    assert np.abs(dx[~selected]).max() > 1e-6  # attention sends gradient to the unmasked context
    model.clear_caches()


def test_tied_decoder_shares_the_token_embedding(rng):
    model = BertForMaskedLM(9, 6, rng=0, **KW)
    names = [n for n, _ in model.named_parameters()]
    assert "encoder.tok_emb.weight" in names and not any("decoder.weight" in n for n in names)
    ids = rng.integers(0, 9, (2, 6))
    model.zero_grad()
    model.backward(np.ones_like(model(ids)))
    assert np.abs(model.encoder.tok_emb.weight.grad).sum() > 0


def test_sinusoid_position_init_is_learned_and_scaled():
    from scratchnet.nn.attention import sinusoidal_table
    enc = BertEncoder(9, 6, pos_init="sinusoid", rng=0, **KW)
    np.testing.assert_allclose(enc.pos_emb.weight.data, 0.05 * sinusoidal_table(6, 8), rtol=1e-6)
    assert any(p is enc.pos_emb.weight for p in enc.parameters())


def test_pretrained_encoder_transfers_to_the_classifier(rng):
    mlm = BertForMaskedLM(9, 6, rng=0, **KW)
    clf = BertForSequenceClassification(9, 6, 4, rng=1, **KW)
    clf.encoder.load_state_dict(mlm.encoder.state_dict())
    ids = rng.integers(0, 9, (3, 6))
    with sn.no_grad():
        np.testing.assert_array_equal(clf.encoder(ids), mlm.encoder(ids))


def test_padding_does_not_change_the_cls_output(rng):
    clf = BertForSequenceClassification(9, 8, 3, rng=0, **KW).astype(np.float64).eval()
    ids = rng.integers(0, 6, (2, 8))
    pad = np.zeros((2, 8), bool)
    pad[:, 5:] = True
    with sn.no_grad():
        full = clf(ids, key_padding_mask=pad)
        ids2 = ids.copy()
        ids2[:, 5:] = 7  # different padding ids: masked keys do not matter
        np.testing.assert_allclose(clf(ids2, key_padding_mask=pad), full, atol=1e-12)
        np.testing.assert_allclose(clf(*trim_padding(ids, pad)[:1], key_padding_mask=pad[:, :5]), full, atol=1e-12)


def test_mlm_overfits_one_batch(rng):
    model = BertForMaskedLM(10, 8, n_layer=1, n_head=2, d_model=16, rng=0)
    ids = rng.integers(0, 7, (4, 8))
    inputs, selected = mask_tokens(ids, n_chars=7, mask_id=9, p=0.4, rng=2)
    opt = sn.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(80):
        loss, cache = F.masked_lm_loss(model(inputs), ids, selected)
        opt.zero_grad()
        model.backward(F.masked_lm_loss_backward(1.0, cache))
        opt.step()
    assert float(loss) < 0.1


def test_classifier_overfits_one_batch(rng):
    model = BertForSequenceClassification(10, 8, 3, n_layer=1, n_head=2, d_model=16, rng=0)
    x, y = rng.integers(0, 7, (6, 8)), rng.integers(0, 3, 6)
    assert overfit_batch(model, nn.CrossEntropyLoss(), x, y, steps=60, lr=1e-2) < 0.05


def test_errors(rng):
    enc = BertEncoder(9, 6, rng=0, **KW)
    with pytest.raises(ValueError, match=r"BertEncoder: expected ids \(N, T ≤ 6\)"):
        enc(rng.integers(0, 9, (2, 7)))
    with pytest.raises(ValueError, match="BertEncoder: expected ids"):
        enc(rng.integers(0, 9, (5,)))
    with pytest.raises(ValueError, match="BertEncoder: segments shape"):
        enc(rng.integers(0, 9, (2, 4)), np.zeros((2, 5), int))
    with pytest.raises(ValueError, match="BertEncoder: pos_init must be"):
        BertEncoder(9, 6, pos_init="rope", rng=0, **KW)
    with pytest.raises(RuntimeError, match="no cached forward"):
        BertForMaskedLM(9, 6, rng=0, **KW).backward(np.zeros((1, 2, 9), np.float32))


# -- PyTorch parity of the whole encoder (embeddings + stack + final LayerNorm) ---------------------------
def _load_layer(torch, t, m):
    with torch.no_grad():
        a = m.self_attn
        t.self_attn.in_proj_weight.copy_(torch.tensor(np.concatenate([a.q_proj.weight.data.T, a.k_proj.weight.data.T,
                                                                       a.v_proj.weight.data.T])))
        t.self_attn.in_proj_bias.copy_(torch.tensor(np.concatenate([a.q_proj.bias.data, a.k_proj.bias.data,
                                                                     a.v_proj.bias.data])))
        t.self_attn.out_proj.weight.copy_(torch.tensor(a.out_proj.weight.data.T))
        t.self_attn.out_proj.bias.copy_(torch.tensor(a.out_proj.bias.data))
        for name in ("linear1", "linear2"):
            getattr(t, name).weight.copy_(torch.tensor(getattr(m.ff, name).weight.data.T))
            getattr(t, name).bias.copy_(torch.tensor(getattr(m.ff, name).bias.data))
        for name in ("norm1", "norm2"):
            getattr(t, name).weight.copy_(torch.tensor(getattr(m, name).weight.data))
            getattr(t, name).bias.copy_(torch.tensor(getattr(m, name).bias.data))


def test_encoder_parity_with_torch(rng):
    torch = pytest.importorskip("torch")
    enc = BertEncoder(9, 6, n_layer=3, n_head=2, d_model=8, dim_feedforward=16, rng=0).astype(np.float64)
    for p in enc.parameters():  # non-trivial norms and biases
        p.data[...] = p.data + 0.1 * rng.standard_normal(p.shape)
    layer = torch.nn.TransformerEncoderLayer(8, 2, 16, 0.0, "gelu", batch_first=True, norm_first=True)
    stack = torch.nn.TransformerEncoder(layer, 3, norm=torch.nn.LayerNorm(8), enable_nested_tensor=False).double()
    for t, m in zip(stack.layers, enc.blocks):
        _load_layer(torch, t, m)
    tok, seg, pos = (torch.tensor(e.weight.data, requires_grad=True) for e in (enc.tok_emb, enc.seg_emb, enc.pos_emb))
    emb_norm = torch.nn.LayerNorm(8).double()
    with torch.no_grad():
        emb_norm.weight.copy_(torch.tensor(enc.emb_norm.weight.data))
        emb_norm.bias.copy_(torch.tensor(enc.emb_norm.bias.data))
        stack.norm.weight.copy_(torch.tensor(enc.ln_f.weight.data))
        stack.norm.bias.copy_(torch.tensor(enc.ln_f.bias.data))
    ids, segments, pad = _inputs(rng, N=2, T=6)
    h = enc(ids, segments, pad)
    ti, ts = torch.tensor(ids), torch.tensor(segments)
    th = stack(emb_norm(tok[ti] + seg[ts] + pos[:6]), src_key_padding_mask=torch.tensor(pad))
    keep = ~pad  # PyTorch's fast path may zero padded rows; compare the real positions
    np.testing.assert_allclose(h[keep], th.detach().numpy()[keep], atol=1e-10)
    dh = rng.standard_normal(h.shape) * keep[..., None]
    enc.zero_grad()
    enc.backward(dh)
    th.backward(torch.tensor(dh))
    for mine, theirs in [(enc.tok_emb, tok), (enc.seg_emb, seg), (enc.pos_emb, pos)]:
        np.testing.assert_allclose(mine.weight.grad, theirs.grad.numpy(), atol=1e-10)
    np.testing.assert_allclose(enc.blocks[0].ff.linear1.weight.grad, stack.layers[0].linear1.weight.grad.numpy().T,
                               atol=1e-10)


# -- masking rule and data helpers ---------------------------------------------------------------------------
def test_mask_tokens_rule(rng):
    ids = rng.integers(0, 13, (300, 400))  # ids ≥ 10 play the special tokens
    inputs, selected = mask_tokens(ids, n_chars=10, mask_id=12, rng=3)
    assert not selected[ids >= 10].any()  # [CLS]/[PAD]/[MASK] are never selected
    np.testing.assert_array_equal(inputs[~selected], ids[~selected])
    frac = selected.sum() / (ids < 10).sum()
    assert abs(frac - 0.15) < 0.005
    s_in, s_id = inputs[selected], ids[selected]
    assert abs((s_in == 12).mean() - 0.8) < 0.01
    assert abs((s_in == s_id).mean() - (0.1 + 0.1 / 10)) < 0.01  # kept, or replaced by itself
    assert (s_in[s_in != 12] < 10).all()  # random replacements are characters
    again = mask_tokens(ids, n_chars=10, mask_id=12, rng=3)
    np.testing.assert_array_equal(again[0], inputs)  # explicit randomness: same seed, same corruption


def test_parse_speeches_and_examples():
    text = "A:\nhello there\nsecond line\n\nB:\nbye\n\n\nA:\nagain\n"
    sp = parse_speeches(text)
    assert [(s, b) for s, b, _ in sp] == [("A", "hello there\nsecond line"), ("B", "bye"), ("A", "again")]
    assert all(text[o:].startswith(s + ":") for s, _, o in sp)
    vocab = BertVocab(text)
    ids, labels, pad, keep = speaker_examples(sp, ["A"], vocab, 8)
    assert ids.shape == (2, 8) and list(labels) == [0, 0] and list(keep) == [0, 2]
    assert ids[0, 0] == vocab.cls_id and vocab.decode(ids[0, 1:]) == "hello t"  # the name is not in the input
    assert pad[1].tolist() == [False] * 6 + [True] * 2 and vocab.vocab_size == vocab.n_chars + 3


def test_block_split_and_windows():
    tr, va, te = block_split(100, 20)
    assert (tr | va | te).all() and not (tr & va).any() and tr.sum() == 80 and va.sum() == te.sum() == 10
    assert np.flatnonzero(va).tolist() == list(range(40, 45)) + list(range(90, 95))  # contiguous blocks
    w, s = mlm_windows(np.arange(50), 6, 3, 99, rng=0)
    assert w.shape == (3, 6) and (w[:, 0] == 99).all() and (w[:, 1] == s).all() and (s >= 1).all()


def test_speakers_occur_in_every_split(dataset_dir):
    dataset_dir("tinyshakespeare")
    from collections import Counter

    from scratchnet.data import load_tinyshakespeare
    sp = parse_speeches(load_tinyshakespeare())
    top = [n for n, _ in Counter(s for s, _, _ in sp).most_common(10)]
    for m in block_split(len(sp), 400):
        present = Counter(sp[i][0] for i in np.flatnonzero(m))
        assert all(present[n] > 0 for n in top)
