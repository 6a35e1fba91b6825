"""Input validation shared by ops and layers: every message names the op, what it expected and
what it received, so a learner never meets a bare broadcasting error from deep inside NumPy."""
from __future__ import annotations

__all__ = ["check_ndim", "check_float", "check_dim", "check_same_dtype", "check_int", "check_grad"]


def check_ndim(op: str, name: str, x, ndims) -> None:
    """Raise ValueError unless ``x.ndim`` is one of ``ndims`` (an int or a tuple of ints)."""
    ndims = (ndims,) if isinstance(ndims, int) else tuple(ndims)
    if not hasattr(x, "ndim"):
        raise TypeError(f"{op}: {name} must be an array, got {type(x).__name__}")
    if x.ndim not in ndims:
        want = " or ".join(f"{d}-D" for d in ndims)
        raise ValueError(f"{op}: expected {name} to be {want}, got shape {tuple(x.shape)}")


def check_float(op: str, name: str, x) -> None:
    """Raise TypeError unless ``x`` holds floating-point numbers."""
    if not hasattr(x, "dtype"):
        raise TypeError(f"{op}: {name} must be an array, got {type(x).__name__}")
    if x.dtype.kind != "f":
        raise TypeError(f"{op}: expected {name} to be a float array (float32/float64), got dtype {x.dtype}")


def check_int(op: str, name: str, x) -> None:
    """Raise TypeError unless ``x`` holds integers (ids, labels, lengths)."""
    if not hasattr(x, "dtype") or x.dtype.kind not in "iu":
        got = getattr(x, "dtype", type(x).__name__)
        raise TypeError(f"{op}: expected {name} to be an integer array, got {got}")


def check_dim(op: str, name: str, x, axis: int, size: int, what: str = "") -> None:
    """Raise ValueError unless ``x.shape[axis] == size``."""
    if x.shape[axis] != size:
        extra = f" ({what})" if what else ""
        raise ValueError(f"{op}: expected {name}.shape[{axis}] == {size}{extra}, got shape {tuple(x.shape)}")


def check_same_dtype(op: str, **arrays) -> None:
    """Raise TypeError when the given float arrays do not share one dtype (no silent upcasting)."""
    items = [(k, a) for k, a in arrays.items() if a is not None]
    dtypes = {a.dtype for _, a in items}
    if len(dtypes) > 1:
        desc = ", ".join(f"{k}={a.dtype}" for k, a in items)
        raise TypeError(f"{op}: all float inputs must share one dtype, got {desc}")


def check_grad(op: str, name: str, g, shape, dtype=None) -> None:
    """Raise unless the upstream gradient ``g`` has exactly ``shape`` (and ``dtype``, when given).

    Every ``*_backward`` calls this on each upstream gradient against the shapes its cache recorded,
    before any work: a wrong ``dy`` is a clear error, never a silent broadcast in NumPy or an
    out-of-bounds write in a compiled loop.
    """
    if not hasattr(g, "shape") or not hasattr(g, "dtype"):
        raise TypeError(f"{op}: upstream gradient {name} must be an array, got {type(g).__name__}")
    if tuple(g.shape) != tuple(shape):
        raise ValueError(f"{op}: expected upstream gradient {name} of shape {tuple(shape)} "
                         f"(the forward output's), got shape {tuple(g.shape)}")
    if g.dtype.kind != "f":
        raise TypeError(f"{op}: expected upstream gradient {name} to be a float array, got dtype {g.dtype}")
    if dtype is not None and g.dtype != dtype:
        raise TypeError(f"{op}: expected upstream gradient {name} of dtype {dtype} "
                        f"(the forward's), got dtype {g.dtype}")
