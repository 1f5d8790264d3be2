"""websocket-multiplex in an aiohttp application.

    python examples/aiohttp/app.py --port 8000

Open http://127.0.0.1:8000/: the page opens one connection and two channels
on it, ``ann`` and ``echo``. SockJS (every transport) is at ``/multiplex``,
the raw WebSocket at ``/multiplex/websocket``, the browser client at
``/websocket-multiplex/websocket-multiplex.js``. From Python::

    websocket-multiplex connect http://127.0.0.1:8000/multiplex -c ann -c echo
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from aiohttp import web

from websocket_multiplex import Channel, ChannelHandler, MultiplexServer
from websocket_multiplex.adapters.aiohttp import (
    add_client_routes,
    add_sockjs_endpoint,
    run_app,
)

PAGE = Path(__file__).with_name("index.html")

mux = MultiplexServer()


@mux.channel("ann")
async def ann(channel: Channel) -> None:
    """A service as a task: it greets, then answers every message."""
    await channel.send("Ann says hi!")
    async for data in channel:  # ends when the channel closes
        await channel.send(f"Ann nods: {data}")


@mux.channel("echo")
class Echo(ChannelHandler):
    """A service as callbacks, without a task: it sends back what it gets."""

    def on_message(self, data: str) -> None:
        self.channel.send_nowait(data)


async def index(_request: web.Request) -> web.FileResponse:
    return web.FileResponse(PAGE)


def make_app() -> web.Application:
    app = web.Application()
    app.router.add_get("/", index)
    add_sockjs_endpoint(app, mux, prefix="/multiplex")
    add_client_routes(app)  # /websocket-multiplex/websocket-multiplex.js
    return app


def announce(url: str) -> None:
    print(f"listening on {url}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    # run_app, not web.run_app: on SIGTERM it closes the channels (clients
    # hear why) before it stops listening.
    run_app(make_app(), host=args.host, port=args.port, ready=announce)


if __name__ == "__main__":
    main()
