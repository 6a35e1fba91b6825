"""Tiny Shakespeare, the char-rnn corpus: one ASCII text file of about 1.1 million characters."""
from __future__ import annotations

from .registry import dataset_path

__all__ = ["load_tinyshakespeare", "parse_speeches"]


def load_tinyshakespeare(*, root=None, download=True) -> str:
    """The whole text of ``input.txt`` (1,115,394 characters, 65 distinct), downloading it if missing."""
    path = dataset_path("tinyshakespeare", root=root, download=download) / "input.txt"
    with open(path, encoding="utf-8", newline="") as f:  # the characters exactly as stored
        return f.read()


def parse_speeches(text):
    """The speeches of the play text, in order: a list of (speaker, speech, offset).

    A speech is a paragraph (separated by a blank line) whose first line is ``NAME:``; ``speech`` is
    the lines after it (the name removed) and ``offset`` the position of the paragraph in ``text``.
    Paragraphs without a ``NAME:`` line are skipped. See chapters/22-bert.md#bert-data.
    """
    out, pos = [], 0
    for para in text.split("\n\n"):
        start = pos + len(para) - len(para.lstrip("\n"))  # some paragraphs begin with an extra newline
        pos += len(para) + 2
        head, _, body = para.strip("\n").partition("\n")
        if head.endswith(":") and body:
            out.append((head[:-1], body, start))
    return out
