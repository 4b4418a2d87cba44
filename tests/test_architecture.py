"""The package's shape, read from its source: no import cycles, the package's own modules imported
at the top of modules (the CLI alone imports lazily, for a fast ``--help``), modules of at most
about 700 lines."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "dsen2cr"
PACKAGE = "dsen2cr"
MAX_LINES = 700
LAZY_ALLOWED = ("dsen2cr.cli",)
"""Modules that may import the package's own modules inside functions."""


def modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package."""
    out = {}
    for f in sorted(SRC.rglob("*.py")):
        rel = f.relative_to(SRC.parent).with_suffix("")
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        out[".".join(parts)] = f
    return out


def _resolve(name: str, known: dict[str, Path]) -> str | None:
    """The module of the package an imported name belongs to (``a.b.C`` -> ``a.b``)."""
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def imports(module: str, path: Path, known: dict[str, Path]) -> list[tuple[str, ast.AST]]:
    """``(imported module, node)`` for every import of the package's own modules."""
    pkg = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            names = [f"{base}.{a.name}" for a in node.names]
        for n in names:
            if n.split(".")[0] == PACKAGE:
                target = _resolve(n, known)
                if target and target != module and not module.startswith(target + "."):
                    found.append((target, node))
    return found


def import_graph() -> dict[str, set[str]]:
    known = modules()
    return {m: {t for t, _ in imports(m, f, known)} for m, f in known.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` (a list of modules ending where it started), or None."""
    state: dict[str, int] = {}  # 1 on the stack, 2 done

    def visit(node: str, stack: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state:
                cycle = visit(nxt, [*stack, nxt])
                if cycle:
                    return cycle
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state:
            cycle = visit(start, [start])
            if cycle:
                return cycle
    return None


def test_the_cycle_finder_finds_cycles() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_no_import_cycles() -> None:
    graph = import_graph()
    assert {"dsen2cr.models.weights", "dsen2cr.scene.pipeline", "dsen2cr.training.config"} <= set(graph)
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])


def test_layers() -> None:
    """Reading weights never imports training (nor Lightning); models and data import no scene,
    training or evaluation code; the grid and validity modules import none of the package."""
    graph = import_graph()

    def reach(start: str) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            for nxt in graph.get(todo.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    for low in ("dsen2cr.models", "dsen2cr.models.weights", "dsen2cr.scene.predict",
                "dsen2cr.evaluation"):  # fmt: skip
        assert not {m for m in reach(low) if m.startswith("dsen2cr.training")}, low
    for low in ("dsen2cr.scaling", "dsen2cr.errors", "dsen2cr.io", "dsen2cr.cloudmask"):
        assert not {m for m in reach(low) if m.split(".")[1] in ("models", "data", "scene",
                                                                   "training")}, low  # fmt: skip
    for leaf in ("dsen2cr.grid", "dsen2cr.validity"):  # value types and rules: no own imports
        assert graph[leaf] == set(), leaf
    assert "dsen2cr.data.datamodule" not in reach("dsen2cr.data")  # Lightning stays optional


def _function_level(tree: ast.AST) -> set[int]:
    """ids of the import nodes that sit inside a function body."""
    inner: set[int] = set()
    for fn in ast.walk(tree):
        if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
            for node in ast.walk(fn):
                if isinstance(node, ast.Import | ast.ImportFrom):
                    inner.add(id(node))
    return inner


def test_own_modules_are_imported_at_the_top() -> None:
    known = modules()
    offenders = []
    for module, path in known.items():
        if module.startswith(LAZY_ALLOWED):
            continue
        tree = ast.parse(path.read_text())
        inner = _function_level(tree)
        for node in ast.walk(tree):
            if id(node) not in inner:
                continue
            if isinstance(node, ast.ImportFrom):
                own = bool(node.level) or (node.module or "").split(".")[0] == PACKAGE
            else:
                own = any(a.name.split(".")[0] == PACKAGE for a in node.names)  # type: ignore[union-attr]
            if own:
                offenders.append(f"{module}:{node.lineno}")
    assert offenders == [], offenders


@pytest.mark.parametrize("module", sorted(modules()))
def test_module_size(module: str) -> None:
    lines = len(modules()[module].read_text().splitlines())
    assert lines <= MAX_LINES, f"{module} has {lines} lines (at most {MAX_LINES})"


MAX_FUNCTION_LINES = 80
"""A function longer than this says why in its docstring ("longer than 80 lines because ...")."""


@pytest.mark.parametrize("module", sorted(modules()))
def test_function_size(module: str) -> None:
    tree = ast.parse(modules()[module].read_text())
    long = [
        f"{node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
        and "longer than 80 lines because" not in (ast.get_docstring(node) or "")
    ]
    assert long == [], f"{module}: {long}"
