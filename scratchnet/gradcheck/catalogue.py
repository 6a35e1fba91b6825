"""The catalogue: every registered case, loaded on first use, listed and run by name.

    catalogue_names()                   # ["attention.additive", ..., "resnet.bottleneck[projection,train]"]
    run_case("ctc.ctc_loss[reductions]")            # [GradcheckReport, ...]
    for name, report in run_cases("conv."): ...     # what `scratchnet gradcheck conv.` prints

``load_catalogue`` is the one place that imports ``cases/`` (inside the function, so
``import scratchnet`` stays light); the cases import ``registry`` and ``checker``, never this module.
"""
from __future__ import annotations

from collections.abc import Iterator

from .checker import GradcheckReport
from .registry import CASES

__all__ = ["load_catalogue", "catalogue_names", "run_case", "run_cases"]


def load_catalogue() -> dict:
    """Import every case module (importing registers its cases) and return the registry."""
    from . import cases  # noqa: F401  (the cases register themselves on import)
    return CASES


def catalogue_names(pattern: str | None = None) -> list[str]:
    """Sorted names of the registered cases that contain ``pattern`` (all of them by default)."""
    return sorted(name for name in load_catalogue() if not pattern or pattern in name)


def run_case(name: str) -> list[GradcheckReport]:
    """Run the case registered under exactly ``name``; its reports as a list."""
    catalogue = load_catalogue()
    if name not in catalogue:
        raise KeyError(f"run_case: no gradcheck case named {name!r}")
    reports = catalogue[name]()
    return list(reports) if isinstance(reports, (list, tuple)) else [reports]


def run_cases(pattern: str | None = None) -> Iterator[tuple[str, GradcheckReport]]:
    """Run every registered case whose name contains ``pattern``; yields (name, report)."""
    for name in catalogue_names(pattern):
        for report in run_case(name):
            yield name, report
