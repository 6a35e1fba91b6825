"""wav2vec 2.0 (Baevski, Zhou, Mohamed and Auli 2020), scaled to a small CPU: a convolutional feature
encoder on the raw waveform, span masking of the latent frames, a transformer context network with a
convolutional relative positional embedding, a Gumbel-softmax product quantiser, the contrastive and
diversity losses; and a CTC head for fine-tuning.

Legend: N batch, L samples (8 kHz), T frames (20 ms), C encoder channels, D d_model, M masked frames,
K distractors, G codebooks × V entries, E the quantised (and projected context) width, Y classes.
    wave (N, L) → FeatureEncoder → z (N, T, C) → proj → x; masked frames ← mask embedding
    → LN(x + GELU(grouped conv(x))) → pre-LN transformer → LN → h (N, T, D)
    pre-training: c = final_proj(h at masked frames) (M, E), q = Quantiser(z at masked frames) (M, E)
    L = contrastive(c, q, distractors) + α · diversity(quantiser logits);   fine-tuning: log-softmax(h W)
See chapters/26-wav2vec2.md.
"""
from __future__ import annotations

import math

import numpy as np

from .. import functional as F
from .._random import get_rng
from ..backend import asnumpy, get_array_module
from ..nn import init
from ..nn.layers import GELU, LayerNorm, Linear
from ..nn.module import Module, Parameter, no_grad
from ..nn.transformer import TransformerEncoderLayer
from .wav2vec2_parts import Conv1d, FeatureEncoder, GumbelVectorQuantizer

__all__ = ["Wav2Vec2", "Wav2Vec2CTC", "span_mask", "sample_negatives"]

CONV_LAYERS = ((64, 10, 5), (64, 8, 4), (64, 4, 2), (64, 4, 2), (64, 4, 2))  # (C, kernel, stride): ×160


# start-masking
def span_mask(lengths, *, p, span, rng=None, min_spans=1):
    """(N, T_max) bool: in each utterance round(p·T_n) start frames (at least ``min_spans``) are drawn
    without replacement and each masks itself and the next span − 1 frames (cut at T_n); spans may overlap.
    See chapters/26-wav2vec2.md#w2v-masking."""
    rng, lengths = get_rng(rng), np.asarray(lengths)
    mask = np.zeros((len(lengths), int(lengths.max())), dtype=bool)  # (N, T_max)
    for n, T in enumerate(lengths):  # one utterance at a time
        k = min(max(int(round(p * T)), min_spans), T)
        for s in rng.choice(T, size=k, replace=False):
            mask[n, s:min(s + span, T)] = True
    return mask


def sample_negatives(mask, K, rng=None):
    """(M, K) int64: for masked frame m (row-major order of ``mask``), K rows of other masked frames of the
    same utterance, uniformly with replacement, never m itself. Every utterance needs 2 masked frames."""
    rng, counts = get_rng(rng), mask.sum(axis=1)
    if counts.min() < 2:
        raise ValueError(f"sample_negatives: every utterance needs at least 2 masked frames, got {counts}")
    out, start = [], 0
    for m in counts:  # the masked frames of one utterance are rows start .. start + m − 1
        r = rng.integers(0, m - 1, size=(m, K))  # (m, K) among the m − 1 others ...
        out.append(start + r + (r >= np.arange(m)[:, None]))  # ... skipping the frame itself
        start += m
    return np.concatenate(out).astype(np.int64)
# end-masking


class Wav2Vec2(Module):
    """The pre-training model. forward(wave (N, L), mask (N, T) bool, negatives (M, K), *, lengths) → the
    loss L_m + α L_d (a scalar; ``stats`` holds its parts); backward(dloss) → dwave (N, L).
    ``encode`` / ``encode_backward`` give the context h (N, T, D) for fine-tuning."""

    def __init__(self, *, conv_layers=CONV_LAYERS, d_model=96, nhead=4, num_layers=4, dim_feedforward=384,
                 pos_kernel=15, pos_groups=4, num_groups=2, num_vars=64, final_dim=64, kappa=0.1,
                 div_weight=0.1, dropout=0.1, tau=2.0, hard=True, rng=None, dtype=np.float32):
        super().__init__()
        rng = get_rng(rng)
        self.cfg = dict(conv_layers=[list(c) for c in conv_layers], d_model=d_model, nhead=nhead,
                        num_layers=num_layers, dim_feedforward=dim_feedforward, pos_kernel=pos_kernel,
                        pos_groups=pos_groups, num_groups=num_groups, num_vars=num_vars, final_dim=final_dim,
                        kappa=kappa, div_weight=div_weight, dropout=dropout)
        self.kappa, self.div_weight = kappa, div_weight
        C = conv_layers[-1][0]
        self.feature = FeatureEncoder(conv_layers, rng=rng, dtype=dtype)
        self.proj = Linear(C, d_model, rng=rng, dtype=dtype)
        self.mask_emb = Parameter(init.uniform((d_model,), 0.0, 1.0, rng=rng, dtype=dtype))
        self.pos_conv = Conv1d(d_model, d_model, pos_kernel, padding=pos_kernel // 2, groups=pos_groups,
                               std=math.sqrt(4.0 / (pos_kernel * d_model)), rng=rng, dtype=dtype)
        self.pos_act = GELU()
        self.in_norm = LayerNorm(d_model, dtype=dtype)
        self.layers = [TransformerEncoderLayer(d_model, nhead, dim_feedforward, dropout, "gelu", norm_first=True,
                                               rng=rng, dtype=dtype) for _ in range(num_layers)]
        self.norm = LayerNorm(d_model, dtype=dtype)
        self.final_proj = Linear(d_model, final_dim, rng=rng, dtype=dtype)
        self.quantizer = GumbelVectorQuantizer(C, num_groups, num_vars, final_dim, tau=tau, hard=hard, rng=rng,
                                               dtype=dtype)
        self.stats = {}

    def output_lengths(self, lengths):
        return self.feature.output_lengths(lengths)

    def _lengths(self, wave, lengths):
        if wave.ndim != 2 or wave.dtype.kind != "f":
            raise ValueError(f"Wav2Vec2: expected a float waveform (N, L), got {wave.dtype} {tuple(wave.shape)}")
        lengths = np.full(wave.shape[0], wave.shape[1]) if lengths is None else asnumpy(lengths)
        r = self.feature.receptive_field
        if lengths.shape != (wave.shape[0],) or lengths.min() < r or lengths.max() > wave.shape[1]:
            raise ValueError(f"Wav2Vec2: lengths must be ({wave.shape[0]},) integers in [{r}, {wave.shape[1]}] "
                             f"(the receptive field of one frame is {r} samples), got {lengths}")
        return lengths

    # start-context
    def context(self, z, lengths, mask=None):
        """h (N, T, D) from the latent frames z (N, T, C): project, replace masked frames by the mask
        embedding, zero the padding, add the convolutional positions, LayerNorm, transformer, final LayerNorm."""
        xp = get_array_module(z)
        N, T, _ = z.shape
        frames = self.output_lengths(lengths)  # (N,) valid frames per utterance
        pad = np.arange(T)[None, :] >= frames[:, None]  # (N, T) True past the utterance's end
        mask = np.zeros((N, T), dtype=bool) if mask is None else asnumpy(mask)  # (N, T) on the host
        if mask.shape != (N, T) or mask.dtype != bool or (mask & pad).any():
            raise ValueError(f"Wav2Vec2: expected a boolean mask (N, T) = {(N, T)} that masks no padded frame, "
                             f"got {mask.dtype} {tuple(mask.shape)}")
        keep = xp.asarray(~mask & ~pad)[..., None].astype(z.dtype)  # (N, T, 1) frames that keep their value
        m = xp.asarray(mask)[..., None].astype(z.dtype)  # (N, T, 1)
        x = self.proj(z) * keep + m * self.mask_emb.data  # (N, T, D) eq-w2v-mask
        pos = self.pos_act(self.pos_conv(x.transpose(0, 2, 1)))  # (N, D, T) relative positions
        valid = xp.asarray(~pad)[..., None].astype(z.dtype)  # (N, T, 1)
        h = self.in_norm(x + pos.transpose(0, 2, 1)) * valid  # (N, T, D) padded frames stay exactly 0
        for layer in self.layers:
            h = layer(h, src_key_padding_mask=xp.asarray(pad))
        self.push((keep, m, valid))
        return self.norm(h)

    def context_backward(self, dh):
        """dz (N, T, C): the forward read bottom-up; the positional branch and the residual both reach x."""
        keep, m, valid = self.pop()
        dh = self.norm.backward(dh)
        for layer in reversed(self.layers):
            dh = layer.backward(dh)
        dh = self.in_norm.backward(dh * valid)
        dpos = self.pos_conv.backward(self.pos_act.backward(dh.transpose(0, 2, 1)))  # (N, D, T)
        dx = dh + dpos.transpose(0, 2, 1)  # (N, T, D) residual + positional branch
        self.mask_emb.grad += (dx * m).sum(axis=(0, 1))  # every masked frame holds the same embedding
        return self.proj.backward(dx * keep)  # masked and padded frames sent nothing on from z
    # end-context

    # start-pretrain
    def forward(self, wave, mask, negatives, *, lengths=None):
        lengths = self._lengths(wave, lengths)
        mask = asnumpy(mask)  # (N, T) on the host, once: it picks rows below
        z = self.feature(wave)  # (N, T, C) latent speech frames
        h = self.context(z, lengths, mask)  # (N, T, D)
        rows = np.nonzero(mask)  # the M masked frames, row-major (host indices)
        c = self.final_proj(h[rows])  # (M, E) context at the masked frames
        q, logits = self.quantizer(z[rows])  # (M, E) targets from the UNmasked latents, (M, G, V)
        loss_m, cm = F.contrastive_loss(c, q, negatives, kappa=self.kappa)
        loss_d, cd = F.diversity_loss(logits)
        self.push((cm, cd, rows, z.shape, h.shape))
        self.stats = dict(contrastive=float(loss_m), diversity=float(loss_d),
                          accuracy=float((cm.prob.argmax(axis=1) == 0).mean()),
                          prob_perplexity=float(cd.perplexity.sum()), code_perplexity=self.quantizer.code_perplexity)
        return loss_m + self.div_weight * loss_d

    def backward(self, dloss):
        cm, cd, rows, z_shape, h_shape = self.pop()
        dc, dq = F.contrastive_loss_backward(dloss, cm)  # (M, E) each
        dlogits = F.diversity_loss_backward(self.div_weight * dloss, cd)  # (M, G, V)
        dz_rows = self.quantizer.backward((dq, dlogits))  # (M, C) the target path into z
        dh = get_array_module(dc).zeros(h_shape, dtype=dc.dtype)  # (N, T, D) only masked frames are scored
        dh[rows] = self.final_proj.backward(dc)
        dz = self.context_backward(dh)  # (N, T, C) the context path into z
        dz[rows] += dz_rows  # z feeds both paths: the gradients add
        return self.feature.backward(dz)  # (N, L)
    # end-pretrain

    def encode(self, wave, *, lengths=None, mask=None, frozen=False):
        """h (N, T, D) for fine-tuning; ``frozen`` runs the feature encoder without caches (no gradient)."""
        lengths = self._lengths(wave, lengths)
        if frozen:
            with no_grad():
                z = self.feature(wave)
        else:
            z = self.feature(wave)
        self.push(frozen)
        return self.context(z, lengths, mask)

    def encode_backward(self, dh):
        """dwave (N, L), or None when the feature encoder was frozen."""
        dz = self.context_backward(dh)
        return None if self.pop() else self.feature.backward(dz)

    def config(self):
        return {"class": "Wav2Vec2", **self.cfg}


class Wav2Vec2CTC(Module):
    """A linear CTC head on the context network. forward(wave (N, L), *, lengths, mask) → log-probs (N, T, Y);
    backward(dlog_probs) → dwave (None with the feature encoder frozen). See chapters/26-wav2vec2.md#w2v-finetune."""

    def __init__(self, encoder, n_classes, *, freeze_feature_encoder=True, rng=None, dtype=np.float32):
        super().__init__()
        self.encoder, self.freeze = encoder, freeze_feature_encoder
        self.head = Linear(encoder.cfg["d_model"], n_classes, rng=rng, dtype=dtype)

    def output_lengths(self, lengths):
        return self.encoder.output_lengths(lengths)

    def forward(self, wave, *, lengths=None, mask=None):
        h = self.encoder.encode(wave, lengths=lengths, mask=mask, frozen=self.freeze)  # (N, T, D)
        log_probs, cache = F.log_softmax(self.head(h))  # (N, T, Y)
        self.push(cache)
        return log_probs

    def backward(self, dlog_probs):
        dh = self.head.backward(F.log_softmax_backward(dlog_probs, self.pop()))
        return self.encoder.encode_backward(dh)

    def finetune_parameters(self):
        """What fine-tuning trains: the head and the context network (and the feature encoder unless frozen);
        the quantiser and the final projection serve pre-training only."""
        e = self.encoder
        mods = [self.head, e.proj, e.pos_conv, e.in_norm, e.norm, *e.layers] + ([] if self.freeze else [e.feature])
        return [e.mask_emb] + [p for m in mods for p in m.parameters()]

    def config(self):
        return {"class": "Wav2Vec2CTC", "freeze_feature_encoder": self.freeze, **self.encoder.cfg}
