"""Modules: Parameter, Module, Sequential, no_grad, and layer classes with PyTorch's names."""
from . import init  # noqa: F401
from .attention import *  # noqa: F401,F403
from .conv import *  # noqa: F401,F403
from .ctc import *  # noqa: F401,F403
from .layers import *  # noqa: F401,F403
from .loss import *  # noqa: F401,F403
from .module import CheckpointError, Module, Parameter, Sequential, is_grad_enabled, no_grad  # noqa: F401
from .recurrent import *  # noqa: F401,F403
from .transformer import *  # noqa: F401,F403
