"""Run the CUDA kernel sources on a CPU: each CUDA thread a POSIX thread, each block one after another.

Why: the CUDA kernels of ``kernels/*_cupy.py`` are plain text that only NVRTC compiles on a GPU. The
same text, behind the prelude of ``kernels/cuda.py``, is C that the system's compiler (``$CC``, else
``cc``) builds here into a shared library with one launcher per kernel. A launch runs ``grid`` blocks
in turn; each block starts ``block`` threads that see their own ``threadIdx`` / ``blockIdx`` and
meet at a real barrier in ``__syncthreads()``. So the tests check, on any machine, that a kernel
computes what its vectorised reference computes, that its threads synchronise where they must (a
missing barrier shows up as a race here too), and that its launcher passes arguments of the types
the kernel declares — a mistake the GPU would not report.

What it does not model: warps (no lock-step, no warp intrinsics), the GPU's float rounding (its
``expf`` is not glibc's), speed, memory limits. It is a test tool: ``compile_kernel(source, name,
dtype)`` has the signature of ``kernels.cuda.compile_kernel`` and takes NumPy arrays in place of
CuPy ones, so the launch code of the CuPy route runs unchanged on top of it.

    from scratchnet.kernels import cuda_emulator, pool_cupy
    y, arg = pool_cupy.max_pool2d(x, g, compile=cuda_emulator.compile_kernel)  # x a NumPy array
"""
from __future__ import annotations

import atexit
import ctypes
import functools
import hashlib
import os
import re
import shutil
import subprocess
import tempfile

import numpy as np

from .cuda import kernel_source

__all__ = ["available", "compile_kernel", "EmulatedKernel", "parse_kernels"]

_SIGNATURE = re.compile(r"SN_KERNEL\s+void\s+(\w+)\s*\(([^)]*)\)")

# scalar and pointee C types of kernel parameters → the NumPy dtype an argument must have ("real": the
# dtype the source is compiled for)
_C_TYPES = {"real": None, "int": np.dtype(np.int32), "long long": np.dtype(np.int64),
            "unsigned char": np.dtype(np.uint8)}

_RUNTIME = r"""
#include <stdlib.h>
typedef struct { void (*body)(const void*); const void* args; unsigned int tid, bid; } sn_ctx;
static pthread_mutex_t sn_gate_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t sn_gate = PTHREAD_COND_INITIALIZER;
static int sn_gate_state;  /* 0: wait until the block's threads all exist, 1: run, 2: cancelled */

static void* sn_thread(void* p)
{
    const sn_ctx* c = (const sn_ctx*)p;
    pthread_mutex_lock(&sn_gate_lock);
    while (sn_gate_state == 0)  /* no thread runs before all of its block can reach the barrier */
        pthread_cond_wait(&sn_gate, &sn_gate_lock);
    int run = sn_gate_state == 1;
    pthread_mutex_unlock(&sn_gate_lock);
    if (!run)
        return NULL;
    threadIdx.x = c->tid; threadIdx.y = 0; threadIdx.z = 0;
    blockIdx.x = c->bid; blockIdx.y = 0; blockIdx.z = 0;
    c->body(c->args);
    return NULL;
}

static void sn_open_gate(int state)
{
    pthread_mutex_lock(&sn_gate_lock);
    sn_gate_state = state;
    pthread_cond_broadcast(&sn_gate);
    pthread_mutex_unlock(&sn_gate_lock);
}

/* Launch grid blocks of block threads, one block after another; 0 on success. */
static int sn_run(unsigned int grid, unsigned int block, void (*body)(const void*), const void* args)
{
    pthread_t* threads = malloc(block * sizeof *threads);
    sn_ctx* ctx = malloc(block * sizeof *ctx);
    pthread_attr_t attr;
    int err = threads == NULL || ctx == NULL;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 1 << 18);
    gridDim.x = grid; gridDim.y = 1; gridDim.z = 1;
    blockDim.x = block; blockDim.y = 1; blockDim.z = 1;
    for (unsigned int b = 0; b < grid && !err; ++b) {  /* blocks in turn */
        unsigned int started = 0;
        sn_gate_state = 0;
        pthread_barrier_init(&sn_barrier, NULL, block);
        for (; started < block; ++started) {  /* one POSIX thread per CUDA thread of the block */
            ctx[started].body = body; ctx[started].args = args;
            ctx[started].tid = started; ctx[started].bid = b;
            if (pthread_create(&threads[started], &attr, sn_thread, &ctx[started]) != 0) {
                err = 2;
                break;
            }
        }
        sn_open_gate(err ? 2 : 1);
        for (unsigned int t = 0; t < started; ++t)  /* the block ends when its threads do */
            pthread_join(threads[t], NULL);
        pthread_barrier_destroy(&sn_barrier);
    }
    pthread_attr_destroy(&attr);
    free(threads);
    free(ctx);
    return err;
}
"""


def parse_kernels(source: str) -> dict:
    """{kernel name: [(C type, parameter name), ...]} of every ``SN_KERNEL void name(...)`` in ``source``."""
    kernels = {}
    for name, params in _SIGNATURE.findall(source):
        parsed = []
        for param in params.split(","):
            m = re.fullmatch(r"\s*(.*?)\s*(\w+)\s*", param.replace("\n", " "))
            parsed.append((" ".join(m.group(1).split()), m.group(2)))
        kernels[name] = parsed
    return kernels


def _driver(name: str, params: list) -> str:
    """C that packs a kernel's arguments and runs it with ``sn_run``: ``int sn_launch_<name>(grid, block, ...)``."""
    fields = "".join(f"    {ctype} {pname};\n" for ctype, pname in params)
    names = ", ".join(p for _, p in params)
    unpacked = ", ".join(f"a->{p}" for _, p in params)
    decl = ", ".join(f"{ctype} {pname}" for ctype, pname in params)
    return (f"typedef struct {{\n{fields}}} sn_args_{name};\n"
            f"static void sn_body_{name}(const void* p) {{ const sn_args_{name}* a = p; {name}({unpacked}); }}\n"
            f"int sn_launch_{name}(unsigned int grid, unsigned int block, {decl})\n"
            f"{{ sn_args_{name} a = {{ {names} }}; return sn_run(grid, block, sn_body_{name}, &a); }}\n")


def _ctypes_of(ctype: str, dtype):
    """(ctypes type, expected NumPy dtype, is pointer) of a parameter's C type."""
    pointer = ctype.endswith("*")
    base = ctype.rstrip("*").replace("const", "").strip()
    if base not in _C_TYPES:
        raise TypeError(f"cuda_emulator: parameter type {ctype!r} is not one the kernels may use "
                        f"({', '.join(_C_TYPES)} or pointers to them)")
    expected = np.dtype(dtype) if base == "real" else _C_TYPES[base]
    if pointer:
        return ctypes.c_void_p, expected, True
    return np.ctypeslib.as_ctypes_type(expected), expected, False


def available() -> bool:
    """True when a C compiler is on the PATH (``$CC``, else ``cc``)."""
    return shutil.which(os.environ.get("CC", "cc")) is not None


@functools.lru_cache(maxsize=None)
def _build_folder() -> str:
    """One temporary folder per process for the built libraries, removed when the process ends."""
    folder = tempfile.mkdtemp(prefix="scratchnet-cuda-emulator-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


@functools.lru_cache(maxsize=None)
def _library(source: str, dtype_name: str):
    """Build ``source`` for ``dtype_name`` with a launcher per kernel; the loaded library."""
    text = kernel_source(source, dtype_name) + _RUNTIME
    text += "".join(_driver(name, params) for name, params in parse_kernels(source).items())
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    folder = _build_folder()
    c_file, so_file = os.path.join(folder, f"{digest}.c"), os.path.join(folder, f"{digest}.so")
    with open(c_file, "w") as f:
        f.write(text)
    cmd = [os.environ.get("CC", "cc"), "-std=gnu99", "-O1", "-Wall", "-Wno-unused-function",
           "-shared", "-fPIC", "-pthread", "-o", so_file, c_file, "-lm"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"cuda_emulator: the kernel source does not compile as C ({' '.join(cmd[:1])}):\n"
                           f"{done.stderr}")
    return ctypes.CDLL(so_file)


class EmulatedKernel:
    """One kernel of a source, built for one dtype; ``kernel((grid,), (block,), args)`` as CuPy's."""

    def __init__(self, source: str, name: str, dtype):
        params = parse_kernels(source)
        if name not in params:
            raise KeyError(f"cuda_emulator: no kernel {name!r} in the source (it has {sorted(params)})")
        self.name, self.dtype, self.params = name, np.dtype(dtype), params[name]
        self._kinds = [_ctypes_of(ctype, self.dtype) for ctype, _ in self.params]
        self._fn = getattr(_library(source, self.dtype.name), f"sn_launch_{name}")
        self._fn.argtypes = [ctypes.c_uint, ctypes.c_uint] + [k[0] for k in self._kinds]
        self._fn.restype = ctypes.c_int

    def __call__(self, grid, block, args):
        """Run the kernel on NumPy arrays (C-contiguous, of the declared dtypes; written in place) and
        NumPy scalars of the declared types, like CuPy's launch. 1-D grids and blocks only."""
        grid, block = _one_dim("grid", grid), _one_dim("block", block)
        if len(args) != len(self.params):
            raise TypeError(f"{self.name}: takes {len(self.params)} arguments, got {len(args)}")
        values = []
        for value, (ctype, pname), (_, expected, pointer) in zip(args, self.params, self._kinds):
            where = f"{self.name}: argument {pname} ({ctype})"
            if pointer:
                if not isinstance(value, np.ndarray):
                    raise TypeError(f"{where} must be an array, got {type(value).__name__}")
                ok = value.dtype == expected or (expected == np.uint8 and value.dtype == np.bool_)
                if not ok:
                    raise TypeError(f"{where} must have dtype {expected}, got {value.dtype}")
                if not value.flags.c_contiguous:
                    raise TypeError(f"{where} must be C-contiguous")
                values.append(value.ctypes.data)
            else:
                if not isinstance(value, np.generic) or value.dtype != expected:
                    raise TypeError(f"{where} must be a NumPy scalar of dtype {expected} (a Python number "
                                    f"would not reach the GPU with that width), got {value!r} "
                                    f"({type(value).__name__})")
                values.append(value.item())
        err = self._fn(grid, block, *values)
        if err:
            raise RuntimeError(f"{self.name}: the emulator could not start {block} threads per block")


def _one_dim(what, dims):
    """The size of a 1-D launch dimension given as an int or a tuple (n,) / (n, 1, 1)."""
    dims = (dims,) if isinstance(dims, int) else tuple(dims)
    if not dims or any(int(d) != 1 for d in dims[1:]) or int(dims[0]) < 1:
        raise ValueError(f"cuda_emulator: the kernels use 1-D launches; got {what} {dims}")
    return int(dims[0])


def compile_kernel(source: str, name: str, dtype) -> EmulatedKernel:
    """``kernels.cuda.compile_kernel`` for the CPU: the kernel ``name`` of ``source`` built for ``dtype``."""
    return _cached_kernel(source, name, np.dtype(dtype).name)


@functools.lru_cache(maxsize=None)
def _cached_kernel(source, name, dtype_name):
    return EmulatedKernel(source, name, dtype_name)
