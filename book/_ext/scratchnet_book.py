"""Sphinx extension of the book.

* MathJax 3 is copied from the ``sphinx-mathjax-offline`` package (the ``book`` extra) into
  ``_static/mathjax``: pages typeset their equations without any network.
* ``literalinclude`` of library code gets a caption naming the file and the functions or classes
  it shows, each linked to its entry in the API pages.
* In docstrings, ``chapters/NN-name.md#label`` (and a bare ``#eq-label`` in a module whose docstring
  names its chapter) becomes a link to that equation or section of the chapter; a label that the
  named chapter does not define is a warning (an error in the tests). A chapter that is not in the
  book yet is left as plain text.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import io
import re
import shutil
import sys
from pathlib import Path

from docutils import nodes, utils
from docutils.core import publish_doctree
from sphinx import addnodes
from sphinx.directives.code import LiteralInclude

from scratchnet import book

MATHJAX_PARTS = ["tex-chtml.js", "input/tex/extensions", "output/chtml/fonts/woff-v2", "ui", "a11y", "sre"]
API_PACKAGES = tuple(name for name, _, _ in book.API_PACKAGES)  # the packages that have an API page
CHAPTER_REF = re.compile(r"(?<![\w/])chapters/(\d\d-[a-z0-9-]+)\.md(?:#([A-Za-z0-9_-]+))?")
BARE_ANCHOR = re.compile(r"(?<![\w/.#`])#(eq-[a-z0-9-]+[a-z0-9])")


# -- MathJax ------------------------------------------------------------------------------------
def mathjax_source() -> Path:
    """The MathJax 3 distribution shipped by the ``sphinx-mathjax-offline`` package."""
    try:
        dist = importlib.metadata.distribution("sphinx-mathjax-offline")
    except importlib.metadata.PackageNotFoundError:
        raise RuntimeError("the book serves MathJax itself, from the sphinx-mathjax-offline package: "
                           "pip install -e '.[book]'") from None
    root = Path(dist.locate_file("sphinx-mathjax-offline/static/mathjax"))
    if not (root / "tex-chtml.js").is_file():
        raise RuntimeError(f"sphinx-mathjax-offline is installed but has no MathJax at {root}")
    return root


def copy_mathjax(app, exc):
    if exc is not None or app.builder.format != "html":
        return
    src, dst = mathjax_source(), Path(app.outdir) / "_static" / "mathjax"
    for part in MATHJAX_PARTS:  # only what tex-chtml loads (and the menu's accessibility tools)
        s, d = src / part, dst / part
        if s.is_dir():
            shutil.copytree(s, d, dirs_exist_ok=True)
        elif not d.exists() or d.stat().st_size != s.stat().st_size:
            d.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(s, d)


# -- literalinclude captions --------------------------------------------------------------------
def _module_of(path: str) -> str | None:
    """``scratchnet/functional/conv.py`` → ``scratchnet.functional.conv`` when it has an API page."""
    parts = Path(path).with_suffix("").parts
    if len(parts) == 3 and parts[0] == "scratchnet" and parts[1] in API_PACKAGES and not parts[2].startswith("_"):
        return ".".join(parts)
    return None


def _names_in(text: str) -> list[str]:
    """Top-level functions and classes defined in an included fragment, in order."""
    return re.findall(r"^(?:def|class)\s+([A-Za-z_]\w*)", text, flags=re.M)


def _xref(target: str, text: str, reftype: str = "obj") -> nodes.Node:
    node = addnodes.pending_xref("", refdomain="py", reftype=reftype, reftarget=target, refexplicit=True,
                                 refwarn=False)
    node += nodes.literal(text, text)
    return node


class LinkedLiteralInclude(LiteralInclude):
    """``literalinclude`` whose caption names the library file and what it shows, linked to the API."""

    def run(self):
        result = super().run()
        env = self.state.document.settings.env
        package = (Path(env.srcdir) / "scratchnet").resolve()
        path = Path(env.relfn2path(self.arguments[0])[1]).resolve()
        if package not in path.parents or not result or not isinstance(result[0], nodes.Element):
            return result
        rel = f"scratchnet/{path.relative_to(package).as_posix()}"
        block = result[0]
        code = next(iter(block.findall(nodes.literal_block)), None)
        if code is None:
            return result
        module = _module_of(rel)
        pyobject = self.options.get("pyobject")
        names = [pyobject] if pyobject else _names_in(code.astext())
        children: list[nodes.Node] = [_xref(module, rel, "mod") if module else nodes.literal(rel, rel)]
        for i, name in enumerate(names):
            children.append(nodes.Text(" · " if i == 0 else ", "))
            head = name.split(".")[0]
            if module and not head.startswith("_"):
                target = name if not any(p.startswith("_") for p in name.split(".")) else head
                children.append(_xref(f"{module}.{target}", name))
            else:
                children.append(nodes.literal(name, name))
        if isinstance(block, nodes.container) and block.get("literal_block"):  # it has a caption already
            caption = next(iter(block.findall(nodes.caption)))
            caption += nodes.Text(" — ")
            caption.extend(children)
            return result
        caption = nodes.caption("", "", *children)
        caption.source, caption.line = code.source, code.line
        wrapper = nodes.container("", caption, code, literal_block=True, classes=["literal-block-wrapper"])
        return [wrapper, *result[1:]]


# -- equations as link targets -----------------------------------------------------------------
def label_equations(app, doctree):
    """Make each labelled equation a target of ``chapter.md#eq-label`` links (MyST resolves those
    against the std labels of the chapter) and give its HTML element the bare id ``eq-label`` too,
    so that the anchors quoted in docstrings land on the equation."""
    std = app.env.domains.standard_domain
    for node in doctree.findall(nodes.math_block):
        label = node.get("label")
        if not label or not node["ids"]:
            continue
        if label not in std.labels and label not in std.anonlabels:
            std.anonlabels[label] = (app.env.docname, node["ids"][0])
        if label not in doctree.ids:
            node["ids"].append(label)
            doctree.ids[label] = node


# -- docstrings ---------------------------------------------------------------------------------
def _module_chapter(name: str) -> str | None:
    """The chapter that the docstring of the module holding ``name`` names first, for bare anchors."""
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        module = sys.modules.get(".".join(parts[:i]))
        if module is not None:
            match = CHAPTER_REF.search(module.__doc__ or "")
            return match.group(1) if match else None
    return None


def _is_clean_rst(text: str) -> bool:
    """True when docutils parses ``text`` without a warning."""
    stream = io.StringIO()
    try:
        publish_doctree(text, settings_overrides={"report_level": 2, "halt_level": 5, "warning_stream": stream})
    except Exception:  # a directive that needs Sphinx: leave the docstring to Sphinx
        return True
    return not stream.getvalue()


def _line_block(lines: list[str], keep_literals: bool = True) -> list[str]:
    """Plain text as a reST line block: line breaks and indentation kept, markup characters escaped
    (double-backtick literals kept as literals, unless ``keep_literals`` is false)."""
    out = []
    for line in lines:
        if not line.strip():
            out.append("|")
            continue
        indent = len(line) - len(line.lstrip())
        pieces = re.split(r"((?<!\w)``[^`]+``(?!\w))", line.lstrip()) if keep_literals else [line.lstrip()]
        text = "".join(p if i % 2 else re.sub(r"([\\`*_|\[\]])", r"\\\1", p) for i, p in enumerate(pieces))
        out.append("| " + " " * indent + text)
    return [*out, ""]


def skip_namedtuple_fields(app, what, name, obj, skip, options):
    """The fields of a cache NamedTuple say "Alias for field number N": not worth an entry each."""
    if (getattr(obj, "__doc__", None) or "").startswith("Alias for field number"):
        return True
    return None


def format_docstring(app, what, name, obj, options, lines):
    """Docstrings are plain text with ``literals``: one that is not clean reST is shown as a line block
    (as written), and every ``chapters/NN-name.md#label`` becomes a link to the chapter."""
    chapters = {p.stem for p in (Path(app.srcdir) / "chapters").glob("*.md")}
    home = _module_chapter(name)
    text = re.sub(r"``(chapters/\d\d-[^`]*)``", r"\1", "\n".join(lines))  # the link replaces the literal
    new = text.splitlines()
    if not _is_clean_rst(text):
        new = _line_block(text.splitlines())
        if not _is_clean_rst("\n".join(new)):
            new = _line_block(text.splitlines(), keep_literals=False)

    def link(stem: str, label: str | None, shown: str) -> str:
        if stem not in chapters:
            return shown  # not in the book yet: no dead link
        return f":sn-chapter:`chapters/{stem}.md{'#' + label if label else ''}`"

    for i, line in enumerate(new):
        line = CHAPTER_REF.sub(lambda m: link(m.group(1), m.group(2), m.group(0)), line)
        if home:
            line = BARE_ANCHOR.sub(lambda m: link(home, m.group(1), m.group(0)), line)
        new[i] = line
    lines[:] = new


def chapter_role(name, rawtext, text, lineno, inliner, options=None, content=None):
    """``:sn-chapter:`chapters/NN-name.md#label``` → a link that MyST resolves as it does
    ``[...](chapters/NN-name.md#label)`` in a page: a label the chapter lacks is a warning."""
    target = utils.unescape(text)
    path, _, anchor = target.partition("#")
    node = addnodes.pending_xref(rawtext, refdomain="doc", reftype="myst", reftarget=path.removesuffix(".md"),
                                 reftargetid=anchor or None, refexplicit=True,
                                 refdoc=inliner.document.settings.env.docname)
    node += nodes.inline("", "", nodes.literal(target, target))
    return [node], []


def setup(app):
    app.add_directive("literalinclude", LinkedLiteralInclude, override=True)
    app.add_role("sn-chapter", chapter_role)
    app.connect("doctree-read", label_equations)
    app.connect("autodoc-process-docstring", format_docstring)
    app.connect("autodoc-skip-member", skip_namedtuple_fields)
    app.connect("build-finished", copy_mathjax)
    mathjax_source()  # fail early, with the install command, when the package is missing
    # a new version of this file invalidates the pages built by the old one
    env_version = int(hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:8], 16)
    return {"version": "1", "env_version": env_version, "parallel_read_safe": False, "parallel_write_safe": True}

