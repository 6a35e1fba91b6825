"""Runs of a chapter's notebook: what the notebook records, and running it headless.

In the notebook, ``record(**metrics)`` (``sn.record(test_error=...)``) prints the metrics and, when
``scratchnet run`` executes the notebook, adds them to the JSON file named by ``SCRATCHNET_RECORD``.

``run_notebook(name)`` (``scratchnet run NN-name``) executes the notebook in a fresh ``python3``
kernel whose working directory is the notebooks folder, with ``SCRATCHNET_QUICK`` set, progress bars
off (``SCRATCHNET_PROGRESS=0``: no frozen widgets in the saved copy), matplotlib's inline backend
(plots are stored in the executed copy), the allocator tuning of training loops
(``SCRATCHNET_MALLOC=keep`` unless already set, see ``scratchnet/_alloc.py``) and
``SCRATCHNET_RECORD`` naming the file that ``record`` fills. The executed copy, plots included, is
saved under ``out_dir`` beside ``<name>.metrics.json``, which is strict JSON (NaN and ±inf as null).
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import time
from pathlib import Path

__all__ = ["record", "METRIC_NAMES", "json_safe", "find_notebook", "run_notebook", "notebook_dirs",
           "NotebookError", "reads_device", "CPU_ONLY", "check_notebook_device"]


# -- recording, inside the notebook ----------------------------------------------------------------
METRIC_NAMES = ("test_error", "test_accuracy", "cer", "wer", "val_loss", "test_loss", "log_likelihood", "map50",
                "mask_iou", "fid", "inception_score", "seconds")


def record(**metrics) -> dict:
    """Record named metrics (floats); returns them as a dict."""
    clean = {}
    for k, v in metrics.items():
        try:
            clean[k] = float(v)
        except (TypeError, ValueError):
            clean[k] = v if isinstance(v, (str, int, bool)) or v is None else str(v)
    path = os.environ.get("SCRATCHNET_RECORD")
    if path:
        old = {}
        if os.path.exists(path):
            with open(path) as f:
                old = json.load(f)
        old.update(clean)
        with open(path, "w") as f:
            json.dump(old, f, indent=1)
    print("recorded:", ", ".join(f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}" for k, v in clean.items()))
    return clean


def json_safe(metrics: dict) -> dict:
    """A copy of ``metrics`` with NaN and ±inf replaced by None, so ``json.dumps(..., allow_nan=False)``
    writes strict JSON (null) that every parser accepts."""
    return {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in metrics.items()}


# -- running, from the command line ----------------------------------------------------------------
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


# -- which notebooks run on a GPU ---------------------------------------------------------------------
# A notebook honours ``scratchnet run NAME --device gpu`` when it reads the setting: a code line calling
# ``device_from_env()`` (``DEVICE = device_from_env()`` in its setup cell, then ``fit(..., device=DEVICE)``).
# Every other notebook runs on the CPU only; why, in a few words (tests/test_cli.py keeps this table and
# the notebooks in step: an entry for each notebook that does not read the setting, none for one that does).
CPU_ONLY = {
    "02-rbm": "its RBMs train by contrastive divergence in their own NumPy loop (RBM.fit), not fit()",
    "04-dsn": "its modules are fitted by their own solvers (RBM.fit, L-BFGS), not fit()",
    "14-rnn-bptt": "its training loop is written out in the notebook, not fit()",
    "17-ctc": "its training loop is written out in the notebook, not fit()",
    "18-deep-speech": "its training loop is written out in the notebook, not fit()",
    "19-attention": "its training loop is written out in the notebook, not fit()",
    "20-transformer": "its training loops are written out in the notebook, not fit()",
    "22-bert": "its training loops are written out in the notebook, not fit()",
    "24-las": "its training loop is written out in the notebook, not fit()",
    "25-speech-transformer": "its training loop is written out in the notebook, not fit()",
    "26-wav2vec2": "its pre-training and fine-tuning loops are written out in the notebook, not fit()",
    "27-rcnn": "its detectors train in their own loops (train_faster_rcnn and the notebook's), not fit()",
    "28-yolo": "its detector trains in its own loop (train_yolo), not fit()",
    "29-mask-rcnn": "its detector trains in its own loop (train_mask_rcnn), not fit()",
    "30-dcgan": "its GAN trains in a loop written out in the notebook, not fit()",
    "31-wgan": "its GANs train in a loop written out in the notebook, not fit()",
    "32-multimodal": "its models train in their own loop (train_bimodal), not fit()",
    "34-quantization": "its quantisation-aware training keeps NumPy observers and weight scales, and its "
                       "int8 kernels run on the CPU only",
}


def reads_device(path) -> bool:
    """True when a code cell of the notebook at ``path`` calls ``device_from_env(`` (comment lines and
    markdown do not count): the notebook then honours ``SCRATCHNET_DEVICE``."""
    nb = json.loads(Path(path).read_text(encoding="utf-8"))
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        lines = "".join(source).splitlines() if isinstance(source, list) else source.splitlines()
        if any("device_from_env(" in line.split("#", 1)[0] for line in lines):
            return True
    return False


def check_notebook_device(path, device) -> None:
    """Raise ValueError, in one line naming the notebook, when ``device`` is 'gpu' and the notebook at
    ``path`` runs on the CPU only (it does not read ``device_from_env``); say why when ``CPU_ONLY`` knows."""
    if device != "gpu" or reads_device(path):
        return
    stem = Path(path).stem
    why = CPU_ONLY.get(stem, "it does not read the device setting (scratchnet.backend.device_from_env)")
    raise ValueError(f"notebook {stem} runs on the CPU only: {why}; run it without --device gpu")


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
    """Execute a notebook headless; returns the metrics it recorded plus ``seconds`` of wall time
    (as recorded: a NaN stays a float NaN here; the saved ``<name>.metrics.json`` has null).

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
                      SCRATCHNET_RECORD=str(record_path), PYTHONPATH=pythonpath,
                      SCRATCHNET_MALLOC=os.environ.get("SCRATCHNET_MALLOC") or "keep"):
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
    record_path.write_text(json.dumps(json_safe(metrics), indent=1, allow_nan=False))
    return metrics
