"""Checks for the notebooks' "your turn" cells: the learner's code against the library's, in one call.

A "your turn" cell holds a stub the learner fills in: a forward/backward pair of the chapter's new
piece, or one training step. Until it is filled in, the stub raises ``NotImplementedError``; the
check then says so and hands back the library's version, so the notebook still runs end to end.
Once filled in, the check runs it on seeded random inputs, compares it with the library, runs a
gradient check on the learner's backward, and prints one verdict::

    my_relu, my_relu_backward = check_pair((my_relu, my_relu_backward),
                                           (F.relu, F.relu_backward), [x])

Reference solutions for every notebook live in ``notebooks/solutions/`` and the tests run each
check against them with ``strict=True`` (a wrong answer raises instead of printing).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np

from .backend import asnumpy
from .gradcheck import check_function

__all__ = ["Verdict", "check_pair", "check_function_output", "check_train_step", "reference_train_step"]


@dataclass
class Verdict:
    """What a check found: ``ok``, one line per comparison, and the functions to carry on with."""
    title: str
    implemented: bool
    lines: list = field(default_factory=list)
    ok: bool = False
    use: object = None  # the learner's function(s) when correct, else the library's

    def __str__(self) -> str:
        if not self.implemented:
            return (f"{self.title}: not filled in yet (the stub raises NotImplementedError), "
                    "so the notebook carries on with the library's version.")
        head = f"{self.title}: {'correct' if self.ok else 'NOT correct yet'}"
        return "\n".join([head] + [f"  {line}" for line in self.lines])

    def __iter__(self):  # unpack as ``fwd, bwd = check_pair(...)``
        return iter(self.use if isinstance(self.use, tuple) else (self.use,))


def _copy_args(args):
    return [a.copy() if isinstance(a, np.ndarray) else copy.deepcopy(a) for a in args]


def _as_tuple(x):
    return x if isinstance(x, tuple) else (x,)


def _compare(what, mine, ref, rtol, atol):
    """One verdict line comparing two arrays (or tuples of arrays); (ok, line)."""
    mine, ref = _as_tuple(mine), _as_tuple(ref)
    if len(mine) != len(ref):
        return False, f"✗ {what}: returned {len(mine)} values, the library returns {len(ref)}"
    for k, (m, r) in enumerate(zip(mine, ref)):
        if r is None:
            continue
        name = what if len(ref) == 1 else f"{what}[{k}]"
        if m is None or not hasattr(m, "shape"):
            return False, f"✗ {name}: expected an array of shape {tuple(r.shape)}, got {type(m).__name__}"
        m, r = np.asarray(asnumpy(m)), np.asarray(asnumpy(r))
        if m.shape != r.shape:
            return False, f"✗ {name}: shape {m.shape}, the library's is {r.shape}"
        if not np.allclose(m, r, rtol=rtol, atol=atol):
            err = np.abs(m - r)
            worst = tuple(int(i) for i in np.unravel_index(int(np.argmax(err)), err.shape))
            return False, (f"✗ {name}: differs from the library's, largest difference {err.max():.3g} at "
                           f"index {worst} (yours {m[worst]:.6g}, library {r[worst]:.6g})")
    return True, f"✓ {what} matches the library"


def _finish(verdict, strict, quiet):
    if not quiet:
        print(verdict)
    if strict and not verdict.ok:
        raise AssertionError(str(verdict))
    return verdict


def check_pair(mine, reference, inputs, *, options=None, wrt=None, seed=0, rtol=1e-6, atol=1e-9,
               strict=False, quiet=False, title=None) -> Verdict:
    """Check a learner's forward/backward pair against the library's, then gradient-check it.

    ``mine`` and ``reference`` are ``(forward, backward)`` pairs with the library's conventions
    (``y, cache = forward(*inputs, **options)``; ``grads = backward(dy, cache)``); ``inputs`` should
    be float64 so the gradient check is meaningful. The forward outputs are compared, then both
    backwards get the same seeded random ``dy``, then ``check_function`` runs on the learner's pair.
    ``wrt``: the input positions that get gradients, as in ``check_function`` (default: every float
    array; give it when a float input, e.g. a regression target, gets none).
    Returns a Verdict that unpacks to the pair to carry on with.
    """
    options = options or {}
    (fwd, bwd), (ref_fwd, ref_bwd) = mine, reference
    title = title or f"your {getattr(ref_fwd, '__name__', 'function')}"
    verdict = Verdict(title, implemented=True, use=tuple(reference))
    try:
        y, cache = fwd(*_copy_args(inputs), **options)
        y_ref, cache_ref = ref_fwd(*_copy_args(inputs), **options)
        ok, line = _compare("forward", y, y_ref, rtol, atol)
        verdict.lines.append(line)
        if ok:
            rng = np.random.default_rng(seed)
            dy = tuple(rng.standard_normal(np.shape(o)).astype(np.asarray(o).dtype) for o in _as_tuple(y_ref))
            dy = dy if isinstance(y_ref, tuple) else dy[0]
            ok, line = _compare("backward", bwd(dy, cache), ref_bwd(dy, cache_ref), rtol, atol)
            verdict.lines.append(line)
        if ok:
            report = check_function(fwd, bwd, _copy_args(inputs), wrt=wrt, title=title, seed=seed, **options)
            ok = report.ok
            # relative errors of gradients that agree to round-off (an exactly-zero bias gradient)
            # are meaningless, so they are left out of the summary; the report has every row
            worst = max((r.rel_err for r in report.results if r.max_abs_err > 1e-10), default=0.0)
            abs_worst = max((r.max_abs_err for r in report.results), default=0.0)
            verdict.lines.append(f"{'✓' if ok else '✗'} gradient check: largest relative error {worst:.2e}, "
                                 f"largest |analytic − numeric| {abs_worst:.2e}"
                                 + ("" if ok else "\n" + str(report)))
    except NotImplementedError:
        verdict.implemented, verdict.ok = False, False
        return _finish(verdict, strict, quiet)
    verdict.ok = ok
    if ok:
        verdict.use = (fwd, bwd)
    return _finish(verdict, strict, quiet)


def check_function_output(mine, reference, inputs, *, options=None, rtol=1e-6, atol=1e-9,
                          strict=False, quiet=False, title=None) -> Verdict:
    """Check a learner's function (no backward: a metric, a decoder, a sampler) against the library's."""
    options = options or {}
    title = title or f"your {getattr(reference, '__name__', 'function')}"
    verdict = Verdict(title, implemented=True, use=reference)
    try:
        ok, line = _compare("output", mine(*_copy_args(inputs), **options),
                            reference(*_copy_args(inputs), **options), rtol, atol)
    except NotImplementedError:
        verdict.implemented = False
        return _finish(verdict, strict, quiet)
    verdict.lines.append(line)
    verdict.ok = ok
    if ok:
        verdict.use = mine
    return _finish(verdict, strict, quiet)


def reference_train_step(model, loss_fn, optimizer, xb, yb):
    """One mini-batch step as ``fit`` takes it: forward, loss, zero_grad, backward, step; the loss."""
    logits = model(xb)
    loss = loss_fn(logits, yb)
    optimizer.zero_grad()
    model.backward(loss_fn.backward())
    optimizer.step()
    return float(loss)


def check_train_step(my_step, make_model, make_optimizer, loss_fn, xb, yb, *, steps=3, rtol=1e-6,
                     atol=1e-9, strict=False, quiet=False) -> Verdict:
    """Check a learner's ``step(model, loss_fn, optimizer, xb, yb) -> loss`` against the reference.

    Two identical models (``make_model()`` twice, which must be deterministic) each take ``steps``
    steps, one with the learner's step and one with ``reference_train_step``; the losses and every
    parameter afterwards must agree.
    """
    verdict = Verdict("your training step", implemented=True, use=reference_train_step)
    mine_model, ref_model = make_model(), make_model()
    mine_opt, ref_opt = make_optimizer(mine_model), make_optimizer(ref_model)
    try:
        for k in range(steps):
            loss = my_step(mine_model, loss_fn, mine_opt, xb, yb)
            ref_loss = reference_train_step(ref_model, loss_fn, ref_opt, xb, yb)
            if loss is None or not np.isclose(float(loss), ref_loss, rtol=rtol, atol=atol):
                verdict.lines.append(f"✗ step {k + 1}: loss {loss}, the reference's {ref_loss:.6g}")
                return _finish(verdict, strict, quiet)
    except NotImplementedError:
        verdict.implemented = False
        return _finish(verdict, strict, quiet)
    verdict.lines.append(f"✓ losses of {steps} steps match the reference")
    mine_params, ref_params = dict(mine_model.named_parameters()), dict(ref_model.named_parameters())
    for name, p in ref_params.items():
        ok, line = _compare(f"parameter {name} after {steps} steps", mine_params[name].data, p.data, rtol, atol)
        if not ok:
            verdict.lines.append(line)
            return _finish(verdict, strict, quiet)
    verdict.lines.append("✓ every parameter matches the reference after the steps")
    verdict.ok, verdict.use = True, my_step
    return _finish(verdict, strict, quiet)
