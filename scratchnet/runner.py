"""Run a chapter's notebook headless and collect what it recorded (``scratchnet run NN-name``).

The notebook runs in a fresh ``python3`` kernel whose working directory is the notebooks folder,
with ``SCRATCHNET_QUICK`` set, progress bars off (``SCRATCHNET_PROGRESS=0``: no frozen widgets in
the saved copy), matplotlib's inline backend (plots are stored in the executed copy), and ``SCRATCHNET_RECORD`` naming the JSON file that
``scratchnet.record(...)`` fills. The executed copy, plots included, is saved under ``out_dir``.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import time
from pathlib import Path

__all__ = ["find_notebook", "run_notebook", "notebook_dirs", "NotebookError"]

PACKAGE_ROOT = Path(__file__).resolve().parent.parent  # the repository next to the package
# figures are rendered into the executed copy as PNGs (the kernel's inline backend; no display needed)
INLINE_BACKEND = "module://matplotlib_inline.backend_inline"


class NotebookError(RuntimeError):
    """A notebook cell failed; ``.executed_path`` is the saved copy to inspect."""

    def __init__(self, message, executed_path=None):
        super().__init__(message)
        self.executed_path = executed_path


def notebook_dirs() -> list:
    """Folders searched for notebooks: ``./notebooks``, then the repository next to the package."""
    dirs = [Path.cwd() / "notebooks", PACKAGE_ROOT / "notebooks"]
    unique = []
    for d in dirs:
        if d.is_dir() and d.resolve() not in unique:
            unique.append(d.resolve())
    return unique


def find_notebook(name) -> Path:
    """The notebook called ``name``: a path to an .ipynb, a full stem ("01-mlp"), its number ("01")
    or its name ("mlp")."""
    path = Path(name)
    if path.suffix == ".ipynb":
        if path.is_file():
            return path.resolve()
        raise FileNotFoundError(f"find_notebook: no such notebook file: {name}")
    for folder in notebook_dirs():
        stems = sorted(p.stem for p in folder.glob("*.ipynb"))
        hits = [s for s in stems if name in (s, s.split("-", 1)[0], s.split("-", 1)[-1])]
        if len(hits) > 1:
            raise ValueError(f"find_notebook: {name!r} matches several notebooks in {folder}: {hits}")
        if hits:
            return folder / f"{hits[0]}.ipynb"
    searched = ", ".join(str(d) for d in notebook_dirs()) or "(no notebooks folder found)"
    raise FileNotFoundError(f"find_notebook: no notebook called {name!r} in {searched}; "
                            "`scratchnet list` shows the chapters")


@contextlib.contextmanager
def _environ(**values):
    """Temporarily set environment variables (inherited by the kernel process)."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _failed_cell(nb):
    """(index, first source line) of the first code cell holding an error output, or (None, "")."""
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and any(o.get("output_type") == "error" for o in cell.get("outputs", [])):
            first = next((line for line in cell.source.splitlines() if line.strip()), "")
            return i, first
    return None, ""


def run_notebook(name, *, quick=False, timeout=None, out_dir="runs") -> dict:
    """Execute a notebook headless; returns the metrics it recorded plus ``seconds`` of wall time.

    quick: set ``SCRATCHNET_QUICK=1`` (small subset / few steps) instead of 0.
    timeout: seconds allowed per cell (None: no limit).
    out_dir: where ``<name>.ipynb`` (the executed copy) and ``<name>.metrics.json`` are written.
    Raises NotebookError naming the notebook and the failing cell; the executed copy is still saved.
    """
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    path = find_notebook(name)
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    executed_path, record_path = out / f"{path.stem}.ipynb", out / f"{path.stem}.metrics.json"
    record_path.unlink(missing_ok=True)  # never report a previous run's numbers
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=None if timeout is None else math.ceil(timeout), kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    pythonpath = os.pathsep.join(p for p in (str(PACKAGE_ROOT), os.environ.get("PYTHONPATH")) if p)
    start = time.perf_counter()
    try:
        with _environ(SCRATCHNET_QUICK="1" if quick else "0", SCRATCHNET_PROGRESS="0", MPLBACKEND=INLINE_BACKEND,
                      SCRATCHNET_RECORD=str(record_path), PYTHONPATH=pythonpath):
            client.execute()
    except (CellExecutionError, CellTimeoutError, DeadKernelError) as e:
        nbformat.write(nb, executed_path)
        index, first = _failed_cell(nb)
        where = f"cell {index} ({first.strip()[:60]!r})" if index is not None else "a cell"
        if isinstance(e, CellTimeoutError):
            summary = f"timed out (limit {timeout} s per cell)"
        elif getattr(e, "ename", None):  # CellExecutionError: the Python exception in the kernel
            summary = f"{e.ename}: {e.evalue}"
        else:  # the kernel died
            summary = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise NotebookError(f"notebook {path.stem} failed in {where}: {summary}\n"
                            f"executed copy saved to {executed_path}", executed_path) from e
    seconds = time.perf_counter() - start
    nbformat.write(nb, executed_path)
    metrics = json.loads(record_path.read_text()) if record_path.exists() else {}
    metrics.setdefault("seconds", seconds)
    record_path.write_text(json.dumps(metrics, indent=1))
    return metrics
