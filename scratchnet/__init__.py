"""scratchnet: every architecture of the survey with hand-derived backward passes, in NumPy.

    import scratchnet as sn
    import scratchnet.functional as F
    y, cache = F.linear(x, w, b); dx, dw, db = F.linear_backward(dy, cache)
"""
from ._alloc import keep_freed_memory

keep_freed_memory()  # reuse freed large arrays instead of page-faulting fresh ones (see _alloc.py)

from . import backend, data, functional, gradcheck, nn, optim, train  # noqa: F401
from ._random import default_rng, get_rng, seed  # noqa: F401
from ._record import record  # noqa: F401
from .nn.module import no_grad  # noqa: F401

F = functional
__version__ = "0.1.0"
