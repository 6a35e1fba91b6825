"""Gradient-check cases of the recurrent pairs (RNN, LSTM, GRU: steps, sequences, lengths,
initial and final states) and of the stacked, bidirectional modules."""
from __future__ import annotations

import numpy as np

from ... import functional as F
from ..checker import check_function, check_module
from ..registry import register_case

_GATES = {"rnn": 1, "lstm": 4, "gru": 3}
SEQ_SHAPES = [(3, 5, 4, 3), (1, 1, 2, 2), (2, 7, 1, 4)]  # (N, T, D, H): a batch, one step of one, wide H


def _rng():
    return np.random.default_rng(1234)


def _inputs(kind, r, N=3, T=5, D=4, H=3, step=False):
    """float64 positional inputs of F.<kind> (or F.<kind>_step), weights scaled to keep tanh unsaturated."""
    G = _GATES[kind]
    x = r.standard_normal((N, D) if step else (N, T, D))
    states = [r.standard_normal((N, H)) for _ in range(2 if kind == "lstm" else 1)]
    params = [r.standard_normal((D, G * H)) * 0.6, r.standard_normal((H, G * H)) * 0.6]
    params += [r.standard_normal(G * H) * 0.6 for _ in range(2 if kind == "gru" else 1)]
    return [x, *states, *params]


def _pair(name):
    return getattr(F, name), getattr(F, f"{name}_backward")


def _register(kind):
    @register_case(f"recurrent.{kind}_step")
    def step_case():
        fwd, bwd = _pair(f"{kind}_step")
        reports = [check_function(fwd, bwd, _inputs(kind, _rng(), step=True), title=f"{kind}_step")]
        if kind == "rnn":
            reports.append(check_function(fwd, bwd, _inputs(kind, _rng(), step=True), title="rnn_step[relu]",
                                          nonlinearity="relu"))
        return reports

    @register_case(f"recurrent.{kind}")
    def seq_case():
        fwd, bwd = _pair(kind)
        return [check_function(fwd, bwd, _inputs(kind, _rng(), N, T, D, H), title=f"{kind}[N,T,D,H={N},{T},{D},{H}]")
                for N, T, D, H in SEQ_SHAPES]

    @register_case(f"recurrent.{kind}[lengths]")
    def lengths_case():
        fwd, bwd = _pair(kind)
        reports = []
        for N, T, D, H in SEQ_SHAPES:
            lengths = np.array([T, T // 2, 0][:N])  # one full sequence, one shorter, one empty
            reports.append(check_function(fwd, bwd, _inputs(kind, _rng(), N, T, D, H), lengths=lengths,
                                          title=f"{kind}[N,T,D,H={N},{T},{D},{H}, lengths={lengths.tolist()}]"))
        return reports

    @register_case(f"recurrent.{kind}[no h0]")
    def no_state_case():
        fwd, bwd = _pair(kind)
        inputs = _inputs(kind, _rng())
        k = 2 if kind == "lstm" else 1
        inputs[1:1 + k] = [None] * k
        wrt = [i for i, a in enumerate(inputs) if a is not None]
        return check_function(fwd, lambda g, c: tuple(d for d in bwd(g, c) if d is not None), inputs, wrt=wrt,
                              title=f"{kind}[h0=None]", lengths=np.array([4, 5, 1]))


for _kind in _GATES:
    _register(_kind)


@register_case("recurrent.rnn[relu]")
def rnn_relu_case():
    inputs = _inputs("rnn", _rng())
    inputs[1] = np.abs(inputs[1]) + 0.1
    return check_function(F.rnn, F.rnn_backward, inputs, title="rnn[relu, lengths]", nonlinearity="relu",
                          lengths=np.array([5, 3, 1]))


@register_case("recurrent.modules[bidirectional, 2 layers]")
def module_stack_case():
    from ...nn.recurrent import GRU, LSTM, RNN
    r = _rng()
    x = r.standard_normal((2, 4, 3))
    lengths = np.array([4, 2])
    reports = []
    for cls in (RNN, LSTM, GRU):
        m = cls(3, 2, num_layers=2, bidirectional=True, dropout=0.3, rng=0).astype(np.float64)
        reports.append(check_module(m, [x], forward_kwargs={"lengths": lengths}))
    return reports
