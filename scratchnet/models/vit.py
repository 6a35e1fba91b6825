"""Vision Transformer (Dosovitskiy et al. 2021, "An image is worth 16x16 words"), small, for 28×28 images.

Legend: N batch, C channels, H, W image size, p patch size, L = HW/p² patches, P = C·p², D d_model, K classes.
    x (N, C, H, W) → patchify (N, L, P) → linear (N, L, D) → [CLS; ·] (N, L+1, D) → + pos → dropout
    → depth × pre-LN TransformerEncoderLayer → LayerNorm → h[:, 0] (or the mean over patches) → head (N, K).
See chapters/23-vit.md.
"""
from __future__ import annotations

import math
import time

import numpy as np

from .. import functional as F
from .._random import get_rng
from ..backend import get_array_module
from ..nn import init
from ..nn.attention import LearnedPositionalEncoding
from ..nn.layers import Dropout, LayerNorm, Linear
from ..nn.module import Module, Parameter
from ..nn.transformer import TransformerEncoderLayer
from ..optim.schedules import LRScheduler

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


class WallClockCosine(LRScheduler):
    """Linear warm-up over ``warmup_steps``, then a half cosine to ``min_lr`` laid over wall-clock time.

        η = η₀ · t / W                                  for t < W
        η = η_min + (η₀ − η_min) · (1 + cos(π · min(1, (τ − τ_W) / (τ_end − τ_W)))) / 2   after

    with τ the clock, τ_W the time the warm-up ended and τ_end = creation time + ``minutes``. A step
    schedule needs the number of steps in advance; this one needs only the budget, so the decay ends
    with the budget however fast the machine turns out to be (the price: runs are not bit-reproducible).
    """

    def __init__(self, optimizer, warmup_steps, minutes, min_lr=0.0, *, clock=time.perf_counter):
        self.warmup_steps, self.min_lr, self.clock = int(warmup_steps), float(min_lr), clock
        self.end = clock() + 60.0 * float(minutes)
        self.warm_end = None  # τ_W, set at the first step after the warm-up
        super().__init__(optimizer)

    def lr_at(self, t):
        if t < self.warmup_steps:
            return self.base_lr * t / self.warmup_steps  # linear warm-up
        now = self.clock()
        if self.warm_end is None:
            self.warm_end = now
        progress = min(1.0, (now - self.warm_end) / max(1e-9, self.end - self.warm_end))  # 0 → 1 over the budget
        return self.min_lr + (self.base_lr - self.min_lr) * (1.0 + math.cos(math.pi * progress)) / 2.0


def fit_budget(model, loss_fn, optimizer, train, val, *, epochs, batch_size, max_minutes, rng=None,
               scheduler=None, prepare=None, clip_norm=None, log_every=None, disable=None):
    """``train.fit`` with a wall-clock cap that keeps the weights of the best validation epoch.

    Training stops after ``epochs``, or at the end of the first epoch after which another epoch as
    long as the last one would pass ``max_minutes``; the best-val_accuracy weights are loaded back
    before returning (``history.best_epoch`` says which).
    """
    from ..train import fit
    best = {"acc": -math.inf, "state": None, "epoch": 0}
    t0 = time.perf_counter()

    def on_epoch_end(epoch, history):
        row = history.epochs[-1]
        if row["val_accuracy"] > best["acc"]:
            best.update(acc=row["val_accuracy"], state=model.state_dict(), epoch=epoch)
        minutes = (time.perf_counter() - t0) / 60
        return minutes + row["seconds"] / 60 > max_minutes  # the next epoch would not fit

    history = fit(model, loss_fn, optimizer, train, val, epochs=epochs, batch_size=batch_size, rng=rng,
                  scheduler=scheduler, scheduler_per="step", prepare=prepare, clip_norm=clip_norm,
                  log_every=log_every, disable=disable, on_epoch_end=on_epoch_end)
    model.load_state_dict(best["state"])
    history.best_epoch = best["epoch"]
    return history
