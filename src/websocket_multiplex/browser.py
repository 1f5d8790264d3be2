"""The browser client's files, as every adapter serves them.

One table, so that :func:`~websocket_multiplex.adapters.aiohttp.add_client_routes`
and :class:`~websocket_multiplex.adapters.asgi.BrowserClientASGI` serve the
same names with the same types and headers:

* ``websocket-multiplex.js``: a classic script, global ``WebSocketMultiplex``
  (the API of the original ``multiplex_client.js``);
* ``websocket-multiplex.mjs``: the same as an ES module;
* ``websocket-multiplex.d.ts`` and ``.d.mts``: their TypeScript declarations
  (TypeScript looks for the ``.d.mts`` next to the ``.mjs``).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import Final

__all__ = ["CLIENT_PATH", "ClientFile", "client_files"]

CLIENT_PATH: Final = "/websocket-multiplex"
"""Where the adapters serve the files unless told otherwise (the demo and
the examples load ``/websocket-multiplex/websocket-multiplex.js``)."""

_CONTENT_TYPES: Final = {
    "websocket-multiplex.js": "text/javascript",
    "websocket-multiplex.mjs": "text/javascript",
    "websocket-multiplex.d.ts": "text/plain",
    "websocket-multiplex.d.mts": "text/plain",
}


@dataclass(frozen=True)
class ClientFile:
    """One file of the browser client, ready to serve."""

    name: str
    body: bytes
    content_type: str  # without a charset: every file is UTF-8

    @property
    def headers(self) -> tuple[tuple[str, str], ...]:
        """The response headers. Module scripts are fetched with CORS, so
        that pages of other origins may import the client: it is public
        code, any origin may have it."""
        return (
            ("Content-Type", f"{self.content_type}; charset=utf-8"),
            ("Access-Control-Allow-Origin", "*"),
        )


def client_files() -> list[ClientFile]:
    """Every file of the browser client, read from the installed package."""
    static = resources.files("websocket_multiplex") / "static"
    return [
        ClientFile(name, (static / name).read_bytes(), content_type)
        for name, content_type in _CONTENT_TYPES.items()
    ]
