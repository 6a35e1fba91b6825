"""The notebooks' "your turn" cells: every notebook has one, every stub has a reference solution in
notebooks/solutions/, and every solution passes the same check the notebook makes."""
import ast
import importlib.util
import json
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
SOLUTIONS = ROOT / "notebooks" / "solutions"


def _solution_path(notebook: pathlib.Path) -> pathlib.Path:
    return SOLUTIONS / (notebook.stem.replace("-", "_") + ".py")


def _load(path: pathlib.Path):
    spec = importlib.util.spec_from_file_location(f"solution_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _stubs(notebook: pathlib.Path) -> set:
    """Names of the functions the notebook defines with a body that raises NotImplementedError."""
    names = set()
    for cell in json.loads(notebook.read_text(encoding="utf-8"))["cells"]:
        if cell["cell_type"] != "code":
            continue
        src = "".join(cell["source"])
        try:
            tree = ast.parse("\n".join(line for line in src.splitlines() if not line.lstrip().startswith(("%", "!"))))
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and any(
                    isinstance(s, ast.Raise) and "NotImplementedError" in ast.unparse(s) for s in node.body):
                names.add(node.name)
    return names


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_has_a_your_turn_cell_with_a_tested_solution(notebook):
    path = _solution_path(notebook)
    assert path.exists(), f"{notebook.name}: no reference solution {path.relative_to(ROOT)}"
    solution = _load(path)
    wanted = set(solution.YOUR_TURN)
    assert wanted, f"{path.name}: YOUR_TURN is empty"
    missing = wanted - _stubs(notebook)
    assert not missing, f"{notebook.name}: no 'your turn' stub raising NotImplementedError for {sorted(missing)}"
    text = notebook.read_text(encoding="utf-8").lower()
    assert "your turn" in text, f"{notebook.name}: no cell titled 'Your turn'"
    for name in wanted:
        assert callable(getattr(solution, name, None)), \
            f"{path.name}: YOUR_TURN names {name!r}, which it does not define"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_reference_solution_passes_the_notebooks_check(notebook):
    path = _solution_path(notebook)
    if not path.exists():
        pytest.fail(f"{notebook.name}: no reference solution {path.relative_to(ROOT)}")
    verdicts = _load(path).check(strict=True)
    assert verdicts and all(v.ok for v in verdicts)
