"""Our browser client with our server: the wire extensions, in Chromium.

docs/PROTOCOL-EXTENSIONS.md: several channels to one service on one
connection (``name#instance`` topics), and the ``err`` refusal notice. Over
SockJS websocket, xhr-polling and a native WebSocket on the raw endpoint.
"""

from __future__ import annotations

import uuid

import pytest
from playwright.async_api import Page

from websocket_multiplex import Channel, CloseReason

from .conftest import Servers, Services, wait_closed, wait_for, wait_until

pytestmark = pytest.mark.asyncio(loop_scope="session")

TRANSPORTS = ["websocket", "xhr-polling", "native"]


def anns_of(services: Services, connection: object) -> dict[str, Channel]:
    """The server's ann channels on one connection, by wire topic (the
    latest channel of each topic)."""
    return {
        c.topic: c
        for c in services.opened
        if c.connection is connection and c.name == "ann"
    }


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_same_name_channels_and_refusal(
    page: Page, servers: Servers, services: Services, transport: str
) -> None:
    await page.goto(f"{servers.page_origin}/ours.html")
    token = uuid.uuid4().hex
    url = servers.websocket if transport == "native" else servers.endpoint
    topics = await page.evaluate(
        """([transport, url, token]) => {
            harness.connect(transport, url);
            harness.open("tag", token);
            const topics = [harness.openAs("first", "ann", "one").topic,
                            harness.openAs("second", "ann", "two").topic];
            harness.open("nope");
            return topics;
        }""",
        [transport, url, token],
    )
    assert topics == ["ann", "ann#1"]

    # -- each ann channel has its own greeting and its own replies -----------
    await wait_for(
        page,
        """() => harness.messages("first").length >= 2
            && harness.messages("second").length >= 2
            && harness.has("nope", "close")""",
        what="both ann channels answered and nope refused",
    )
    assert await page.evaluate("harness.messages('first')") == [
        "Ann says hi!",
        "Ann nods: one",
    ]
    assert await page.evaluate("harness.messages('second')") == [
        "Ann says hi!",
        "Ann nods: two",
    ]

    # -- an unknown service is refused with 404, as the close event says -------
    nope = await page.evaluate("harness.log.nope")
    assert nope[-1] == ["close", 404, "no such service", "refused"]
    assert [e[0] for e in nope].count("close") == 1

    connection = await services.connection(token)
    on_server = anns_of(services, connection)
    assert set(on_server) == {"ann", "ann#1"}
    assert {c.name for c in on_server.values()} == {"ann"}
    assert services.received[on_server["ann"]] == ["one"]
    assert services.received[on_server["ann#1"]] == ["two"]

    # -- closing one leaves the other working --------------------------------------
    await page.evaluate("""() => {
        harness.close("first");
        harness.send("first", "dropped after close");
        harness.send("second", "three");
    }""")
    assert await wait_closed(on_server["ann"]) is CloseReason.CLIENT_CLOSED
    await wait_for(
        page,
        "() => harness.messages('second').length >= 3 && harness.has('first', 'close')",
        what="the second ann channel's reply after the first closed",
    )
    assert await page.evaluate("harness.messages('second')") == [
        "Ann says hi!",
        "Ann nods: two",
        "Ann nods: three",
    ]
    assert await page.evaluate("harness.messages('first')") == [
        "Ann says hi!",
        "Ann nods: one",
    ]
    assert services.received[on_server["ann"]] == ["one"]
    assert not on_server["ann#1"].closed

    # -- the plain topic is free again: a third channel takes it -----------------------
    third = await page.evaluate('() => harness.openAs("third", "ann", "four").topic')
    assert third == "ann"
    await wait_for(
        page,
        "() => harness.messages('third').length >= 2",
        what="the third ann channel's greeting and reply",
    )
    assert await page.evaluate("harness.messages('third')") == [
        "Ann says hi!",
        "Ann nods: four",
    ]
    opened = services.opened
    await wait_until(
        lambda: sum(c.connection is connection and c.name == "ann" for c in opened) == 3
    )
    assert connection.counters.invalid_frames == 0

    # -- the socket closes: every open channel hears it once -------------------------
    await page.evaluate("harness.sock.close()")
    await wait_for(
        page,
        "() => ['tag', 'second', 'third'].every(n => harness.has(n, 'close'))",
        what="every open channel's close event",
    )
    log = dict(await page.evaluate("Object.entries(harness.log)"))
    for label in ["tag", "first", "second", "third", "nope"]:
        assert [e[0] for e in log[label]].count("close") == 1, label
    assert await page.evaluate("harness.errors") == []
