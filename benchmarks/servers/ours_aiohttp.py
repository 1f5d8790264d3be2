"""Our multiplexer on aiohttp, as ``websocket-multiplex`` users deploy it.

    python benchmarks/servers/ours_aiohttp.py [--uvloop] [--callbacks]

``add_sockjs_endpoint`` at ``/multiplex`` (SockJS; its raw WebSocket
endpoint is ``/multiplex/websocket``) and ``add_websocket_route`` at
``/ws`` (a plain aiohttp WebSocket), serving echo0 .. echo9, with the
default ``compress=False``; the same SockJS endpoint with ``compress=True``
at ``/multiplex-deflate``. ``--uvloop`` runs it on uvloop; ``--callbacks``
serves the echo as task-free ChannelHandler services. See _common.py
for the ready line and the stdin commands.
"""

from __future__ import annotations

import asyncio
import sys

from _common import (
    announce,
    callback_echo_server,
    echo_server,
    serve_commands,
    versions,
)
from aiohttp import web

from websocket_multiplex.adapters.aiohttp import (
    add_sockjs_endpoint,
    add_websocket_route,
)


async def main(callbacks: bool) -> None:
    mux = callback_echo_server() if callbacks else echo_server()
    app = web.Application()
    add_sockjs_endpoint(app, mux, prefix="/multiplex")
    add_sockjs_endpoint(app, mux, prefix="/multiplex-deflate", compress=True)
    add_websocket_route(app, mux, "/ws")
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    announce(port, versions=versions("websocket-multiplex", "aiohttp"))
    try:
        await serve_commands()
    finally:
        await runner.cleanup()


if __name__ == "__main__":
    options = set(sys.argv[1:])
    if not options <= {"--uvloop", "--callbacks"}:
        sys.exit(f"usage: {sys.argv[0]} [--uvloop] [--callbacks]")
    if "--uvloop" in options:
        import uvloop

        uvloop.run(main("--callbacks" in options))
    else:
        asyncio.run(main("--callbacks" in options))
