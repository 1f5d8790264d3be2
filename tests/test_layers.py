"""The layering holds: lint-imports passes, and no module imports itself back.

import-linter (pyproject.toml, [tool.importlinter]) checks the layers
between packages, but it treats ``asyncio/`` as one layer and never sees a
cycle inside it. :func:`import_graph` and :func:`import_cycles` check the
rooms inside a layer too (docs: STYLE.md, "Inside a layer, too").
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from collections import deque
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "src" / "websocket_multiplex"


def test_import_contracts_hold() -> None:
    lint_imports = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run(
        [str(lint_imports), "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# -- the import graph, read from the source ---------------------------------------


@dataclass(frozen=True)
class Edge:
    """Where ``source`` imports ``target``: a line, and under what."""

    line: int
    where: str  # "module level", "TYPE_CHECKING" or "in a function"

    def __str__(self) -> str:
        return f"line {self.line}, {self.where}"


Graph = dict[str, dict[str, Edge]]


def import_graph(package: Path) -> Graph:
    """Which module of ``package`` imports which, from every import statement.

    The rule, for each ``import`` or ``from ... import`` in a module's source:

    - Every import statement counts, wherever it is: at module level, under
      ``if TYPE_CHECKING:`` (a cycle the type checker sees is a cycle in
      the design, and breaks as soon as the import is needed at run time),
      and inside a function. A function-level import runs late, so it does
      not fail at import time, but it is a dependency all the same: here
      they are only ever lazy imports of optional layers below, and one
      that pointed upwards would hide a cycle the same way.
    - Relative imports are resolved against the importing module's package
      (``from .. import x`` in ``pkg/sub/mod.py`` is ``pkg.x``). Imports of
      modules outside ``package`` (the standard library, aiohttp) are not
      edges; dynamic ones (``importlib``) are not seen.
    - ``from . import x`` and ``from .x import y`` are an edge to module
      ``x``; if ``y`` is itself a module (``x/y.py``), to ``x.y``. A name
      that is not a module (``from . import Channel``) is an edge to the
      package it comes from, that is, to its ``__init__``.
    - Importing ``pkg.x.y`` from outside ``pkg.x`` runs ``pkg/x/__init__.py``
      first, so it is an edge to ``pkg.x`` as well. A module's own packages
      are not: Python has started them before the module runs. Hence a
      package's ``__init__`` importing (re-exporting) its own submodules is
      not a cycle with them; it is one only if a submodule imports a name
      from that ``__init__`` (``from . import Channel``), which is a real
      cycle: it works or not depending on which module is imported first.
    """
    modules = {_module_name(path, package): path for path in package.rglob("*.py")}
    return {
        name: _edges(name, path, modules, package.name)
        for name, path in sorted(modules.items())
    }


def import_cycles(graph: Graph) -> list[list[str]]:
    """Every import that is on a cycle, in the shortest cycle through it.

    A cycle is a chain ``[a, b, ..., a]``: ``a`` imports ``b`` ... imports
    ``a``. For each edge ``a -> b`` from which ``a`` can be reached again,
    the shortest way back makes its cycle; a cycle found from several of
    its edges is listed once. So every import that has to go is shown.
    """
    cycles: dict[tuple[str, ...], list[str]] = {}
    for source in sorted(graph):
        for target in sorted(graph[source]):
            way_back = _shortest_path(graph, target, source)
            if way_back is not None:
                cycle = [source, *way_back]
                cycles.setdefault(_canonical(cycle), cycle)
    return sorted(cycles.values())


def describe(graph: Graph, cycle: list[str]) -> str:
    """``a -> b (line 3, TYPE_CHECKING) -> a (line 9, module level)``."""
    steps = [cycle[0]]
    for source, target in pairwise(cycle):
        steps.append(f"{target} ({graph[source][target]})")
    return " -> ".join(steps)


def _module_name(path: Path, package: Path) -> str:
    parts = [package.name, *path.relative_to(package).with_suffix("").parts]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _edges(
    name: str, path: Path, modules: dict[str, Path], root: str
) -> dict[str, Edge]:
    is_package = path.name == "__init__.py"
    own_package = name if is_package else name.rpartition(".")[0]
    own_ancestors = {
        ".".join(name.split(".")[:n]) for n in range(1, name.count(".") + 2)
    }
    edges: dict[str, Edge] = {}
    for statement, where in _imports(ast.parse(path.read_text(), str(path))):
        for target in _targets(statement, own_package, modules):
            if target != root and not target.startswith(root + "."):
                continue
            for module in _with_packages_on_the_way(target, own_ancestors, modules):
                edges.setdefault(module, Edge(statement.lineno, where))
    return edges


def _imports(tree: ast.Module) -> list[tuple[ast.Import | ast.ImportFrom, str]]:
    """Every import statement of ``tree``, with the context it runs in."""
    found: list[tuple[ast.Import | ast.ImportFrom, str]] = []

    def visit(node: ast.AST, where: str) -> None:
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append((node, where))
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            where = "in a function"
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            guarded = where if where == "in a function" else "TYPE_CHECKING"
            for statement in node.body:
                visit(statement, guarded)
            for statement in node.orelse:
                visit(statement, where)
            return
        for child in ast.iter_child_nodes(node):
            visit(child, where)

    visit(tree, "module level")
    return found


def _is_type_checking(test: ast.expr) -> bool:
    """``TYPE_CHECKING`` or ``typing.TYPE_CHECKING`` (any ``x.TYPE_CHECKING``)."""
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    return isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"


def _targets(
    statement: ast.Import | ast.ImportFrom, own_package: str, modules: dict[str, Path]
) -> list[str]:
    """The modules one statement names (see :func:`import_graph` for the rule)."""
    if isinstance(statement, ast.Import):
        return [_longest_known(alias.name, modules) for alias in statement.names]
    base = statement.module or ""
    if statement.level:
        parts = own_package.split(".")
        anchor = ".".join(parts[: len(parts) - (statement.level - 1)])
        base = f"{anchor}.{base}" if base else anchor
    targets = []
    for alias in statement.names:
        submodule = f"{base}.{alias.name}"
        targets.append(submodule if submodule in modules else base)
    return targets


def _longest_known(name: str, modules: dict[str, Path]) -> str:
    while name not in modules and "." in name:
        name = name.rpartition(".")[0]
    return name


def _with_packages_on_the_way(
    target: str, own_ancestors: set[str], modules: dict[str, Path]
) -> list[str]:
    """``target`` and each package whose ``__init__`` importing it runs first."""
    parts = target.split(".")
    on_the_way = [".".join(parts[:n]) for n in range(1, len(parts))]
    return [
        module
        for module in [*on_the_way, target]
        if module in modules and (module == target or module not in own_ancestors)
    ]


def _shortest_path(graph: Graph, start: str, end: str) -> list[str] | None:
    """``[start, ..., end]`` along imports, breadth first; ``None`` if none."""
    came_from = {start: start}
    queue = deque([start])
    while queue:
        module = queue.popleft()
        if module == end:
            path = [end]
            while path[-1] != start:
                path.append(came_from[path[-1]])
            return path[::-1]
        for target in sorted(graph.get(module, {})):
            if target not in came_from:
                came_from[target] = module
                queue.append(target)
    return None


def _canonical(cycle: list[str]) -> tuple[str, ...]:
    """The same cycle whichever module it starts from."""
    ring = cycle[:-1]
    first = ring.index(min(ring))
    return tuple(ring[first:] + ring[:first])


# -- the checks --------------------------------------------------------------------


def test_no_import_cycle_inside_the_package() -> None:
    graph = import_graph(PACKAGE)
    cycles = import_cycles(graph)
    chains = "\n".join(describe(graph, cycle) for cycle in cycles)
    if cycles:
        print(f"import cycles in {PACKAGE.name}:\n{chains}")
    assert not cycles, f"import cycles in {PACKAGE.name}:\n{chains}"


def write_package(root: Path, files: dict[str, str]) -> Path:
    for name, source in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source))
    return root


def test_the_check_finds_a_cycle_hidden_behind_type_checking(tmp_path: Path) -> None:
    package = write_package(
        tmp_path / "pkg",
        {
            "__init__.py": "from .channel import Channel\nfrom .server import Server\n",
            "channel.py": """\
                from __future__ import annotations
                from typing import TYPE_CHECKING

                if TYPE_CHECKING:
                    from .connection import Connection

                class Channel: ...
                """,
            "connection.py": "from . import channel\n",
            "server.py": "import pkg.channel\n\nclass Server: ...\n",
        },
    )
    graph = import_graph(package)
    assert graph["pkg.channel"]["pkg.connection"] == Edge(5, "TYPE_CHECKING")
    assert import_cycles(graph) == [["pkg.channel", "pkg.connection", "pkg.channel"]]
    assert describe(graph, import_cycles(graph)[0]) == (
        "pkg.channel -> pkg.connection (line 5, TYPE_CHECKING)"
        " -> pkg.channel (line 1, module level)"
    )


def test_the_check_finds_a_lazy_import_of_a_packages_own_init(tmp_path: Path) -> None:
    package = write_package(
        tmp_path / "pkg",
        {
            "__init__.py": "from .sub import Thing\n",
            "sub/__init__.py": "from .thing import Thing\n",
            "sub/thing.py": "def make():\n    from .. import Thing\n",
        },
    )
    assert import_cycles(import_graph(package)) == [
        ["pkg", "pkg.sub", "pkg.sub.thing", "pkg"]
    ]


def test_the_check_finds_none_in_a_clean_package(tmp_path: Path) -> None:
    package = write_package(
        tmp_path / "pkg",
        {
            # re-exports of its own submodules: no cycle with them
            "__init__.py": "from .core import Core\nfrom .io import Server\n",
            "core.py": "import asyncio\n\nclass Core: ...\n",
            "io/__init__.py": "from .server import Server\n",
            "io/server.py": """\
                from __future__ import annotations
                from typing import TYPE_CHECKING
                from .. import core
                from .channel import Channel

                if TYPE_CHECKING:
                    from pkg.core import Core

                class Server: ...
                """,
            "io/channel.py": """\
                from ..core import Core

                def lazily():
                    from pkg import core
                """,
        },
    )
    graph = import_graph(package)
    assert graph["pkg.io.server"] == {
        "pkg.core": Edge(3, "module level"),
        "pkg.io.channel": Edge(4, "module level"),
    }
    assert graph["pkg.io.channel"] == {"pkg.core": Edge(1, "module level")}
    assert import_cycles(graph) == []
