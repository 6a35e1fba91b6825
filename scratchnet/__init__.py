"""scratchnet: the architectures of the survey with hand-derived backward passes, in NumPy.

    import scratchnet as sn
    import scratchnet.functional as F
    y, cache = F.linear(x, w, b); dx, dw, db = F.linear_backward(dy, cache)

Importing scratchnet changes no process-wide state; the allocator tuning for training loops is an
explicit call, ``sn.keep_freed_memory()``, which ``fit`` and the ``scratchnet`` command make.
"""
from . import backend, data, functional, gradcheck, nn, optim, train  # noqa: F401
from ._alloc import apply_if_requested as _apply_if_requested
from ._alloc import keep_freed_memory  # noqa: F401
from ._random import default_rng, get_rng, seed  # noqa: F401
from .nn.module import no_grad  # noqa: F401
from .runs import record  # noqa: F401

F = functional
__version__ = "0.1.0"

_apply_if_requested()  # only with SCRATCHNET_MALLOC=keep (the kernel of `scratchnet run`); see _alloc.py
