"""Pure forward/backward pairs, one file per family (import as ``F``).

``y, cache = F.op(x, ...)`` and ``dx, ... = F.op_backward(dy, cache)``.
"""
from .activation import *  # noqa: F401,F403
from .attention import *  # noqa: F401,F403
from .channel import *  # noqa: F401,F403
from .contrastive import *  # noqa: F401,F403
from .conv import *  # noqa: F401,F403
from .ctc import *  # noqa: F401,F403
from .distill import *  # noqa: F401,F403
from .double_backward import *  # noqa: F401,F403
from .dropout import *  # noqa: F401,F403
from .energy import *  # noqa: F401,F403
from .fusion import *  # noqa: F401,F403
from .gru import *  # noqa: F401,F403
from .gumbel import *  # noqa: F401,F403
from .linear import *  # noqa: F401,F403
from .location_attention import *  # noqa: F401,F403
from .loss import *  # noqa: F401,F403
from .lstm import *  # noqa: F401,F403
from .mask_loss import *  # noqa: F401,F403
from .mlm import *  # noqa: F401,F403
from .norm import *  # noqa: F401,F403
from .patch import *  # noqa: F401,F403
from .pool import *  # noqa: F401,F403
from .prune import *  # noqa: F401,F403
from .pyramid import *  # noqa: F401,F403
from .quant import *  # noqa: F401,F403
from .recurrent import *  # noqa: F401,F403
from .roi import *  # noqa: F401,F403
from .rpn import *  # noqa: F401,F403
from .shape import *  # noqa: F401,F403
from .smooth_l1 import *  # noqa: F401,F403
from .subsample import *  # noqa: F401,F403
from .yolo import *  # noqa: F401,F403
