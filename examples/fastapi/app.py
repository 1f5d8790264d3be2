"""websocket-multiplex in a FastAPI application.

    python examples/fastapi/app.py --port 8000

or ``uvicorn app:app --port 8000`` (then without the goodbye on shutdown
that ``adapters.uvicorn`` adds, see below). Open http://127.0.0.1:8000/:
the page opens one connection and two channels on it, ``ann`` and
``echo``. SockJS (every transport) is mounted at ``/multiplex``, the raw
WebSocket is at ``/multiplex/websocket``, the browser client at
``/websocket-multiplex/websocket-multiplex.js``; the rest of the app is
ordinary FastAPI (``/api/connections``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse

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


sockjs = SockJSASGI(mux)
# FastAPI runs the lifespan itself and does not pass it to mounted apps:
# give it the endpoint's, which closes every channel on shutdown.
app = FastAPI(lifespan=sockjs.lifespan)
app.mount("/multiplex", sockjs)
app.mount("/websocket-multiplex", BrowserClientASGI())


@app.get("/")
async def index() -> FileResponse:
    return FileResponse(PAGE)


@app.get("/api/connections")
async def connections() -> dict[str, int]:
    """An ordinary route beside the endpoint: the open connections' count."""
    return {"connections": len(mux.connections)}


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
