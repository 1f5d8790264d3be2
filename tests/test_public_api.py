"""The public surface: an explicit ``__all__``, and an import that stays light."""

from __future__ import annotations

import json
import subprocess
import sys

import websocket_multiplex

EXPECTED_ALL = [
    "Authorizer",
    "Backoff",
    "BrokenFraming",
    "Channel",
    "ChannelClosed",
    "ChannelGap",
    "ChannelHandler",
    "ClientChannel",
    "ClientState",
    "CloseReason",
    "Connection",
    "ConnectionClosed",
    "DisconnectCause",
    "Disconnection",
    "Handler",
    "Headers",
    "Inlet",
    "InvalidFrame",
    "Limits",
    "LocalProtocolError",
    "MultiplexClient",
    "MultiplexError",
    "MultiplexServer",
    "Recipient",
    "RemoteProtocolError",
    "RequestInfo",
    "ServerStats",
    "Service",
    "ServiceNotFound",
    "SockJSConnection",
    "SockJSHandler",
    "Subscription",
    "Transport",
    "escape",
    "unescape",
]

# Optional dependencies: only the adapter or broker that needs one imports it.
HEAVY = ["aiohttp", "redis", "starlette", "uvicorn", "websockets", "wsproto", "h11"]


def test_all_is_the_expected_list() -> None:
    assert sorted(websocket_multiplex.__all__) == sorted(EXPECTED_ALL)
    assert len(set(websocket_multiplex.__all__)) == len(websocket_multiplex.__all__)


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
