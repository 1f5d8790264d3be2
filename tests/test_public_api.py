"""The public surface: an explicit ``__all__``, and an import that stays light."""

from __future__ import annotations

import ast
import importlib
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import websocket_multiplex

# The top level re-exports every public name of these modules...
WHOLE = ["asyncio", "exceptions", "request"]
# ...and a few of these: their other names (the sans-I/O events, the frame
# grammar, DEFAULT_LIMITS) are for the layers below, imported from there.
PARTS = {
    "events": {
        "CloseReason",
        "LeaveReason",
        "MemberJoined",
        "MemberLeft",
        "PresenceEvent",
        "PresenceSnapshot",
    },
    "limits": {"Limits"},
    "wire": {"escape", "unescape"},
}

# Optional dependencies: only the adapter or broker that needs one imports it.
HEAVY = ["aiohttp", "redis", "starlette", "uvicorn", "websockets", "wsproto", "h11"]


def submodule(name: str) -> ModuleType:
    return importlib.import_module(f"websocket_multiplex.{name}")


def reexported() -> dict[str, set[str]]:
    """The names ``websocket_multiplex/__init__.py`` imports, by module."""
    source = Path(websocket_multiplex.__file__).read_text(encoding="utf-8")
    imported: dict[str, set[str]] = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module:
            names = {alias.asname or alias.name for alias in node.names}
            imported.setdefault(node.module, set()).update(names)
    return imported


def test_all_is_the_union_of_what_it_reexports() -> None:
    expected = set().union(*(submodule(name).__all__ for name in WHOLE))
    expected |= set().union(*PARTS.values())
    assert sorted(websocket_multiplex.__all__) == sorted(expected)


def test_all_has_no_duplicates() -> None:
    assert len(set(websocket_multiplex.__all__)) == len(websocket_multiplex.__all__)


def test_every_source_module_is_accounted_for() -> None:
    imported = reexported()
    assert sorted(imported) == sorted([*WHOLE, *PARTS])
    assert set().union(*imported.values()) == set(websocket_multiplex.__all__)
    for name, picked in PARTS.items():
        assert picked <= set(submodule(name).__all__), name


def test_every_name_is_the_object_of_its_module() -> None:
    sources = {name: set(submodule(name).__all__) for name in WHOLE} | PARTS
    for name, public in sources.items():
        module = submodule(name)
        for attribute in public:
            assert getattr(websocket_multiplex, attribute) is getattr(module, attribute)


def test_every_name_in_all_exists() -> None:
    missing = [
        name
        for name in websocket_multiplex.__all__
        if not hasattr(websocket_multiplex, name)
    ]
    assert missing == []


def test_version() -> None:
    assert websocket_multiplex.__version__ == "0.1.0"


def test_error_tree() -> None:
    wm = websocket_multiplex
    assert issubclass(wm.ChannelClosed, wm.MultiplexError)
    assert issubclass(wm.ChannelGap, wm.MultiplexError)
    assert issubclass(wm.LocalProtocolError, wm.MultiplexError)
    assert issubclass(wm.ServiceNotFound, wm.LocalProtocolError)
    assert issubclass(wm.ServiceNotFound, LookupError)
    assert issubclass(wm.RemoteProtocolError, wm.MultiplexError)
    assert issubclass(wm.InvalidFrame, wm.RemoteProtocolError)
    assert issubclass(wm.InvalidFrame, ValueError)
    assert issubclass(wm.BrokenFraming, wm.RemoteProtocolError)
    assert issubclass(wm.BrokenFraming, ValueError)
    assert issubclass(wm.ConnectionClosed, wm.MultiplexError)
    assert issubclass(wm.BrokerUnavailable, wm.MultiplexError)
    assert issubclass(wm.ConcurrentReceive, wm.LocalProtocolError)


def imported_after(statement: str) -> list[str]:
    """The heavy modules a fresh interpreter has loaded after ``statement``."""
    code = (
        f"import json, sys; {statement}; "
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    loaded: list[str] = json.loads(result.stdout)
    return loaded


def test_import_does_not_load_optional_dependencies() -> None:
    assert imported_after("import websocket_multiplex") == []


def test_adapters_package_and_testing_stay_light() -> None:
    statement = "import websocket_multiplex.adapters, websocket_multiplex.testing"
    assert imported_after(statement) == []


def test_asgi_adapter_imports_no_framework() -> None:
    assert imported_after("import websocket_multiplex.adapters.asgi") == []


def test_the_sockjs_core_imports_nothing_heavy() -> None:
    assert imported_after("import websocket_multiplex.sockjs.http") == []
