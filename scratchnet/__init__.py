"""scratchnet: every architecture of the survey with hand-derived backward passes, in NumPy.

    import scratchnet as sn
    import scratchnet.functional as F
    y, cache = F.linear(x, w, b); dx, dw, db = F.linear_backward(dy, cache)
"""
from . import backend, functional, nn  # noqa: F401
from . import data, gradcheck, optim, train  # noqa: F401
from ._random import default_rng, get_rng, seed  # noqa: F401
from ._record import record  # noqa: F401
from .nn.module import no_grad  # noqa: F401

F = functional
__version__ = "0.1.0"
