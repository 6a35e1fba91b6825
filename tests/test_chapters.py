"""Chapters pull code in with MyST ``literalinclude`` (never a copy): every include must point at an
existing file, and at a function/class or marker lines that still exist there."""
import ast
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
CHAPTERS = sorted((ROOT / "chapters").glob("*.md"))
INCLUDE = re.compile(r"```\{literalinclude\}\s+(\S+)\s*\n((?::[\w-]+:.*\n)*)")


def _includes():
    for chapter in CHAPTERS:
        for m in INCLUDE.finditer(chapter.read_text(encoding="utf-8")):
            opts = dict(re.findall(r":([\w-]+):\s*(.*)", m.group(2)))
            yield pytest.param(chapter, m.group(1), opts, id=f"{chapter.stem}:{m.group(1)}:{opts.get('pyobject', '')}")


def _has_pyobject(source: str, dotted: str) -> bool:
    """True if ``Class.method`` / ``function`` is defined in the module source."""
    nodes = ast.parse(source).body
    for part in dotted.split("."):
        found = [n for n in nodes if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and n.name == part]
        if not found:
            return False
        nodes = found[0].body
    return True


@pytest.mark.parametrize("chapter,target,opts", list(_includes()))
def test_literalinclude_targets_exist(chapter, target, opts):
    path = (chapter.parent / target).resolve()
    assert path.is_file(), f"{chapter.name}: literalinclude of missing file {target}"
    text = path.read_text(encoding="utf-8")
    if "pyobject" in opts:
        assert _has_pyobject(text, opts["pyobject"].strip()), f"{chapter.name}: {target} has no {opts['pyobject']}"
    for key in ("start-after", "end-before"):
        if key in opts:
            marker = opts[key].strip().strip('"')
            assert marker in text, f"{chapter.name}: {target} has no marker {marker!r}"


def test_every_notebook_has_its_chapter():
    chapters = {p.stem for p in CHAPTERS}
    for nb in (ROOT / "notebooks").glob("*.ipynb"):
        assert nb.stem in chapters, f"{nb.name} has no chapters/{nb.stem}.md"


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_no_control_characters(chapter):
    """A LaTeX command written through a non-raw string loses its backslash to an escape (\\top → tab +
    "op", \\frac → form feed + "rac"): no tab or other control character may appear in a chapter."""
    for lineno, line in enumerate(chapter.read_text(encoding="utf-8").splitlines(), 1):
        bad = [c for c in line if ord(c) < 32 or ord(c) == 127]
        assert not bad, f"{chapter.name}:{lineno} has control character(s) {bad!r}: {line.strip()[:80]}"
