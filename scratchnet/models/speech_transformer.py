"""Speech-Transformer (Dong, Xu and Xu 2018): a convolutional subsampling front end, a transformer encoder
over the 4× shorter frame sequence, and a transformer decoder that writes the transcript one character at
a time, attending to the encoder's memory; optionally a CTC head on the encoder for the joint loss of
Kim, Hori and Watanabe (2017).

Legend: N batch, T frames, D_in features per frame, S = T'' encoder positions (≈ T/4), U decoder
positions, D d_model, V vocabulary (blank 0, the characters, <sos/eos> last), B beam width.
    x (N, T, D_in) → ConvSubsampling → ·√D + PE → L_e × pre-LN encoder layer → LN → memory (N, S, D)
    ys_in (N, U) → embedding ·√D + PE → L_d × pre-LN causal decoder layer (cross-attention on memory)
    → LN → logits (N, U, V);   [memory → linear → log-softmax → CTC log-probs (N, S, V)]
See chapters/25-speech-transformer.md.
"""
from __future__ import annotations

import math

import numpy as np

from .. import functional as F
from .._random import get_rng
from ..backend import asnumpy, get_array_module
from ..nn import init
from ..nn.attention import SinusoidalPositionalEncoding
from ..nn.layers import Dropout, Embedding, LayerNorm, Linear
from ..nn.module import Module, Parameter, no_grad
from ..nn.transformer import TransformerDecoderLayer, TransformerEncoderLayer

__all__ = ["ConvSubsampling", "SpeechTransformer", "decoder_io", "noam_factor"]


# start-subsampling
class ConvSubsampling(Module):
    """Two stride-2 3×3 convolutions with ReLUs (``F.conv_subsample``), then a linear map of the C·D''
    flattened features to d_model: (N, T, D_in) → (N, T'', D), T'' = ``F.subsampled_length(T)``."""

    def __init__(self, n_features, d_model, channels=32, *, rng=None, dtype=np.float32):
        super().__init__()
        rng = get_rng(rng)
        self.n_features, self.channels = n_features, channels
        self.w1 = Parameter(init.he_normal((channels, 1, 3, 3), layout="conv", rng=rng, dtype=dtype))
        self.b1 = Parameter(np.zeros(channels, dtype=dtype))
        self.w2 = Parameter(init.he_normal((channels, channels, 3, 3), layout="conv", rng=rng, dtype=dtype))
        self.b2 = Parameter(np.zeros(channels, dtype=dtype))
        d2 = int(F.subsampled_length(n_features))  # frequency bins left, D''
        self.out = Linear(channels * d2, d_model, rng=rng, dtype=dtype)

    def forward(self, x):
        if x.ndim != 3 or x.shape[-1] != self.n_features:
            raise ValueError(f"ConvSubsampling: expected x (N, T, {self.n_features}), got shape {tuple(x.shape)}")
        h, cache = F.conv_subsample(x, self.w1.data, self.b1.data, self.w2.data, self.b2.data)  # (N, T'', C·D'')
        self.push(cache)
        return self.out(h)  # (N, T'', D)

    def backward(self, dy):
        dh = self.out.backward(dy)  # (N, T'', C·D'')
        dx, dw1, db1, dw2, db2 = F.conv_subsample_backward(dh, self.pop())
        for p, g in ((self.w1, dw1), (self.b1, db1), (self.w2, dw2), (self.b2, db2)):
            p.grad += g
        return dx  # (N, T, D_in)

    def extra_repr(self):
        return f"{self.n_features}, channels={self.channels}, kernel=3, stride=2 (twice)"
# end-subsampling


def noam_factor(warmup_steps):
    """The warm-up schedule of Vaswani et al. (2017) that the paper uses, as a factor of the peak rate:
    min(t / W, √(W / t)) (0 at t = 0), a linear rise over W steps, then decay as t^-½. With ``LambdaLR`` and
    lr = η_peak it equals Noam's k · D^-½ · min(t^-½, t · W^-³⁄²) for k = η_peak √(D W).
    See chapters/25-speech-transformer.md#st-training."""
    W = float(warmup_steps)
    return lambda t: 0.0 if t == 0 else min(t / W, math.sqrt(W / t))


def decoder_io(transcripts, sos_eos, *, ignore_index=-100):
    """Teacher forcing: (N, U) decoder inputs <sos> y_1 .. y_S (padded with <eos>) and (N, U) targets
    y_1 .. y_S <eos> (padded with ``ignore_index``), U = max S + 1. ``transcripts``: lists of ids."""
    U = max(len(t) for t in transcripts) + 1
    ys_in = np.full((len(transcripts), U), sos_eos, dtype=np.int64)  # (N, U)
    ys_out = np.full((len(transcripts), U), ignore_index, dtype=np.int64)  # (N, U)
    for n, t in enumerate(transcripts):  # one transcript per row
        ys_in[n, 1:len(t) + 1] = t
        ys_out[n, :len(t)] = t
        ys_out[n, len(t)] = sos_eos
    return ys_in, ys_out


class SpeechTransformer(Module):
    """forward(x (N, T, D_in), ys_in (N, U) ids, *, lengths (N,)) → logits (N, U, V), or with ``ctc_head``
    (logits, ctc_log_probs (N, S, V)); backward(dlogits or (dlogits, dctc_log_probs)) → dx (N, T, D_in).
    ``output_lengths(lengths)`` gives S per utterance (the CTC input lengths); ``sos_eos = V − 1``."""

    def __init__(self, n_features, vocab_size, *, d_model=128, nhead=4, num_encoder_layers=4, num_decoder_layers=2,
                 dim_feedforward=512, channels=32, dropout=0.1, ctc_head=True, max_len=512, rng=None,
                 dtype=np.float32):
        super().__init__()
        rng = get_rng(rng)
        self.cfg = dict(n_features=n_features, vocab_size=vocab_size, d_model=d_model, nhead=nhead,
                        num_encoder_layers=num_encoder_layers, num_decoder_layers=num_decoder_layers,
                        dim_feedforward=dim_feedforward, channels=channels, dropout=dropout, ctc_head=ctc_head,
                        max_len=max_len)
        self.vocab_size, self.sos_eos, self.scale = vocab_size, vocab_size - 1, math.sqrt(d_model)
        layer = dict(dim_feedforward=dim_feedforward, dropout=dropout, activation="relu", norm_first=True, rng=rng,
                     dtype=dtype)
        self.front = ConvSubsampling(n_features, d_model, channels, rng=rng, dtype=dtype)
        self.pos = SinusoidalPositionalEncoding(max_len, d_model, dtype=dtype)  # shared by both stacks (no parameters)
        self.enc_drop, self.dec_drop = Dropout(dropout, rng=rng), Dropout(dropout, rng=rng)
        self.encoder = [TransformerEncoderLayer(d_model, nhead, **layer) for _ in range(num_encoder_layers)]
        self.enc_norm = LayerNorm(d_model, dtype=dtype)
        self.embed = Embedding(vocab_size, d_model, rng=rng, dtype=dtype)
        self.embed.weight.data = init.normal((vocab_size, d_model), d_model ** -0.5, rng=rng, dtype=dtype)  # ·√D → unit
        self.decoder = [TransformerDecoderLayer(d_model, nhead, **layer) for _ in range(num_decoder_layers)]
        self.dec_norm = LayerNorm(d_model, dtype=dtype)
        self.out = Linear(d_model, vocab_size, rng=rng, dtype=dtype)
        self.ctc = Linear(d_model, vocab_size, rng=rng, dtype=dtype) if ctc_head else None

    def output_lengths(self, lengths):
        return F.subsampled_length(lengths)

    def _check(self, x, lengths):
        if x.ndim != 3 or x.shape[-1] != self.cfg["n_features"]:
            raise ValueError(f"SpeechTransformer: expected x (N, T, {self.cfg['n_features']}), got {tuple(x.shape)}")
        if lengths.shape != (x.shape[0],) or lengths.min() < 7 or lengths.max() > x.shape[1]:
            raise ValueError(f"SpeechTransformer: lengths must be ({x.shape[0]},) integers in [7, {x.shape[1]}], "
                             f"got {lengths}")

    # start-forward
    def encode(self, x, lengths=None):
        """memory (N, S, D) and its padding mask (N, S), True = past the utterance's length."""
        xp = get_array_module(x)
        lengths = np.full(x.shape[0], x.shape[1]) if lengths is None else np.asarray(asnumpy(lengths))
        self._check(x, lengths)
        s = self.front(x)  # (N, S, D) 4× fewer frames
        pad = xp.asarray(np.arange(s.shape[1])[None, :] >= self.output_lengths(lengths)[:, None])  # (N, S)
        h = self.enc_drop(self.pos(s * self.scale))  # (N, S, D)
        for layer in self.encoder:
            h = layer(h, src_key_padding_mask=pad)
        return self.enc_norm(h), pad  # (N, S, D), (N, S)

    def decode(self, ys_in, memory, pad):
        """logits (N, U, V) of every next character given the characters so far (causal)."""
        g = self.dec_drop(self.pos(self.embed(ys_in) * self.scale))  # (N, U, D)
        for layer in self.decoder:
            g = layer(g, memory, memory_key_padding_mask=pad, causal=True)
        return self.out(self.dec_norm(g))  # (N, U, V)

    def forward(self, x, ys_in, *, lengths=None):
        if ys_in is None or ys_in.ndim != 2 or ys_in.dtype.kind not in "iu" or ys_in.shape[0] != x.shape[0]:
            raise ValueError(f"SpeechTransformer: expected integer ys_in (N, U) with N = {x.shape[0]}, got "
                             f"{getattr(ys_in, 'dtype', None)} {tuple(getattr(ys_in, 'shape', ()))}")
        memory, pad = self.encode(x, lengths)
        logits = self.decode(ys_in, memory, pad)  # (N, U, V)
        if self.ctc is None:
            return logits
        ctc_log_probs, cache = F.log_softmax(self.ctc(memory))  # (N, S, V)
        self.push(cache)
        return logits, ctc_log_probs

    def backward(self, dout):
        """The forward read bottom-up; the memory collects gradient from every cross-attention (and the CTC head)."""
        if self.ctc is not None and not isinstance(dout, tuple):
            raise TypeError("SpeechTransformer.backward: the model has a CTC head, so it takes a tuple "
                            f"(dlogits, dctc_log_probs) (None for no CTC gradient), got {type(dout).__name__}")
        dlogits, dctc = (dout, None) if self.ctc is None else dout
        dg = self.dec_norm.backward(self.out.backward(dlogits))  # (N, U, D)
        dmemory = 0.0
        for layer in reversed(self.decoder):
            dg, dm = layer.backward(dg)  # (N, U, D), (N, S, D)
            dmemory = dmemory + dm  # every decoder layer read the same memory
        self.embed.backward(self.pos.backward(self.dec_drop.backward(dg)) * self.scale)  # ids: no gradient
        if self.ctc is not None:
            cache = self.pop()  # the CTC head's log-softmax
            if dctc is None:  # no CTC gradient (attention loss alone): drop the head's cache
                self.ctc.pop()
            else:
                dmemory = dmemory + self.ctc.backward(F.log_softmax_backward(dctc, cache))  # (N, S, D)
        dh = self.enc_norm.backward(dmemory)  # (N, S, D)
        for layer in reversed(self.encoder):
            dh = layer.backward(dh)
        ds = self.pos.backward(self.enc_drop.backward(dh)) * self.scale  # (N, S, D)
        return self.front.backward(ds)  # (N, T, D_in)
    # end-forward

    # -- decoding ---------------------------------------------------------------------------------
    def _step_log_probs(self, ys, memory, pad):
        """log P(next | ys, x) (B, V) for prefixes ys (B, t): the decoder re-run on the whole prefix."""
        logits = self.decode(ys, memory, pad)[:, -1]  # (B, V) only the last position is new
        return np.asarray(asnumpy(F.log_softmax(logits)[0]), dtype=np.float64)

    # start-greedy
    def greedy(self, x, lengths=None, *, max_len=None):
        """Batched greedy decoding: the most probable next character until <eos> (or ``max_len`` steps).
        Returns N lists of ids, <sos>/<eos> removed."""
        xp = get_array_module(x)
        was_training = self._eval_mode()
        with no_grad():
            memory, pad = self.encode(x, lengths)
            max_len = max_len or memory.shape[1]
            ys = np.full((x.shape[0], 1), self.sos_eos, dtype=np.int64)  # (N, 1) <sos>
            done = np.zeros(x.shape[0], dtype=bool)  # (N,)
            for _ in range(max_len):  # one character for every utterance per pass
                nxt = self._step_log_probs(xp.asarray(ys), memory, pad).argmax(axis=-1)  # (N,)
                nxt[done] = self.sos_eos  # finished rows only repeat <eos>
                ys = np.concatenate([ys, nxt[:, None]], axis=1)
                done |= nxt == self.sos_eos
                if done.all():
                    break
        self.train(was_training)
        return [_strip(row, self.sos_eos) for row in ys]
    # end-greedy

    # start-beam
    def beam_search(self, x, lengths=None, *, beam=4, max_len=None, length_penalty=1.0):
        """Beam search per utterance: keep the ``beam`` best prefixes by total log-probability; a prefix that
        emits <eos> is finished and the beam shrinks by one; the answer is the finished hypothesis with the
        best score / (length incl. <eos>)^length_penalty. beam=1 is greedy decoding. Returns N id lists."""
        if beam < 1:
            raise ValueError(f"SpeechTransformer.beam_search: beam must be >= 1, got {beam}")
        xp = get_array_module(x)
        was_training = self._eval_mode()
        out = []
        with no_grad():
            memory, pad = self.encode(x, lengths)
            S = (~asnumpy(pad)).sum(axis=1)  # (N,) valid encoder positions
            for n in range(x.shape[0]):  # one utterance at a time; its beam is the batch
                mem = memory[n:n + 1, :S[n]]  # (1, S_n, D) without padding
                out.append(self._beam_one(xp, mem, beam, max_len or mem.shape[1], length_penalty))
        self.train(was_training)
        return out

    def _beam_one(self, xp, mem, beam, max_len, alpha):
        live, scores, finished = np.full((1, 1), self.sos_eos, dtype=np.int64), np.zeros(1), []
        for _ in range(max_len):  # one character per pass
            B = len(live)
            logp = self._step_log_probs(xp.asarray(live), xp.broadcast_to(mem, (B,) + mem.shape[1:]), None)
            cand = (scores[:, None] + logp).reshape(-1)  # (B·V,) total log-probability of every extension
            best = np.argsort(-cand, kind="stable")[:beam - len(finished)]  # ties: the lowest index, as argmax
            rows, ks = best // self.vocab_size, best % self.vocab_size
            ext = np.concatenate([live[rows], ks[:, None]], axis=1)  # (B', t + 1)
            eos = ks == self.sos_eos
            finished += [(ext[i], cand[b]) for i, b in enumerate(best) if eos[i]]
            live, scores = ext[~eos], cand[best][~eos]
            if len(live) == 0:
                break
        hyps = finished or list(zip(live, scores))  # max_len reached: fall back on the unfinished prefixes
        seq, _ = max(hyps, key=lambda h: h[1] / (len(h[0]) - 1) ** alpha)
        return _strip(seq, self.sos_eos)
    # end-beam

    def _eval_mode(self):
        """Switch to eval mode for decoding; returns the mode to restore."""
        was = self.training
        self.eval()
        return was

    def config(self):
        return {"class": "SpeechTransformer", **self.cfg}


def _strip(row, sos_eos):
    """Ids after <sos> up to (not including) the first <eos>."""
    row = [int(k) for k in row[1:]]
    return row[:row.index(sos_eos)] if sos_eos in row else row
