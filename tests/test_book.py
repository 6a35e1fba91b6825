"""The book website: it builds with every Sphinx warning an error (broken references, missing includes,
bad labels), in the book's order, offline; and it reads right in a real browser (headless Chromium
through Playwright): every equation typeset by the local MathJax, no raw MyST left, every image
loaded, every internal link landing on an existing page and anchor, nothing fetched from outside.

The book is built once per test session (shared by the xdist workers); the browser test saves
screenshots of the start page and a chapter to ``_build/book-screenshots/``.
"""
from __future__ import annotations

import fcntl
import functools
import http.server
import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOTS = ROOT / "_build" / "book-screenshots"
BOOK_PACKAGES = ("sphinx", "myst_nb", "sphinx_book_theme")


def _missing_book_packages() -> list[str]:
    missing = [m for m in BOOK_PACKAGES if importlib.util.find_spec(m) is None]
    try:
        importlib.metadata.distribution("sphinx-mathjax-offline")
    except importlib.metadata.PackageNotFoundError:
        missing.append("sphinx-mathjax-offline")
    return missing


@pytest.fixture(scope="session")
def book(tmp_path_factory):
    """Build the book once (the first worker to get here builds, the others wait): (folder, log)."""
    missing = _missing_book_packages()
    if missing:
        pytest.skip(f"the book extra is not installed (missing {', '.join(missing)}): pip install -e '.[book]'")
    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent  # one folder for every worker of this pytest run
    out, record = shared / "book", shared / "book.json"
    with open(shared / "book.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not record.exists():
            chapters = _repo_chapters()
            t0 = time.perf_counter()
            run = subprocess.run([sys.executable, "-m", "scratchnet.cli", "book", "--out", str(out), "--strict",
                                  "--fresh"], cwd=ROOT, capture_output=True, text=True, timeout=600)
            record.write_text(json.dumps({"rc": run.returncode, "log": run.stdout + run.stderr,
                                          "seconds": time.perf_counter() - t0, "chapters": chapters}))
    result = json.loads(record.read_text())
    assert result["rc"] == 0, f"the book build failed (warnings are errors):\n{result['log'][-8000:]}"
    return out, result


def _repo_chapters() -> list[str]:
    return sorted(p.stem for p in (ROOT / "chapters").glob("[0-9][0-9]-*.md"))


def _chapters(out: Path) -> list[str]:
    """The chapters in the built book (the source tree that the build laid out)."""
    return sorted(p.stem for p in (out / ".build" / "src" / "chapters").glob("*.md"))


def _notebooks(out: Path) -> list[str]:
    return sorted(p.stem for p in (out / ".build" / "src" / "notebooks").glob("*.ipynb"))


class _Page(HTMLParser):
    """The ids, links, images and scripts of one HTML page."""

    def __init__(self, text: str):
        super().__init__()
        self.ids, self.links, self.images, self.assets = set(), [], [], []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if a.get("id"):
            self.ids.add(a["id"])
        if tag == "a" and a.get("href") is not None:
            self.links.append(a["href"])
        if tag == "img" and a.get("src"):
            self.images.append(a["src"])
        if tag == "script" and a.get("src"):
            self.assets.append(a["src"])
        if tag == "link" and a.get("href") and "stylesheet" in (a.get("rel") or ""):
            self.assets.append(a["href"])


@functools.lru_cache(maxsize=None)
def _parse(path: Path) -> _Page:
    return _Page(path.read_text(encoding="utf-8"))


def _check_link(out: Path, page: Path, href: str) -> str | None:
    """None when ``href`` (found on ``page``) is external or lands on an existing file and anchor."""
    if href.startswith(("http://", "https://", "mailto:", "javascript:")) or href in ("", "#"):
        return None
    parts, page = urlsplit(href), page.resolve()
    out = out.resolve()
    target = page if not parts.path else (page.parent / unquote(parts.path)).resolve()
    if target.is_dir():
        target = target / "index.html"
    if not target.is_file() or out not in target.parents:
        return f"{page.relative_to(out)}: {href} → no such file"
    if parts.fragment and target.suffix == ".html" and unquote(parts.fragment) not in _parse(target).ids:
        return f"{page.relative_to(out)}: {href} → no id {parts.fragment!r} in {target.relative_to(out)}"
    return None


# -- the pieces that need no Sphinx ---------------------------------------------------------------
def _fake_chapters(tmp_path, specs):
    from scratchnet.book import discover
    (tmp_path / "chapters").mkdir()
    for stem, body in specs.items():
        (tmp_path / "chapters" / f"{stem}.md").write_text(body, encoding="utf-8")
    return discover(tmp_path)


def test_textual_chapter_references_become_links(tmp_path):
    from scratchnet.book import link_chapter_references
    chapters = _fake_chapters(tmp_path, {
        "01-mlp": "# 01 · MLP\n",
        "05-convolution": "# 05 · Conv\n",
        "14-rnn-bptt": "# 14 · RNN\n\n(lengths)=\n## 4. Lengths\n",
        "15-lstm": "# 15 · LSTM\n\n(cec)=\n## 2. Carousel\n",
    })
    text = ("See chapter 14, §4 and Chapter 01's rule; chapters 01 and 05; chapter 9 is not written yet.\n"
            "Already [chapter 05](05-convolution.md). `chapter 14` in code, $\\text{chapter 14}$ in math.\n"
            "```python\n# chapter 14\n```\n")
    linked = link_chapter_references(text, "15", chapters)
    assert "[chapter 14, §4](14-rnn-bptt.md#lengths)" in linked
    assert "[Chapter 01](01-mlp.md)'s rule" in linked
    assert "chapters [01](01-mlp.md) and [05](05-convolution.md)" in linked
    assert "chapter 9 is not" in linked and "[chapter 9]" not in linked
    assert linked.count("[chapter 05]") == 1 and "`chapter 14`" in linked and "{chapter 14}$" in linked
    assert "# chapter 14\n" in linked


def test_prerequisite_graph_keeps_only_direct_edges(tmp_path):
    from scratchnet.book import graph_svg, prerequisite_edges
    chapters = _fake_chapters(tmp_path, {
        "00-notation": "# 00 · Notation\n",
        "01-mlp": "# 01 · MLP\n\nPrerequisites: [chapter 00](00-notation.md).\n",
        "05-convolution": "# 05 · Conv\n\nPrerequisites: [chapter 01](01-mlp.md) and chapter 00.\n",
        "06-lenet5": "# 06 · LeNet\n\nPrerequisites: [chapter 05](05-convolution.md), [chapter 01](01-mlp.md).\n",
    })
    assert prerequisite_edges(chapters) == [("00", "01"), ("01", "05"), ("05", "06")]
    svg = graph_svg(chapters)
    assert svg.count("<a href=") == 4 and 'href="chapters/06-lenet5.html"' in svg


# -- the build ------------------------------------------------------------------------------------
def test_book_builds_with_warnings_as_errors(book):
    out, result = book
    assert (out / "index.html").is_file()
    assert _chapters(out) == result["chapters"], "the book holds other chapters than the repository"
    repo_notebooks = [s for s in result["chapters"] if (ROOT / "notebooks" / f"{s}.ipynb").is_file()]
    assert _notebooks(out) == repo_notebooks
    print(f"book built in {result['seconds']:.0f} s")


def test_book_order_and_contents(book):
    """Parts in the book's order, each chapter followed by its notebook, no entry for a missing one."""
    out, _ = book
    from scratchnet.book import PARTS
    nav = (out / "index.html").read_text(encoding="utf-8")
    nav = nav[nav.index('class="bd-sidebar-primary'):]
    hrefs = re.findall(r'href="((?:chapters|notebooks)/[^"#]+)\.html"', nav)
    order = [n for _, numbers in PARTS for n in numbers]
    expected = []
    for stem in sorted(_chapters(out), key=lambda s: order.index(s[:2]) if s[:2] in order else 99):
        expected.append(f"chapters/{stem}")
        if stem in _notebooks(out):
            expected.append(f"notebooks/{stem}")
    assert list(dict.fromkeys(hrefs)) == expected
    captions = re.findall(r'<p aria-level="2" class="caption"[^>]*>\s*<span class="caption-text">([^<]+)</span>', nav)
    present = [name for name, numbers in PARTS if any(s[:2] in numbers for s in _chapters(out))]
    assert captions[:len(present)] == present
    for stem in _chapters(out):
        assert (out / "chapters" / f"{stem}.html").is_file()
    for number in ("09", "11", "12", "13"):  # the start page names no chapter that is not there
        if not any(s.startswith(number) for s in _chapters(out)):
            assert f'chapters/{number}-' not in (out / "index.html").read_text(encoding="utf-8")


def test_book_is_offline_and_links_resolve(book):
    """No script or style sheet from the network, MathJax served by the site, every internal link and
    image of every page resolving (anchors included: the docstrings' chapter anchors land on an id)."""
    out, _ = book
    assert (out / "_static" / "mathjax" / "tex-chtml.js").is_file()
    problems = []
    for page in sorted(out.rglob("*.html")):
        if ".build" in page.parts:
            continue
        parsed = _parse(page)
        problems += [f"{page.relative_to(out)}: external asset {a}" for a in parsed.assets if "//" in a]
        problems += [p for p in (_check_link(out, page, h) for h in parsed.links) if p]
        problems += [f"{page.relative_to(out)}: image {s} missing" for s in parsed.images
                     if not s.startswith("data:") and not (page.parent / unquote(s)).is_file()]
    assert not problems, "\n".join(problems[:50])


def test_book_api_links_and_notebook_banners(book):
    out, _ = book
    functional = (out / "api" / "functional.html").read_text(encoding="utf-8")
    assert 'id="scratchnet.functional.conv.conv2d"' in functional
    assert re.search(r'href="\.\./chapters/\d\d-[\w-]+\.html#', functional), "no docstring anchor became a link"
    mlp = (out / "chapters" / "01-mlp.html").read_text(encoding="utf-8")
    assert 'class="code-block-caption"' in mlp and "../api/functional.html#scratchnet.functional.linear" in mlp
    for stem in _notebooks(out):
        text = (out / "notebooks" / f"{stem}.html").read_text(encoding="utf-8")
        executed = (ROOT / "runs" / f"{stem}.ipynb").is_file()
        assert ("Shown with the outputs of a full run" if executed else "Shown without outputs") in text, stem
    results = (out / "results.html").read_text(encoding="utf-8")
    assert "chapters/01-mlp.html" in results and "paper" in results


# -- the browser ----------------------------------------------------------------------------------
def _browser() -> str | None:
    for name in (os.environ.get("SCRATCHNET_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


VISIBLE_TEXT = """() => {
  const skip = new Set(["PRE", "CODE", "SCRIPT", "STYLE", "MJX-CONTAINER", "NOSCRIPT", "TEXTAREA"]);
  const parts = [];
  const walker = document.createTreeWalker(document.querySelector("main") || document.body, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    let p = n.parentElement, hidden = false;
    for (; p; p = p.parentElement) { if (skip.has(p.tagName)) { hidden = true; break; } }
    if (!hidden) parts.push(n.textContent);
  }
  return parts.join("");
}"""
PAGE_FACTS = """() => ({
  math: document.querySelectorAll(".math").length,
  untypeset: Array.from(document.querySelectorAll(".math")).filter(e => !e.querySelector("mjx-container")).length,
  errors: Array.from(document.querySelectorAll("mjx-merror")).map(e => e.textContent).slice(0, 5),
  badImages: Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src),
  links: Array.from(document.querySelectorAll("a[href]")).map(a => a.getAttribute("href")),
})"""
RAW_TEX = re.compile(r"\$\$|\\(frac|mathrm|begin|end|sum|partial|left|right|operatorname|mathbf|odot|cdot|top)\b")
RAW_MYST = re.compile(r"```|^:::|\{(eq|ref|doc|numref|literalinclude|math|note|figure|toctree|code-cell|raw)\}"
                      r"|^\([\w-]+\)=\s*$", re.M)


def test_book_in_a_browser(book):
    out, _ = book
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is in the test extra")
    browser_path = _browser()
    if browser_path is None:
        pytest.skip("no Chromium found (Debian: apt-get install chromium; or set SCRATCHNET_CHROMIUM)")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(out)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    pages = (["index.html", "results.html"] + [f"chapters/{s}.html" for s in _chapters(out)]
             + [f"notebooks/{s}.html" for s in _notebooks(out)])
    problems, outside = [], []
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shot_chapter = next((s for s in ("06-lenet5", "01-mlp") if s in _chapters(out)), _chapters(out)[0])
    try:
        with sync_api.sync_playwright() as p:
            try:
                browser = p.chromium.launch(executable_path=browser_path, args=["--no-sandbox"])
            except Exception as e:  # a browser that cannot start here: say so rather than fail
                pytest.skip(f"Chromium at {browser_path} did not start: {str(e).splitlines()[0]}")
            page = browser.new_page(viewport={"width": 1280, "height": 900})

            def block(route):  # the book must not need the network
                outside.append(route.request.url)
                route.abort()

            page.route(re.compile(r"^(?!http://127\.0\.0\.1:)"), block)
            for name in pages:
                page.goto(base + name, wait_until="load")
                if page.evaluate("() => !!(window.MathJax && MathJax.startup && MathJax.startup.promise)"):
                    page.evaluate("() => MathJax.startup.promise")
                facts = page.evaluate(PAGE_FACTS)
                text = page.evaluate(VISIBLE_TEXT)
                if facts["untypeset"]:
                    problems.append(f"{name}: {facts['untypeset']} of {facts['math']} equations not typeset")
                if facts["errors"]:
                    problems.append(f"{name}: MathJax errors {facts['errors']}")
                if facts["badImages"]:
                    problems.append(f"{name}: images that did not load {facts['badImages']}")
                for pattern, what in ((RAW_TEX, "raw TeX"), (RAW_MYST, "raw MyST")):
                    m = pattern.search(text)
                    if m:
                        problems.append(f"{name}: {what} in the text: …{text[max(0, m.start() - 60):m.end() + 60]}…")
                here = out / name
                problems += [q for q in (_check_link(out, here, h) for h in facts["links"]) if q]
                if name == "index.html":
                    assert page.locator("svg.sn-graph a").count() == len(_chapters(out))
                    page.screenshot(path=str(SCREENSHOTS / "start.png"), full_page=True)
                if name == f"chapters/{shot_chapter}.html":
                    first = page.locator("div.math mjx-container").first
                    if first.count():
                        first.scroll_into_view_if_needed()
                        page.evaluate("() => window.scrollBy(0, -200)")
                    page.screenshot(path=str(SCREENSHOTS / f"chapter-{shot_chapter}.png"))
            browser.close()
    finally:
        server.shutdown()
    assert not outside, f"pages asked the network for {sorted(set(outside))[:10]}"
    assert not problems, "\n".join(problems[:40])
