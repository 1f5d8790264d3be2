"""uvicorn in the test's own event loop, for every test that needs one."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator

import uvicorn

TIMEOUT = 10.0


class _Uvicorn(uvicorn.Server):
    """uvicorn.Server that says when it is listening, instead of a flag to poll."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = asyncio.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self.ready.set()


@contextlib.asynccontextmanager
async def uvicorn_running(config: uvicorn.Config) -> AsyncIterator[int]:
    """Serve ``config`` (its host and port are not used: it listens on a free
    port of 127.0.0.1) until the block ends; yield the port."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    server = _Uvicorn(config)
    serving = asyncio.create_task(server.serve(sockets=[listener]))
    ready = asyncio.create_task(server.ready.wait())
    try:
        async with asyncio.timeout(TIMEOUT):
            await asyncio.wait([serving, ready], return_when=asyncio.FIRST_COMPLETED)
        if not server.ready.is_set():
            await serving  # it failed to start: say why
            raise RuntimeError("uvicorn did not start")
        yield listener.getsockname()[1]
    finally:
        ready.cancel()
        server.should_exit = True
        async with asyncio.timeout(TIMEOUT):
            await serving
        listener.close()
