"""The code's layout: no import circle among sclseg's modules, nor among the benchmark and experiment scripts.

Every `import` and `from ... import` counts, also inside functions and under TYPE_CHECKING (a circle hidden in a
function is still a circle: the hub-resume code once imported a constant back from the trainer that imported
it). A package's implicit import of its own `__init__` is not an edge."""

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def module_names(root: Path, package: str | None) -> dict[str, Path]:
    """Dotted module name → file, for every .py under `root` (`package` is the dotted name of `root`)."""
    names = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join(([package] if package else []) + parts) or package] = path
    return names


def imported(path: Path, name: str, known: set[str]) -> set[str]:
    """The modules of `known` that the file `path` (module `name`) imports."""
    is_package = path.name == "__init__.py"
    base = name.split(".") if is_package else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            prefix = base[: len(base) - node.level + 1] if node.level else []
            module = ".".join(prefix + ([node.module] if node.module else []))
            targets = [module] + [f"{module}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:  # `import a.b.c` of a non-module attribute: its module
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return out


@pytest.mark.parametrize("root,package", [("src/sclseg", "sclseg"), ("benchmarks", None), ("experiments", None)])
def test_no_import_circle(root, package):
    names = module_names(REPO / root, package)
    graph = {name: imported(path, name, set(names)) for name, path in names.items()}
    assert package is None or sum(len(targets) for targets in graph.values()) > 50  # the parser sees them
    assert circles(graph) == []


def test_the_checker_finds_a_circle(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "a.py").write_text("from .b import x\n")
    (tmp_path / "pkg" / "b.py").write_text("def f():\n    from .a import y\n")
    names = module_names(tmp_path / "pkg", "pkg")
    graph = {name: imported(path, name, set(names)) for name, path in names.items()}
    assert circles(graph) == [["pkg.a", "pkg.b"]]
