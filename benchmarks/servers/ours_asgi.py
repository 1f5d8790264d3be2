"""Our multiplexer as an ASGI application under uvicorn.

    python benchmarks/servers/ours_asgi.py

``MultiplexASGI`` serving echo0 .. echo9 on every path, with uvicorn's
``auto`` choices: the fastest HTTP, WebSocket and event-loop
implementations that are installed (the ready line names them). uvicorn
accepts permessage-deflate when offered. See _common.py for the ready line
and the stdin commands.
"""

from __future__ import annotations

import asyncio
import socket

import uvicorn
from _common import announce, echo_server, serve_commands, versions

from websocket_multiplex.adapters.asgi import MultiplexASGI


async def main() -> None:
    config = uvicorn.Config(
        MultiplexASGI(echo_server()), lifespan="on", log_level="warning"
    )
    server = uvicorn.Server(config)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    serving = asyncio.create_task(server.serve(sockets=[listener]))
    while not server.started:
        if serving.done():
            serving.result()  # startup failed: raise its error
        await asyncio.sleep(0.01)
    announce(
        listener.getsockname()[1],
        versions=versions("websocket-multiplex", "uvicorn", "wsproto", "h11"),
        http=config.http_protocol_class.__module__,
        ws=config.ws_protocol_class and config.ws_protocol_class.__module__,
    )
    try:
        await serve_commands()
    finally:
        server.should_exit = True
        await serving


if __name__ == "__main__":
    asyncio.run(main())
