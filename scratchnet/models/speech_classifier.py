"""Isolated spoken-digit classification: features → (bi)LSTM/GRU → last state or mean over time → linear.

Legend: N utterances, T frames, D feature dimensions, H hidden units, K directions, C classes.
Variable lengths are handled exactly: the recurrent layers mask positions past each utterance's
length, "last" takes the final state of every direction at the utterance's own length, and
"mean" averages the valid frames only. See chapters/15-lstm.md#fsdd.
"""
from __future__ import annotations

import numpy as np

from .._random import get_rng
from ..backend import asnumpy, get_array_module
from ..nn import GRU, LSTM, RNN, Dropout, Linear, Module

__all__ = ["SpeechClassifier", "bucketed_batches", "stack_frames", "spec_augment"]

_CELLS = {"rnn": RNN, "lstm": LSTM, "gru": GRU}


class SpeechClassifier(Module):
    """forward(x, lengths=None) → logits (N, C); ``x`` may also be the pair (x, lengths) (for ``fit``)."""

    def __init__(self, n_features, hidden_size=128, num_classes=10, *, cell="lstm", num_layers=1,
                 bidirectional=False, dropout=0.0, pool="last", head_dropout=0.0, rng=None, dtype=np.float32):
        super().__init__()
        if cell not in _CELLS or pool not in ("last", "mean"):
            raise ValueError(f"SpeechClassifier: cell must be one of {sorted(_CELLS)} and pool 'last' or "
                             f"'mean', got cell={cell!r}, pool={pool!r}")
        rng = get_rng(rng)
        self.cell, self.pool = cell, pool
        self.rnn = _CELLS[cell](n_features, hidden_size, num_layers, bidirectional=bidirectional,
                                dropout=dropout, rng=rng, dtype=dtype)
        K = 2 if bidirectional else 1
        self.drop = Dropout(head_dropout, rng=rng)  # on the pooled vector, in training only
        self.head = Linear(K * hidden_size, num_classes, rng=rng, dtype=dtype)

    def forward(self, x, lengths=None):
        if isinstance(x, (tuple, list)):
            x, lengths = x
        xp = get_array_module(x)
        N, T = x.shape[:2]
        out = self.rnn(x, lengths=lengths)
        K, L = self.rnn.num_directions, self.rnn.num_layers
        if self.pool == "last":  # the top layer's final state of each direction, side by side
            h_n = out[1]  # (L·K, N, H)
            feat = xp.concatenate([h_n[(L - 1) * K + d] for d in range(K)], axis=-1)  # (N, K·H)
            scale = None
        else:  # the mean of the valid frames
            counts = np.full(N, T) if lengths is None else np.maximum(asnumpy(lengths), 1)  # (N,) lengths on any device
            scale = xp.asarray((1.0 / counts).astype(x.dtype))[:, None]  # (N, 1)
            feat = out[0].sum(axis=1) * scale  # (N, K·H): padded frames are zero already
        self.push((N, T, scale, len(out) - 1, x.dtype))
        return self.head(self.drop(feat))  # (N, C)

    def backward(self, dlogits):
        N, T, scale, n_states, dtype = self.pop()
        dfeat = self.drop.backward(self.head.backward(dlogits))  # (N, K·H)
        xp = get_array_module(dfeat)
        K, L, H = self.rnn.num_directions, self.rnn.num_layers, self.rnn.hidden_size
        if scale is None:
            dh_n = xp.zeros((L * K, N, H), dtype=dtype)  # only the top layer's states were used
            for d in range(K):
                dh_n[(L - 1) * K + d] = dfeat[:, d * H:(d + 1) * H]
            return self.rnn.backward((None, dh_n) + (None,) * (n_states - 1))
        dy = xp.broadcast_to((dfeat * scale)[:, None, :], (N, T, K * H))  # the rnn zeroes padded frames
        return self.rnn.backward((xp.ascontiguousarray(dy),) + (None,) * n_states)

    def config(self):
        return {"class": "SpeechClassifier", "cell": self.cell, "pool": self.pool}


def bucketed_batches(features, lengths, labels, *, batch_size, rng=None, shuffle=True):
    """Batches ((x, lengths), y) of utterances of similar length, each cropped to its longest one.

    features: list of (T_i, D) arrays; sorting by length keeps padding (wasted recurrent steps)
    small, and the order of the batches is shuffled each call.
    """
    rng = get_rng(rng)
    lengths = np.asarray(lengths)
    order = np.argsort(lengths + (rng.random(len(lengths)) if shuffle else 0), kind="stable")  # ties broken randomly
    chunks = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    if shuffle:
        chunks = [chunks[i] for i in rng.permutation(len(chunks))]
    D = features[0].shape[1]
    for idx in chunks:  # pad each batch to its own longest utterance
        L = lengths[idx]
        x = np.zeros((len(idx), int(L.max()), D), dtype=features[0].dtype)  # (n, T_max, D)
        for row, i in enumerate(idx):
            x[row, :lengths[i]] = features[i]
        yield (x, L), labels[idx]


def stack_frames(feats, k=2):
    """Concatenate every ``k`` consecutive frames: (T, D) → (⌈T/k⌉, k·D), the last group zero-padded.

    The recurrent layers then take k times fewer steps (a 20 ms hop instead of 10 ms for k = 2)
    while every frame is still seen.
    """
    T, D = feats.shape
    Tk = -(-T // k)  # ⌈T / k⌉
    out = np.zeros((Tk * k, D), dtype=feats.dtype)  # (Tk·k, D)
    out[:T] = feats
    return out.reshape(Tk, k * D)


def spec_augment(x, lengths, *, rng=None, bands=40, freq_masks=2, freq_width=6, time_masks=2, time_width=0.1):
    """SpecAugment's masking (Park et al. 2019) on a padded batch of (stacked) log-mel features.

    x (N, T, D) with D a multiple of ``bands`` (stacked frames repeat the bands): ``freq_masks``
    bands ranges of width ≤ ``freq_width`` and ``time_masks`` step ranges of length ≤ ``time_width``
    of each utterance's length are set to zero (the per-utterance mean). Returns a new array.
    """
    rng = get_rng(rng)
    x = np.array(x, copy=True)
    N, T, D = x.shape
    band = np.arange(D) % bands  # (D,) the mel band of each column
    for n in range(N):  # independent masks per utterance
        for _ in range(freq_masks):
            w = int(rng.integers(0, freq_width + 1))
            f0 = int(rng.integers(0, bands - w + 1))
            x[n, :, (band >= f0) & (band < f0 + w)] = 0.0
        L = int(lengths[n])
        for _ in range(time_masks):
            w = int(rng.integers(0, int(time_width * L) + 1))
            t0 = int(rng.integers(0, max(L - w, 0) + 1))
            x[n, t0:t0 + w] = 0.0
    return x
