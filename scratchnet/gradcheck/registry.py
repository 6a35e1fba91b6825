"""The registry of gradient-check cases: a name → zero-argument function table.

    @register_case("conv.conv2d")
    def conv2d_cases():
        return [check_function(F.conv2d, F.conv2d_backward, [x, w, b], stride=s) for s in (1, 2)]

The case modules in ``cases/`` import this module and ``checker``; this module imports neither
them nor the package, so registering never starts an import cycle. ``catalogue`` loads the cases.
"""
from __future__ import annotations

from collections.abc import Callable

__all__ = ["CASES", "register_case"]

CASES: dict[str, Callable] = {}  # "family.op[option]" → function returning a report or a list of them


def register_case(name: str):
    """Decorator: register a zero-argument function returning a GradcheckReport (or a list of them)."""
    def deco(fn):
        if name in CASES and CASES[name] is not fn:
            raise ValueError(f"register_case: a gradcheck case named {name!r} is already registered")
        CASES[name] = fn
        return fn
    return deco
