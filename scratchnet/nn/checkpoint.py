"""Checkpoint files: ``.npz`` weights plus a JSON ``__meta__`` entry, never pickled.

``write_checkpoint`` writes beside the target under a temporary name, flushes to disk and moves it
over the target in one step (``os.replace``), so a crash mid-write leaves the previous checkpoint
intact; ``read_checkpoint`` reads and checks the whole file before anything is used, and turns any
problem with it into one ``CheckpointError`` naming the file. ``Module.save`` / ``Module.load`` call them.
"""
from __future__ import annotations

import contextlib
import json
import os
import secrets
from collections import OrderedDict

import numpy as np

__all__ = ["CHECKPOINT_FORMAT", "CheckpointError", "write_checkpoint", "read_checkpoint"]

CHECKPOINT_FORMAT = "scratchnet-npz-1"


class CheckpointError(ValueError):
    """A checkpoint file that cannot be loaded: unreadable or corrupt, not a scratchnet checkpoint,
    or holding weights that do not fit the model. The message names the file."""


def write_checkpoint(path, state, config) -> None:
    """Write ``state`` (name → array, in order) and ``config`` (JSON-serialisable) to ``path`` atomically."""
    meta = {"format": CHECKPOINT_FORMAT, "config": config, "keys": list(state)}
    arrays = {f"arr_{i}": v for i, v in enumerate(state.values())}
    arrays["__meta__"] = np.array(json.dumps(meta))  # a unicode string array, not an object
    path = os.fspath(path)
    folder, base = os.path.split(os.path.abspath(path))
    tmp = os.path.join(folder, f".{base}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "xb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:  # Ctrl-C included: the old checkpoint stays, the partial file goes
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError, AttributeError):  # make the rename itself durable (POSIX)
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def read_checkpoint(path, op: str):
    """(meta dict, OrderedDict of arrays) of a ``save``d file, every array read in full (so a zip CRC
    error shows here); any problem with the file becomes one CheckpointError naming it."""
    try:
        with np.load(path, allow_pickle=False) as z:
            if "__meta__" not in z.files:
                raise CheckpointError(f"{op}: {path} is not a scratchnet checkpoint (no __meta__ entry)")
            meta = json.loads(str(z["__meta__"]))
            if isinstance(meta, dict) and meta.get("format", CHECKPOINT_FORMAT) != CHECKPOINT_FORMAT:
                raise CheckpointError(f"{op}: {path} has format {meta['format']!r}; this version reads "
                                      f"{CHECKPOINT_FORMAT!r}")
            keys = meta.get("keys") if isinstance(meta, dict) else None
            if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
                raise CheckpointError(f"{op}: {path} has a malformed __meta__ entry (no list of keys)")
            names = [f"arr_{i}" for i in range(len(keys))]
            if sorted(names) != sorted(n for n in z.files if n != "__meta__"):
                raise CheckpointError(f"{op}: {path} holds {len(z.files) - 1} arrays but its __meta__ "
                                      f"lists {len(keys)} keys")
            arrays = OrderedDict((k, z[n]) for k, n in zip(keys, names))
    except CheckpointError:
        raise
    except (FileNotFoundError, PermissionError, IsADirectoryError):
        raise  # a wrong path, not a damaged file: the usual OSError says what is wrong
    except Exception as e:  # BadZipFile, CRC errors, EOFError, zlib.error, JSONDecodeError, bad .npy headers, ...
        if isinstance(e, ValueError) and ("pickle" in str(e).lower() or "Object arrays" in str(e)):
            raise CheckpointError(f"{op}: {path} contains pickled objects; scratchnet checkpoints never "
                                  "unpickle") from e
        raise CheckpointError(f"{op}: {path} is corrupt or not a scratchnet checkpoint "
                              f"({type(e).__name__}: {e})") from e
    return meta, arrays
