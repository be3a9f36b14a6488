"""Structure checks over the source: the one-direction data flow has no import cycle among ferbench
modules (imports inside functions count, and so do ``if TYPE_CHECKING:`` imports: a type one module
names from another is a dependency too),
and no function is longer than 80 lines."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "ferbench"
MAX_FUNCTION_LINES = 80


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    """ferbench modules ``path`` imports (at any depth, inside functions and TYPE_CHECKING blocks too)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names)  # `from . import x` names a module
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(), str(path)))
    return {m for m in found if m in modules and m != name}


def _graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for p in ROOT.rglob("*.py")}
    modules = set(files)
    graph = {m: _imports(p, modules) for m, p in files.items()}
    # importing a.b.c runs a/__init__ and a/b/__init__ first: an edge to each parent package
    for m in graph:
        graph[m] |= {dep.rsplit(".", i)[0] for dep in set(graph[m]) for i in range(1, dep.count("."))
                     if dep.rsplit(".", i)[0] in modules and dep.rsplit(".", i)[0] != m
                     and not m.startswith(dep.rsplit(".", i)[0] + ".")}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return out


def test_checker_sees_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycle_among_ferbench_modules():
    cycles = _cycles(_graph())
    assert not cycles, "import cycles (module- or function-level imports): " + "; ".join(
        " <-> ".join(c) for c in cycles)


def _long_functions() -> list[str]:
    out = []
    for path in sorted(ROOT.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    out.append(f"{path.relative_to(ROOT.parent)}:{node.lineno} {node.name} ({lines} lines)")
    return out


def test_no_function_over_80_lines():
    assert not _long_functions(), "\n".join(_long_functions())


def test_a_test_cannot_signal_its_own_session():
    """conftest guards os.kill / os.killpg: a stray kill(0) or killpg(own group) fails one test
    instead of ending the whole session without a summary."""
    import os
    import signal

    with pytest.raises(AssertionError, match="kill the test session"):
        os.kill(0, signal.SIGTERM)
    with pytest.raises(AssertionError, match="kill the test session"):
        os.kill(os.getpid(), signal.SIGKILL)
    with pytest.raises(AssertionError, match="own process group"):
        os.killpg(os.getpgrp(), signal.SIGTERM)
    if os.environ.get("PYTEST_XDIST_WORKER"):  # the session that prints the summary: this worker's parent
        with pytest.raises(AssertionError, match="kill the test session"):
            os.kill(os.getppid(), signal.SIGCONT)  # harmless if the guard ever let it through
    os.kill(os.getpid(), 0)  # signal 0 only checks that the process exists


def test_the_http_library_is_the_one_openai_is_built_on():
    """Nothing imports httpx/httpx2 directly: its types come from the library the installed openai uses."""
    import openai

    from ferbench.llm import client

    assert client.http.Client in openai.DefaultHttpxClient.__mro__
    direct = [f"{p.relative_to(ROOT.parent)}" for p in ROOT.rglob("*.py")
              if any(isinstance(n, (ast.Import, ast.ImportFrom)) and any(
                  (a.name if isinstance(n, ast.Import) else (n.module or "")).split(".")[0] in ("httpx", "httpx2")
                  for a in n.names) for n in ast.walk(ast.parse(p.read_text())))]
    assert direct == []
