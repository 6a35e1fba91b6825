"""The book's chapters: the fixed order of parts, which chapters exist, their prerequisites, and the
linker that turns a textual "chapter 14, §4" into a link (used by ``scratchnet/book.py``)."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PARTS", "SHORT", "PATHS", "PART_COLOURS", "API_PACKAGES", "Chapter", "discover",
           "section_labels", "link_chapter_references"]

PARTS = (
    ("Foundations", ("00", "01")),
    ("Energy-based and stacked", ("02", "03", "04")),
    ("Convolutional", ("05", "06", "07", "08", "09", "10", "11", "12", "13")),
    ("Sequences and speech", ("14", "15", "16", "17", "18")),
    ("Attention", ("19", "20", "21", "22", "23", "24", "25", "26")),
    ("Detection", ("27", "28", "29")),
    ("Generative", ("30", "31")),
    ("Real-time", ("32", "33", "34", "35")),
)
SHORT = {"00": "Notation", "01": "MLP", "02": "RBM", "03": "DBN", "04": "DSN", "05": "Convolution",
         "06": "LeNet-5", "07": "AlexNet", "08": "VGG", "09": "GoogLeNet", "10": "ResNet", "11": "DenseNet",
         "12": "MobileNet", "13": "EfficientNet", "14": "RNN, BPTT", "15": "LSTM", "16": "GRU", "17": "CTC",
         "18": "Deep Speech", "19": "Attention", "20": "Transformer", "21": "GPT", "22": "BERT", "23": "ViT",
         "24": "LAS", "25": "Speech-Transformer", "26": "wav2vec 2.0", "27": "R-CNN", "28": "YOLO",
         "29": "Mask R-CNN", "30": "DCGAN", "31": "WGAN", "32": "Multimodal", "33": "Pruning",
         "34": "Quantization", "35": "Distillation"}
# Three suggested paths (chapters that do not exist yet are left out when the page is made).
PATHS = (
    ("Vision", "from the perceptron to modern convolutional networks",
     ("00", "01", "05", "06", "07", "08", "09", "10", "11", "12", "13", "23", "27", "28", "29")),
    ("Speech", "recurrent networks through time, CTC and an end-to-end recogniser",
     ("00", "01", "14", "15", "16", "17", "18", "24", "25", "26")),
    ("Attention", "the shortest road to the transformer and GPT (ResNet only for its residual connection)",
     ("00", "01", "14", "16", "19", "10", "20", "21", "22", "23")),
)
PART_COLOURS = ("#e8eef7", "#f3e8f5", "#e6f2e6", "#fdf0dc", "#fde4e4", "#e4f4f4", "#f5f0e0", "#ececec")
API_PACKAGES = (
    ("functional", "Functional pairs", "The pure forward/backward pairs (``import scratchnet.functional as F``)."),
    ("nn", "Modules", "``Module``, ``Parameter`` and the layer classes over the functional pairs."),
    ("models", "Models", "One file per architecture of the book."),
    ("optim", "Optimizers", "Optimizers, schedules and gradient clipping."),
    ("gradcheck", "Gradient checking", "The checker and the catalogue of registered cases."),
)


@dataclass
class Chapter:
    number: str                 # "06"
    stem: str                   # "06-lenet5"
    title: str                  # the chapter's heading without its number
    path: Path
    notebook: Path | None       # notebooks/NN-name.ipynb
    executed: Path | None       # runs/NN-name.ipynb, saved by ``scratchnet run``
    prerequisites: tuple[str, ...]

    @property
    def short(self) -> str:
        return SHORT.get(self.number, self.stem.partition("-")[2])

    @property
    def nav_title(self) -> str:
        """The title up to its colon: "ResNet", not "ResNet: learning residuals, and ..."."""
        return self.title.split(":")[0].strip()

    @property
    def part(self) -> str:
        return next((name for name, numbers in PARTS if self.number in numbers), "More")


def _prerequisites(text: str, number: str) -> tuple[str, ...]:
    """Chapter numbers named in the "Prerequisites:" paragraph at the top of a chapter."""
    match = re.search(r"^Prerequisites:(.*?)(?:\n\s*\n|\Z)", text, flags=re.S | re.M)
    if not match:
        return ()
    found = re.findall(r"\]\((\d\d)-[\w-]+\.md|\bchapters? (\d\d)\b", match.group(1))
    numbers = [a or b for a, b in found]
    return tuple(dict.fromkeys(n for n in numbers if n < number))


def discover(root: Path) -> list[Chapter]:
    """Every chapter under ``root/chapters`` in book order, with its notebook and executed copy."""
    chapters = []
    for path in sorted((root / "chapters").glob("[0-9][0-9]-*.md")):
        text = path.read_text(encoding="utf-8")
        number = path.stem[:2]
        heading = re.search(r"^# (.+)$", text, flags=re.M)
        title = re.sub(r"^\d\d\s*·\s*", "", heading.group(1).strip()) if heading else path.stem
        notebook = root / "notebooks" / f"{path.stem}.ipynb"
        executed = root / "runs" / f"{path.stem}.ipynb"
        chapters.append(Chapter(number, path.stem, title, path, notebook if notebook.is_file() else None,
                                executed if executed.is_file() else None, _prerequisites(text, number)))
    return chapters


# -- textual chapter references -------------------------------------------------------------------
_PROTECTED = re.compile(  # spans left alone: code, math, links, roles, directives
    r"^(`{3,}|~{3,}).*?^\1[ \t]*$|^\$\$.*?^\$\$.*?$|`[^`\n]*`|\$[^$\n]+\$|!?\[[^\]]*\]\([^)]*\)"
    r"|\{[\w:-]+\}`[^`]*`|<!--.*?-->", re.S | re.M)
_ONE = re.compile(r"\b([Cc]hapter)\s(\d{1,2})\b(?:(,?\s+§|,\s+section\s)(\d+)\b(?!\.\d))?")
_MANY = re.compile(r"\b([Cc]hapters)\s(\d{1,2}(?:(?:,\s|\sand\s|,\sand\s)\d{1,2})+)\b")


def section_labels(text: str) -> dict[str, str]:
    """Number of each numbered section ("## 4. ...") → the label written just above it, if any."""
    labels, lines = {}, text.splitlines()
    for i, line in enumerate(lines[1:], 1):
        heading = re.match(r"^## (\d+)\.\s", line)
        label = re.match(r"^\(([^)\s]+)\)=\s*$", lines[i - 1])
        if heading and label:
            labels[heading.group(1)] = label.group(1)
    return labels


def link_chapter_references(text: str, number: str, chapters: list[Chapter]) -> str:
    """Make every "chapter 14", "chapter 14, §4" and "chapters 05 and 08" of a chapter's prose a link
    to that chapter (and section, when it has a label); code, math and existing links are left alone."""
    stems = {c.number: c.stem for c in chapters}
    labels = {c.number: section_labels(c.path.read_text(encoding="utf-8")) for c in chapters}

    def one(m: re.Match) -> str:
        n = m.group(2).zfill(2)
        if n not in stems or (n == number and not m.group(4)):
            return m.group(0)
        target = "" if n == number else f"{stems[n]}.md"
        label = labels[n].get(m.group(4) or "")
        return f"[{m.group(0)}]({target}{'#' + label if label else ''})" if target or label else m.group(0)

    def many(m: re.Match) -> str:
        numbers = re.sub(r"\d{1,2}", lambda k: f"[{k.group(0)}]({stems[k.group(0).zfill(2)]}.md)"
                         if k.group(0).zfill(2) in stems else k.group(0), m.group(2))
        return f"{m.group(1)} {numbers}"

    def plain(segment: str) -> str:
        return _ONE.sub(one, _MANY.sub(many, segment))

    out, pos = [], 0
    for m in _PROTECTED.finditer(text):
        out += [plain(text[pos:m.start()]), m.group(0)]
        pos = m.end()
    return "".join(out) + plain(text[pos:])
