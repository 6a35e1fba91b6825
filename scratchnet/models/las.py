"""Listen, Attend and Spell (Chan, Jaitly, Le & Vinyals 2016): a pyramidal BiLSTM listener, an
attention LSTM speller, teacher forcing or scheduled sampling, greedy and beam-search decoding.

Legend: N batch, T frames, D features per frame, Hl listener units per direction, L pyramid levels,
U = ⌊T/2^L⌋ listener positions, Dv = 2·Hl annotation width, S output steps, E embedding width,
Hs speller units, A attention width, V output classes (``EOS`` and the characters).
    listener: h = pBLSTM^L(BLSTM(x))                                (N, U, Dv)
    speller step i: s_i, c'_i = LSTM([emb(y_{i−1}); c_{i−1}], s_{i−1})  (input feeding)
                    c_i, α_i = attention(s_i, h[, α_{i−1}])          (content or location-aware)
                    logits_i = W_y tanh(W_o [s_i; c_i] + b_o) + b_y     (N, V)
See chapters/24-las.md.
"""
from __future__ import annotations

import numpy as np

from .. import functional as F
from .._random import get_rng
from ..backend import asnumpy, get_array_module
from ..nn import init
from ..nn.attention import AdditiveAttention
from ..nn.layers import Embedding, Linear, Tanh
from ..nn.module import Module, Parameter, no_grad
from ..nn.recurrent import LSTM

__all__ = ["LAS", "Listener", "Speller", "LocationAttention", "EOS", "PAD", "las_targets", "las_text"]

EOS = 0  # <eos> ends every transcript and, fed as the first input, starts it (<sos>)
PAD = -100  # target padding: the loss ignores it (cross_entropy's ignore_index)


def las_targets(texts, vocab):
    """Targets (N, S_max + 1) int64: each transcript's ids, then ``EOS``, padded with ``PAD``."""
    seqs = [vocab.encode(t) + [EOS] for t in texts]
    out = np.full((len(seqs), max(len(s) for s in seqs)), PAD, dtype=np.int64)  # (N, S)
    for n, s in enumerate(seqs):  # one row per transcript
        out[n, :len(s)] = s
    return out


def las_text(ids, vocab):
    """Ids → text, cut at the first ``EOS``."""
    ids = [int(i) for i in ids]
    return vocab.decode(ids[:ids.index(EOS)] if EOS in ids else ids)


class LocationAttention(Module):
    """Chorowski et al.'s location-aware attention: wq (Dq, A), wk (Dk, A), filters (K, r), wf (K, A), v (A,).
    forward(query, keys, values, prev_alpha, mask) → (context, α); backward → dquery, dkeys, dvalues, dprev_alpha."""

    def __init__(self, query_dim, key_dim, attn_dim, *, n_filters=8, width=5, rng=None, dtype=np.float32):
        super().__init__()
        rng = get_rng(rng)
        self.wq = Parameter(init.glorot_uniform((query_dim, attn_dim), rng=rng, dtype=dtype))
        self.wk = Parameter(init.glorot_uniform((key_dim, attn_dim), rng=rng, dtype=dtype))
        self.filters = Parameter(init.uniform((n_filters, width), -0.5, 0.5, rng=rng, dtype=dtype))
        self.wf = Parameter(init.glorot_uniform((n_filters, attn_dim), rng=rng, dtype=dtype))
        self.v = Parameter(init.uniform((attn_dim,), -attn_dim ** -0.5, attn_dim ** -0.5, rng=rng, dtype=dtype))

    def forward(self, query, keys, values, prev_alpha, *, mask=None):
        out, cache = F.location_attention(query, keys, values, prev_alpha, self.wq.data, self.wk.data,
                                          self.filters.data, self.wf.data, self.v.data, mask=mask)
        self.push(cache)
        return out

    def backward(self, dout):
        dq, dk, dvals, dprev, *grads = F.location_attention_backward(dout, self.pop())
        for p, g in zip((self.wq, self.wk, self.filters, self.wf, self.v), grads):
            p.grad += g
        return dq, dk, dvals, dprev


# start-listener
class Listener(Module):
    """A BiLSTM over the frames, then ``levels`` pyramidal BiLSTMs, each on pairs of frames.
    forward(x (N, T, D), lengths) → (h (N, ⌊T/2^L⌋, 2·Hl), lengths after the reductions)."""

    def __init__(self, n_features, hidden, levels=3, *, rng=None, dtype=np.float32):
        super().__init__()
        rng = get_rng(rng)
        self.levels = levels
        self.bottom = LSTM(n_features, hidden, bidirectional=True, rng=rng, dtype=dtype)
        self.pyramid = [LSTM(4 * hidden, hidden, bidirectional=True, rng=rng, dtype=dtype) for _ in range(levels)]

    def forward(self, x, lengths):
        xp = get_array_module(x)
        lengths = asnumpy(lengths)  # (N,) on the host, wherever the batch is
        if x.ndim != 3 or lengths.shape != (x.shape[0],) or (F.pyramid_lengths(lengths, self.levels) < 1).any():
            raise ValueError(f"Listener: expected x (N, T, D) and lengths (N,) of at least 2^levels = "
                             f"{2 ** self.levels} frames, got x {tuple(x.shape)}, lengths {lengths.tolist()}")
        h = self.bottom(x, lengths=xp.asarray(lengths))[0]  # (N, T, 2Hl) at the frame rate
        caches = []
        for blstm in self.pyramid:  # halve the time axis, then a BiLSTM over the pairs
            h, cache = F.pyramid_concat(h)  # (N, T/2, 4Hl)
            lengths = F.pyramid_lengths(lengths)
            h = blstm(h, lengths=xp.asarray(lengths))[0]  # (N, T/2, 2Hl)
            caches.append(cache)
        self.push(caches)
        return h, lengths

    def backward(self, dh):
        caches = self.pop()
        for blstm, cache in zip(reversed(self.pyramid), reversed(caches)):  # the levels in reverse
            dpairs = blstm.backward(dh)  # (N, T/2, 4Hl)
            dh = F.pyramid_concat_backward(dpairs, cache)  # (N, T, 2Hl) each half back to its frame
        return self.bottom.backward(dh)  # (N, T, D)
# end-listener


# start-speller
class Speller(Module):
    """The attention decoder. ``step(prev_ids, state, keys, mask)`` → (logits (N, V), new state) with
    state = (s, cell, c, α); ``step_backward(dlogits, dstate)`` walks one step back, returning
    (dstate of the step before, dkeys)."""

    def __init__(self, vocab_size, key_dim, hidden, *, embed_dim=32, attn_dim=64, attention="content",
                 n_filters=8, width=5, rng=None, dtype=np.float32):
        super().__init__()
        if attention not in ("content", "location"):
            raise ValueError(f"Speller: attention must be 'content' or 'location', got {attention!r}")
        rng = get_rng(rng)
        self.hidden, self.embed_dim, self.location = hidden, embed_dim, attention == "location"
        self.embed = Embedding(vocab_size, embed_dim, rng=rng, dtype=dtype)
        bound = hidden ** -0.5
        self.wx = Parameter(init.uniform((embed_dim + key_dim, 4 * hidden), -bound, bound, rng=rng, dtype=dtype))
        self.wh = Parameter(init.uniform((hidden, 4 * hidden), -bound, bound, rng=rng, dtype=dtype))
        self.b = Parameter(init.uniform((4 * hidden,), -bound, bound, rng=rng, dtype=dtype))
        if self.location:
            self.attn = LocationAttention(hidden, key_dim, attn_dim, n_filters=n_filters, width=width, rng=rng,
                                          dtype=dtype)
        else:
            self.attn = AdditiveAttention(hidden, key_dim, attn_dim, rng=rng, dtype=dtype)
        self.proj, self.act = Linear(hidden + key_dim, hidden, rng=rng, dtype=dtype), Tanh()
        self.out = Linear(hidden, vocab_size, rng=rng, dtype=dtype)

    def init_state(self, keys, mask):
        """Zero s, cell and context; α_0 uniform over each sequence's positions (location attention reads it)."""
        xp = get_array_module(keys)
        N, U, Dv = keys.shape
        zeros = xp.zeros((N, self.hidden), dtype=keys.dtype)  # (N, Hs)
        alpha = mask / mask.sum(axis=1, keepdims=True)  # (N, U)
        return zeros, zeros.copy(), xp.zeros((N, Dv), dtype=keys.dtype), alpha.astype(keys.dtype)

    def step(self, prev_ids, state, keys, mask):
        xp = get_array_module(keys)
        s, cell, context, alpha = state
        e = self.embed(xp.asarray(prev_ids))  # (N, E) the previous character
        z = xp.concatenate([e, context], axis=1)  # (N, E + Dv) input feeding: the last context too
        (s, cell), lstm_cache = F.lstm_step(z, s, cell, self.wx.data, self.wh.data, self.b.data)  # (N, Hs) each
        if self.location:
            context, alpha = self.attn(s, keys, keys, alpha, mask=mask)  # (N, Dv), (N, U)
        else:
            context, alpha = self.attn(s, keys, keys, mask=mask)
        o = xp.concatenate([s, context], axis=1)  # (N, Hs + Dv)
        logits = self.out(self.act(self.proj(o)))  # (N, V) the character distribution's MLP
        self.push(lstm_cache)
        return logits, (s, cell, context, alpha)

    def step_backward(self, dlogits, dstate):
        """dstate = (ds, dcell, dc, dα) reaching this step's outputs from the next step (None = zeros)."""
        ds_next, dcell_next, dcontext_next, dalpha_next = dstate
        lstm_cache = self.pop()
        H = self.hidden
        do = self.proj.backward(self.act.backward(self.out.backward(dlogits)))  # (N, Hs + Dv)
        ds, dcontext = do[:, :H], do[:, H:]  # the concatenation splits its gradient
        if dcontext_next is not None:
            dcontext = dcontext + dcontext_next  # the context was also the next step's input
        grads = self.attn.backward((dcontext, dalpha_next))  # α_i fed step i+1 only with location attention
        dq, dkeys, dvalues = grads[:3]
        ds = ds + dq if ds_next is None else ds + dq + ds_next  # s_i: output MLP, query, next step's LSTM
        dz, ds_prev, dcell_prev, dwx, dwh, db = F.lstm_step_backward((ds, dcell_next), lstm_cache)
        self.wx.grad += dwx
        self.wh.grad += dwh
        self.b.grad += db
        self.embed.backward(dz[:, :self.embed_dim])  # (N, E) the previous character's row
        dcontext_prev = dz[:, self.embed_dim:]  # (N, Dv) into the previous step's context
        dalpha_prev = grads[3] if self.location else None
        return (ds_prev, dcell_prev, dcontext_prev, dalpha_prev), dkeys + dvalues  # keys served as values too
# end-speller


class LAS(Module):
    """forward(x (N, T, D), lengths (N,), targets (N, S)) → logits (N, S, V); targets end in ``EOS``
    and are padded with ``PAD``. The decoder reads ``EOS`` then targets[:, :-1] (teacher forcing); while
    training, each input is replaced by a character sampled from the model's own previous output with
    probability ``sampling_prob`` (scheduled sampling). backward(dlogits) → dx."""

    def __init__(self, n_features, vocab_size, *, listener_hidden=64, levels=3, speller_hidden=128, embed_dim=32,
                 attn_dim=64, attention="content", n_filters=8, width=5, sampling_prob=0.0, rng=None,
                 dtype=np.float32):
        super().__init__()
        rng = get_rng(rng)
        self.config_ = dict(n_features=n_features, vocab_size=vocab_size, listener_hidden=listener_hidden,
                            levels=levels, speller_hidden=speller_hidden, embed_dim=embed_dim, attn_dim=attn_dim,
                            attention=attention, n_filters=n_filters, width=width, sampling_prob=sampling_prob)
        self.listener = Listener(n_features, listener_hidden, levels, rng=rng, dtype=dtype)
        self.speller = Speller(vocab_size, 2 * listener_hidden, speller_hidden, embed_dim=embed_dim,
                               attn_dim=attn_dim, attention=attention, n_filters=n_filters, width=width, rng=rng,
                               dtype=dtype)
        self.sampling_prob = sampling_prob
        self.rng = np.random.default_rng(rng.integers(2**63))  # scheduled-sampling draws

    def listen(self, x, lengths):
        """Listener output h (N, U, Dv) and its keep-mask (N, U)."""
        xp = get_array_module(x)
        h, out_len = self.listener(x, lengths)
        return h, xp.arange(h.shape[1])[None, :] < xp.asarray(out_len)[:, None]

    # start-las-forward
    def forward(self, x, lengths, targets, *, sampling_prob=None):
        xp = get_array_module(x)
        p = self.sampling_prob if sampling_prob is None else sampling_prob
        if targets.ndim != 2 or targets.shape[0] != x.shape[0] or targets.dtype.kind not in "iu":
            raise ValueError(f"LAS: expected integer targets (N, S) with N = {x.shape[0]}, got "
                             f"{targets.dtype} {tuple(targets.shape)}")
        h, mask = self.listen(x, lengths)  # (N, U, Dv), (N, U)
        state = self.speller.init_state(h, mask)
        prev = xp.full(x.shape[0], EOS, dtype=np.int64)  # (N,) <sos>
        logits = []
        for i in range(targets.shape[1]):  # one speller step per output character
            logit, state = self.speller.step(prev, state, h, mask)  # (N, V)
            logits.append(logit)
            prev = xp.where(targets[:, i] == PAD, EOS, targets[:, i])  # teacher forcing
            if self.training and p > 0:  # scheduled sampling: sometimes feed the model's own guess
                probs = F.softmax(logit)[0]  # (N, V)
                guess = (probs.cumsum(axis=1) < xp.asarray(self.rng.random((len(prev), 1)))).sum(axis=1)
                own = xp.asarray(self.rng.random(len(prev)) < p)  # (N,)
                prev = xp.where(own, xp.minimum(guess, probs.shape[1] - 1), prev)  # no gradient through the draw
        self.push(h.shape)
        return xp.stack(logits, axis=1)  # (N, S, V)

    def backward(self, dlogits):
        h_shape = self.pop()
        xp = get_array_module(dlogits)
        dh = xp.zeros(h_shape, dtype=dlogits.dtype)  # (N, U, Dv) every step read all of h
        dstate = (None, None, None, None)  # nothing reaches past the last step
        for i in reversed(range(dlogits.shape[1])):  # the speller steps in reverse
            dstate, dkeys = self.speller.step_backward(dlogits[:, i], dstate)
            dh += dkeys
        return self.listener.backward(dh)  # (N, T, D)
    # end-las-forward

    # start-decode
    def greedy_decode(self, x, lengths, *, max_len=20, return_attention=False):
        """The most probable character at every step, fed back, until ``EOS``: a list of N id lists
        (and the attention maps (S_n, U_n) when asked)."""
        with no_grad():
            h, mask = self.listen(x, lengths)
            state = self.speller.init_state(h, mask)
            prev = np.full(x.shape[0], EOS, dtype=np.int64)  # (N,)
            done = np.zeros(x.shape[0], dtype=bool)  # (N,) rows that have emitted EOS
            ids, alphas = [], []
            for _ in range(max_len):  # until every row has ended
                logit, state = self.speller.step(prev, state, h, mask)
                prev = asnumpy(logit.argmax(axis=1))  # (N,) the first of equal scores, as the beam
                ids.append(prev)
                alphas.append(asnumpy(state[3]))
                done |= prev == EOS
                if done.all():
                    break
        ids, alphas = np.stack(ids, axis=1), np.stack(alphas, axis=1)  # (N, S), (N, S, U)
        out = [list(row[:list(row).index(EOS)]) if EOS in row else list(row) for row in ids]
        if not return_attention:
            return out
        n_valid = asnumpy(mask).sum(axis=1)
        return out, [alphas[n, :len(o) + 1, :n_valid[n]] for n, o in enumerate(out)]

    def beam_search(self, x, lengths, *, beam_width=4, max_len=20, length_norm=1.0):
        """Beam search per utterance; a hypothesis ends when it emits ``EOS`` and is ranked by
        log P / |y|^length_norm (|y| counts the ``EOS``). Beam width 1 is greedy decoding."""
        with no_grad():
            h, mask = self.listen(x, lengths)
            return [self._beam_one(h[n:n + 1], mask[n:n + 1], beam_width, max_len, length_norm)
                    for n in range(x.shape[0])]

    def _beam_one(self, h, mask, beam, max_len, alpha):
        state = self.speller.init_state(h, mask)  # one row: the single empty hypothesis
        seqs, scores, finished = [[]], np.zeros(1), []
        for _ in range(max_len):
            rows = np.zeros(len(seqs), dtype=np.int64)  # every hypothesis reads the same utterance
            prev = np.array([s[-1] if s else EOS for s in seqs], dtype=np.int64)
            logit, state = self.speller.step(prev, state, h[rows], mask[rows])
            cand = scores[:, None] + asnumpy(F.log_softmax(logit)[0]).astype(np.float64)  # (B, V)
            V = cand.shape[1]
            keep, new_seqs, new_scores = [], [], []
            for k in np.argsort(-cand.ravel(), kind="stable")[:beam]:  # the best `beam` extensions
                i, c = divmod(int(k), V)
                if c == EOS:  # a finished hypothesis, ranked by its length-normalised score
                    finished.append((cand[i, c] / (len(seqs[i]) + 1) ** alpha, seqs[i]))
                else:
                    keep.append(i)
                    new_seqs.append(seqs[i] + [c])
                    new_scores.append(cand[i, c])
            if len(finished) >= beam or not new_seqs:
                break
            state = tuple(s[np.array(keep)] for s in state)
            seqs, scores = new_seqs, np.array(new_scores)
        if not finished:  # nothing ended within max_len: rank the live hypotheses
            finished = [(sc / len(s) ** alpha, s) for sc, s in zip(scores, seqs)]
        return max(finished, key=lambda f: f[0])[1]  # the first of equal scores
    # end-decode

    def config(self):
        return {"class": type(self).__name__, **self.config_}
