"""Our multiplexer as an ASGI application under uvicorn.

    python benchmarks/servers/ours_asgi.py [--pure]

``SockJSASGI`` at ``/multiplex`` (every SockJS transport; its raw
WebSocket endpoint is ``/multiplex/websocket``) and ``MultiplexASGI`` (a
plain WebSocket) on every other path, serving echo0 .. echo9, run as
``websocket_multiplex.adapters.uvicorn`` runs them (h11 for HTTP,
permessage-deflate declined). By default with ``uvicorn[standard]``'s
WebSocket library and loop: websockets (sans-I/O) and uvloop (the ready
line names them); ``--pure`` takes the pure-Python ones, wsproto and
asyncio's loop. See _common.py for the ready line and the stdin commands.
"""

from __future__ import annotations

import asyncio
import socket
import sys
from typing import Any

import uvicorn
from _common import announce, echo_server, serve_commands, versions

from websocket_multiplex.adapters import uvicorn as sockjs_uvicorn
from websocket_multiplex.adapters.asgi import MultiplexASGI, SockJSASGI


def application() -> Any:
    mux = echo_server()
    sockjs = SockJSASGI(mux, prefix="/multiplex")
    plain = MultiplexASGI(mux)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan" and scope["path"].startswith("/multiplex"):
            await sockjs(scope, receive, send)
        else:
            await plain(scope, receive, send)

    return app


async def main(pure: bool) -> None:
    choices = {"ws": "wsproto"} if pure else {}
    config = sockjs_uvicorn.config(
        application(), lifespan="on", log_level="warning", **choices
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
        versions=versions(
            "websocket-multiplex",
            "uvicorn",
            "websockets",
            "httptools",
            "wsproto",
            "h11",
        ),
        http=config.http_protocol_class.__module__,
        ws=config.ws_protocol_class and config.ws_protocol_class.__module__,
        loop=type(asyncio.get_running_loop()).__module__,
    )
    try:
        await serve_commands()
    finally:
        server.should_exit = True
        await serving


if __name__ == "__main__":
    options = set(sys.argv[1:])
    if not options <= {"--pure"}:
        sys.exit(f"usage: {sys.argv[0]} [--pure]")
    if "--pure" in options:
        asyncio.run(main(pure=True))
    else:  # uvicorn's "auto" loop: uvloop when it is installed
        try:
            import uvloop
        except ImportError:
            asyncio.run(main(pure=False))
        else:
            uvloop.run(main(pure=False))
