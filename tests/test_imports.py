"""The package's static import graph has no cycle: no module imports one that imports it back,
directly or through others. Every ``import`` statement counts, also those inside functions."""
import ast
import pathlib
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = "scratchnet"


def module_files(root: pathlib.Path, package: str) -> dict:
    """Dotted module name → file, for every ``.py`` under ``root/package`` (a package is its ``__init__``)."""
    mods = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = path
    return mods


def imported_modules(module: str, path: pathlib.Path, node, mods: dict) -> list:
    """The known modules that one import statement of ``module`` (defined in ``path``) refers to.

    ``from . import x`` means the submodule ``x`` when there is one, else the package itself;
    relative levels count from the module's package (a package's ``__init__`` is its own package).
    """
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name in mods]
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    if node.level:
        base = package[:len(package) - (node.level - 1)]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    out = []
    for alias in node.names:
        if f"{target}.{alias.name}" in mods:  # from package import submodule
            out.append(f"{target}.{alias.name}")
        elif target in mods:  # from module import name
            out.append(target)
    return out


def import_graph(root: pathlib.Path = ROOT, package: str = PACKAGE) -> dict:
    """Module → set of the package's modules it imports."""
    mods = module_files(root, package)
    graph = {}
    for module, path in mods.items():
        deps = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                deps.update(imported_modules(module, path, node, mods))
        deps.discard(module)
        graph[module] = deps
    return graph


def cycles(graph: dict) -> list:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):  # each import of v
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:  # v roots a component: pop it
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10 * len(graph) + 100))
    try:
        for v in sorted(graph):  # every module not yet reached
            if v not in index:
                visit(v)
    finally:
        sys.setrecursionlimit(limit)
    return sorted(found)


def shortest_cycle(graph: dict, component: list) -> list:
    """One shortest path ``a → … → a`` inside the component, starting at its first module."""
    start, inside = component[0], set(component)
    parent, frontier = {start: None}, [start]
    while frontier:  # breadth first, until an edge closes back on start
        nxt = []
        for v in frontier:
            for w in sorted(graph[v] & inside):
                if w == start:  # walk the parents back from v to start
                    path, u = [], v
                    while u is not None:
                        path.append(u)
                        u = parent[u]
                    return path[::-1] + [start]
                if w not in parent:
                    parent[w] = v
                    nxt.append(w)
        frontier = nxt
    return component


def describe(graph: dict, component: list) -> str:
    lines = ["  " + " -> ".join(shortest_cycle(graph, component))]
    lines += [f"    {m} imports {sorted(graph[m] & set(component))}" for m in component]
    return "\n".join(lines)


def test_no_import_cycles():
    graph = import_graph()
    assert len(graph) > 20 and f"{PACKAGE}.gradcheck.checker" in graph, sorted(graph)
    found = cycles(graph)
    if found:
        pytest.fail(f"{len(found)} import cycle(s) in {PACKAGE}:\n" + "\n".join(describe(graph, c) for c in found))


def test_the_graph_sees_relative_absolute_and_package_imports(tmp_path):
    """The checker itself: a made-up package with one cycle through ``from . import x`` and one
    through a relative import two levels up, plus an acyclic absolute import."""
    files = {
        "pkg/__init__.py": "from . import a\n",
        "pkg/a.py": "from .sub import b\nimport pkg.c\n",
        "pkg/c.py": "import os\n",
        "pkg/sub/__init__.py": "",
        "pkg/sub/b.py": "def f():\n    from .. import a\n",
        "pkg/d.py": "from .e import g\n",
        "pkg/e.py": "from . import d\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    graph = import_graph(tmp_path, "pkg")
    assert graph["pkg"] == {"pkg.a"}
    assert graph["pkg.a"] == {"pkg.sub.b", "pkg.c"}
    assert graph["pkg.sub.b"] == {"pkg.a"} and graph["pkg.sub"] == set()
    assert cycles(graph) == [["pkg.a", "pkg.sub.b"], ["pkg.d", "pkg.e"]]
    assert shortest_cycle(graph, ["pkg.a", "pkg.sub.b"]) == ["pkg.a", "pkg.sub.b", "pkg.a"]
