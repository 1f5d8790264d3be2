"""The ORIGINAL browser client hears our server refuse channels, in Chromium.

docs/PROTOCOL-EXTENSIONS.md, section 2: when our server will not open a
channel, or fails one, it sends ``err,<topic>,<code> <text>`` then
``uns,<topic>``. The original client (multiplex_client.js of npm
websocket-multiplex 0.1.0, unmodified) knows nothing of ``err``; the page
claims it ignores that frame, fires ``onclose`` on the ``uns``, and goes on
with its other channels. Checked here for an unknown service (404), a
refused one (403) and a failing one (500), over SockJS websocket,
xhr-polling and a native WebSocket on the raw endpoint.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
import pytest_asyncio
from aiohttp import web
from playwright.async_api import Page

from websocket_multiplex import Channel, CloseReason, MultiplexServer
from websocket_multiplex.adapters.aiohttp import add_sockjs_endpoint

from .conftest import Servers, start, wait_closed, wait_for

pytestmark = pytest.mark.asyncio(loop_scope="session")

TRANSPORTS = ["websocket", "xhr-polling", "native"]

NOTICES = [
    "err,boom,500 service failed",
    "err,nope,404 no such service",
    "err,private,403 refused",
]


@dataclass(eq=False)
class Refusing:
    """A server of ours whose services refuse or fail some channels."""

    endpoint: str
    server: MultiplexServer
    opened: dict[str, Channel] = field(default_factory=dict)

    @property
    def websocket(self) -> str:
        return self.endpoint.replace("http://", "ws://", 1) + "/websocket"


def refusing_server(opened: dict[str, Channel]) -> MultiplexServer:
    """``ann`` and ``late`` answer, ``echo`` echoes, ``private`` refuses
    everyone (403), ``boom`` greets then fails on its first message (500);
    ``nope`` is not a service (404)."""
    server = MultiplexServer()

    def replying(name: str, greeting: str | None, reply: str) -> None:
        async def handler(channel: Channel) -> None:
            opened[name] = channel
            if greeting is not None:
                await channel.send(greeting)
            async for data in channel:
                await channel.send(reply.format(data))

        server.register(name, handler)

    replying("ann", "Ann says hi!", "Ann nods: {}")
    replying("echo", None, "{}")
    replying("late", "late ready", "late: {}")

    @server.channel("private", authorize=lambda _: False)
    async def private(channel: Channel) -> None:
        opened["private"] = channel  # never: no handler runs for a refusal

    @server.channel("boom")
    async def boom(channel: Channel) -> None:
        opened["boom"] = channel
        await channel.send("boom ready")
        await channel.receive()
        raise RuntimeError("the service failed, as this test wants")

    return server


@pytest_asyncio.fixture(loop_scope="session")
async def refusing(servers: Servers) -> AsyncIterator[Refusing]:
    opened: dict[str, Channel] = {}
    server = refusing_server(opened)
    app = web.Application()
    add_sockjs_endpoint(
        app,
        server,
        prefix="/multiplex",
        sockjs_url=f"{servers.page_origin}/sockjs.min.js",
    )
    runner, origin = await start(app)
    try:
        yield Refusing(f"{origin}/multiplex", server, opened)
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_original_client_closes_refused_channels_and_goes_on(
    page: Page, servers: Servers, refusing: Refusing, transport: str
) -> None:
    await page.goto(f"{servers.page_origin}/original.html")
    url = refusing.websocket if transport == "native" else refusing.endpoint
    await page.evaluate(
        """([transport, url]) => {
            harness.connect(transport, url);
            harness.open("ann", "hello");
            harness.open("echo");
            harness.open("nope");
            harness.open("private");
            harness.open("boom", "fail");
        }""",
        [transport, url],
    )
    await wait_for(
        page,
        """() => ["nope", "private", "boom"].every(n => harness.has(n, "close"))
            && harness.messages("ann").length >= 2""",
        what="the refused channels' close events and ann's reply",
    )
    if transport != "native":
        assert await page.evaluate("harness.sock.transport") == transport

    # -- the server refused three channels, with a notice then uns -----------
    assert sorted(await page.evaluate("harness.notices")) == NOTICES
    [connection] = refusing.server.connections
    assert await wait_closed(refusing.opened["boom"]) is CloseReason.HANDLER_FAILED
    assert "private" not in refusing.opened

    # -- the original client fired onclose once for each, and dropped them ----
    log = await page.evaluate("harness.log")
    closed = ["close", None, None]  # the original's close event is {}
    assert log["nope"] == [["open"], closed]
    assert log["private"] == [["open"], closed]
    assert log["boom"] == [["open"], ["message", "boom ready"], closed]
    assert sorted(await page.evaluate("Object.keys(harness.multiplexer.channels)")) == [
        "ann",
        "echo",
    ]

    # -- and its other channels, and new ones, still work -------------------
    await page.evaluate("""() => {
        harness.send("ann", "still here");
        harness.send("echo", "a,b 😀");
        harness.open("late", "after the refusals");
    }""")
    await wait_for(
        page,
        """() => harness.messages("ann").length >= 3
            && harness.messages("echo").length >= 1
            && harness.messages("late").length >= 2""",
        what="ann, echo and late answering after the refusals",
    )
    messages = await page.evaluate(
        "() => ['ann', 'echo', 'late'].map(n => harness.messages(n))"
    )
    assert messages == [
        ["Ann says hi!", "Ann nods: hello", "Ann nods: still here"],
        ["a,b 😀"],
        ["late ready", "late: after the refusals"],
    ]
    assert not connection.closed
    assert not any(refusing.opened[n].closed for n in ("ann", "echo", "late"))
    assert connection.counters.invalid_frames == 0
    assert await page.evaluate("harness.errors") == []
