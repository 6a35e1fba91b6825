"""Restricted Boltzmann Machines (Smolensky 1986; Hinton 2002), trained by contrastive divergence.

Legend: N batch, D visible units, H hidden units, K labels (a softmax group of visibles), k Gibbs steps.

An RBM is not trained by backpropagation: its parameter gradient is a difference of two expectations
(data minus model), and the model expectation is estimated by Gibbs sampling (CD-k, PCD).
``RBM.forward`` gives P(h = 1 | v) so a trained RBM can serve as a feature layer; it has no backward.
See chapters/02-rbm.md.
"""
from __future__ import annotations

import time

import numpy as np

from .. import functional as F
from .._random import get_rng
from ..backend import get_array_module
from ..nn.module import Module, Parameter
from ..progress import progress

__all__ = ["RBM", "base_rate_biases", "binarize"]


def binarize(x, *, rng=None, threshold=None):
    """Binary float32 copy of x in [0, 1]: v = [x > threshold], or v ~ Bernoulli(x) (rng, the paper's choice)."""
    x = np.asarray(x, dtype=np.float32)
    if threshold is not None:
        return (x > threshold).astype(np.float32)
    return (get_rng(rng).random(x.shape, dtype=np.float32) < x).astype(np.float32)


def base_rate_biases(v, *, smoothing=0.05):
    """Visible biases of the base-rate model, log(p/(1 − p)) from the data's marginals p (smoothed as
    Salakhutdinov & Murray do, so that a pixel never on does not give −∞). v (N, D) → (D,)."""
    xp = get_array_module(v)
    p = (v.sum(axis=0) + smoothing) / (v.shape[0] + 2 * smoothing)  # (D,)
    return xp.log(p) - xp.log1p(-p)


class RBM(Module):
    """An RBM with weight (D, H), visible bias ``vbias`` (D,), hidden bias ``hbias`` (H,).

    visible: "bernoulli" (binary data) or "gaussian" (unit-variance, standardise the data first).
    n_labels: the last K visible units form one softmax group (a DBN's top-level RBM).
    """

    def __init__(self, n_visible, n_hidden, *, visible="bernoulli", n_labels=0, init_std=0.01, rng=None,
                 dtype=np.float32):
        super().__init__()
        if visible not in ("bernoulli", "gaussian"):
            raise ValueError(f"RBM: visible must be 'bernoulli' or 'gaussian', got {visible!r}")
        self.n_visible, self.n_hidden, self.visible, self.n_labels = n_visible, n_hidden, visible, n_labels
        rng = get_rng(rng)
        self.weight = Parameter((init_std * rng.standard_normal((n_visible, n_hidden))).astype(dtype))
        self.vbias = Parameter(np.zeros(n_visible, dtype=dtype))
        self.hbias = Parameter(np.zeros(n_hidden, dtype=dtype))

    def config(self):
        return {"class": "RBM", "n_visible": self.n_visible, "n_hidden": self.n_hidden,
                "visible": self.visible, "n_labels": self.n_labels}

    def extra_repr(self):
        return f"{self.n_visible}, {self.n_hidden}, visible={self.visible!r}"

    # -- the conditionals -------------------------------------------------------------------
    def _check(self, v, op="RBM", binary=True):
        if v.ndim != 2 or v.shape[1] != self.n_visible:
            raise ValueError(f"{op}: expected v of shape (N, {self.n_visible}), got {tuple(v.shape)}")
        if v.dtype != self.weight.data.dtype:
            raise TypeError(f"{op}: expected v of dtype {self.weight.data.dtype}, got {v.dtype}")
        if self.visible == "bernoulli" and binary:
            F.check_binary(op, v[:, :v.shape[1] - self.n_labels])

    def forward(self, v):
        """P(h = 1 | v) (N, H): the RBM as a deterministic feature layer (no cache: no backward)."""
        return F.hidden_probs(v, self.weight.data, self.hbias.data)

    def backward(self, dy):
        raise NotImplementedError("RBM.backward: an RBM is trained with contrastive divergence (RBM.fit); "
                                  "to fine-tune by backprop, copy it into a Linear layer (DBN.to_mlp)")

    def visible_given_hidden(self, h):
        """E[v | h] (N, D): probabilities (Bernoulli, softmax labels) or means (Gaussian)."""
        return F.visible_probs(h, self.weight.data, self.vbias.data, visible=self.visible, n_labels=self.n_labels)

    def free_energy(self, v):
        """F(v) (N,) for each row of v."""
        return F.free_energy(v, self.weight.data, self.vbias.data, self.hbias.data, visible=self.visible)[0]

    def reconstruct(self, v):
        """One deterministic up-down pass v → P(h|v) → E[v|h] (the reconstruction monitor)."""
        return self.visible_given_hidden(self(v))

    def sample(self, v0, *, steps, rng=None, clamp=None):
        """``steps`` sweeps of block Gibbs sampling from v0; returns (v samples, E[v | h] of the last sweep)."""
        rng = get_rng(rng)
        w, b, c = self.weight.data, self.vbias.data, self.hbias.data
        v, _ = F.gibbs_chain(v0, w, b, c, k=steps - 1, rng=rng, visible=self.visible, n_labels=self.n_labels,
                             clamp=clamp) if steps > 1 else (v0, None)
        h = F.sample_bernoulli(F.hidden_probs(v, w, c), rng=rng)  # (N, H)
        mean = self.visible_given_hidden(h)  # (N, D)
        if clamp is not None:
            mean = get_array_module(v0).where(clamp, v0, mean)
        v = F.sample_visible(mean, rng=rng, visible=self.visible, n_labels=self.n_labels)
        return (v if clamp is None else get_array_module(v0).where(clamp, v0, v)), mean

    # -- learning ---------------------------------------------------------------------------
    # start-cd
    def cd_grads(self, v0, *, k=1, rng=None, chain=None):
        """Estimate −∇ log p(v0) by CD-k (``chain`` None) or PCD (``chain`` = the persistent fantasy
        particles (M, D), advanced k sweeps). Returns (dw, db, dc, new chain, P(h|v0))."""
        rng = get_rng(rng)
        w, c = self.weight.data, self.hbias.data
        p0 = F.hidden_probs(v0, w, c)  # (N, H) positive phase, exact over h
        vk, pk = (chain, F.hidden_probs(chain, w, c)) if chain is not None else (v0, p0)
        for _ in range(k):  # one Gibbs sweep h ~ P(h|v), v ~ P(v|h)
            hk = F.sample_bernoulli(pk, rng=rng)  # (M, H)
            vk = F.sample_visible(self.visible_given_hidden(hk), rng=rng, visible=self.visible,
                                  n_labels=self.n_labels)  # (M, D)
            pk = F.hidden_probs(vk, w, c)  # (M, H) negative phase
        dw, db, dc = F.rbm_nll_grads(v0, p0, vk, pk)
        return dw, db, dc, vk, p0
    # end-cd

    def fit(self, data, *, epochs, batch_size=100, lr=0.05, lr_final=None, k=1, persistent=False,
            n_chains=None, momentum=(0.5, 0.9), momentum_switch=5, weight_decay=2e-4, sparsity_target=None,
            sparsity_cost=0.0, rng=None, monitor=None, disable=None, log=None, binary_data=True):
        """Train on ``data`` (N, D) by CD-k (or PCD with ``persistent=True``), with SGD + momentum.

        lr_final: if given, the learning rate falls linearly, update by update, from ``lr`` to ``lr_final``
        over the whole run (Tieleman 2008's schedule for PCD, whose chains must keep up with the weights);
        momentum: (initial, final), switched after ``momentum_switch`` epochs (Hinton's practical guide);
        weight_decay: L2 on the weights; sparsity: a cross-entropy pull of each hidden unit's running
        mean activation q towards ``sparsity_target`` (gradient cost·(q − target) on hbias and weight).
        monitor(rbm, epoch) → dict of extra numbers per epoch. Returns a history: a list of dicts with
        ``recon_error`` (mean squared error of the mean-field reconstruction), ``free_energy`` and
        ``seconds``; ``log`` (a callable) receives each dict. ``binary_data=False`` accepts probabilities
        in [0, 1] as data (the layers of a DBN above the pixels).
        """
        self._check(data, "RBM.fit", binary=binary_data)
        rng = get_rng(rng)
        xp = get_array_module(self.weight.data)
        N = data.shape[0]
        params = (self.weight, self.vbias, self.hbias)
        vel = [xp.zeros_like(p.data) for p in params]  # momentum buffers
        chain = None
        if persistent:  # fantasy particles start from random training cases
            chain = data[rng.integers(0, N, size=n_chains or batch_size)]
        q = xp.full(self.n_hidden, sparsity_target or 0.0, dtype=self.weight.data.dtype)  # (H,)
        history = []
        n_updates, update = epochs * ((N + batch_size - 1) // batch_size), 0
        for epoch in range(epochs):  # one sweep over shuffled mini-batches
            t0, mom = time.perf_counter(), momentum[0] if epoch < momentum_switch else momentum[1]
            order = rng.permutation(N)
            err = fe = 0.0
            batches = progress(range(0, N, batch_size), disable=disable, desc=f"epoch {epoch + 1}/{epochs}")
            for start in batches:  # one CD update per mini-batch
                v0 = data[order[start:start + batch_size]]
                dw, db, dc, vk, p0 = self.cd_grads(v0, k=k, rng=rng, chain=chain)
                if persistent:
                    chain = vk
                dw = dw + weight_decay * self.weight.data
                if sparsity_target is not None and sparsity_cost:
                    q = 0.9 * q + 0.1 * p0.mean(axis=0)
                    pull = sparsity_cost * (q - sparsity_target)  # (H,)
                    dc = dc + pull
                    dw = dw + v0.mean(axis=0)[:, None] * pull[None, :]
                step = lr if lr_final is None else lr + (lr_final - lr) * update / n_updates
                update += 1
                for p, g, u in zip(params, (dw, db, dc), vel):  # SGD with momentum
                    u *= mom
                    u -= step * g
                    p.data += u
                recon = self.visible_given_hidden(p0)
                err += float(((v0 - recon) ** 2).sum()) / N
                fe += float(self.free_energy(v0).sum()) / N
            row = {"epoch": epoch + 1, "recon_error": err, "free_energy": fe,
                   "seconds": time.perf_counter() - t0}
            if monitor is not None:
                row.update(monitor(self, epoch))
            history.append(row)
            if log is not None:
                log(row)
        return history

    # -- likelihood ---------------------------------------------------------------------------
    def log_partition_exact(self):
        """Exact log Z by enumeration (Bernoulli, min(D, H) ≤ 25)."""
        self._bernoulli_only("log_partition_exact")
        return F.log_partition_exact(self.weight.data, self.vbias.data, self.hbias.data)

    def ais_log_partition(self, base_b, *, betas=None, n_runs=100, quick=False, rng=None):
        """AIS estimate of log Z from the base-rate model with visible biases ``base_b`` → (log Z, log weights).
        betas default: the paper's 14,500-step schedule (``quick``: 1,450 steps)."""
        self._bernoulli_only("ais_log_partition")
        betas = F.ais_betas(quick) if betas is None else betas
        return F.ais_log_partition(self.weight.data, self.vbias.data, self.hbias.data, base_b, betas=betas,
                                   n_runs=n_runs, rng=get_rng(rng))

    def log_likelihood(self, v, log_z, *, batch_size=1000):
        """Average log p(v) = −F(v) − log Z over the rows of v (nats)."""
        total = 0.0
        for s in range(0, v.shape[0], batch_size):  # batches bound the (N, H) temporary
            total += float(self.free_energy(v[s:s + batch_size]).sum())
        return -total / v.shape[0] - log_z

    def pseudo_log_likelihood(self, v, *, rng=None):
        """Mean stochastic pseudo-log-likelihood of binary rows v."""
        self._bernoulli_only("pseudo_log_likelihood")
        pl = F.pseudo_log_likelihood(v, self.weight.data, self.vbias.data, self.hbias.data, rng=get_rng(rng))
        return float(pl.mean())

    def _bernoulli_only(self, what):
        if self.visible != "bernoulli" or self.n_labels:
            raise ValueError(f"RBM.{what}: implemented for Bernoulli–Bernoulli RBMs without label units")

