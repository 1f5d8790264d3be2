"""The four services of sockjs-node's test server, on the plain SockJS API.

The official sockjs-protocol suite (github.com/sockjs/sockjs-protocol)
runs against them::

    python examples/sockjs_test_server.py --port 8081            # aiohttp
    python examples/sockjs_test_server.py --port 8081 --asgi     # uvicorn

    SOCKJS_URL=http://127.0.0.1:8081 python2 sockjs-protocol.py

* ``/echo``: echoes every message; streaming responses end after 4,096
  characters (the suite checks that they do);
* ``/disabled_websocket_echo``: the same, with the websocket transport off;
* ``/cookie_needed_echo``: the same, setting ``JSESSIONID`` cookies;
* ``/close``: closes every session at once with ``3000 Go away!``.

Both ways serve the same services with the same options: one
``add_sockjs_endpoint`` per service under aiohttp, one ``SockJSASGI`` per
service under uvicorn (run as :mod:`websocket_multiplex.adapters.uvicorn`
runs it).
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from websocket_multiplex.asyncio.sockjs_connection import SockJSConnection


async def echo(connection: SockJSConnection) -> None:
    async for message in connection:
        await connection.send(message)


async def close(connection: SockJSConnection) -> None:
    await connection.close(3000, "Go away!")


SERVICES: dict[str, tuple[Any, dict[str, Any]]] = {
    "/echo": (echo, {"response_limit": 4096}),
    "/disabled_websocket_echo": (echo, {"websocket": False}),
    "/cookie_needed_echo": (echo, {"jsessionid": True}),
    "/close": (close, {}),
}
SOCKJS_URL = "http://localhost:8080/lib/sockjs.js"  # as sockjs-node's test server


def serve_aiohttp(host: str, port: int) -> None:
    from aiohttp import web

    from websocket_multiplex.adapters.aiohttp import add_sockjs_endpoint, run_app

    app = web.Application()
    for prefix, (handler, options) in SERVICES.items():
        add_sockjs_endpoint(
            app, handler, prefix=prefix, sockjs_url=SOCKJS_URL, **options
        )
    run_app(app, host, port, ready=lambda url: print(f"serving on {url}", flush=True))


def serve_asgi(host: str, port: int) -> None:
    from websocket_multiplex.adapters.asgi import SockJSASGI
    from websocket_multiplex.adapters.uvicorn import run

    apps = {
        prefix: SockJSASGI(handler, prefix=prefix, sockjs_url=SOCKJS_URL, **options)
        for prefix, (handler, options) in SERVICES.items()
    }

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Each service at its prefix (SockJS needs the bare prefix too: the
        greeting, which a framework's Mount would redirect)."""
        if scope["type"] == "lifespan":
            message = await receive()  # startup
            await send({"type": "lifespan.startup.complete"})
            message = await receive()
            assert message["type"] == "lifespan.shutdown"
            await asyncio.gather(*(sockjs.close() for sockjs in apps.values()))
            await send({"type": "lifespan.shutdown.complete"})
            return
        path = scope["path"]
        for prefix, sockjs in apps.items():
            if path == prefix or path.startswith(prefix + "/"):
                await sockjs(scope, receive, send)
                return
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 404, "headers": []})
            await send({"type": "http.response.body", "body": b""})

    run(app, host, port, log_level="warning")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument(
        "--asgi", action="store_true", help="serve under uvicorn, not aiohttp"
    )
    args = parser.parse_args()
    if args.asgi:
        serve_asgi(args.host, args.port)
    else:
        serve_aiohttp(args.host, args.port)


if __name__ == "__main__":
    main()
