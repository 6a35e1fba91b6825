"""The Vision Transformer: gradchecks, parity with a PyTorch twin (strided conv + nn.TransformerEncoder),
overfitting one batch, the budgeted fit, errors."""
import numpy as np
import pytest

import scratchnet.nn as nn
from scratchnet.gradcheck import assert_module_gradients
from scratchnet.models.vit import PatchEmbedding, ViT, sincos_2d_table
from scratchnet.optim import AdamW, WallClockCosine
from scratchnet.testing import overfit_batch
from scratchnet.train import fit_budget


def tiny_vit(pool="cls", dropout=0.0, depth=2, patch=4, image=8):
    return ViT(5, image_size=image, patch_size=patch, d_model=8, depth=depth, num_heads=2, mlp_ratio=1.5,
               dropout=dropout, pool=pool, rng=0).astype(np.float64)


@pytest.mark.parametrize("pool,dropout,depth,patch", [("cls", 0.1, 2, 4), ("mean", 0.0, 1, 2), ("cls", 0.0, 1, 8)])
def test_vit_gradcheck_end_to_end(rng, pool, dropout, depth, patch):
    assert_module_gradients(tiny_vit(pool, dropout, depth, patch), [rng.standard_normal((2, 1, 8, 8))])


def test_patch_embedding_gradcheck(rng):
    m = PatchEmbedding(6, 3, 2, 5, rng=0).astype(np.float64)
    assert_module_gradients(m, [rng.standard_normal((2, 2, 6, 6))])


def _load_torch_vit(torch, m):
    """A PyTorch ViT with m's weights: Conv2d(p, stride p) patches, [CLS], positions, nn.TransformerEncoder."""
    D, p = m.cfg["d_model"], m.cfg["patch_size"]
    conv = torch.nn.Conv2d(m.cfg["in_channels"], D, p, stride=p).double()
    layer = torch.nn.TransformerEncoderLayer(D, m.cfg["num_heads"], int(m.cfg["mlp_ratio"] * D), 0.0, "gelu",
                                             batch_first=True, norm_first=True)
    enc = torch.nn.TransformerEncoder(layer, m.cfg["depth"], enable_nested_tensor=False).double()
    norm, head = torch.nn.LayerNorm(D).double(), torch.nn.Linear(D, m.cfg["num_classes"]).double()
    t = lambda a: torch.tensor(np.ascontiguousarray(a))  # noqa: E731
    with torch.no_grad():
        conv.weight.copy_(t(m.patch_embed.proj.weight.data.T.reshape(conv.weight.shape)))
        conv.bias.copy_(t(m.patch_embed.proj.bias.data))
        for tl, blk in zip(enc.layers, m.blocks):
            tl.self_attn.in_proj_weight.copy_(t(np.concatenate([blk.self_attn.q_proj.weight.data.T,
                                                                blk.self_attn.k_proj.weight.data.T,
                                                                blk.self_attn.v_proj.weight.data.T])))
            tl.self_attn.in_proj_bias.copy_(t(np.concatenate([blk.self_attn.q_proj.bias.data,
                                                              blk.self_attn.k_proj.bias.data,
                                                              blk.self_attn.v_proj.bias.data])))
            tl.self_attn.out_proj.weight.copy_(t(blk.self_attn.out_proj.weight.data.T))
            tl.self_attn.out_proj.bias.copy_(t(blk.self_attn.out_proj.bias.data))
            for name in ("linear1", "linear2"):
                getattr(tl, name).weight.copy_(t(getattr(blk.ff, name).weight.data.T))
                getattr(tl, name).bias.copy_(t(getattr(blk.ff, name).bias.data))
            for name in ("norm1", "norm2"):
                getattr(tl, name).weight.copy_(t(getattr(blk, name).weight.data))
                getattr(tl, name).bias.copy_(t(getattr(blk, name).bias.data))
        norm.weight.copy_(t(m.norm.weight.data))
        norm.bias.copy_(t(m.norm.bias.data))
        head.weight.copy_(t(m.head.weight.data.T))
        head.bias.copy_(t(m.head.bias.data))
    cls, pos = t(m.cls_token.data).requires_grad_(), t(m.pos_emb.weight.data).requires_grad_()

    def forward(x):
        tokens = conv(x).flatten(2).transpose(1, 2)  # (N, L, D)
        tokens = torch.cat([cls.expand(x.shape[0], 1, -1), tokens], dim=1) + pos
        return head(norm(enc(tokens))[:, 0])

    return forward, conv, enc, cls, pos


def test_vit_parity_with_torch(rng):
    torch = pytest.importorskip("torch")
    m = ViT(4, image_size=8, patch_size=4, d_model=8, depth=2, num_heads=2, mlp_ratio=2, rng=0).astype(np.float64)
    for p in m.parameters():  # non-trivial biases and norms, so every term shows
        p.data[...] = p.data + 0.1 * rng.standard_normal(p.shape)
    forward, conv, enc, cls, pos = _load_torch_vit(torch, m)
    x = rng.standard_normal((3, 1, 8, 8))
    y = m(x)
    tx = torch.tensor(x, requires_grad=True)
    ty = forward(tx)
    np.testing.assert_allclose(y, ty.detach().numpy(), atol=1e-10)
    dy = rng.standard_normal(y.shape)
    m.zero_grad()
    dx = m.backward(dy)
    ty.backward(torch.tensor(dy))
    np.testing.assert_allclose(dx, tx.grad.numpy(), atol=1e-10)
    np.testing.assert_allclose(m.cls_token.grad, cls.grad.numpy(), atol=1e-10)
    np.testing.assert_allclose(m.pos_emb.weight.grad, pos.grad.numpy(), atol=1e-10)
    np.testing.assert_allclose(m.patch_embed.proj.weight.grad.T.reshape(conv.weight.shape), conv.weight.grad.numpy(),
                               atol=1e-10)
    np.testing.assert_allclose(m.blocks[0].ff.linear1.weight.grad, enc.layers[0].linear1.weight.grad.numpy().T,
                               atol=1e-10)


def test_vit_overfits_one_batch(rng):
    model = ViT(4, image_size=8, patch_size=4, d_model=16, depth=1, num_heads=2, rng=0)
    x = rng.standard_normal((8, 1, 8, 8)).astype(np.float32)
    y = rng.integers(0, 4, 8)
    assert overfit_batch(model, nn.CrossEntropyLoss(), x, y, steps=60, lr=1e-2) < 0.05


def test_shapes_parameters_and_attention_maps(rng):
    m = ViT(10, image_size=28, patch_size=7, d_model=16, depth=2, num_heads=4, rng=0)
    x = rng.standard_normal((2, 1, 28, 28)).astype(np.float32)
    assert m(x).shape == (2, 10) and m(x).dtype == np.float32
    m.clear_caches()
    maps = m.attention_maps(x)
    assert maps.shape == (2, 2, 4, 17, 17)
    np.testing.assert_allclose(maps.sum(-1), 1.0, rtol=1e-5)
    assert not m.blocks[0].self_attn._caches
    D, L = 16, 16
    per_block = 4 * (D * D + D) + 2 * D * 2 * D + 2 * D + D + 2 * 2 * D
    assert m.num_parameters() == (49 * D + D) + D + (L + 1) * D + 2 * per_block + 2 * D + (D * 10 + 10)
    assert ViT(10, image_size=28, patch_size=7, d_model=16, depth=1, pool="mean").pos_emb.max_len == 16


def test_sincos_table():
    pe = sincos_2d_table(4, 8)
    assert pe.shape == (16, 8)
    np.testing.assert_allclose(pe[:, :2] ** 2 + pe[:, 2:4] ** 2, 1.0, rtol=1e-6)  # sin² + cos² of the row angle
    np.testing.assert_array_equal(pe[1, :4], pe[2, :4])  # same row, different column
    with pytest.raises(ValueError, match="divisible by 4"):
        sincos_2d_table(4, 6)


def test_fit_budget_keeps_the_best_epoch_and_honours_the_cap(rng):
    X = rng.standard_normal((64, 1, 8, 8)).astype(np.float32)
    y = (X[:, 0, :4].mean((1, 2)) > 0).astype(np.int64)
    m = ViT(2, image_size=8, patch_size=4, d_model=8, depth=1, num_heads=2, rng=0)
    h = fit_budget(m, nn.CrossEntropyLoss(), AdamW(m.parameters(), lr=3e-3), (X[:48], y[:48]), (X[48:], y[48:]),
                   epochs=4, batch_size=16, max_minutes=10.0, rng=np.random.default_rng(0), disable=True)
    accs = [r["val_accuracy"] for r in h.epochs]
    assert len(accs) == 4 and accs[h.best_epoch - 1] == max(accs)
    h = fit_budget(m, nn.CrossEntropyLoss(), AdamW(m.parameters(), lr=3e-3), (X[:48], y[:48]), (X[48:], y[48:]),
                   epochs=50, batch_size=16, max_minutes=1e-9, rng=np.random.default_rng(0), disable=True)
    assert len(h.epochs) == 1  # the next epoch would pass the cap


def test_errors(rng):
    m = tiny_vit()
    with pytest.raises(ValueError, match=r"PatchEmbedding: expected images \(N, 1, 8, 8\)"):
        m(rng.standard_normal((2, 1, 9, 9)))
    with pytest.raises(ValueError, match="pool"):
        ViT(5, pool="max")
    with pytest.raises(ValueError, match="divisible"):
        ViT(5, image_size=28, patch_size=5)
    with pytest.raises(RuntimeError):
        tiny_vit().backward(np.zeros((2, 5)))


def test_wall_clock_cosine_follows_the_clock():
    now = [0.0]
    opt = AdamW([nn.Linear(2, 2).weight], lr=1.0)
    sched = WallClockCosine(opt, warmup_steps=2, minutes=1.0, min_lr=0.1, clock=lambda: now[0])
    assert opt.lr == 0.0 and sched.step() == 0.5  # warm-up: η₀ t / W
    now[0] = 10.0
    assert sched.step() == pytest.approx(1.0)  # warm-up over at τ = 10 s; the cosine spans 10 → 60 s
    now[0] = 35.0
    assert sched.step() == pytest.approx(0.55)  # half-way: (η₀ + η_min) / 2
    now[0] = 99.0
    assert sched.step() == pytest.approx(0.1)  # past the budget: η_min
