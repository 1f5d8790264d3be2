"""Our browser client and resumable group streams, in Chromium
(docs/PROTOCOL-EXTENSIONS.md, section 4).

The page is cut off for longer than the grace period, so the server ends its
session; what the room published meanwhile comes back from the group's
history when the page's channel subscribes again: every message once, in
order, or a "gap" event where the history no longer holds them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from aiohttp import web
from playwright.async_api import Page

from websocket_multiplex import Channel, CloseReason, Limits, MultiplexServer
from websocket_multiplex.adapters.aiohttp import add_sockjs_endpoint
from websocket_multiplex.fanout import InMemoryBroker

from ..support.proxy import Proxy
from .conftest import Servers, sockjs_options, start, wait_for

pytestmark = pytest.mark.asyncio(loop_scope="session")


class Room:
    """A server whose ``room`` handlers join the group ``room``, behind a
    proxy the test cuts."""

    def __init__(self, history_size: int) -> None:
        broker = InMemoryBroker(history_size=history_size)
        self.server = MultiplexServer(limits=Limits(resume_grace=0.2), broker=broker)
        self.joined: asyncio.Queue[Channel] = asyncio.Queue()
        self.ended: asyncio.Queue[CloseReason | None] = asyncio.Queue()
        self.proxy: Proxy | None = None

        @self.server.channel("room")
        async def handler(channel: Channel) -> None:
            await channel.join("room")
            self.joined.put_nowait(channel)
            try:
                async for _ in channel:
                    pass
            finally:
                self.ended.put_nowait(channel.close_reason)

    async def publish(self, first: int, last: int) -> None:
        for n in range(first, last + 1):
            await self.server.publish("room", str(n))


@pytest_asyncio.fixture(loop_scope="session")
async def room(request: pytest.FixtureRequest, servers: Servers) -> AsyncIterator[Room]:
    served = Room(request.node.callspec.params["history_size"])
    app = web.Application()
    add_sockjs_endpoint(
        app, served.server, prefix="/multiplex", **sockjs_options(servers.page_origin)
    )
    runner, origin = await start(app)
    try:
        async with Proxy(int(origin.rsplit(":", 1)[1])) as proxy:
            served.proxy = proxy
            yield served
    finally:
        await runner.cleanup()


LISTEN = """([url, transport]) => {
    const result = window.result = { events: [], positions: null };
    const mux = window.mux = new WebSocketMultiplex(function () {
        return new SockJS(url, null, {transports: [transport]});
    }, {reconnect: {initialDelay: 20, maxDelay: 100}});
    const channel = window.channel = mux.channel("room");
    const events = result.events;
    channel.onmessage = function (e) { events.push(["message", e.data, e.group]); };
    channel.onreconnect = function (e) { events.push(["reconnect", e.recovered]); };
    channel.ongap = function (e) { events.push(["gap", e.group, e.recovered]); };
    channel.onclose = function (e) { events.push(["close", e.code]); };
}"""


async def events(page: Page, count: int) -> list[list[object]]:
    await wait_for(
        page, "(count) => result.events.length >= count", count, what=f"{count} events"
    )
    found: list[list[object]] = await page.evaluate("result.events")
    return found


@pytest.mark.parametrize("transport", ["websocket", "xhr-polling"])
@pytest.mark.parametrize("history_size", [1000, 3])
async def test_a_page_whose_session_was_lost_gets_the_room_s_missed_messages(
    page: Page, servers: Servers, room: Room, history_size: int, transport: str
) -> None:
    assert room.proxy is not None
    await page.goto(f"{servers.page_origin}/ours.html")
    url = f"http://127.0.0.1:{room.proxy.port}/multiplex"
    await page.evaluate(LISTEN, [url, transport])
    await room.joined.get()
    await room.publish(1, 2)
    assert await events(page, 2) == [["message", "1", "room"], ["message", "2", "room"]]
    positions = await page.evaluate("channel.positions")
    assert list(positions) == ["room"] and positions["room"]["offset"] == "2"
    room.proxy.cut()  # longer than the grace: the server ends the session
    assert await room.ended.get() is CloseReason.NOT_RESUMED
    await room.publish(3, 7)
    room.proxy.restore()
    await room.joined.get()
    await room.publish(8, 8)
    replayed = [["message", str(n), "room"] for n in range(3, 9)]
    if history_size == 3:  # keeps 5, 6, 7 of what was missed
        expected = [["reconnect", False], ["gap", "room", False], *replayed[2:]]
    else:
        expected = [["reconnect", False], *replayed]
    assert (await events(page, 2 + len(expected)))[2:] == expected
    await page.evaluate("mux.close()")
