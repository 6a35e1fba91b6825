"""Vision Transformer (Dosovitskiy et al. 2021, "An image is worth 16x16 words"), small, for 28×28 images.

Legend: N batch, C channels, H, W image size, p patch size, L = HW/p² patches, P = C·p², D d_model, K classes.
    x (N, C, H, W) → patchify (N, L, P) → linear (N, L, D) → [CLS; ·] (N, L+1, D) → + pos → dropout
    → depth × pre-LN TransformerEncoderLayer → LayerNorm → h[:, 0] (or the mean over patches) → head (N, K).
See chapters/23-vit.md.
"""
from __future__ import annotations

import numpy as np

from .. import functional as F
from .._random import get_rng
from ..backend import get_array_module
from ..nn import init
from ..nn.attention import LearnedPositionalEncoding
from ..nn.layers import Dropout, LayerNorm, Linear
from ..nn.module import Module, Parameter
from ..nn.transformer import TransformerEncoderLayer
from ..optim.schedules import WallClockCosine  # noqa: F401  (re-exported: its home is optim.schedules)
from ..train import fit_budget  # noqa: F401  (re-exported: its home is train)

__all__ = ["PatchEmbedding", "ViT", "sincos_2d_table", "WallClockCosine", "fit_budget"]


# start-patch-embed
class PatchEmbedding(Module):
    """Cut (N, C, H, W) into p×p patches and project each: (N, L, C·p²) @ W (C·p², D) + b → (N, L, D).

    The same map as a p×p convolution with stride p (ViT's implementation); W's rows are ordered
    (c, u, v) like a conv kernel flattened, so ``W.T.reshape(D, C, p, p)`` is that conv's weight.
    """

    def __init__(self, image_size, patch_size, in_channels, d_model, *, rng=None, dtype=np.float32):
        super().__init__()
        if image_size % patch_size:
            raise ValueError(f"PatchEmbedding: image_size={image_size} is not divisible by patch_size={patch_size}")
        self.image_size, self.patch_size, self.in_channels = image_size, patch_size, in_channels
        self.num_patches = (image_size // patch_size) ** 2
        self.proj = Linear(in_channels * patch_size ** 2, d_model, rng=rng, dtype=dtype)

    def forward(self, x):
        s, c = self.image_size, self.in_channels
        if x.ndim != 4 or x.shape[1:] != (c, s, s):
            raise ValueError(f"PatchEmbedding: expected images (N, {c}, {s}, {s}), got shape {tuple(x.shape)}")
        patches, cache = F.patchify(x, patch_size=self.patch_size)  # (N, L, P)
        self.push(cache)
        return self.proj(patches)  # (N, L, D)

    def backward(self, dy):
        dpatches = self.proj.backward(dy)  # (N, L, P)
        return F.patchify_backward(dpatches, self.pop())  # (N, C, H, W)
# end-patch-embed


def sincos_2d_table(grid, d_model, dtype=np.float32):
    """Fixed 2-D sine-cosine positions (grid², D): half the features encode the row, half the column."""
    if d_model % 4:
        raise ValueError(f"sincos_2d_table: d_model={d_model} must be divisible by 4")
    i, j = np.meshgrid(np.arange(grid), np.arange(grid), indexing="ij")  # (g, g) row and column of each patch
    freq = 1.0 / 10000 ** (np.arange(d_model // 4) / (d_model // 4))  # (D/4,)
    a, b = i.reshape(-1, 1) * freq, j.reshape(-1, 1) * freq  # (L, D/4) each
    return np.concatenate([np.sin(a), np.cos(a), np.sin(b), np.cos(b)], axis=1).astype(dtype)  # (L, D)


# start-vit
class ViT(Module):
    """Patch embedding, a learned [CLS] token, learned positions, pre-LN encoder, LayerNorm, linear head.

    pool: "cls" classifies from the [CLS] token's final state (the paper), "mean" from the mean of
    the patch tokens (no [CLS] token then).
    """

    def __init__(self, num_classes=10, *, image_size=28, patch_size=7, in_channels=1, d_model=64, depth=4,
                 num_heads=4, mlp_ratio=2.0, dropout=0.0, pool="cls", rng=None, dtype=np.float32):
        super().__init__()
        if pool not in ("cls", "mean"):
            raise ValueError(f"ViT: pool must be 'cls' or 'mean', got {pool!r}")
        rng = get_rng(rng)
        self.cfg = dict(num_classes=num_classes, image_size=image_size, patch_size=patch_size,
                        in_channels=in_channels, d_model=d_model, depth=depth, num_heads=num_heads,
                        mlp_ratio=mlp_ratio, dropout=dropout, pool=pool)
        self.pool = pool
        self.patch_embed = PatchEmbedding(image_size, patch_size, in_channels, d_model, rng=rng, dtype=dtype)
        n_tokens = self.patch_embed.num_patches + (pool == "cls")
        self.cls_token = Parameter(init.normal((d_model,), 0.02, rng=rng, dtype=dtype)) if pool == "cls" else None
        self.pos_emb = LearnedPositionalEncoding(n_tokens, d_model, rng=rng, dtype=dtype)
        self.drop = Dropout(dropout, rng=rng)
        self.blocks = [TransformerEncoderLayer(d_model, num_heads, int(mlp_ratio * d_model), dropout, "gelu",
                                               norm_first=True, rng=rng, dtype=dtype) for _ in range(depth)]
        self.norm = LayerNorm(d_model, dtype=dtype)
        self.head = Linear(d_model, num_classes, rng=rng, dtype=dtype)

    def forward(self, x):
        """x (N, C, H, W) → logits (N, K)."""
        t = self.patch_embed(x)  # (N, L, D) one token per patch
        if self.cls_token is not None:
            t, cls_cache = F.prepend_token(t, self.cls_token.data)  # (N, L+1, D) [CLS] first
            self.push(cls_cache)
        z = self.drop(self.pos_emb(t))  # (N, T, D) + position of each token
        for block in self.blocks:
            z = block(z)  # (N, T, D) every token attends to every token (no mask)
        h = self.norm(z)  # (N, T, D)
        feat = h[:, 0] if self.cls_token is not None else h.mean(axis=1)  # (N, D)
        self.push(h.shape)
        return self.head(feat)  # (N, K)

    def backward(self, dlogits):
        """Walk the network in reverse: head, the pooling, the blocks, positions, [CLS], patches."""
        h_shape = self.pop()
        dfeat = self.head.backward(dlogits)  # (N, D)
        xp = get_array_module(dfeat)
        dh = xp.zeros(h_shape, dtype=dfeat.dtype)  # (N, T, D)
        if self.cls_token is not None:
            dh[:, 0] = dfeat  # only the [CLS] row reaches the head
        else:
            dh[...] = dfeat[:, None, :] / h_shape[1]  # the mean spreads dfeat evenly over the tokens
        dz = self.norm.backward(dh)  # (N, T, D)
        for block in reversed(self.blocks):
            dz = block.backward(dz)
        dt = self.pos_emb.backward(self.drop.backward(dz))  # (N, T, D); the table's gradient is added
        if self.cls_token is not None:
            dt, dcls = F.prepend_token_backward(dt, self.pop())  # (N, L, D), (D,)
            self.cls_token.grad += dcls
        return self.patch_embed.backward(dt)  # (N, C, H, W)
# end-vit

    def attention_maps(self, x):
        """Attention weights (depth, N, H, T, T) of every block for images x; leaves no caches."""
        self.forward(x)
        maps = np.stack([b.self_attn.last_attention_weights() for b in self.blocks])  # (depth, N, H, T, T)
        self.clear_caches()
        return maps

    def config(self):
        return {"class": "ViT", **self.cfg}
