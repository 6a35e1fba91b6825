"""The one progress bar of the library: a wrapper over ``tqdm.auto`` with a resolved ``disable``.

    for batch in progress(batches, total=len(batches), desc="epoch 1", leave=False): ...

Bars are quiet where nobody watches them (logs, pytest, headless notebook runs, which would store
a frozen widget) and drawn in a terminal or a notebook kernel; ``SCRATCHNET_PROGRESS`` overrides.
"""
from __future__ import annotations

import os
import sys

__all__ = ["progress", "progress_disabled"]


def _in_notebook_kernel() -> bool:
    """True inside a Jupyter kernel (where tqdm.auto draws a widget)."""
    ipython = sys.modules.get("IPython")
    if ipython is None:  # never import IPython just to ask
        return False
    shell = ipython.get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def progress_disabled(disable=None) -> bool:
    """Resolve ``disable=None``: quiet when ``SCRATCHNET_PROGRESS=0``, or when stdout is neither a
    terminal nor a notebook kernel (logs, pytest, headless runs). ``SCRATCHNET_PROGRESS=1`` forces bars on."""
    if disable is not None:
        return bool(disable)
    env = os.environ.get("SCRATCHNET_PROGRESS")
    if env in ("0", "1"):
        return env == "0"
    try:
        tty = sys.stdout.isatty()
    except (AttributeError, ValueError):  # replaced or closed stdout
        tty = False
    return not (tty or _in_notebook_kernel())


def progress(iterable=None, *, disable=None, **kw):
    """``tqdm.auto.tqdm`` with a resolved ``disable``.

    ``disable=None`` follows ``progress_disabled``, so headless notebook runs (``scratchnet run``
    sets ``SCRATCHNET_PROGRESS=0``) never store a frozen widget. Other keywords go to tqdm
    (``total``, ``desc``, ``leave``, ...).
    """
    from tqdm.auto import tqdm
    return tqdm(iterable, disable=progress_disabled(disable), **kw)
