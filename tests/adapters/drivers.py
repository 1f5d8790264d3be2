"""One SockJS endpoint served by either driver, for tests that run on both.

``aiohttp``: :func:`add_sockjs_endpoint` on an ``AppRunner``; ``uvicorn``:
:class:`SockJSASGI` under a real uvicorn in the test's event loop, run as
:mod:`websocket_multiplex.adapters.uvicorn` runs it.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from websocket_multiplex import MultiplexServer, SockJSHandler
from websocket_multiplex.adapters import uvicorn as sockjs_uvicorn
from websocket_multiplex.adapters.aiohttp import SOCKJS_ENDPOINTS, add_sockjs_endpoint
from websocket_multiplex.adapters.asgi import SockJSASGI
from websocket_multiplex.asyncio.sockjs import SockJSEndpoint

from ..servers import uvicorn_running

DRIVERS = ["aiohttp", "uvicorn"]
TIMEOUT = 5.0


class Served:
    """A running endpoint: its URL (``http://127.0.0.1:P/prefix``) and core."""

    def __init__(self, url: str, endpoint: SockJSEndpoint) -> None:
        self.url = url
        self.endpoint = endpoint

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://", 1)


@contextlib.asynccontextmanager
async def serving(
    driver: str,
    target: MultiplexServer | SockJSHandler,
    prefix: str = "/sockjs",
    **options: Any,
) -> AsyncIterator[Served]:
    """Serve ``target`` at ``prefix`` with ``driver``; ``options`` go to
    ``add_sockjs_endpoint`` or ``SockJSASGI``."""
    if driver == "aiohttp":
        async with _aiohttp(target, prefix, options) as served:
            yield served
    else:
        async with _uvicorn(target, prefix, options) as served:
            yield served


@contextlib.asynccontextmanager
async def _aiohttp(
    target: MultiplexServer | SockJSHandler, prefix: str, options: dict[str, Any]
) -> AsyncIterator[Served]:
    app = web.Application()
    add_sockjs_endpoint(app, target, prefix=prefix, **options)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    try:
        yield Served(f"http://127.0.0.1:{port}{prefix}", app[SOCKJS_ENDPOINTS][prefix])
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def _uvicorn(
    target: MultiplexServer | SockJSHandler, prefix: str, options: dict[str, Any]
) -> AsyncIterator[Served]:
    app = SockJSASGI(target, prefix=prefix, **options)
    config = sockjs_uvicorn.config(app, log_config=None, log_level="warning")
    async with uvicorn_running(config) as port:
        yield Served(f"http://127.0.0.1:{port}{prefix}", app.endpoint)
