"""Every notebook is stored clean: valid JSON, no outputs or execution counts, and a chapter with
the same stem (notebooks/NN-name.ipynb ↔ chapters/NN-name.md)."""
import json
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_clean_and_has_a_chapter(path):
    nb = json.loads(path.read_text(encoding="utf-8"))  # valid JSON
    assert nb.get("nbformat") == 4 and isinstance(nb.get("cells"), list)
    dirty = [i for i, cell in enumerate(nb["cells"]) if cell.get("cell_type") == "code"
             and (cell.get("outputs") or cell.get("execution_count") is not None)]
    assert not dirty, f"{path.name}: cells {dirty} have stored outputs or execution counts; clear them before saving"
    assert (ROOT / "chapters" / f"{path.stem}.md").exists(), f"{path.name} has no chapters/{path.stem}.md"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_no_control_characters_in_cells(path):
    """No tab, form feed or other control character in a cell: the trace of a LaTeX backslash lost to a
    string escape when a cell was written from code (\\top → tab + "op")."""
    for i, cell in enumerate(json.loads(path.read_text(encoding="utf-8"))["cells"]):
        bad = sorted({c for c in "".join(cell["source"]) if (ord(c) < 32 and c != "\n") or ord(c) == 127})
        assert not bad, f"{path.name}: cell {i} has control character(s) {bad!r}"
