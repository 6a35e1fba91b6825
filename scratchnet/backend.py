"""Array backends: NumPy on the CPU, CuPy on a GPU. The only file that imports cupy.

The device follows the data: every op starts with ``xp = get_array_module(x, ...)`` and then
writes ``xp.exp``, ``xp.zeros`` ... so the same layer code runs on both. Where NumPy and CuPy
spell an operation differently (scatter-add), the difference lives here as one helper.
"""
from __future__ import annotations

import numpy as np

try:  # CuPy is optional: pip install "scratchnet[gpu]"
    import cupy as _cupy  # type: ignore
except Exception:  # ImportError, or a CUDA runtime that fails to load
    _cupy = None

__all__ = [
    "get_array_module", "gpu_available", "to_device", "device_of", "scatter_add",
    "asnumpy", "is_cupy", "require_numpy",
]


def gpu_available() -> bool:
    """True when CuPy is importable *and* a CUDA device can actually be used."""
    if _cupy is None:
        return False
    try:
        return bool(_cupy.is_available())
    except Exception:
        return False


def is_cupy(x) -> bool:
    """True if ``x`` is a CuPy array."""
    return _cupy is not None and isinstance(x, _cupy.ndarray)


def get_array_module(*arrays):
    """The array module (numpy or cupy) of the given arrays; None entries are ignored.

    Mixing CPU and GPU arrays in one call is an error, named here rather than deep inside NumPy.
    """
    mods = {("cupy" if is_cupy(a) else "numpy") for a in arrays if a is not None and hasattr(a, "shape")}
    if len(mods) > 1:
        raise TypeError("scratchnet: got a mix of NumPy (CPU) and CuPy (GPU) arrays in one op; "
                        "move them to one device with to_device(x, 'cpu'|'gpu') or module.to(...)")
    return _cupy if mods == {"cupy"} else np


def device_of(x) -> str:
    """'gpu' for a CuPy array, else 'cpu'."""
    return "gpu" if is_cupy(x) else "cpu"


def to_device(x, device: str):
    """Copy an array to 'cpu' (NumPy) or 'gpu' (CuPy); returns ``x`` itself if already there."""
    if device not in ("cpu", "gpu"):
        raise ValueError(f"to_device: device must be 'cpu' or 'gpu', got {device!r}")
    if x is None:
        return None
    if device == "cpu":
        return _cupy.asnumpy(x) if is_cupy(x) else np.asarray(x)
    if not gpu_available():
        raise RuntimeError("to_device: no usable GPU (CuPy missing or cupy.is_available() is False); "
                           'install with pip install "scratchnet[gpu]" on a CUDA machine')
    return x if is_cupy(x) else _cupy.asarray(x)


def asnumpy(x):
    """A NumPy view/copy of ``x`` whatever its device (for plotting and saving)."""
    return to_device(x, "cpu")


def require_numpy(op: str, *arrays) -> None:
    """Raise a clear TypeError when a CuPy array reaches a CPU-only (Numba) kernel."""
    for a in arrays:
        if is_cupy(a):
            raise TypeError(f"{op}: this kernel runs on the CPU only and received a CuPy array; "
                            "use the vectorised path (SCRATCHNET_JIT=0) or move the data with to_device(x, 'cpu')")


def scatter_add(target, indices, values) -> None:
    """In-place ``target[indices] += values`` that accumulates repeated indices.

    NumPy spells it ``np.add.at``; CuPy spells it ``cupyx.scatter_add``.
    """
    if is_cupy(target):
        import cupyx  # type: ignore
        cupyx.scatter_add(target, indices, values)
    else:
        np.add.at(target, indices, values)
