"""The house flows one way: no import cycle between traitloop's packages, no import of another package's private
module, no module over 400 lines, and every package imports only what its docstring's ``May import:`` line
allows. Imports inside functions count: a lazy import is still a dependency.

The floors are drawn in the README (Architecture); this test holds the code to them.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[1] / "src" / "traitloop"
MAX_LINES = 400


def _unit(module: str) -> str:
    """The package (or top-level module) a dotted module name belongs to: traitloop.loop._run -> loop."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def _module_name(path: Path) -> str:
    return ".".join(path.relative_to(SOURCE.parent).with_suffix("").parts).removesuffix(".__init__")


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every traitloop import in a file, at any depth (relative imports stay in a package)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] if node.module.startswith("traitloop.") else []
            if node.module == "traitloop":  # from traitloop import config
                names = [f"traitloop.{alias.name}" for alias in node.names]
            found += [(node.lineno, name) for name in names]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("traitloop.")]
    return found


def _edges() -> dict[str, dict[str, list[str]]]:
    """unit -> imported unit -> the places (file:line module) that import it."""
    edges: dict[str, dict[str, list[str]]] = {}
    for path in sorted(SOURCE.rglob("*.py")):
        me = _unit(_module_name(path))
        for line, module in _imports(path):
            other = _unit(module)
            if other not in (me, "traitloop"):
                edges.setdefault(me, {}).setdefault(other, []).append(f"{path.relative_to(SOURCE)}:{line} {module}")
    return edges


def _cycles(edges: dict[str, dict[str, list[str]]]) -> list[list[str]]:
    """Strongly connected groups of more than one unit (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in edges.get(node, {}):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in list(edges):
        if node not in index:
            visit(node)
    return groups


def _packages() -> list[Path]:
    return sorted(p for p in SOURCE.iterdir() if (p / "__init__.py").is_file())


def _allowed(package: Path) -> set[str]:
    doc = ast.get_docstring(ast.parse((package / "__init__.py").read_text(encoding="utf-8"))) or ""
    assert "May import:" in doc, f"{package.name}/__init__.py: its docstring must say what it may import"
    names = " ".join(doc.split("May import:", 1)[1].split("\n\n", 1)[0].split()).rstrip(".")
    return set() if names.startswith("nothing") else {n.strip() for n in names.split(",")}


def test_no_import_cycle_between_packages():
    assert _cycles(_edges()) == []


def test_no_package_imports_another_packages_private_module():
    private = []
    for path in sorted(SOURCE.rglob("*.py")):
        me = _unit(_module_name(path))
        for line, module in _imports(path):
            inner = module.split(".")[2:]
            if _unit(module) != me and any(part.startswith("_") for part in inner):
                private.append(f"{path.relative_to(SOURCE)}:{line} imports {module}")
    assert private == []


def test_no_module_is_over_400_lines():
    sizes = {str(p.relative_to(SOURCE)): len(p.read_text(encoding="utf-8").splitlines()) for p in SOURCE.rglob("*.py")}
    assert {name: lines for name, lines in sizes.items() if lines > MAX_LINES} == {}


@pytest.mark.parametrize("package", _packages(), ids=lambda p: p.name)
def test_each_package_imports_only_what_its_docstring_allows(package):
    allowed = _allowed(package)
    imported = _edges().get(package.name, {})
    extra = {unit: places[0] for unit, places in imported.items() if unit not in allowed}
    assert extra == {}, f"{package.name} may import {sorted(allowed)}; it imports more"


def test_the_checks_see_a_cycle_and_a_private_import(tmp_path):
    """The checks are not vacuous: two units importing each other make a cycle, and a private module is seen."""
    assert _cycles({"a": {"b": ["x"]}, "b": {"a": ["y"]}, "c": {"a": ["z"]}}) == [["a", "b"]]
    path = tmp_path / "m.py"
    path.write_text("def f():\n    from traitloop.loop._run import Run\n")
    assert _imports(path) == [(2, "traitloop.loop._run")]
