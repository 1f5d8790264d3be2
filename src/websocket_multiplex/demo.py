"""The classic three-box example (ann, bob, carl) plus an echo channel.

``websocket-multiplex demo`` serves it; it is also the smallest complete
example of a server, so it stays short.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from aiohttp import web

from .adapters.aiohttp import DEFAULT_SOCKJS_URL, add_client_routes, add_sockjs_endpoint
from .asyncio import Channel, MultiplexServer

__all__ = ["demo_app", "demo_server"]


def demo_server() -> MultiplexServer:
    """The services of the classic websocket-multiplex example."""
    server = MultiplexServer()

    @server.channel("ann")
    async def ann(channel: Channel) -> None:
        await channel.send("Ann says hi!")
        async for data in channel:
            await channel.send(f"Ann nods: {data}")

    @server.channel("bob")
    async def bob(channel: Channel) -> None:
        await channel.send("Bob doesn't agree.")
        async for data in channel:
            await channel.send(f"Bob says no to: {data}")

    @server.channel("carl")
    async def carl(channel: Channel) -> None:
        await channel.close("Carl says goodbye!")

    @server.channel("echo")
    async def echo(channel: Channel) -> None:
        async for data in channel:
            await channel.send(data)

    return server


def demo_app(sockjs_url: str = DEFAULT_SOCKJS_URL) -> web.Application:
    """An aiohttp app with the demo page at ``/`` and SockJS at ``/multiplex``.

    The page loads sockjs-client from ``sockjs_url``, a URL or a local file
    (then served at ``/multiplex/sockjs.min.js``); when that fails (no
    internet), it falls back to a native WebSocket on the raw endpoint.
    """
    app = web.Application()
    server = demo_server()
    if "://" in sockjs_url:
        add_sockjs_endpoint(app, server, prefix="/multiplex", sockjs_url=sockjs_url)
    else:  # a local copy, served by the endpoint
        local = Path(sockjs_url)
        add_sockjs_endpoint(app, server, prefix="/multiplex", sockjs_url=local)
        sockjs_url = "/multiplex/sockjs.min.js"
    add_client_routes(app, "/websocket-multiplex")
    page = (resources.files("websocket_multiplex") / "static" / "demo.html").read_text()
    page = page.replace("{{SOCKJS_URL}}", sockjs_url)

    async def index(_request: web.Request) -> web.Response:
        return web.Response(text=page, content_type="text/html")

    app.router.add_get("/", index)
    return app
