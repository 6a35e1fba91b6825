"""The honest protocol: a notebook monitors and chooses on a validation split carved from the
training data, and evaluates the test set once, at the end. Enforced where a test can see it: no
``fit`` call is given test arrays (as validation data or otherwise)."""
import ast
import json
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def _code(notebook: pathlib.Path) -> str:
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    lines = [line for c in cells if c["cell_type"] == "code" for line in "".join(c["source"]).splitlines()
             if not line.lstrip().startswith(("%", "!"))]
    return "\n".join(lines)


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_fit_never_sees_the_test_set(notebook):
    tree = ast.parse(_code(notebook))
    offending = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) == "fit":
            args = list(node.args) + [k.value for k in node.keywords]
            for a in args:
                names = {n.id for n in ast.walk(a) if isinstance(n, ast.Name)}
                names |= {n.attr for n in ast.walk(a) if isinstance(n, ast.Attribute)}
                if any("test" in n.lower() for n in names):
                    offending.append(ast.unparse(node)[:160])
                    break
    assert not offending, f"{notebook.name}: fit() is given test data: {offending}"
