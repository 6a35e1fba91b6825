"""Tiny Shakespeare, the char-rnn corpus: one ASCII text file of about 1.1 million characters."""
from __future__ import annotations

from .registry import dataset_path

__all__ = ["load_tinyshakespeare"]


def load_tinyshakespeare(*, root=None, download=True) -> str:
    """The whole text of ``input.txt`` (1,115,394 characters, 65 distinct), downloading it if missing."""
    path = dataset_path("tinyshakespeare", root=root, download=download) / "input.txt"
    with open(path, encoding="utf-8", newline="") as f:  # the characters exactly as stored
        return f.read()
