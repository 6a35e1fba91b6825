"""Sphinx configuration of the book (chapters and notebooks as a website).

Not run by hand: ``scratchnet book --out DIR`` lays out the source tree (the chapters that exist, the
notebooks, the generated start, results and API pages) and runs Sphinx with this folder as its
configuration directory. See ``scratchnet/book.py``.
"""
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))
sys.path.insert(0, str(HERE.parent))  # autodoc imports the scratchnet of this repository

project = "scratchnet"
author = "the scratchnet authors"
copyright = "the scratchnet authors"
root_doc = "index"

extensions = [
    "myst_nb",  # MyST Markdown for the chapters and generated pages, and .ipynb notebooks
    "sphinx.ext.autodoc",
    "sphinx.ext.mathjax",
    "scratchnet_book",  # local MathJax, linked literalinclude captions, docstring anchors to chapters
]

include_patterns = ["index.md", "results.md", "api/*.rst", "chapters/*.md", "notebooks/*.ipynb"]
exclude_patterns = ["_build", "**.ipynb_checkpoints"]

# -- MyST and notebooks -------------------------------------------------------------------------
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence"]
myst_heading_anchors = 3
myst_dmath_double_inline = True
nb_execution_mode = "off"  # notebooks are never executed by the build: see the banner on each page
nb_merge_streams = True
nb_mime_priority_overrides = [
    ("html", "application/vnd.jupyter.widget-view+json", None),  # progress widgets have no state here
    ("html", "application/vnd.jupyter.widget-state+json", None),
]
suppress_warnings = ["mystnb.unknown_mime_type"]

# -- Code and API -------------------------------------------------------------------------------
autodoc_default_options = {"members": True, "ignore-module-all": True}
autodoc_member_order = "bysource"
autodoc_typehints = "none"
add_module_names = False
highlight_language = "python"
pygments_style = "sphinx"

# -- Math: MathJax 3 served from _static/mathjax (copied by scratchnet_book; no CDN) ------------
mathjax_path = "mathjax/tex-chtml.js"
mathjax3_config = {
    # An undefined macro is a MathJax error (an mjx-merror element) instead of red text, so that
    # the browser test catches it.
    "tex": {"packages": {"[-]": ["noundefined"]}},
}

# -- HTML ---------------------------------------------------------------------------------------
html_theme = "sphinx_book_theme"
html_title = "scratchnet: the book"
html_static_path = [str(HERE / "_static")]
html_css_files = ["book.css"]
html_show_sourcelink = False
html_show_copyright = False
html_copy_source = False
html_last_updated_fmt = None
html_theme_options = {
    "home_page_in_toc": True,
    "show_navbar_depth": 1,
    "show_toc_level": 2,
    "use_download_button": False,
    "use_fullscreen_button": False,
    "navigation_with_keys": False,
}
