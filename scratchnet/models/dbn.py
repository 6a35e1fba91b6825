"""Deep Belief Networks (Hinton, Osindero & Teh 2006): a stack of RBMs trained greedily, layer by layer.

Legend: N batch, D input pixels, H_l units of layer l, K labels.

Two uses after pretraining: (a) copy the recognition weights into an MLP of Linear + Sigmoid layers,
add a softmax output and fine-tune by backprop (``DBN.to_mlp``); (b) generate: Gibbs-sample the
top-level RBM (an associative memory over [penultimate layer, labels]) with the label clamped, then
one deterministic downward pass through the lower RBMs' generative weights (``DBN.generate``).
See chapters/03-dbn.md.
"""
from __future__ import annotations

import numpy as np

from .._random import get_rng
from ..backend import get_array_module
from ..nn.layers import Dropout, Linear, Sigmoid
from ..nn.module import Module, Sequential
from .rbm import RBM, base_rate_biases

__all__ = ["DBN"]


class DBN(Module):
    """sizes = [D, H_1, ..., H_L]; with ``n_labels`` = K the top RBM sees [H_{L−1} units, K labels].

    Hinton et al. (2006): ``DBN([784, 500, 500, 2000], n_labels=10)``.
    """

    def __init__(self, sizes, *, n_labels=0, rng=None, dtype=np.float32):
        super().__init__()
        sizes = [int(s) for s in sizes]
        if len(sizes) < 2 or min(sizes) < 1:
            raise ValueError(f"DBN: sizes must list ≥ 2 positive layer widths [D, H_1, ...], got {sizes}")
        rng = get_rng(rng)
        self.sizes, self.n_labels = sizes, n_labels
        top = len(sizes) - 2
        self.rbms = [RBM(sizes[i] + (n_labels if i == top else 0), sizes[i + 1], rng=rng, dtype=dtype,
                         n_labels=n_labels if i == top else 0) for i in range(len(sizes) - 1)]

    @classmethod
    def from_rbms(cls, rbms):
        """A DBN from already trained RBMs; their sizes must chain (H of one = D of the next)."""
        for i, (lo, hi) in enumerate(zip(rbms[:-1], rbms[1:])):
            if lo.n_hidden != hi.n_visible - hi.n_labels:
                raise ValueError(f"DBN.from_rbms: RBM {i} has {lo.n_hidden} hidden units but RBM {i + 1} expects "
                                 f"{hi.n_visible - hi.n_labels} visible (+{hi.n_labels} labels)")
        dbn = cls.__new__(cls)
        Module.__init__(dbn)
        dbn.sizes = [rbms[0].n_visible] + [r.n_hidden for r in rbms]
        dbn.n_labels, dbn.rbms = rbms[-1].n_labels, list(rbms)
        return dbn

    def config(self):
        return {"class": "DBN", "sizes": self.sizes, "n_labels": self.n_labels}

    def forward(self, v):
        """Mean-field recognition pass v → P(h_1 | v) → ... → the penultimate layer (N, H_{L−1}) when the
        top RBM has labels, else the top layer (no cache: fine-tune through ``to_mlp``)."""
        x = v
        for rbm in self.rbms[:-1] if self.n_labels else self.rbms:  # up through the recognition weights
            x = rbm(x)
        return x

    # start-pretrain
    def pretrain(self, data, labels=None, *, epochs, rng=None, log=None, binary_data=True, base_rate_init=True,
                 **fit_options):
        """Greedy layer-wise training: RBM l learns the data's representation P(h_{l−1} | ·) from the
        layers below, which stay frozen. ``labels`` (N,) int: one-hot visibles of the top RBM.
        ``epochs``: an int or one per RBM; ``binary_data=False`` accepts probabilities as the input (a
        stack put on top of another); ``base_rate_init``: start each RBM's visible biases at the
        base rates log(p/(1 − p)) of its input (Hinton's practical guide), not at 0;
        ``fit_options`` go to ``RBM.fit``. Returns one history per RBM."""
        rng = get_rng(rng)
        if data.shape[1] != self.sizes[0]:
            raise ValueError(f"DBN.pretrain: expected data (N, {self.sizes[0]}), got {tuple(data.shape)}")
        if self.n_labels and labels is None:
            raise ValueError(f"DBN.pretrain: this DBN's top RBM has {self.n_labels} label units; pass labels")
        epochs = [epochs] * len(self.rbms) if isinstance(epochs, int) else list(epochs)
        xp = get_array_module(data)
        histories, x = [], data
        for i, rbm in enumerate(self.rbms):  # train layer i on the representation below, then go up
            if i == len(self.rbms) - 1 and self.n_labels:
                onehot = xp.eye(self.n_labels, dtype=x.dtype)[labels]  # (N, K)
                x = xp.concatenate([x, onehot], axis=1)
            if base_rate_init:  # the label units keep 0: their softmax group has its own normaliser
                d = x.shape[1] - (self.n_labels if i == len(self.rbms) - 1 else 0)
                rbm.vbias.data[:d] = base_rate_biases(x[:, :d])
            # above the pixels the "data" are probabilities P(h | v), as in Hinton & Salakhutdinov's code
            hist = rbm.fit(x, epochs=epochs[i], rng=rng, log=(lambda row, i=i: log(i, row)) if log else None,
                           binary_data=binary_data and i == 0, **fit_options)
            histories.append(hist)
            if i < len(self.rbms) - 1:
                x = self._up(rbm, x)
        return histories
    # end-pretrain

    @staticmethod
    def _up(rbm, x, batch=2000):
        xp = get_array_module(x)
        return xp.concatenate([rbm(x[s:s + batch]) for s in range(0, x.shape[0], batch)], axis=0)  # (N, H)

    # start-to-mlp
    def to_mlp(self, n_classes=None, *, dropout=0.0, input_dropout=0.0, rng=None):
        """Sequential(Linear, Sigmoid, ..., Linear(H_L, n_classes)) with the hidden layers initialised
        from the RBMs' recognition weights (W, hbias) — the label rows of the top RBM are dropped —
        and a freshly initialised output layer whose logits feed a softmax cross-entropy.
        ``dropout`` > 0 puts a Dropout(p) after every hidden Sigmoid (Hinton et al. 2012 fine-tuned
        pretrained DBNs this way); ``input_dropout`` > 0 puts a Dropout(p) in front of the first Linear
        (Srivastava et al. 2014 drop 20 % of the pixels and 50 % of the hidden units)."""
        n_classes = n_classes or self.n_labels
        if not n_classes:
            raise ValueError("DBN.to_mlp: give n_classes (this DBN has no label units)")
        layers = [Dropout(input_dropout, rng=rng)] if input_dropout else []
        for rbm in self.rbms:  # one Linear + Sigmoid per RBM
            d = rbm.n_visible - rbm.n_labels
            lin = Linear(d, rbm.n_hidden, rng=rng, dtype=rbm.weight.data.dtype)
            lin.weight.data = rbm.weight.data[:d].copy()
            lin.bias.data = rbm.hbias.data.copy()
            lin.weight.grad, lin.bias.grad = lin.weight.data * 0, lin.bias.data * 0
            layers += [lin, Sigmoid()] + ([Dropout(dropout, rng=rng)] if dropout else [])
        layers.append(Linear(self.rbms[-1].n_hidden, n_classes, rng=rng, dtype=self.rbms[-1].weight.data.dtype))
        return Sequential(*layers)
    # end-to-mlp

    # start-generate
    def generate(self, labels, *, steps=1000, rng=None):
        """Class-conditional samples: Gibbs in the top RBM with the label units clamped to one-hot
        ``labels`` (N,), then a downward pass E[v_{l−1} | h_l] through the lower RBMs → (N, D) probabilities."""
        if not self.n_labels:
            raise ValueError("DBN.generate: needs a top RBM with label units (DBN(..., n_labels=K))")
        rng = get_rng(rng)
        top = self.rbms[-1]
        xp = get_array_module(top.weight.data)
        n, dtype = len(labels), top.weight.data.dtype
        below = top.n_visible - self.n_labels
        start = xp.asarray((rng.random((n, below)) < 0.5).astype(dtype))  # (N, H_{L−1}) random start
        v0 = xp.concatenate([start, xp.eye(self.n_labels, dtype=dtype)[xp.asarray(labels)]], axis=1)
        clamp = xp.zeros(top.n_visible, dtype=bool)
        clamp[below:] = True
        _, mean = top.sample(v0, steps=steps, rng=rng, clamp=clamp)
        x = mean[:, :below]  # (N, H_{L−1}) top RBM's visible probabilities
        for rbm in reversed(self.rbms[:-1]):  # deterministic top-down generative pass
            x = rbm.visible_given_hidden(x)
        return x
    # end-generate
