"""Deep Speech (Hannun et al. 2014, "Deep Speech: Scaling up end-to-end speech recognition"):
context frames → three clipped-ReLU layers → a bidirectional recurrent layer whose two directions
are summed → a clipped-ReLU layer → per-frame log-probabilities, trained with CTC.

Legend: N batch, T frames, D features per frame, K = 2·context + 1 stacked frames, H hidden units,
C classes (the blank included).
Departures from the paper, all documented in chapters/18-deep-speech.md#departures: the recurrent
layer uses a ReLU without the clip at 20 and separate input weights per direction (PyTorch's
bidirectional RNN layout; the paper shares W⁽⁴⁾ between directions); an optional time ``stride``
(from Deep Speech 2) shortens the sequence the recurrent layer runs over.
"""
from __future__ import annotations

import numpy as np

from .. import functional as F
from .._random import get_rng
from ..backend import asnumpy, get_array_module
from ..nn.layers import Dropout, Linear
from ..nn.module import Module
from ..nn.recurrent import RNN

__all__ = ["DeepSpeech", "ClippedReLU", "ContextWindow", "context_output_lengths"]


class ClippedReLU(Module):
    """g(z) = min(max(z, 0), clip), the paper's activation. Backward: dz = dy · [0 < z < clip]."""

    def __init__(self, clip=20.0):
        super().__init__()
        self.clip = float(clip)

    def forward(self, z):
        xp = get_array_module(z)
        active = (z > 0) & (z < self.clip)  # (...) where the gradient flows
        self.push(active)
        return xp.clip(z, 0.0, self.clip)

    def backward(self, dy):
        return dy * self.pop()

    def extra_repr(self):
        return f"clip={self.clip}"


def context_output_lengths(lengths, stride):
    """Frames left after striding: ceil(T_n / stride), on the lengths' device."""
    return (get_array_module(lengths).asarray(lengths) + stride - 1) // stride


class ContextWindow(Module):
    """Stack each frame with ``context`` neighbours on either side (zeros past the edges), keeping
    every ``stride``-th frame: (N, T, D) → (N, ceil(T/stride), K·D), K = 2·context + 1.

    y[n, t, j·D:(j+1)·D] = x_pad[n, t·stride + j]. Backward: each slice adds back into its frame.
    """

    def __init__(self, context=5, stride=1):
        super().__init__()
        self.context, self.stride = int(context), int(stride)

    def forward(self, x):
        xp = get_array_module(x)
        N, T, D = x.shape
        c, s = self.context, self.stride
        xpad = xp.concatenate([xp.zeros((N, c, D), x.dtype), x, xp.zeros((N, c, D), x.dtype)], axis=1)  # (N, T+2c, D)
        T_out = (T + s - 1) // s
        starts = xp.arange(T_out) * s  # (T_out,) first padded frame of each window
        y = xp.concatenate([xpad[:, starts + j] for j in range(2 * c + 1)], axis=2)  # (N, T_out, K·D)
        self.push((x.shape, starts))
        return y

    def backward(self, dy):
        (N, T, D), starts = self.pop()
        xp = get_array_module(dy)
        c = self.context
        dxpad = xp.zeros((N, T + 2 * c, D), dtype=dy.dtype)  # (N, T+2c, D)
        for j in range(2 * c + 1):  # each window offset adds its slice back (starts are distinct)
            dxpad[:, starts + j] += dy[:, :, j * D:(j + 1) * D]
        return dxpad[:, c:c + T]

    def extra_repr(self):
        return f"context={self.context}, stride={self.stride}"


class DeepSpeech(Module):
    """forward(x, lengths) → log_probs (N, T', C) with T' = ceil(T / stride);
    ``output_lengths(lengths)`` gives the CTC input lengths. backward(dlog_probs) → dx (N, T, D)."""

    def __init__(self, n_features, n_classes, *, context=5, hidden=256, rnn_hidden=None, stride=1,
                 clip=20.0, dropout=0.05, rng=None, dtype=np.float32):
        super().__init__()
        rng = get_rng(rng)
        H, Hr = hidden, rnn_hidden or hidden
        self.config_ = dict(n_features=n_features, n_classes=n_classes, context=context, hidden=hidden,
                            rnn_hidden=Hr, stride=stride, clip=clip, dropout=dropout)
        self.window = ContextWindow(context, stride)
        dims = [(2 * context + 1) * n_features, H, H, H]
        self.fc = [Linear(a, b, rng=rng, dtype=dtype) for a, b in zip(dims[:-1], dims[1:])]  # layers 1–3
        self.act = [ClippedReLU(clip) for _ in range(4)]  # after layers 1, 2, 3 and 5
        self.drop = [Dropout(dropout, rng=rng) for _ in range(4)]
        self.rnn = RNN(H, Hr, nonlinearity="relu", bidirectional=True, rng=rng, dtype=dtype)  # layer 4
        self.fc5 = Linear(Hr, H, rng=rng, dtype=dtype)
        self.out = Linear(H, n_classes, rng=rng, dtype=dtype)  # layer 6, then log-softmax

    def output_lengths(self, lengths):
        return context_output_lengths(lengths, self.window.stride)

    def forward(self, x, lengths=None):
        xp = get_array_module(x)
        lengths = np.full(x.shape[0], x.shape[1]) if lengths is None else asnumpy(lengths)  # (N,) on the host
        h = self.window(x)  # (N, T', K·D)
        for fc, act, drop in zip(self.fc, self.act, self.drop):  # layers 1–3
            h = drop(act(fc(h)))
        y, _ = self.rnn(h, lengths=xp.asarray(self.output_lengths(lengths)))  # (N, T', 2·Hr)
        Hr = self.rnn.hidden_size
        h4 = y[..., :Hr] + y[..., Hr:]  # forward + backward direction
        h5 = self.drop[3](self.act[3](self.fc5(h4)))  # (N, T', H)
        log_probs, cache = F.log_softmax(self.out(h5))  # (N, T', C)
        self.push(cache)
        return log_probs

    def backward(self, dlog_probs):
        xp = get_array_module(dlog_probs)
        dh5 = self.out.backward(F.log_softmax_backward(dlog_probs, self.pop()))
        dh4 = self.fc5.backward(self.act[3].backward(self.drop[3].backward(dh5)))
        dh = self.rnn.backward(xp.concatenate([dh4, dh4], axis=-1))  # the sum copies dh4 to both halves
        for fc, act, drop in zip(reversed(self.fc), reversed(self.act[:3]), reversed(self.drop[:3])):
            dh = fc.backward(act.backward(drop.backward(dh)))
        return self.window.backward(dh)

    def config(self):
        return {"class": type(self).__name__, **self.config_}
