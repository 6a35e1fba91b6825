"""A CuPy stand-in for machines without a GPU: device arrays that refuse to mix with NumPy arrays as
CuPy's do, so the GPU tests can check host/device hygiene everywhere.

``install()`` puts modules named ``cupy``, ``cupy.cuda``, ``cupyx`` and ``cupyx.scipy.special`` into
``sys.modules``; it must run before ``scratchnet`` is imported (``scratchnet.backend`` imports CuPy
once). Its ``ndarray`` wraps a NumPy array; NumPy ufuncs and functions on it dispatch to NumPy
(NEP 13/18) and return wrapped arrays, like CuPy's; a plain NumPy array among the operands raises
TypeError, as CuPy's kernels do; ``np.asarray(device_array)`` raises, as CuPy's ``__array__`` does.
``cupy.RawModule`` runs the project's CUDA kernel text through ``scratchnet.kernels.cuda_emulator``;
``cupy.random.RandomState`` draws with NumPy's generator.

What it checks: that the code keeps its arrays on one device, moves host values explicitly, and
calls the CUDA kernels with the arguments they declare. What it cannot: CUDA's rounding, speed and
memory, CuPy functions NumPy lacks, or CuPy's stricter corners (a NumPy index array is accepted here
as CuPy copies it). Used by tests/test_gpu_standin.py.
"""
from __future__ import annotations

import functools
import math
import sys
import types

import numpy as np

_CONVERTERS = {"asarray", "array", "ascontiguousarray", "asanyarray", "asfortranarray"}


class ndarray(np.lib.mixins.NDArrayOperatorsMixin):
    """A device array: a NumPy array behind CuPy's rules."""
    __module__ = "cupy"  # scratchnet's jit_route tells CuPy arrays by their module
    __hash__ = None

    def __init__(self, a):
        self._a = a

    shape = property(lambda s: s._a.shape)
    dtype = property(lambda s: s._a.dtype)
    ndim = property(lambda s: s._a.ndim)
    size = property(lambda s: s._a.size)
    itemsize = property(lambda s: s._a.itemsize)
    nbytes = property(lambda s: s._a.nbytes)
    strides = property(lambda s: s._a.strides)
    flags = property(lambda s: s._a.flags)
    T = property(lambda s: ndarray(s._a.T))

    def __array__(self, *args, **kwargs):
        raise TypeError("Implicit conversion to a NumPy array is not allowed. Please use `.get()` to construct "
                        "a NumPy array explicitly.")

    def get(self):
        return self._a.copy()

    def __repr__(self):
        return "cupy_standin." + repr(self._a)

    def __format__(self, spec):
        return format(self._a.item() if self._a.ndim == 0 else self._a, spec)

    def __float__(self):
        return float(self._a)

    def __int__(self):
        return int(self._a)

    def __bool__(self):
        return bool(self._a)

    def __index__(self):
        if self._a.ndim:
            raise TypeError("only integer scalar arrays can be converted to a scalar index")
        return self._a.__index__()

    def __len__(self):
        return len(self._a)

    def __iter__(self):
        if self._a.ndim == 0:
            raise TypeError("iteration over a 0-d array")
        return (_wrap(self._a[i]) for i in range(len(self._a)))

    def __getitem__(self, idx):
        return _wrap(self._a[_index(idx)])

    def __setitem__(self, idx, value):
        self._a[_index(idx)] = _unwrap(value)  # CuPy copies a NumPy value to the device

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        if method not in ("__call__", "reduce", "accumulate", "outer", "at", "reduceat"):
            return NotImplemented
        args = [_strict(x, f"{ufunc.__name__}.{method}") for x in inputs]
        out = kwargs.get("out")
        if out is not None:
            kwargs["out"] = tuple(_strict(o, f"{ufunc.__name__} out") for o in out)
        if "where" in kwargs:
            kwargs["where"] = _strict(kwargs["where"], f"{ufunc.__name__} where")
        res = (ufunc if method == "__call__" else getattr(ufunc, method))(*args, **kwargs)
        if out is not None:
            return out[0] if len(out) == 1 else out
        return _wrap(res)

    def __array_function__(self, func, types_, args, kwargs):
        if func.__name__ in _CONVERTERS or func.__name__.startswith("save"):
            raise TypeError(f"cupy_standin: numpy.{func.__name__} on a device array (implicit conversion)")
        return _wrap(func(*_tree(args, f"np.{func.__name__}"), **_tree(kwargs, f"np.{func.__name__}")))

    def __getattr__(self, name):  # methods: .sum(), .reshape(), .astype(), ...
        if name.startswith("__"):
            raise AttributeError(name)
        attr = getattr(self._a, name)
        if name in ("tolist", "item", "tobytes") or not callable(attr):
            return attr if name in ("tolist", "item", "tobytes") else _wrap(attr)

        @functools.wraps(attr)
        def method(*args, **kwargs):
            return _wrap(attr(*_tree(args, f".{name}"), **_tree(kwargs, f".{name}")))
        return method

    def __copy__(self):
        return ndarray(self._a.copy())

    def __deepcopy__(self, memo):
        return ndarray(self._a.copy())


def _index(idx):
    """An index: device arrays unwrapped; NumPy arrays and lists pass (CuPy copies them to the device)."""
    if isinstance(idx, tuple):
        return tuple(_index(i) for i in idx)
    return idx._a if isinstance(idx, ndarray) else idx


def _strict(x, where):
    """An operand of a device operation: a device array unwrapped; a NumPy array refused, as CuPy does."""
    if isinstance(x, ndarray):
        return x._a
    if isinstance(x, np.ndarray):
        raise TypeError(f"cupy_standin: {where}: a NumPy array (shape {x.shape}, {x.dtype}) mixed with device "
                        "arrays (CuPy raises 'Unsupported type <class numpy.ndarray>')")
    return x


def _tree(obj, where):
    """The arguments of a NumPy function called on device arrays: unwrapped, NumPy arrays refused."""
    if isinstance(obj, (ndarray, np.ndarray)):
        return _strict(obj, where)
    if isinstance(obj, (tuple, list)):
        return type(obj)(_tree(o, where) for o in obj)
    if isinstance(obj, dict):
        return {k: _tree(v, where) for k, v in obj.items()}
    return obj


def _unwrap(obj):
    if isinstance(obj, ndarray):
        return obj._a
    if isinstance(obj, (tuple, list)):
        return type(obj)(_unwrap(o) for o in obj)
    return obj


def _wrap(res):
    """A result as CuPy returns it: arrays on the device, reductions as 0-d device arrays."""
    if isinstance(res, ndarray):
        return res
    if isinstance(res, np.ndarray):
        return ndarray(res)
    if isinstance(res, np.generic) and not isinstance(res, (np.str_, np.bytes_)):
        return ndarray(np.asarray(res))
    if isinstance(res, (tuple, list)):
        return type(res)(_wrap(r) for r in res)
    return res


def _function(np_func, name):
    """``cupy.<name>``: NumPy's function on unwrapped arguments; converters copy host data to the device."""
    @functools.wraps(np_func)
    def f(*args, **kwargs):
        if name in _CONVERTERS:
            res = np_func(*_unwrap(args), **{k: _unwrap(v) for k, v in kwargs.items()})
            source = args[0] if args else None
            return _wrap(res if isinstance(source, ndarray) else np.array(res, copy=True))
        return _wrap(np_func(*_tree(args, f"cupy.{name}"), **_tree(kwargs, f"cupy.{name}")))
    return f


class _Namespace(types.ModuleType):
    """A module whose functions are NumPy's (or SciPy's) behind the device rules."""

    def __init__(self, name, source):
        super().__init__(name)
        self._source = source

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        v = getattr(self._source, name)
        if isinstance(v, np.ufunc) or isinstance(v, type) or not callable(v):
            return v  # ufuncs dispatch through ndarray.__array_ufunc__ (a NumPy operand raises there)
        return _function(v, name)


class RandomState:
    """``cupy.random.RandomState``: NumPy's generator behind the device rules (other numbers than cuRAND's)."""

    def __init__(self, seed=None, method=None):
        self.seed(seed)

    def seed(self, seed=None):
        self._rng = np.random.default_rng(seed)

    def random_sample(self, size=None, dtype=np.float64):
        return ndarray(np.asarray(self._rng.random(size, dtype=dtype)))

    def standard_normal(self, size=None, dtype=np.float64):
        return ndarray(np.asarray(self._rng.standard_normal(size, dtype=dtype)))


class RawModule:
    """``cupy.RawModule``: the project's kernel text built and run by ``scratchnet.kernels.cuda_emulator``."""

    def __init__(self, code, options=()):
        from scratchnet.kernels.cuda import PRELUDE
        head, self.source = code.split(PRELUDE, 1)
        self.dtype = np.float64 if "#define SN_DOUBLE 1" in head else np.float32

    def get_function(self, name):
        from scratchnet.kernels import cuda_emulator
        kernel = cuda_emulator.compile_kernel(self.source, name, self.dtype)

        def launch(grid, block, args):
            for a in args:
                if isinstance(a, np.ndarray):
                    raise TypeError(f"cupy_standin: kernel {name}: a NumPy array argument (a host pointer on the GPU)")
            return kernel(grid, block, tuple(_unwrap(a) for a in args))
        return launch


def asnumpy(a, stream=None):
    return a._a.copy() if isinstance(a, ndarray) else np.asarray(a)


def install():
    """Put the stand-in into ``sys.modules`` as ``cupy`` (before scratchnet is imported); returns it."""
    cupy = _Namespace("cupy", np)
    cupy.ndarray, cupy.asnumpy, cupy.RawModule, cupy.__version__ = ndarray, asnumpy, RawModule, "0.0-standin"
    cupy.is_available = lambda: True
    cupy.get_array_module = lambda *a: cupy if any(isinstance(x, ndarray) for x in a) else np
    cupy.linalg, cupy.fft = _Namespace("cupy.linalg", np.linalg), _Namespace("cupy.fft", np.fft)
    cupy.random = types.SimpleNamespace(RandomState=RandomState)
    cuda = types.ModuleType("cupy.cuda")
    cuda.Device = type("Device", (), {"__init__": lambda self, i=0: setattr(self, "id", i),
                                      "synchronize": lambda self: None})
    cuda.runtime = types.SimpleNamespace(getDeviceProperties=lambda i: {"name": b"cupy_standin (no device)"},
                                         runtimeGetVersion=lambda: 0)
    curand = types.SimpleNamespace(CURAND_RNG_PSEUDO_PHILOX4_32_10=0)
    cuda.curand = curand
    cupy.cuda = cuda
    cupyx = types.ModuleType("cupyx")
    cupyx.scatter_add = lambda a, slices, value: np.add.at(_strict(a, "scatter_add"), _index(slices),
                                                           _strict(value, "scatter_add value"))
    cupyx.scipy = types.ModuleType("cupyx.scipy")
    cupyx.scipy.special = types.ModuleType("cupyx.scipy.special")
    try:
        from scipy.special import erf
    except ImportError:  # NumPy alone: math.erf entry by entry
        erf = np.vectorize(math.erf, otypes=[float])
    cupyx.scipy.special.erf = _function(erf, "erf")
    sys.modules.update({"cupy": cupy, "cupy.cuda": cuda, "cupy.cuda.curand": curand, "cupy.linalg": cupy.linalg,
                        "cupyx": cupyx, "cupyx.scipy": cupyx.scipy, "cupyx.scipy.special": cupyx.scipy.special})
    return cupy
