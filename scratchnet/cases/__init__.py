"""Gradient-check cases for ``scratchnet gradcheck``: one module per op family.

Each module registers zero-argument functions with ``@register_case("family.op[option]")`` that
return a GradcheckReport (float64, small shapes, inputs kept off kinks and ties).
"""
from . import attention  # noqa: F401
from . import conv  # noqa: F401
from . import core  # noqa: F401
from . import ctc  # noqa: F401
from . import energy  # noqa: F401
from . import recurrent  # noqa: F401
from . import resnet  # noqa: F401
