"""The book as a website: the chapters and notebooks rendered by Sphinx + MyST-NB.

``scratchnet book --out DIR`` (``build_book``) finds the chapters that exist
(``chapters/NN-name.md``), lays out a source tree for Sphinx in ``DIR/.build/src`` and runs Sphinx
with the configuration in ``book/``; the site is ``DIR/index.html``. The source tree holds copies of
the chapters (a textual "chapter 14, §4" that is not a link yet becomes one), a link to the package
that they include code from, each notebook with a banner saying where its outputs come from, and
the generated pages: start here (with the prerequisite graph), results, API.

Notebooks are never executed by the build: a notebook is shown with the outputs of the executed copy
that ``scratchnet run NN-name`` saved under ``runs/`` when there is one, else without outputs.
Equations are typeset by MathJax copied into the site (no CDN). Needs the ``book`` extra.
"""
from __future__ import annotations

from pathlib import Path

from .book_chapters import API_PACKAGES, PARTS, PATHS, Chapter, discover, link_chapter_references
from .book_pages import api_page, graph_svg, index_page, notebook_copy, prerequisite_edges, results_page

__all__ = ["PARTS", "PATHS", "Chapter", "discover", "stage", "build_book", "prerequisite_edges", "graph_svg",
           "link_chapter_references"]


def _write(path: Path, text: str) -> None:
    """Write only when the content changed, so that Sphinx rebuilds only what did."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")


def _link(path: Path, target: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_symlink() and path.resolve() == target.resolve():
        return
    if path.is_symlink() or path.exists():
        path.unlink()
    path.symlink_to(target.resolve())


def stage(root: Path, src: Path) -> list[Chapter]:
    """Lay out the Sphinx source tree of the book in ``src``; returns the chapters it holds."""
    chapters = discover(root)
    wanted = {f"chapters/{c.stem}.md" for c in chapters} | {f"notebooks/{c.stem}.ipynb" for c in chapters if c.notebook}
    for folder in ("chapters", "notebooks"):  # drop what no longer exists in the repository
        for old in (src / folder).glob("*") if (src / folder).is_dir() else ():
            if f"{folder}/{old.name}" not in wanted:
                old.unlink()
    _link(src / "scratchnet", root / "scratchnet")  # the chapters include ../scratchnet/...
    for c in chapters:  # copies, not links: MyST resolves a link from the file's real folder
        text = link_chapter_references(c.path.read_text(encoding="utf-8"), c.number, chapters)
        _write(src / "chapters" / f"{c.stem}.md", text)
        if c.notebook:
            _write(src / "notebooks" / f"{c.stem}.ipynb", notebook_copy(c))
    template = (root / "book" / "index.md").read_text(encoding="utf-8")
    _write(src / "index.md", index_page(template, chapters))
    _write(src / "results.md", results_page(root, chapters))
    for package, title, blurb in API_PACKAGES:
        _write(src / "api" / f"{package}.rst", api_page(root, package, title, blurb))
    return chapters


def build_book(out: str | Path, *, root: str | Path, strict: bool = False, quiet: bool = True,
               fresh: bool = False) -> int:
    """Build the book into ``out`` (``out/index.html``); Sphinx's exit status. ``strict``: warnings are
    errors (all of them are reported); ``fresh``: ignore the saved state of earlier builds."""
    try:
        from sphinx.cmd.build import build_main
    except ImportError:
        raise RuntimeError('the book needs Sphinx and MyST-NB: pip install -e ".[book]"') from None
    root, out = Path(root).resolve(), Path(out).resolve()
    if not (root / "book" / "conf.py").is_file():
        raise FileNotFoundError(f"no book/conf.py under {root}: run from the repository")
    src, doctrees = out / ".build" / "src", out / ".build" / "doctrees"
    stage(root, src)
    args = ["-b", "html", "-c", str(root / "book"), "-d", str(doctrees), str(src), str(out)]
    if strict:
        args[:0] = ["-W", "--keep-going"]
    if quiet:
        args[:0] = ["-q"]
    if fresh:
        args[:0] = ["-E"]
    return build_main(args)
