"""The adapters, the examples and the benchmarks use the core's public API only.

A private module (``oscar_plugins._client``, ``oscar_plugins.local.execution._runner``) may change in any release;
what an adapter needs is exported by ``oscar_plugins`` (or ``oscar_plugins.local``). Read from the source
(``ast``), so an import inside a function counts too.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: Folders that must stay on the public API, and the package each folder is imported as (for relative imports).
USERS = {"cwl": "oscar_plugins.cwl", "airflow_provider": "oscar_plugins.airflow",
         "itwinai_ext": "oscar_plugins.itwinai", "examples": None, "benchmarks": "benchmarks"}


def _private(module: str, own: str | None = None) -> bool:
    """A private module of the core (an adapter's own private modules are its business)."""
    if own and (module == own or module.startswith(own + ".")):
        return False
    parts = module.split(".")
    return parts[0] == "oscar_plugins" and any(p.startswith("_") and not p.startswith("__") for p in parts[1:])


def _imports(path: Path, package: str | None) -> list[tuple[int, str]]:
    """(line, absolute module) of every import in ``path``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                base = node.module or ""
            elif package is None:
                continue
            else:
                here = package.split(".")
                # a module of the folder: level 1 is its package, each level more goes one up
                parent = here[: len(here) - (node.level - 1)] if node.level > 1 else here
                base = ".".join([*parent, *([node.module] if node.module else [])])
            found.append((node.lineno, base))
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return found


@pytest.mark.parametrize("folder", sorted(USERS))
def test_no_private_core_module_is_imported(folder: str) -> None:
    offences = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        package = USERS[folder]
        if package is not None:  # a module in a sub-folder belongs to that sub-package
            package = ".".join([package, *path.parent.relative_to(ROOT / folder).parts])
        for line, module in _imports(path, package):
            if _private(module, USERS[folder]):
                offences.append(f"{path.relative_to(ROOT)}:{line}: {module}")
    assert not offences, "import these from the public API (oscar_plugins or oscar_plugins.local):\n" + "\n".join(
        offences)


def test_the_check_sees_private_imports(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text("import oscar_plugins._client\nfrom oscar_plugins._auth import X\n"
                      "def f():\n    from ..local._runner import Y\n    from ._own import Z\n")
    found = [m for _, m in _imports(source, "oscar_plugins.cwl") if _private(m, "oscar_plugins.cwl")]
    assert "oscar_plugins._client" in found and "oscar_plugins._auth.X" in found
    assert "oscar_plugins.local._runner.Y" in found
    assert not [m for m in found if "_own" in m]


#: Where each package of the distribution lives (the adapters' folders are mapped into ``oscar_plugins``).
PACKAGES = {"oscar_plugins": ROOT / "oscar_plugins", "oscar_plugins.cwl": ROOT / "cwl",
            "oscar_plugins.airflow": ROOT / "airflow_provider", "oscar_plugins.itwinai": ROOT / "itwinai_ext"}


def import_graph() -> dict[str, set[str]]:
    """Module -> the modules of the distribution it imports at run time (imports inside functions
    included; ``if TYPE_CHECKING:`` blocks left out, they never run)."""
    modules: dict[str, tuple[Path, str]] = {}
    for package, folder in PACKAGES.items():
        for path in folder.rglob("*.py"):
            parts = [p for p in path.relative_to(folder).with_suffix("").parts if p != "__init__"]
            name = ".".join([package, *parts])
            modules[name] = (path, name if path.name == "__init__.py" else name.rpartition(".")[0])
    graph: dict[str, set[str]] = {}
    for name, (path, package) in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        hidden = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(
            node.test) for n in ast.walk(node)}
        found = set()
        for node in ast.walk(tree):
            if id(node) in hidden:
                continue
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                here = package.split(".")
                base = node.module or "" if node.level == 0 else ".".join(
                    [*here[: len(here) - node.level + 1], *([node.module] if node.module else [])])
                found.add(base)
                found.update(f"{base}.{alias.name}" for alias in node.names)
        graph[name] = {m for m in found if m in modules and m != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles() -> None:
    graph = import_graph()
    assert len(graph) > 60 and "oscar_plugins._client" in graph["oscar_plugins._dispatch"]  # the graph is real
    assert not cycles(graph), cycles(graph)


def test_the_core_does_not_import_the_local_cluster() -> None:
    """The embedded cluster depends on the core, not the other way round: it registers itself as the
    fallback cluster (an entry point), and only the CLI, which offers its commands, imports it."""
    graph = import_graph()
    core = [m for m in graph if m.startswith("oscar_plugins.") and not m.startswith(
        ("oscar_plugins.local", "oscar_plugins.cwl", "oscar_plugins.airflow", "oscar_plugins.itwinai"))]
    assert "oscar_plugins._profiles" in core
    offences = {m: sorted(d for d in graph[m] if d.startswith("oscar_plugins.local")) for m in core
                if m != "oscar_plugins.cli"}
    assert not {m: d for m, d in offences.items() if d}, offences


def test_the_cycle_check_finds_cycles() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_every_public_name_resolves() -> None:
    package = importlib.import_module("oscar_plugins")
    for name in package.__all__:
        assert getattr(package, name) is not None, name
