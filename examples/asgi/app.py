"""websocket-multiplex as a plain ASGI application, no framework.

    python examples/asgi/app.py --port 8000

or any ASGI server (``hypercorn app:app``; uvicorn's own ``uvicorn app:app``
works too, without what ``adapters.uvicorn`` sets for SockJS). Open
http://127.0.0.1:8000/: the page opens one connection and two channels on
it, ``ann`` and ``echo``. SockJS (every transport) is at ``/multiplex``,
the raw WebSocket at ``/multiplex/websocket``, the browser client at
``/websocket-multiplex/websocket-multiplex.js``; ``app`` routes by path.
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

from websocket_multiplex import Channel, ChannelHandler, MultiplexServer
from websocket_multiplex.adapters import uvicorn
from websocket_multiplex.adapters.asgi import BrowserClientASGI, SockJSASGI

Scope = MutableMapping[str, Any]  # ASGI's three, as the spec defines them
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

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


sockjs = SockJSASGI(mux, prefix="/multiplex")
client = BrowserClientASGI(prefix="/websocket-multiplex")


async def page(send: Send) -> None:
    body = PAGE.read_bytes()
    headers = [(b"content-type", b"text/html; charset=utf-8")]
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """The page at ``/``, the client's files, and SockJS for the rest (it
    answers 404 outside ``/multiplex``, and its lifespan's shutdown closes
    every channel)."""
    path = scope.get("path", "")
    if scope["type"] == "http" and path == "/":
        await page(send)
    elif path.startswith("/websocket-multiplex/"):
        await client(scope, receive, send)
    else:
        await sockjs(scope, receive, send)


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
