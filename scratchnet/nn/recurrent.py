"""Recurrent layers ``RNN``, ``LSTM`` and ``GRU``: stacks of layers, optionally bidirectional.

Legend: N batch, T time, D input features, H hidden units, L layers, K directions (1 or 2).
Inputs are batch-first (N, T, D); outputs y (N, T, K·H); final states (L·K, N, H) in PyTorch's
layout (index = layer·K + direction). Weights per layer and direction follow the functional layout
(``weight_ih`` (D_in, G·H), ``weight_hh`` (H, G·H)); ``scratchnet.testing`` transposes them for PyTorch.
See chapters/14-rnn-bptt.md#stacks.
"""
from __future__ import annotations

import math

import numpy as np

from .. import functional as F
from .._checks import check_grad
from .._random import get_rng
from ..backend import asnumpy, get_array_module
from . import init
from .module import Module, Parameter

__all__ = ["RNN", "LSTM", "GRU", "hidden_jacobian_norms"]


class _RecurrentBase(Module):
    """The stack walk shared by RNN, LSTM and GRU. Subclasses set ``_gates``, ``_biases``, ``_states``
    and ``_fn``/``_bwd`` (the functional pair)."""
    _gates, _biases, _states = 1, ("bias",), 1
    _fn = _bwd = None

    def __init__(self, input_size, hidden_size, num_layers=1, *, bidirectional=False, dropout=0.0,
                 stateful=False, rng=None, dtype=np.float32):
        super().__init__()
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"{type(self).__name__}: dropout must be in [0, 1), got {dropout}")
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bidirectional, self.dropout, self.stateful = bidirectional, dropout, stateful
        self.num_directions = 2 if bidirectional else 1
        rng = get_rng(rng)
        self.rng = np.random.default_rng(rng.integers(2**63))  # inter-layer dropout masks
        bound = 1.0 / math.sqrt(hidden_size)  # PyTorch's U(±1/√H) for every weight and bias
        GH = self._gates * hidden_size
        self._cells = []  # per (layer, direction): the list of Parameters in functional order
        for layer in range(num_layers):
            d_in = input_size if layer == 0 else hidden_size * self.num_directions
            for sfx in ("", "_reverse")[:self.num_directions]:
                shapes = [("weight_ih", (d_in, GH)), ("weight_hh", (hidden_size, GH))]
                shapes += [(name, (GH,)) for name in self._biases]
                cell = []
                for name, shape in shapes:
                    p = Parameter(init.uniform(shape, -bound, bound, rng=rng, dtype=dtype))
                    setattr(self, f"{name}_l{layer}{sfx}", p)
                    cell.append(p)
                self._cells.append(cell)
        self.state = None  # carried final states when stateful (truncated BPTT)

    def reset_state(self):
        """Forget the carried state (stateful mode): the next forward starts from zeros."""
        self.state = None

    def _split_states(self, states, N):
        """Per-(layer, direction) initial states from (L·K, N, H) arrays (None → zeros)."""
        LK = self.num_layers * self.num_directions
        for s in states:
            if s is not None and tuple(s.shape) != (LK, N, self.hidden_size):
                raise ValueError(f"{type(self).__name__}: expected initial state of shape (L·K, N, H) = "
                                 f"({LK}, {N}, {self.hidden_size}), got {tuple(s.shape)}")
        return [tuple(None if s is None else s[j] for s in states) for j in range(LK)]

    def _run(self, x, states, lengths):
        """Forward through the stack; returns (y, final states tuple) and pushes one cache."""
        name = type(self).__name__
        if getattr(x, "ndim", None) != 3 or x.shape[2] != self.input_size:
            raise ValueError(f"{name}: expected input (N, T, {self.input_size}), "
                             f"got shape {tuple(getattr(x, 'shape', ()))}")
        xp = get_array_module(x)
        N, K = x.shape[0], self.num_directions
        given = any(s is not None for s in states)
        if self.stateful and not given and self.state is not None and self.state[0].shape[1] == N:
            states = self.state
        init_states = self._split_states(states, N)
        caches, finals, inp = [], [], x
        for layer in range(self.num_layers):
            outs = []
            for d in range(K):  # the reverse direction reads each sequence's valid part backwards
                j = layer * K + d
                xin, rev = F.reverse_padded(inp, lengths) if d else (inp, None)
                params = [p.data for p in self._cells[j]]
                out, cache = type(self)._fn(xin, *init_states[j], *params, lengths=lengths, **self._opts())
                y_d = out[0] if not d else F.reverse_padded_backward(out[0], rev)
                outs.append(y_d)
                finals.append(out[1:])
                caches.append((cache, rev))
            inp = outs[0] if K == 1 else xp.concatenate(outs, axis=-1)  # (N, T, K·H)
            drop = None
            if self.dropout and self.training and layer < self.num_layers - 1:
                inp, drop = F.dropout(inp, p=self.dropout, rng=self.rng)
            caches.append(drop)
        final = tuple(xp.stack([f[k] for f in finals]) for k in range(self._states))  # (L·K, N, H) each
        if self.stateful:
            self.state = tuple(s.copy() for s in final)  # detached: no gradient flows into the past
        self.push((caches, given and not self.stateful, lengths, tuple(inp.shape), inp.dtype))
        return (inp,) + final

    def backward(self, grads):
        """Gradient of the input from (dy, dh_n[, dc_n]) (None = zeros), walking the stack in reverse.

        Returns dx, or (dx, dh0[, dc0]) when forward was given initial states.
        """
        caches, given, lengths, y_shape, dtype = self.pop()
        grads = tuple(grads) if isinstance(grads, (tuple, list)) else (grads,)
        K, H = self.num_directions, self.hidden_size
        self._check_upstream(grads, y_shape, dtype)  # the slices below would hide a wrong width
        dy, dstates = grads[0], (tuple(grads[1:]) + (None,) * self._states)[:self._states]
        dinit = [[None] * (self.num_layers * K) for _ in range(self._states)]
        for layer in reversed(range(self.num_layers)):
            drop = caches[layer * (K + 1) + K]
            if drop is not None and dy is not None:
                dy = F.dropout_backward(dy, drop)
            dx = None
            for d in range(K):
                j = layer * K + d
                cache, rev = caches[layer * (K + 1) + d]
                dy_d = None if dy is None else dy[..., d * H:(d + 1) * H]
                if d and dy_d is not None:
                    dy_d = F.reverse_padded_backward(dy_d, rev)
                dfinal = tuple(None if s is None else s[j] for s in dstates)
                g = type(self)._bwd((dy_d,) + dfinal, cache)
                dx_d = g[0] if not d else F.reverse_padded_backward(g[0], rev)
                dx = dx_d if dx is None else dx + dx_d
                for k in range(self._states):
                    dinit[k][j] = g[1 + k]
                for p, dp in zip(self._cells[j], g[1 + self._states:]):
                    p.grad += dp
            dy = dx
        if not given:
            return dy
        xp = get_array_module(dy)
        return (dy,) + tuple(xp.stack(ds) if ds[0] is not None else None for ds in dinit)

    def _check_upstream(self, grads, y_shape, dtype):
        """Check dy (N, T, K·H) and the final-state gradients (L·K, N, H) against the forward's outputs."""
        op = f"{type(self).__name__}.backward"
        names = ("dy", "dh_n", "dc_n")[:1 + self._states]
        if len(grads) > len(names):
            raise ValueError(f"{op}: expected at most {len(names)} upstream gradients ({', '.join(names)}), "
                             f"got {len(grads)}")
        state_shape = (self.num_layers * self.num_directions, y_shape[0], self.hidden_size)
        for name, g in zip(names, grads):
            if g is not None:
                check_grad(op, name, g, y_shape if name == "dy" else state_shape, dtype)

    def _opts(self):
        return {}

    def extra_repr(self):
        return (f"{self.input_size}, {self.hidden_size}, num_layers={self.num_layers}, "
                f"bidirectional={self.bidirectional}, dropout={self.dropout}")


class RNN(_RecurrentBase):
    """Elman RNN stack: h_t = f(x_t W_ih + h_{t−1} W_hh + b), f = tanh or relu. forward → (y, h_n)."""
    _fn, _bwd = staticmethod(F.rnn), staticmethod(F.rnn_backward)

    def __init__(self, input_size, hidden_size, num_layers=1, *, nonlinearity="tanh", **kw):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNN: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        super().__init__(input_size, hidden_size, num_layers, **kw)

    def forward(self, x, h0=None, lengths=None):
        return self._run(x, (h0,), lengths)

    def _opts(self):
        return {"nonlinearity": self.nonlinearity}


class LSTM(_RecurrentBase):
    """LSTM stack (gates i, f, g, o). forward(x, h0=None, c0=None, lengths=None) → (y, h_n, c_n);
    h0 may also be the pair (h0, c0) as in PyTorch."""
    _gates, _states = 4, 2
    _fn, _bwd = staticmethod(F.lstm), staticmethod(F.lstm_backward)

    def forward(self, x, h0=None, c0=None, lengths=None):
        if isinstance(h0, (tuple, list)):
            h0, c0 = h0
        return self._run(x, (h0, c0), lengths)


class GRU(_RecurrentBase):
    """GRU stack (gates r, z, n; PyTorch's form with separate input and hidden biases). → (y, h_n)."""
    _gates, _biases = 3, ("bias_ih", "bias_hh")
    _fn, _bwd = staticmethod(F.gru), staticmethod(F.gru_backward)

    def forward(self, x, h0=None, lengths=None):
        return self._run(x, (h0,), lengths)


_STEPS = {RNN: (F.rnn_step, F.rnn_step_backward), LSTM: (F.lstm_step, F.lstm_step_backward),
          GRU: (F.gru_step, F.gru_step_backward)}


def hidden_jacobian_norms(module, x, *, ord=2):
    """‖∂h_{T−1}/∂h_t‖ for t = 0 … T−1, averaged over the batch, for a one-layer unidirectional module.

    x (N, T, D) → (T,) NumPy array. The Jacobian's rows come from the backward pass itself: each
    sequence is copied H times, the copy k starts the backward walk from the unit vector e_k as
    dh_{T−1}, and the step backward returns dh_t = e_kᵀ ∂h_{T−1}/∂h_t at every t (for the LSTM,
    with the cell state held fixed). ``ord`` is the matrix norm (2: spectral, "fro": Frobenius).
    See chapters/14-rnn-bptt.md#vanishing.
    """
    if module.num_layers != 1 or module.bidirectional:
        raise ValueError("hidden_jacobian_norms: needs a one-layer unidirectional RNN/LSTM/GRU")
    step, step_backward = _STEPS[type(module)]
    xp = get_array_module(x)
    N, T, D = x.shape
    H = module.hidden_size
    xs = xp.repeat(x, H, axis=0)  # (N·H, T, D): H copies of every sequence
    params = [p.data for p in module._cells[0]]
    opts = module._opts()
    states = tuple(xp.zeros((N * H, H), dtype=x.dtype) for _ in range(module._states))  # (N·H, H)
    caches = []
    for t in range(T):  # forward with the step pair, keeping every step's cache
        out, cache = step(xs[:, t], *states, *params, **opts)
        states = out if isinstance(out, tuple) else (out,)
        caches.append(cache)
    dh = xp.tile(xp.eye(H, dtype=x.dtype), (N, 1))  # (N·H, H): copy k of each sequence gets e_k
    dstates = (dh,) + (None,) * (module._states - 1)  # the LSTM's dc starts at zero
    norms = np.empty(T)
    for t in range(T - 1, -1, -1):  # dstates[0] holds the rows of ∂h_{T−1}/∂h_t
        jac = asnumpy(dstates[0]).reshape(N, H, H)  # (N, H, H)
        norms[t] = float(np.mean([np.linalg.norm(j, ord=ord) for j in jac]))
        if t:
            g = step_backward(dstates if module._states > 1 else dstates[0], caches[t])
            dstates = tuple(g[1:1 + module._states])
    return norms
