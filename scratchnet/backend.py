"""Array backends: NumPy on the CPU, CuPy on a GPU. The only file that imports cupy.

The device follows the data: every op starts with ``xp = get_array_module(x, ...)`` and then
writes ``xp.exp``, ``xp.zeros`` ... so the same layer code runs on both. Where NumPy and CuPy
spell an operation differently (scatter-add), the difference lives here as one helper.

Randomness follows the data too: ``keep_mask`` / ``random_uniform`` / ``random_standard_normal``
draw with the caller's NumPy generator on the CPU and, for CuPy arrays, on the GPU with a cuRAND
generator seeded by one draw from that same NumPy generator. A seed therefore gives reproducible
runs on each device, but the CPU and the GPU draw *different* masks and noise for the same seed.
Inside ``same_draws_as_cpu()`` the GPU takes the CPU's draws instead (drawn on the host, then copied):
slow, but a step on the GPU then sees exactly the masks of the same step on the CPU (the device tests).
"""
from __future__ import annotations

import os
from contextlib import contextmanager

import numpy as np

try:  # CuPy is optional: pip install "scratchnet[gpu]"
    import cupy as _cupy  # type: ignore
    _CUPY_ERROR = None
except Exception as e:  # ImportError, or a CUDA runtime that fails to load
    _cupy = None
    _CUPY_ERROR = e

__all__ = [
    "get_array_module", "gpu_available", "to_device", "device_of", "scatter_add",
    "asnumpy", "is_cupy", "require_numpy", "require_gpu", "check_device", "device_from_env",
    "keep_mask", "random_uniform", "random_standard_normal", "same_draws_as_cpu",
]

DEVICES = ("cpu", "gpu")


def gpu_available() -> bool:
    """True when CuPy is importable *and* a CUDA device can actually be used."""
    if _cupy is None:
        return False
    try:
        return bool(_cupy.is_available())
    except Exception:
        return False


def require_gpu(who: str = "scratchnet") -> None:
    """Raise RuntimeError saying what is missing when no usable GPU is present: CuPy itself, or a
    CUDA device that CuPy can use."""
    if _cupy is None:
        why = "" if isinstance(_CUPY_ERROR, ImportError) or _CUPY_ERROR is None else f" ({_CUPY_ERROR!r})"
        raise RuntimeError(f"{who}: no usable GPU: CuPy is not installed or fails to import{why}; "
                           'install it with pip install "scratchnet[gpu]" (a CuPy build matching the CUDA '
                           "version) on a machine with an NVIDIA GPU, or use device 'cpu'")
    if not gpu_available():
        raise RuntimeError(f"{who}: no usable GPU: CuPy is installed but finds no CUDA device "
                           "(cupy.is_available() is False: no NVIDIA GPU, driver or CUDA runtime visible); "
                           "use device 'cpu'")


def check_device(device, who: str = "scratchnet") -> str:
    """``device`` itself when it is 'cpu', or 'gpu' on a machine with a usable GPU; else a clear error."""
    if device not in DEVICES:
        raise ValueError(f"{who}: device must be 'cpu' or 'gpu', got {device!r}")
    if device == "gpu":
        require_gpu(who)
    return device


def device_from_env(default: str = "cpu") -> str:
    """The device a notebook should use: ``$SCRATCHNET_DEVICE`` ('cpu' or 'gpu', set by
    ``scratchnet run NAME --device gpu``), else ``default``; checked like ``check_device``."""
    value = os.environ.get("SCRATCHNET_DEVICE", "").strip().lower() or default
    return check_device(value, "SCRATCHNET_DEVICE")


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
    if not is_cupy(x):
        require_gpu("to_device")
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


# -- randomness on the array's device ---------------------------------------------------------------------
_DEVICE_GENERATORS: dict = {}
_HOST_DRAWS = [False]  # set by same_draws_as_cpu()


@contextmanager
def same_draws_as_cpu():
    """Within: random draws for CuPy arrays are the NumPy generator's own (the CPU's numbers), drawn
    on the host and copied to the device. For comparing a GPU step with a CPU step, not for training."""
    old = _HOST_DRAWS[0]
    _HOST_DRAWS[0] = True
    try:
        yield
    finally:
        _HOST_DRAWS[0] = old


def _on_host(xp):
    """True when this draw is made by the NumPy generator: NumPy arrays, or inside same_draws_as_cpu()."""
    return xp is np or _HOST_DRAWS[0]


def _device_generator(rng):
    """The current GPU's cuRAND generator (Philox: cheap to reseed), reseeded with ONE draw from the
    NumPy generator ``rng``, so each call's numbers follow from ``rng``'s state (reproducible per device)."""
    seed = int(rng.integers(2**63))  # the one draw from the module's own generator
    key = _cupy.cuda.Device().id
    gen = _DEVICE_GENERATORS.get(key)
    if gen is None:
        from cupy.cuda import curand  # type: ignore
        gen = _DEVICE_GENERATORS[key] = _cupy.random.RandomState(seed, method=curand.CURAND_RNG_PSEUDO_PHILOX4_32_10)
    else:
        gen.seed(seed)
    return gen


def keep_mask(rng, shape, p, *, xp=np):
    """Boolean keep-mask, True with probability 1 − p, of ``shape`` on ``xp``'s device.

    NumPy: ``rng.random(shape) >= p`` (float64 draws). CuPy: float32 uniforms drawn on the GPU by a
    generator seeded from ``rng`` (no host array, no copy across the bus); a different mask.
    """
    if _on_host(xp):
        mask = rng.random(shape) >= p
        return mask if xp is np else xp.asarray(mask)
    return _device_generator(rng).random_sample(shape, dtype=np.float32) >= p


def random_uniform(rng, shape, *, dtype=np.float64, xp=np):
    """U[0, 1) numbers of ``dtype`` (float32 or float64) on ``xp``'s device (NumPy: ``rng.random``)."""
    if _on_host(xp):
        u = rng.random(shape, dtype=dtype)
        return u if xp is np else xp.asarray(u)
    return _device_generator(rng).random_sample(shape, dtype=dtype)


def random_standard_normal(rng, shape, *, dtype=np.float64, xp=np):
    """N(0, 1) numbers cast to ``dtype`` on ``xp``'s device (NumPy: float64 draws, then the cast)."""
    if _on_host(xp):
        z = rng.standard_normal(shape).astype(dtype)
        return z if xp is np else xp.asarray(z)
    return _device_generator(rng).standard_normal(shape, dtype=dtype)
