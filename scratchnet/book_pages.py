"""The pages the book build generates: the prerequisite graph (an SVG drawn here), the start page,
the results page, the API pages and the notebooks' copies (used by ``scratchnet/book.py``)."""
from __future__ import annotations

import html
import json
import math
import re
import time
from pathlib import Path

from .book_chapters import API_PACKAGES, PART_COLOURS, PARTS, PATHS, Chapter

__all__ = ["prerequisite_edges", "graph_svg", "index_page", "results_page", "api_page", "notebook_copy"]


# -- the prerequisite graph -----------------------------------------------------------------------
def prerequisite_edges(chapters: list[Chapter]) -> list[tuple[str, str]]:
    """(before, after) pairs from the chapters' prerequisites, without the edges implied by others."""
    present = {c.number for c in chapters}
    direct = {c.number: {p for p in c.prerequisites if p in present} for c in chapters}

    def reaches(a: str, b: str, skip: tuple[str, str]) -> bool:  # a path a → … → b not using `skip`
        stack, seen = [b], set()
        while stack:  # walk backwards from b through prerequisites
            node = stack.pop()
            for p in direct.get(node, ()):
                if (p, node) == skip or p in seen:
                    continue
                if p == a:
                    return True
                seen.add(p)
                stack.append(p)
        return False

    edges = sorted((p, c) for c, ps in direct.items() for p in ps)
    return [e for e in edges if not reaches(e[0], e[1], e)]


def graph_svg(chapters: list[Chapter], href=lambda c: f"chapters/{c.stem}.html") -> str:
    """The prerequisite graph as an SVG drawing, top to bottom, one colour per part, nodes linked."""
    by_number = {c.number: c for c in chapters}
    edges = prerequisite_edges(chapters)
    rank: dict[str, int] = {}
    for c in chapters:  # chapters come in number order and prerequisites have smaller numbers
        rank[c.number] = max((rank[p] + 1 for p, q in edges if q == c.number), default=0)
    rows: dict[int, list[str]] = {}
    for number in sorted(rank):
        rows.setdefault(rank[number], []).append(number)
    position: dict[str, float] = {}
    for r in sorted(rows):  # order each row by the mean position of its prerequisites
        row = rows[r]
        row.sort(key=lambda n: (sum(position[p] for p, q in edges if q == n) /
                                max(1, sum(1 for _, q in edges if q == n)) if r else 0, n))
        for i, n in enumerate(row):
            position[n] = i - (len(row) - 1) / 2
    box_w, box_h, gap_x, gap_y, pad = 128, 34, 22, 36, 12
    widest = max((len(row) for row in rows.values()), default=1)
    width = widest * (box_w + gap_x) + 2 * pad
    parts = [name for name, numbers in PARTS if any(n in by_number for n in numbers)]
    legend_h = 28
    height = len(rows) * (box_h + gap_y) - gap_y + 2 * pad + legend_h
    colour = {name: PART_COLOURS[i % len(PART_COLOURS)] for i, (name, _) in enumerate(PARTS)}

    def xy(n: str) -> tuple[float, float]:
        return width / 2 + position[n] * (box_w + gap_x), pad + legend_h + rank[n] * (box_h + gap_y)

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="sn-graph" viewBox="0 0 {width:.0f} {height:.0f}" '
           f'role="img" aria-label="Prerequisite graph of the chapters" '
           f'style="max-width:{width:.0f}px;width:100%;height:auto;font-family:sans-serif">',
           f'<rect width="{width:.0f}" height="{height:.0f}" fill="#ffffff"/>']
    x = pad
    for name in parts:  # legend: one swatch per part that has chapters
        out.append(f'<rect x="{x}" y="{pad}" width="12" height="12" rx="2" fill="{colour[name]}" stroke="#777"/>'
                   f'<text x="{x + 16}" y="{pad + 10}" font-size="11" fill="#333">{html.escape(name)}</text>')
        x += 16 + 6.2 * len(name) + 14
    for a, b in edges:
        (x1, y1), (x2, y2) = xy(a), xy(b)
        y1 += box_h
        mid = (y1 + y2) / 2
        out.append(f'<path d="M{x1:.1f},{y1:.1f} C{x1:.1f},{mid:.1f} {x2:.1f},{mid:.1f} {x2:.1f},{y2 - 4:.1f}" '
                   f'fill="none" stroke="#8a8a8a" stroke-width="1.3"/>'
                   f'<path d="M{x2 - 4:.1f},{y2 - 7:.1f} L{x2:.1f},{y2:.1f} L{x2 + 4:.1f},{y2 - 7:.1f}" '
                   f'fill="none" stroke="#8a8a8a" stroke-width="1.3"/>')
    for n in sorted(rank):
        c = by_number[n]
        x, y = xy(n)
        out.append(f'<a href="{html.escape(href(c))}"><title>{html.escape(c.number + " · " + c.title)}</title>'
                   f'<rect x="{x - box_w / 2:.1f}" y="{y:.1f}" width="{box_w}" height="{box_h}" rx="6" '
                   f'fill="{colour[c.part] if c.part in colour else "#eee"}" stroke="#555"/>'
                   f'<text x="{x:.1f}" y="{y + box_h / 2 + 4:.1f}" font-size="13" text-anchor="middle" '
                   f'fill="#111">{html.escape(c.number + " " + c.short)}</text></a>')
    out.append("</svg>")
    return "\n".join(out)


# -- generated pages ------------------------------------------------------------------------------
def _chapter_link(c: Chapter, prefix: str = "") -> str:
    return f"[{c.number} · {c.short}]({prefix}chapters/{c.stem}.md)"


def _toctrees(chapters: list[Chapter]) -> str:
    blocks = []
    for part, numbers in PARTS + (("More", ()),):
        members = [c for c in chapters if c.part == part]
        if not members:
            continue
        lines = ["```{toctree}", f":caption: {part}", ":hidden:", ""]
        for c in members:
            lines.append(f"{c.number} · {c.nav_title} <chapters/{c.stem}>")
            if c.notebook:
                lines.append(f"{c.number} · the notebook <notebooks/{c.stem}>")
        blocks.append("\n".join(lines + ["```"]))
    blocks.append("\n".join(["```{toctree}", ":caption: Reference", ":hidden:", "", "results"]
                            + [f"api/{name}" for name, _, _ in API_PACKAGES] + ["```"]))
    return "\n\n".join(blocks)


def _contents(chapters: list[Chapter]) -> str:
    lines = []
    for part, _ in PARTS + (("More", ()),):
        members = [c for c in chapters if c.part == part]
        if members:
            lines += [f"**{part}**", ""]
            lines += [f"- [{c.number} · {c.title}](chapters/{c.stem}.md)"
                      + (f" · [notebook](notebooks/{c.stem}.ipynb)" if c.notebook else "") for c in members]
            lines.append("")
    return "\n".join(lines)


def _paths(chapters: list[Chapter]) -> str:
    by_number = {c.number: c for c in chapters}
    lines = []
    for name, what, numbers in PATHS:
        steps = [_chapter_link(by_number[n]) for n in numbers if n in by_number]
        lines.append(f"**{name}** — {what}: " + " → ".join(steps) + ".")
    return "\n\n".join(lines)


def index_page(template: str, chapters: list[Chapter]) -> str:
    """The start page: ``book/index.md`` with its placeholders filled in, then the hidden toctrees."""
    filled = (template.replace("{{ graph }}", "```{raw} html\n" + graph_svg(chapters) + "\n```")
              .replace("{{ paths }}", _paths(chapters))
              .replace("{{ contents }}", _contents(chapters)))
    return filled.rstrip() + "\n\n" + _toctrees(chapters) + "\n"


def _readme_table(root: Path) -> list[dict[str, str]]:
    """The rows of the README's results table (columns #, chapter, architecture, data, measured, paper)."""
    readme = root / "README.md"
    if not readme.is_file():
        return []
    lines = readme.read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[:1] == ["#"] and "measured" in cells:
            rows = []
            for row in lines[i + 2:]:
                if not row.startswith("|"):
                    break
                values = [c.strip() for c in row.strip().strip("|").split("|")]
                rows.append(dict(zip(cells, values)))
            return rows
    return []


def _format_metric(name: str, value) -> str:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return f"{name.replace('_', ' ')} {value}"
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return f"{name.replace('_', ' ')} —"
    if name.endswith("seconds"):
        return f"{name.replace('_', ' ')} {value:.0f}"
    if any(k in name for k in ("error", "accuracy", "cer", "wer")) and 0 <= value <= 1:
        return f"{name.replace('_', ' ')} {100 * value:.2f} %"
    if name.endswith("epoch"):
        return f"{name.replace('_', ' ')} {value:g}"
    return f"{name.replace('_', ' ')} {value:.4g}"


def _plain_links(cell: str) -> str:
    """Keep web links; turn repository-relative links into their text (they are not book pages)."""
    return re.sub(r"\[([^\]]*)\]\((?!https?:)[^)]*\)", r"\1", cell)


def results_page(root: Path, chapters: list[Chapter]) -> str:
    """The measured metric of every chapter beside the paper's number (README table), with the metrics
    of the executed copies under ``runs/`` when the machine that built the book has them."""
    by_number = {c.number: c for c in chapters}
    readme = {row.get("#", ""): row for row in _readme_table(root)}
    runs = {c.number: json.loads((root / "runs" / f"{c.stem}.metrics.json").read_text())
            for c in chapters if (root / "runs" / f"{c.stem}.metrics.json").is_file()}
    numbers = sorted(set(readme) & set(by_number) | set(runs))
    lines = ["---", "html_theme.sidebar_secondary.remove: true", "---", "", "# Results", "",
             "What each chapter's notebook measured, with the paper's number beside it. Every choice is made "
             "on a validation split carved from the training data; the test set is evaluated once, at the "
             "end, and that is the number below. The *measured* and *paper* columns are the table of the "
             "README; the last column, when present, holds the metrics that `scratchnet run NN-name` recorded "
             "(`runs/NN-name.metrics.json`) on the machine that built this book.", ""]
    header = ["chapter", "measured", "paper"] + (["recorded run"] if runs else [])
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for n in numbers:
        row = readme.get(n, {})
        chapter = _chapter_link(by_number[n]) if n in by_number else f"{n} · {row.get('chapter', '')}"
        about = "; ".join(_plain_links(row[k]) for k in ("architecture", "data") if row.get(k, "—") != "—")
        cells = [chapter + (f"<br>{about}" if about else "")]
        cells += [_plain_links(row.get(k, "—")) for k in ("measured", "paper")]
        if runs:
            cells.append("<br>".join(_format_metric(k, v) for k, v in runs.get(n, {}).items()) or "—")
        lines.append("| " + " | ".join(cells) + " |")
    if not runs:
        lines += ["", "No executed notebooks were found under `runs/` when this book was built: the notebook "
                  "pages show their code without outputs. `scratchnet run NN-name` runs one and records its "
                  "metrics, and the next build shows both."]
    return "\n".join(lines) + "\n"


def api_page(root: Path, package: str, title: str, blurb: str) -> str:
    """An autodoc page for ``scratchnet.<package>``: one section per module, in file order."""
    modules = sorted(p.stem for p in (root / "scratchnet" / package).glob("*.py") if not p.stem.startswith("_"))
    text = f"{title}\n{'=' * len(title)}\n\n{blurb}\n\n.. automodule:: scratchnet.{package}\n   :no-members:\n"
    for m in modules:
        heading = f"scratchnet/{package}/{m}.py"
        text += f"\n{heading}\n{'-' * len(heading)}\n\n.. automodule:: scratchnet.{package}.{m}\n"
    return text


def notebook_copy(c: Chapter) -> str:
    """The notebook as the book shows it: the executed copy under runs/ when there is one (full mode,
    with its plots), else the notebook itself without outputs; a banner after the title says which."""
    source = c.executed or c.notebook
    nb = json.loads(source.read_text(encoding="utf-8"))
    if c.executed:
        when = time.strftime("%Y-%m-%d", time.gmtime(c.executed.stat().st_mtime))
        note = (f"Shown with the outputs of a full run: the executed copy that `scratchnet run {c.stem}` "
                f"saved on {when}. This page was not executed when the book was built.")
        if c.notebook and c.notebook.stat().st_mtime > c.executed.stat().st_mtime:
            note += " The notebook has changed since that run; the cells shown are the ones that ran."
    else:
        note = (f"Shown without outputs: no executed copy of this notebook was found when the book was built "
                f"(the build never runs notebooks). Run it with `scratchnet run {c.stem}`, which saves the "
                f"executed copy under `runs/`, and build the book again to see its outputs and plots.")
    banner = {"cell_type": "markdown", "id": "book-banner", "metadata": {},
              "source": ["```{note}\n", note + f" [Read chapter {c.number}](../chapters/{c.stem}.md).\n", "```"]}
    cells = nb.get("cells", [])
    at = 1 if cells and cells[0].get("cell_type") == "markdown" else 0
    nb["cells"] = cells[:at] + [banner] + cells[at:]
    return json.dumps(nb, indent=1, ensure_ascii=False) + "\n"


# -- staging and building -------------------------------------------------------------------------
