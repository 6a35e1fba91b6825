"""Gradient-check cases of the Vision Transformer: patchify / unpatchify, the [CLS] prepend, the patch
embedding as a module and a tiny ViT ([CLS] and mean pooling, with dropout)."""
from __future__ import annotations

import numpy as np

from ... import functional as F
from ..checker import check_function, check_module
from ..registry import register_case


def _rng():
    return np.random.default_rng(2023)


@register_case("vit.patchify")
def patchify_case():
    r = _rng()
    return [check_function(F.patchify, F.patchify_backward, [r.standard_normal((2, 3, 4, 6))], patch_size=2,
                           title="patchify[p=2, C=3, 4×6]"),
            check_function(F.patchify, F.patchify_backward, [r.standard_normal((2, 1, 6, 6))], patch_size=3,
                           title="patchify[p=3]")]


@register_case("vit.unpatchify")
def unpatchify_case():
    r = _rng()
    return check_function(F.unpatchify, F.unpatchify_backward, [r.standard_normal((2, 6, 12))], patch_size=2,
                          image_size=(4, 6), channels=3, title="unpatchify[p=2, C=3, 4×6]")


@register_case("vit.prepend_token")
def prepend_case():
    r = _rng()
    return check_function(F.prepend_token, F.prepend_token_backward,
                          [r.standard_normal((3, 4, 5)), r.standard_normal(5)], names=["x", "token"],
                          title="prepend_token")


@register_case("vit.patch_embedding")
def patch_embedding_case():
    from ...models.vit import PatchEmbedding
    r = _rng()
    m = PatchEmbedding(6, 3, 2, 5, rng=0).astype(np.float64)
    return check_module(m, [r.standard_normal((2, 2, 6, 6))])


@register_case("vit.model")
def vit_case():
    from ...models.vit import ViT
    r = _rng()
    x = r.standard_normal((2, 1, 8, 8))
    reps = []
    for pool, dropout in (("cls", 0.1), ("mean", 0.0)):
        m = ViT(5, image_size=8, patch_size=4, d_model=8, depth=2, num_heads=2, mlp_ratio=1.5, dropout=dropout,
                pool=pool, rng=0).astype(np.float64)
        reps.append(check_module(m, [x]))
    return reps
