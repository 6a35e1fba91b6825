"""The building blocks of wav2vec 2.0 (chapter 26): a 1-D convolution over the 2-D pair, the convolutional
feature encoder on the raw waveform, and the Gumbel-softmax product quantiser.

Legend: N batch, C channels, L samples, T frames, M rows (frames), G codebooks, V entries each,
E = G · (E/G) quantised width. See chapters/26-wav2vec2.md.
"""
from __future__ import annotations

import math

import numpy as np

from .. import functional as F
from .._random import get_rng
from ..backend import get_array_module
from ..nn import init
from ..nn.attention import _own_rng
from ..nn.layers import GELU, LayerNorm, Linear
from ..nn.module import Module, Parameter

__all__ = ["Conv1d", "FeatureEncoder", "GumbelVectorQuantizer"]


class Conv1d(Module):
    """(N, C_in, L) → (N, C_out, L'), L' = ⌊(L + 2·padding − kernel) / stride⌋ + 1: ``F.conv2d`` on a
    one-row image (N, C_in, 1, L) with weight (C_out, C_in/groups, 1, kernel). Init N(0, std²), He by default."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, groups=1, bias=True, *,
                 std=None, rng=None, dtype=np.float32):
        super().__init__()
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"Conv1d: in_channels {in_channels} and out_channels {out_channels} must be "
                             f"divisible by groups={groups}")
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel_size
        self.stride, self.padding, self.groups = stride, padding, groups
        fan_in = in_channels // groups * kernel_size
        std = math.sqrt(2.0 / fan_in) if std is None else std
        self.weight = Parameter(init.normal((out_channels, in_channels // groups, 1, kernel_size), std,
                                            rng=get_rng(rng), dtype=dtype))
        self.bias = Parameter(np.zeros(out_channels, dtype)) if bias else None

    def forward(self, x):
        if x.ndim != 3 or x.shape[1] != self.in_channels:
            raise ValueError(f"Conv1d: expected x (N, {self.in_channels}, L), got shape {tuple(x.shape)}")
        y, cache = F.conv2d(x[:, :, None, :], self.weight.data, None if self.bias is None else self.bias.data,
                            stride=(1, self.stride), padding=(0, self.padding), groups=self.groups)
        self.push(cache)
        return y[:, :, 0]  # (N, C_out, L')

    def backward(self, dy):
        dx, dw, db = F.conv2d_backward(dy[:, :, None, :], self.pop())
        self.weight.grad += dw
        if self.bias is not None:
            self.bias.grad += db
        return dx[:, :, 0]  # (N, C_in, L)

    def extra_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, groups={self.groups}")


# start-feature-encoder
class FeatureEncoder(Module):
    """Strided 1-D convolutions on the waveform, each followed by a LayerNorm over the channels of every
    frame and a GELU: wave (N, L) → z (N, T, C). ``layers`` lists (C, kernel, stride)."""

    def __init__(self, layers, *, rng=None, dtype=np.float32):
        super().__init__()
        rng = get_rng(rng)
        self.spec = [tuple(int(v) for v in s) for s in layers]
        c_in = [1] + [c for c, _, _ in self.spec[:-1]]
        self.convs = [Conv1d(ci, c, k, s, rng=rng, dtype=dtype) for ci, (c, k, s) in zip(c_in, self.spec)]
        self.norms = [LayerNorm(c, dtype=dtype) for c, _, _ in self.spec]
        self.acts = [GELU() for _ in self.spec]

    @property
    def receptive_field(self):
        """Samples that one output frame reads."""
        r, jump = 1, 1
        for _, k, s in self.spec:
            r, jump = r + (k - 1) * jump, jump * s
        return r

    def output_lengths(self, lengths):
        """Frames per utterance: ⌊(L − k)/s⌋ + 1 per layer (valid convolutions: no frame reads padding)."""
        out = get_array_module(lengths).asarray(lengths)  # (N,) on the lengths' device
        for _, k, s in self.spec:
            out = (out - k) // s + 1
        return out

    def forward(self, wave):
        h = wave[:, None, :]  # (N, 1, L) one input channel
        for conv, norm, act in zip(self.convs, self.norms, self.acts):
            a = conv(h).transpose(0, 2, 1)  # (N, T_l, C) frames first: the norm is per frame
            h = act(norm(a)).transpose(0, 2, 1)  # (N, C, T_l)
        return h.transpose(0, 2, 1)  # (N, T, C)

    def backward(self, dz):
        dh = dz.transpose(0, 2, 1)  # (N, C, T)
        for conv, norm, act in zip(reversed(self.convs), reversed(self.norms), reversed(self.acts)):
            da = norm.backward(act.backward(dh.transpose(0, 2, 1)))  # (N, T_l, C)
            dh = conv.backward(da.transpose(0, 2, 1))  # (N, C_in, T_{l-1})
        return dh[:, 0]  # (N, L)

    def extra_repr(self):
        return f"layers={self.spec}, stride={int(np.prod([s for _, _, s in self.spec]))}"
# end-feature-encoder


# start-quantizer
class GumbelVectorQuantizer(Module):
    """Product quantiser: logits (M, G, V) = z W, one entry per group chosen by the (straight-through)
    Gumbel-softmax, the G codewords concatenated and projected. forward(z (M, C)) → (q (M, E), logits);
    backward((dq, dlogits_extra)) → dz (M, C); ``dlogits_extra`` is the diversity loss's gradient."""

    def __init__(self, dim, num_groups, num_vars, vq_dim, *, tau=2.0, hard=True, rng=None, dtype=np.float32):
        super().__init__()
        if vq_dim % num_groups:
            raise ValueError(f"GumbelVectorQuantizer: vq_dim {vq_dim} must be divisible by num_groups {num_groups}")
        rng = get_rng(rng)
        self.G, self.V, self.tau, self.hard = num_groups, num_vars, tau, hard
        self.weight_proj = Linear(dim, num_groups * num_vars, rng=rng, dtype=dtype)
        self.weight_proj.weight.data = init.normal((dim, num_groups * num_vars), 1.0, rng=rng, dtype=dtype)  # peaked
        self.weight_proj.bias.data[...] = 0  # logits from the start, so the noise does not decide (as fairseq)
        self.codebook = Parameter(init.uniform((num_groups, num_vars, vq_dim // num_groups), 0.0, 1.0, rng=rng,
                                               dtype=dtype))
        self.project_q = Linear(vq_dim, vq_dim, rng=rng, dtype=dtype)
        self.rng = _own_rng(rng)  # the Gumbel draws (rewound by the gradient checker)
        self.code_perplexity = float("nan")

    def forward(self, z):
        xp = get_array_module(z)
        M = z.shape[0]
        logits = self.weight_proj(z).reshape(M, self.G, self.V)  # (M, G, V)
        noise = (xp.asarray(F.gumbel_noise(logits.shape, rng=self.rng, dtype=logits.dtype)) if self.training
                 else xp.zeros_like(logits))  # evaluation: the plain argmax
        y, cache = F.gumbel_softmax(logits, tau=self.tau, hard=self.hard, noise=noise)  # (M, G, V)
        words = xp.einsum("mgv,gvd->mgd", y, self.codebook.data)  # (M, G, E/G) the chosen codewords
        q = self.project_q(words.reshape(M, -1))  # (M, E)
        used = y.mean(axis=0)  # (G, V) how often each entry was chosen in this batch
        self.code_perplexity = float(xp.exp(-(used * xp.log(used + 1e-30)).sum(axis=-1)).sum())
        self.push((cache, y))
        return q, logits

    def backward(self, dout):
        dq, dlogits_extra = dout
        cache, y = self.pop()
        xp = get_array_module(dq)
        dwords = self.project_q.backward(dq).reshape(y.shape[0], self.G, -1)  # (M, G, E/G)
        self.codebook.grad += xp.einsum("mgv,mgd->gvd", y, dwords)  # each chosen entry collects its rows
        dy = xp.einsum("mgd,gvd->mgv", dwords, self.codebook.data)  # (M, G, V)
        dlogits = F.gumbel_softmax_backward(dy, cache) + dlogits_extra  # straight through, plus diversity
        return self.weight_proj.backward(dlogits.reshape(y.shape[0], -1))  # (M, C)

    def extra_repr(self):
        return f"groups={self.G}, entries={self.V}, tau={self.tau}, hard={self.hard}"
# end-quantizer
