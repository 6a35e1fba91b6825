"""Deep Stacking Network / Deep Convex Network (Deng & Yu 2011; Deng, Yu & Platt 2012).

Legend: N batch, D raw input features, L hidden units per module, C outputs (classes), k module index.

Module k sees X_k = [x, y_1, ..., y_{k−1}, 1] (the raw input, the outputs of every module below and a
bias column), computes H = σ(X_k W), and its linear outputs Y = H U with U the ridge solution
(HᵀH + λI)⁻¹HᵀT. Only W is a free parameter: it is fine-tuned in batch mode by the gradient of
‖HU(H) − T‖² *through* the closed form (``F.dsn_module_backward``). Modules are trained one at a time,
bottom-up; no gradient flows between modules. See chapters/04-dsn.md.
"""
from __future__ import annotations

import math

import numpy as np

from .. import functional as F
from .._random import get_rng
from ..backend import get_array_module
from ..nn.module import Module, Parameter

__all__ = ["DSN", "DSNModule", "fit_module_weights", "lbfgs_direction"]


def _with_bias(x):
    xp = get_array_module(x)
    return xp.concatenate([x, xp.ones((x.shape[0], 1), dtype=x.dtype)], axis=1)  # (N, D + 1)


# start-fit-module
def fit_module_weights(x, t, w0, *, lam, steps, method="gd", memory=10, lr0=None, log=None):
    """Batch descent on e(W) = ‖Y − T‖²/N through the closed-form U, with a backtracking (Armijo)
    line search, so that no learning rate needs tuning: halve the step until e decreases by
    ≥ 1e-4·step·|∇e·d| along the direction d.

    ``method="gd"``: d = −∇e; each step tries the last accepted step size — twice it when that step was
    accepted at its first trial (chapter 04 §4 says why not always twice); the first trial is ``lr0``, by
    default 0.1·e/‖∇e‖², the step that would cut e by a tenth if e were linear in W.
    ``method="lbfgs"``: d = −B∇e, B the L-BFGS inverse-Hessian estimate from the last ``memory`` pairs
    (s, y) of weight and gradient changes (``lbfgs_direction``); the trial step is 1 (the first step
    is a gradient step as above). Each step costs the same forward + backward either way.
    Returns (W, list of e)."""
    if method not in ("gd", "lbfgs"):
        raise ValueError(f"fit_module_weights: method must be 'gd' or 'lbfgs', got {method!r}")
    if not isinstance(memory, (int, np.integer)) or memory < 1:
        raise ValueError(f"fit_module_weights: memory must be a positive int (pairs kept), got {memory!r}")
    n = x.shape[0]
    w, lr, grow = w0, None, False  # lr: the last accepted step size; grow: it was the first trial
    (e, _, _), cache = F.dsn_module(x, w, t, lam=lam)
    errors, pairs, prev = [float(e) / n], [], None  # pairs: the last (s, y) = (ΔW, Δ∇e), for L-BFGS
    for _ in range(steps):  # one batch step with line search
        _, dw = F.dsn_module_backward((1.0 / n, None, None), cache, need_dx=False)
        if method == "lbfgs" and prev is not None:  # the pair of the step just taken
            s, y = w - prev[0], dw - prev[1]
            if float((s * y).sum()) > 0:  # curvature along s is positive: B stays positive definite
                pairs = (pairs + [(s, y)])[-memory:]
        d = -lbfgs_direction(dw, pairs) if pairs else -dw  # the descent direction
        slope = float((dw * d).sum())  # ∇e·d, negative for a descent direction
        if slope >= 0:  # rounding spoilt B: restart from the gradient, with the first step's rule
            pairs, d, slope, lr = [], -dw, -float((dw * dw).sum()), None
        if pairs:  # a quasi-Newton step: its natural length is 1
            lr = 1.0
        elif lr is None:  # first step: lr0, or the step that would cut a linear e by a tenth
            lr = lr0 if lr0 is not None else 0.1 * errors[-1] / max(-slope, 1e-30)
        elif grow:  # the last step was accepted at once: try twice it
            lr *= 2.0
        for trial in range(30):  # backtrack: halve the step until the error decreases enough
            w_try = w + lr * d
            (e_try, _, _), cache_try = F.dsn_module(x, w_try, t, lam=lam)
            if float(e_try) / n <= errors[-1] + 1e-4 * lr * slope:
                break
            lr *= 0.5
        else:
            break  # no decrease found: W is (numerically) at a stationary point
        prev, w, cache, grow = (w, dw), w_try, cache_try, trial == 0
        errors.append(float(e_try) / n)
        if log is not None:
            log(len(errors) - 1, errors[-1], lr)
    return w, errors


def lbfgs_direction(g, pairs):
    """B g by the L-BFGS two-loop recursion (Nocedal & Wright, Alg. 7.4) over pairs [(s, y), ...], oldest
    first, with B₀ = (sᵀy / yᵀy) I from the newest pair. See chapters/04-dsn.md#dsn-training."""
    q, alphas = g.copy(), []
    for s, y in reversed(pairs):  # newest to oldest: strip each pair's curvature from q
        rho = 1.0 / float((y * s).sum())
        alpha = rho * float((s * q).sum())
        q -= alpha * y
        alphas.append((rho, alpha))
    s, y = pairs[-1]
    r = q * (float((s * y).sum()) / float((y * y).sum()))  # B₀ q
    for (s, y), (rho, alpha) in zip(pairs, reversed(alphas)):  # oldest to newest: add it back
        beta = rho * float((y * r).sum())
        r += (alpha - beta) * s
    return r
# end-fit-module


class DSNModule(Module):
    """One module: weight W (D_k + 1, L) (bias row last) and the ridge upper weights U (L, C) (a buffer)."""

    def __init__(self, n_in, n_hidden, n_out, *, init_std=None, rng=None, dtype=np.float32):
        super().__init__()
        rng = get_rng(rng)
        std = init_std if init_std is not None else 1.0 / math.sqrt(n_in)
        self.weight = Parameter((std * rng.standard_normal((n_in + 1, n_hidden))).astype(dtype))
        self.register_buffer("upper", np.zeros((n_hidden, n_out), dtype=dtype))

    def hidden(self, x):
        """H = σ([x, 1] W) (N, L)."""
        return F.dsn_hidden(_with_bias(x), self.weight.data)

    def forward(self, x):
        """Y = H U (N, C) (no cache: a module is fitted by ``DSN.add_module``, not by backprop)."""
        return self.hidden(x) @ self.upper


class DSN(Module):
    """A stack of DSN modules for inputs (N, D) and targets (N, C) (one-hot for classification)."""

    def __init__(self, n_in, n_out, *, n_hidden=3000, lam=1.0, init_std=None, dtype=np.float32):
        super().__init__()
        self.init_std = init_std  # None: 1/√(inputs) per module
        self.n_in, self.n_out, self.n_hidden, self.lam, self.dtype = n_in, n_out, n_hidden, lam, dtype
        self.blocks = []

    def config(self):
        return {"class": "DSN", "n_in": self.n_in, "n_out": self.n_out, "n_hidden": self.n_hidden,
                "lam": self.lam, "n_modules": len(self.blocks)}

    def module_input(self, x, outputs):
        """X_k = [x, y_1, ..., y_{k−1}] (N, D + (k−1)C): the raw input beside every lower module's output."""
        if x.ndim != 2 or x.shape[1] != self.n_in:
            raise ValueError(f"DSN: expected x of shape (N, {self.n_in}), got {tuple(x.shape)}")
        return get_array_module(x).concatenate([x] + list(outputs), axis=1)

    # start-add-module
    def add_module(self, x, t, *, steps=10, method="gd", init_from=None, rng=None, log=None):
        """Fit one more module on (x, t) (the whole training batch) and stack it; returns its e(W) per step.

        W starts random, or, with ``init_from`` (an RBM over the D raw inputs with ``n_hidden`` hidden
        units), takes the RBM's weights and hidden biases in the rows of the raw input and the bias
        (the rows reading lower modules' outputs stay random); U follows in closed form at every W;
        W takes ``steps`` batch steps of ``method`` ("gd" or "lbfgs", see ``fit_module_weights``).
        """
        if t.ndim != 2 or t.shape != (x.shape[0], self.n_out):
            raise ValueError(f"DSN.add_module: expected t of shape ({x.shape[0]}, {self.n_out}), got {tuple(t.shape)}")
        outs = self._outputs(x)
        xk = _with_bias(self.module_input(x, outs))  # (N, D_k + 1)
        block = DSNModule(xk.shape[1] - 1, self.n_hidden, self.n_out, init_std=self.init_std, rng=rng,
                          dtype=self.dtype)
        if init_from is not None:
            want = (self.n_in, self.n_hidden)
            if tuple(init_from.weight.data.shape) != want:
                raise ValueError(f"DSN.add_module: init_from needs weights of shape {want} (raw inputs × "
                                 f"hidden units), got {tuple(init_from.weight.data.shape)}")
            block.weight.data[:self.n_in] = init_from.weight.data  # recognition weights of the raw input
            block.weight.data[-1] = init_from.hbias.data  # the bias row
        xp = get_array_module(x)
        w0 = xp.asarray(block.weight.data)
        w, errors = fit_module_weights(xk, t, w0, lam=self.lam, steps=steps, method=method, log=log)
        (_, _, u), _ = F.dsn_module(xk, w, t, lam=self.lam)
        block.weight.data, block.upper = w, u
        self.blocks.append(block)
        return errors
    # end-add-module

    def _outputs(self, x):
        outs = []
        for block in self.blocks:  # each module reads the input and every output below it
            outs.append(block(self.module_input(x, outs)))
        return outs

    def forward(self, x, *, n_modules=None):
        """Outputs Y of module ``n_modules`` (default: the top) for x (N, D) → (N, C)."""
        if not self.blocks:
            raise RuntimeError("DSN.forward: no modules yet (call add_module first)")
        outs = []
        for block in self.blocks[:n_modules or len(self.blocks)]:  # bottom-up
            outs.append(block(self.module_input(x, outs)))
        return outs[-1]

    def predict_all(self, x, batch_size=5000):
        """The outputs of every module (list of (N, C)), computed in one bottom-up pass."""
        xp = get_array_module(x)
        parts = [self._outputs(x[s:s + batch_size]) for s in range(0, x.shape[0], batch_size)]
        return [xp.concatenate([p[k] for p in parts], axis=0) for k in range(len(self.blocks))]
