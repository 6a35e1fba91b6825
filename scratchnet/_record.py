"""``record(**metrics)``: what a notebook reports (test_error, cer, val_loss, seconds, ...).

Each call prints the metrics and, when ``scratchnet run`` executes the notebook, appends them to
the JSON file named by ``SCRATCHNET_RECORD`` so the runner can print them afterwards.
"""
from __future__ import annotations

import json
import os

__all__ = ["record", "METRIC_NAMES"]

METRIC_NAMES = ("test_error", "test_accuracy", "cer", "wer", "val_loss", "log_likelihood", "map50", "seconds")


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
