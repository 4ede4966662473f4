"""The layout docs/architecture.md ("Project layout") describes: commands are thin entry points that the
library never imports, no command imports another, and no module imports one that imports it back."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

import layoutnet

SRC = Path(layoutnet.__file__).parent

COMMANDS = {
    "layoutnet.train": "python -m layoutnet",
    "layoutnet.evaluate": "python -m layoutnet.evaluate",
    "layoutnet.predict": "python -m layoutnet.predict",
    "layoutnet.generate": "python -m layoutnet.generate",
    "layoutnet.summarize": "python -m layoutnet.summarize",
    "layoutnet.export.cli": "python -m layoutnet.export",
    "layoutnet.export.validate": "python -m layoutnet.export.validate",
}
ENTRY_POINTS = {"layoutnet.__main__": "layoutnet.train", "layoutnet.export.__main__": "layoutnet.export.cli"}


def module_name(path: Path) -> str:
    parts = ["layoutnet", *path.relative_to(SRC).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> set[str]:
    """Every layoutnet module a file imports, at the top or inside a function (`from a import b` counts
    as importing `a` and, when it is a module, `a.b`)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found |= {node.module, *(f"{node.module}.{alias.name}" for alias in node.names)}
    return {name for name in found if name == "layoutnet" or name.startswith("layoutnet.")}


def import_graph() -> dict[str, set[str]]:
    return {module_name(path): imported_modules(path) for path in SRC.rglob("*.py")}


def test_every_command_module_exists():
    graph = import_graph()
    assert set(COMMANDS) <= set(graph)
    assert set(ENTRY_POINTS) <= set(graph)


def test_no_library_module_imports_a_command():
    graph = import_graph()
    offenders = {
        f"{module} imports {command}"
        for module, imports in graph.items()
        if module not in COMMANDS and module not in ENTRY_POINTS
        for command in imports & set(COMMANDS)
    }
    assert not offenders


def test_no_command_imports_another_command():
    graph = import_graph()
    offenders = {
        f"{module} imports {other}"
        for module in COMMANDS
        for other in graph[module] & set(COMMANDS)
        if other != module
    }
    assert not offenders
    for entry, command in ENTRY_POINTS.items():
        assert graph[entry] & set(COMMANDS) == {command}


def test_the_import_graph_sees_imports_inside_functions(tmp_path):
    source = tmp_path / "m.py"
    source.write_text("def f():\n    from layoutnet.summarize import main\n    import layoutnet.train\n")
    assert {"layoutnet.summarize", "layoutnet.summarize.main", "layoutnet.train"} <= imported_modules(source)


def import_cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected groups of two or more modules: modules that import each other, directly or
    around a loop (imports inside functions count; see `imported_modules`). `from a import b` where `a.b`
    is a module imports `a.b`; a package comes along with every import of its modules, so an edge to a
    module's own package is no dependency of its own."""

    def targets_of(module: str, imports: set[str]) -> set[str]:
        found = {t for t in imports if t in graph and t != module}
        found -= {t for t in found if any(other.startswith(t + ".") for other in found)}
        return {t for t in found if not module.startswith(t + ".")}

    edges = {module: targets_of(module, targets) for module, targets in graph.items()}
    order: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[set[str]] = []

    def visit(module: str) -> None:
        order[module] = low[module] = len(order)
        stack.append(module)
        for target in edges[module]:
            if target not in order:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in stack:
                low[module] = min(low[module], order[target])
        if low[module] == order[module]:
            group = set()
            while not group or module not in group:
                group.add(stack.pop())
            if len(group) > 1:
                cycles.append(group)

    for module in sorted(edges):
        if module not in order:
            visit(module)
    return cycles


KNOWN_CYCLES = [
    {"layoutnet.legacy", "layoutnet.modelfile"},
]
"""Cycles still open (issue 21.2). The test fails when one goes away too: delete it here then."""


def test_no_module_imports_one_that_imports_it_back():
    cycles = import_cycles(import_graph())
    assert [c for c in cycles if c not in KNOWN_CYCLES] == []
    assert [c for c in KNOWN_CYCLES if c not in cycles] == []  # fixed: remove it from KNOWN_CYCLES


def test_the_cycle_finder_finds_a_loop_of_three_and_no_other():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert import_cycles(graph) == [{"a", "b", "c"}]
    assert import_cycles({"a": {"b"}, "b": set()}) == []
    # a package importing its module, which imports a sibling through the package: no loop of its own
    assert import_cycles({"p": {"p.x"}, "p.x": {"p", "p.y"}, "p.y": set()}) == []


REPO = SRC.parents[1]
needs_make = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


@needs_make
def test_make_bench_runs_every_benchmark_script():
    done = subprocess.run(
        ["make", "-n", "bench", "PYTHON=true"], cwd=REPO, capture_output=True, text=True, check=True
    )
    ran = {line.split()[1] for line in done.stdout.splitlines() if line.startswith("true benchmarks/")}
    assert ran == {f"benchmarks/{p.name}" for p in (REPO / "benchmarks").glob("bench_*.py")}


@needs_make
def test_make_installs_once_and_again_only_when_it_has_to(tmp_path):
    """`make smoke`/`test`/`train` install through a stamp: a second call skips pip, a changed
    pyproject.toml or a `layoutnet` that imports from elsewhere installs again."""
    clone = tmp_path / "clone"
    (clone / "src" / "layoutnet").mkdir(parents=True)
    for name in ("Makefile", "pyproject.toml"):
        shutil.copy(REPO / name, clone / name)
    (clone / "src" / "layoutnet" / "__init__.py").write_text("", encoding="utf-8")
    calls = tmp_path / "pip-calls"
    python = tmp_path / "python"  # the real interpreter, except that `-m pip` only records its call
    python.write_text(
        f'#!/bin/sh\nif [ "$1 $2" = "-m pip" ]; then echo "$*" >> {calls}; exit 0; fi\n'
        f'exec {sys.executable} "$@"\n',
        encoding="utf-8",
    )
    python.chmod(0o755)

    def install(env_path: Path) -> list[str]:
        calls.unlink(missing_ok=True)
        env = {**os.environ, "PYTHONPATH": str(env_path)}
        subprocess.run(
            ["make", "install", f"PYTHON={python}"], cwd=clone, env=env, check=True, capture_output=True
        )
        return calls.read_text(encoding="utf-8").splitlines() if calls.exists() else []

    first = install(clone / "src")
    assert first[0].startswith("-m pip install -q torch==") and "-e .[dev]" in first[1]  # torch first
    assert install(clone / "src") == []  # up to date: nothing installed
    os.utime(clone / "pyproject.toml", (time.time() + 5, time.time() + 5))
    assert len(install(clone / "src")) == 2  # the dependencies changed
    assert len(install(tmp_path / "elsewhere")) == 2  # layoutnet does not import from this clone
