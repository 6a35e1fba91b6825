"""The fast routes, kept out of the teaching code.

Two kinds of file:

- ``<family>_loops.py`` hold only Numba loop kernels: constants are arguments, outputs are
  preallocated by the caller, no fastmath, ``parallel=True`` only over independent outputs.
- ``<family>.py`` (``conv``, ``pool``, ``activation``, ``ctc``, ``recurrent``, ``norm``, ``loss``, ...)
  are the route files: each ``functional/<family>.py`` makes ONE call into its route file, passing its readable
  reference; the route file chooses between that reference (also the CuPy and float16 path) and
  the loop kernels with ``scratchnet._jit.jit_route``, and owns the size thresholds, shortcuts and
  streaming. Route files never import ``scratchnet.functional`` (no import cycle).

- ``<family>_cupy.py`` (``ctc``, ``pool``) hold CUDA kernels for CuPy arrays, as CUDA C text behind the
  prelude of ``cuda.py``: NVRTC compiles it on a GPU (``cuda.compile_kernel``), and the C compiler
  builds the same text for ``cuda_emulator``, which runs it on a CPU (a POSIX thread per CUDA
  thread) so the tests check it everywhere. The route file sends CuPy float32/float64 arrays there
  (``cuda.cuda_route``).

Every route has a test against its reference; timings live in ``benchmarks/``.
"""
