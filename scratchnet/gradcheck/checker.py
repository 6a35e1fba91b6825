"""Numerical gradient checking: every analytic gradient against central differences, in float64.

    report = check_function(F.linear, F.linear_backward, [x, w, b])
    print(report)                 # a table: input, shape, max |a − n|, relative error, worst index
    assert_gradients(F.linear, F.linear_backward, [x, w, b])   # raises AssertionError with the table

The check computes L = Σ ⟨g_k, y_k⟩ over the outputs y_k with fixed, seeded random upstream
gradients g_k, so ∂L/∂x is exactly what ``backward(g, cache)`` must return. Each entry of each
input is nudged by ±eps (``fast=True``: a few random directions instead, for big inputs).
Tolerances live here, keyed by dtype: PyTorch's eps=1e-6, atol=1e-5, rtol=1e-3 for float64.

Inside ``device_parity("gpu")`` the same two functions check something else: one forward and one
backward on the device (inputs copied there, a module copied and moved with ``.to``, the same
upstream gradients, the CPU's random draws) against the same on NumPy, output by output and gradient
by gradient (``PARITY_TOLERANCES``). Running the catalogue in that mode checks every registered op
and block on the GPU; ``device_parity("cpu")`` runs the same comparison on NumPy twice (the harness).
"""
from __future__ import annotations

import copy
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from ..backend import asnumpy, check_device, same_draws_as_cpu, to_device

__all__ = ["TOLERANCES", "PARITY_TOLERANCES", "GradResult", "GradcheckReport", "check_function", "check_module",
           "assert_gradients", "assert_module_gradients", "device_parity"]

TOLERANCES = {
    np.dtype(np.float64): dict(eps=1e-6, atol=1e-5, rtol=1e-3),
    np.dtype(np.float32): dict(eps=1e-2, atol=1e-2, rtol=5e-2),
}


# device against NumPy: the same float64 (or float32) arithmetic in another order and another libm
PARITY_TOLERANCES = {
    np.dtype(np.float64): dict(atol=1e-8, rtol=1e-6),
    np.dtype(np.float32): dict(atol=1e-4, rtol=1e-3),
}
_PARITY = {"device": None}  # the device compared with NumPy inside device_parity(), else None


@contextmanager
def device_parity(device: str = "gpu"):
    """Within: ``check_function`` / ``check_module`` compare one forward and backward on ``device`` with
    NumPy's instead of checking gradients by central differences; their reports carry ``device`` (and
    titles ending in ``[<device> = numpy]``, unless a case renames them). Random draws on the device
    are the CPU's (``same_draws_as_cpu``)."""
    check_device(device, "device_parity")
    old = _PARITY["device"]
    _PARITY["device"] = device
    try:
        with same_draws_as_cpu():
            yield
    finally:
        _PARITY["device"] = old


def _copy(a):
    """A fresh copy of an input: arrays of either device by ``.copy()``, anything else deeply."""
    return a.copy() if hasattr(a, "shape") and hasattr(a, "copy") else copy.deepcopy(a)


def _moved(a, device):
    """An input as the device run gets it: NumPy arrays copied to ``device``, anything else as is."""
    return to_device(a, device) if isinstance(a, np.ndarray) else a


def _parity(title, names, host, dev, device, seed):
    """host, dev: (run_forward, run_backward) on NumPy and on ``device``. One forward and backward each
    with the same seeded upstream gradients; a row per output and per gradient (device = "analytic")."""
    rng = np.random.default_rng(seed)
    outputs = host[0]()
    grads = _upstream(outputs, rng)
    host_grads = host[1](grads)
    dev_outputs = dev[0]()
    dev_grads = dev[1](tuple(None if g is None else to_device(g, device) for g in grads))
    report = GradcheckReport(f"{title} [{device} = numpy]", device=device)
    pairs = [(f"output{k}", d, h) for k, (d, h) in enumerate(zip(dev_outputs, outputs))
             if _is_float_array(h) or isinstance(h, float)]
    pairs += [(name, d, h) for name, d, h in zip(names, dev_grads, host_grads) if h is not None or d is not None]
    for name, d, h in pairs:
        h = np.asarray(asnumpy(h))
        d = np.zeros_like(h) if d is None else d
        report.results.append(_compare(name, d, h, PARITY_TOLERANCES.get(h.dtype, PARITY_TOLERANCES[np.dtype(
            np.float64)])))
    return report


@dataclass
class GradResult:
    """The comparison for one input: the numbers a learner reads in the report."""
    name: str
    shape: tuple
    max_abs_err: float
    rel_err: float  # CS231n's max |a − n| / max(|a|, |n|, tiny)
    worst_index: tuple
    analytic: float
    numeric: float
    ok: bool


@dataclass
class GradcheckReport:
    """One row per checked input; ``ok`` when every row passes. ``device``: set by ``device_parity``,
    whose rows compare that device's results ("analytic") with NumPy's ("numeric")."""
    title: str
    results: list = field(default_factory=list)
    device: str | None = None

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)

    def __str__(self) -> str:
        a, n = ("analytic", "numeric") if self.device is None else (self.device, "numpy")
        lines = [f"{'gradcheck' if self.device is None else 'parity'} {self.title}: {'PASS' if self.ok else 'FAIL'}",
                 f"  {'input':<14}{'shape':<18}{'max|a-n|':>11}{'rel err':>11}  "
                 f"{'worst index':<16}{a:>12}{n:>12}"]
        for r in self.results:
            mark = "" if r.ok else "  <-- FAIL"
            lines.append(f"  {r.name:<14}{str(r.shape):<18}{r.max_abs_err:>11.2e}{r.rel_err:>11.2e}  "
                         f"{str(r.worst_index):<16}{r.analytic:>12.5g}{r.numeric:>12.5g}{mark}")
        return "\n".join(lines)

    _repr_pretty_ = lambda self, p, cycle: p.text(str(self))  # noqa: E731


def _as_tuple(x):
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


def _is_float_array(a) -> bool:
    return hasattr(a, "dtype") and hasattr(a, "shape") and a.dtype.kind == "f"


def _upstream(outputs, rng):
    """Seeded random upstream gradients shaped like each float output (None for the others)."""
    return tuple(rng.standard_normal(np.shape(y)).astype(np.asarray(asnumpy(y)).dtype)
                 if (_is_float_array(y) or isinstance(y, float)) and y is not None else None
                 for y in outputs)


def _objective(outputs, grads) -> float:
    """L = Σ_k ⟨g_k, y_k⟩ for the float outputs."""
    return float(sum(float((asnumpy(y) * g).sum()) for y, g in zip(outputs, grads) if g is not None))


def _compare(name, a, n, tol) -> GradResult:
    a, n = np.asarray(asnumpy(a), dtype=np.float64), np.asarray(n, dtype=np.float64)
    if a.shape != n.shape:
        raise ValueError(f"gradcheck: analytic gradient of {name} has shape {a.shape}, expected {n.shape}")
    diff = np.abs(a - n)
    rel = diff / np.maximum(np.maximum(np.abs(a), np.abs(n)), 1e-12)
    # the worst entry by how far it exceeds the tolerance
    excess = diff - (tol["atol"] + tol["rtol"] * np.abs(n))
    idx = np.unravel_index(int(np.argmax(excess)), a.shape) if a.size else ()
    return GradResult(name=name, shape=tuple(a.shape), max_abs_err=float(diff.max()) if a.size else 0.0,
                      rel_err=float(rel.max()) if a.size else 0.0, worst_index=tuple(int(i) for i in idx),
                      analytic=float(a[idx]) if a.size else 0.0, numeric=float(n[idx]) if a.size else 0.0,
                      ok=bool(np.allclose(a, n, atol=tol["atol"], rtol=tol["rtol"])))


def _numeric_grad(f, x, eps, fast, n_dirs, rng):
    """Central differences of the scalar f() wrt array x (nudged in place, then restored).

    fast: returns (directions, directional derivatives) instead of a full gradient.
    """
    if fast:
        dirs, derivs = [], []
        for _ in range(n_dirs):
            u = rng.standard_normal(x.shape).astype(x.dtype)
            orig = x.copy()
            x += eps * u
            fp = f()
            x[...] = orig - eps * u
            fm = f()
            x[...] = orig
            dirs.append(u)
            derivs.append((fp - fm) / (2 * eps))
        return dirs, np.array(derivs)
    g = np.zeros(x.shape, dtype=np.float64)
    flat, gflat = x.reshape(-1), g.reshape(-1)  # x is contiguous here: reshape is a view
    for i in range(flat.size):  # one nudge per entry
        old = flat[i]
        flat[i] = old + eps
        fp = f()
        flat[i] = old - eps
        fm = f()
        flat[i] = old
        gflat[i] = (fp - fm) / (2 * eps)
    return g


def _tolerance(dtype, eps, atol, rtol):
    tol = dict(TOLERANCES.get(np.dtype(dtype), TOLERANCES[np.dtype(np.float64)]))
    for k, v in (("eps", eps), ("atol", atol), ("rtol", rtol)):
        if v is not None:
            tol[k] = v
    return tol


def _check(title, names, arrays, run_forward, run_backward, *, eps, atol, rtol, seed, fast, n_dirs):
    """Shared engine: arrays are the float64 NumPy arrays to nudge (in place)."""
    rng = np.random.default_rng(seed)
    dtype = arrays[0].dtype if arrays else np.float64
    tol = _tolerance(dtype, eps, atol, rtol)
    outputs = run_forward()
    grads = _upstream(outputs, rng)
    analytic = run_backward(grads)
    f = lambda: _objective(run_forward(), grads)  # noqa: E731
    report = GradcheckReport(title)
    for name, x, a in zip(names, arrays, analytic):
        if a is None:
            a = np.zeros_like(x)
        if fast:
            dirs, numeric = _numeric_grad(f, x, tol["eps"], True, n_dirs, rng)
            projected = np.array([float((np.asarray(asnumpy(a)) * u).sum()) for u in dirs])
            report.results.append(_compare(f"{name}·u", projected, numeric, tol))
        else:
            report.results.append(_compare(name, a, _numeric_grad(f, x, tol["eps"], False, n_dirs, rng), tol))
    return report


def check_function(forward, backward, inputs, *, wrt=None, names=None, eps=None, atol=None, rtol=None,
                   seed=0, fast=False, n_dirs=8, title=None, **options) -> GradcheckReport:
    """Compare ``backward`` with central differences of ``forward`` for a functional pair.

    ``inputs`` are the positional arguments of ``forward`` (``options`` its keywords). ``wrt`` lists
    the positions that get gradients; by default every float array, in order, as the DESIGN's
    "one gradient per float array input" contract says (losses pass ``wrt=[0]``). Every input is
    copied before each call, so ops that update state in place (batch_norm's running statistics)
    are checked on the same inputs each time.
    """
    inputs = list(inputs)
    if wrt is None:
        wrt = [i for i, a in enumerate(inputs) if _is_float_array(a)]
    names = names or [f"x{i}" for i in wrt]
    arrays = [inputs[i] if inputs[i].flags.c_contiguous else np.ascontiguousarray(inputs[i]) for i in wrt]
    for i, a in zip(wrt, arrays):
        inputs[i] = a

    def runs(inputs, options):
        """(run_forward, run_backward) on these inputs (copied before each call) and keyword options."""
        state = {}

        def run_forward():
            y, cache = forward(*[_copy(a) for a in inputs], **options)
            state["cache"] = cache
            return _as_tuple(y)

        def run_backward(grads):
            run_forward()
            g = grads if len(grads) > 1 else (grads[0] if np.ndim(grads[0]) else float(grads[0]))
            out = _as_tuple(backward(g, state["cache"]))
            if len(out) != len(wrt):  # optional inputs passed as None get None gradients: drop them
                out = tuple(o for o in out if o is not None)
            if len(out) != len(wrt):
                raise ValueError(f"gradcheck: backward returned {len(out)} gradients for {len(wrt)} inputs")
            return out
        return run_forward, run_backward

    run_forward, run_backward = runs(inputs, options)
    title = title or getattr(forward, "__name__", "function")
    device = _PARITY["device"]
    if device is not None:
        dev = runs([_moved(a, device) for a in inputs], {k: _moved(v, device) for k, v in options.items()})
        return _parity(title, names, (run_forward, run_backward), dev, device, seed)
    return _check(title, names, arrays, run_forward, run_backward, eps=eps, atol=atol, rtol=rtol,
                  seed=seed, fast=fast, n_dirs=n_dirs)


def _rng_states(module):
    """Every numpy Generator held by a module or its children, with its state."""
    return [(g, copy.deepcopy(g.bit_generator.state)) for m in module.modules()
            for g in vars(m).values() if isinstance(g, np.random.Generator)]


def check_module(module, inputs, *, eps=None, atol=None, rtol=None, seed=0, fast=False, n_dirs=8,
                 check_inputs=True, forward_kwargs=None) -> GradcheckReport:
    """Check ``module.backward`` against central differences: inputs and every parameter.

    The module should be float64 (``module.astype(np.float64)``). Random generators inside the
    module (dropout) are rewound before every forward, so each call draws the same masks.
    """
    inputs = list(_as_tuple(inputs))
    forward_kwargs = forward_kwargs or {}
    in_idx = [i for i, a in enumerate(inputs) if _is_float_array(a)] if check_inputs else []
    names = [f"input{i}" for i in in_idx] + [n for n, _ in module.named_parameters()]
    arrays = [inputs[i] for i in in_idx] + [p.data for _, p in module.named_parameters()]

    def runs(module, inputs, forward_kwargs):
        """(run_forward, run_backward) of this module on these inputs."""
        rngs = _rng_states(module)
        params = [p for _, p in module.named_parameters()]

        def run_forward():
            for g, st in rngs:
                g.bit_generator.state = copy.deepcopy(st)
            module.clear_caches()
            return _as_tuple(module(*inputs, **forward_kwargs))

        def run_backward(grads):
            module.zero_grad()
            run_forward()
            g = grads if len(grads) > 1 else (grads[0] if np.ndim(grads[0]) else float(grads[0]))
            dx = _as_tuple(module.backward(g))
            dins = [dx[k] if k < len(dx) else None for k in range(len(in_idx))]
            return dins + [p.grad.copy() for p in params]
        return run_forward, run_backward

    run_forward, run_backward = runs(module, inputs, forward_kwargs)
    device = _PARITY["device"]
    if device is not None:  # a copy of the module on the device, the inputs and keyword arrays moved there
        moved = copy.deepcopy(module).to(device)
        dev = runs(moved, [_moved(a, device) for a in inputs],
                   {k: _moved(v, device) for k, v in forward_kwargs.items()})
        return _parity(type(module).__name__, names, (run_forward, run_backward), dev, device, seed)
    return _check(type(module).__name__, names, arrays, run_forward, run_backward, eps=eps, atol=atol,
                  rtol=rtol, seed=seed, fast=fast, n_dirs=n_dirs)


def assert_gradients(forward, backward, inputs, **kwargs) -> GradcheckReport:
    """``check_function`` that raises AssertionError with the report when any gradient is off."""
    report = check_function(forward, backward, inputs, **kwargs)
    if not report.ok:
        raise AssertionError("\n" + str(report))
    return report


def assert_module_gradients(module, inputs, **kwargs) -> GradcheckReport:
    """``check_module`` that raises AssertionError with the report."""
    report = check_module(module, inputs, **kwargs)
    if not report.ok:
        raise AssertionError("\n" + str(report))
    return report

