"""websocket-multiplex in a Starlette application.

    python examples/starlette/app.py --port 8000

Open http://127.0.0.1:8000/: the page opens one connection and two channels
on it, ``ann`` and ``echo``. SockJS (every transport) is mounted at
``/multiplex``, the raw WebSocket is at ``/multiplex/websocket``, the
browser client at ``/websocket-multiplex/websocket-multiplex.js``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse
from starlette.routing import Mount, Route

from websocket_multiplex import Channel, ChannelHandler, MultiplexServer
from websocket_multiplex.adapters import uvicorn
from websocket_multiplex.adapters.asgi import BrowserClientASGI, SockJSASGI

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


async def index(_request: Request) -> FileResponse:
    return FileResponse(PAGE)


sockjs = SockJSASGI(mux)
app = Starlette(
    routes=[
        Route("/", index),
        Mount("/multiplex", app=sockjs),
        Mount("/websocket-multiplex", app=BrowserClientASGI()),
    ],
    # Starlette runs the lifespan itself and does not pass it to mounted
    # apps: give it the endpoint's, which closes every channel on shutdown.
    lifespan=sockjs.lifespan,
)


def announce(url: str) -> None:
    print(f"listening on {url}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    # uvicorn as SockJS needs it; close= says goodbye to every session
    # while the server still listens, so polling clients hear it too.
    uvicorn.run(app, host=args.host, port=args.port, close=sockjs.close, ready=announce)


if __name__ == "__main__":
    main()
