"""Both browser clients, on every SockJS transport and a native WebSocket,
against every driver of our SockJS endpoint (aiohttp; ASGI under uvicorn,
alone and mounted in Starlette).

Each test loads one page and runs the whole story on one connection:
greetings and replies, payloads (up to 300 KiB) and names that need care,
fifty channels, a channel closed by the server, one closed by the client,
then the socket closed under the rest. The page records what the client
saw; the server's channels say what the server saw.
"""

from __future__ import annotations

import uuid

import pytest
from playwright.async_api import Page

from websocket_multiplex import CloseReason

from .conftest import (
    DRIVERS,
    NUMBERED,
    ODD,
    WEIRD,
    Servers,
    Services,
    wait_closed,
    wait_for,
)

pytestmark = pytest.mark.asyncio(loop_scope="session")

CLIENTS = ["original", "ours"]
TRANSPORTS = [
    "websocket",
    "xhr-streaming",
    "xhr-polling",
    "eventsource",
    "iframe-eventsource",
    "iframe-htmlfile",
    "iframe-xhr-polling",
    "jsonp-polling",
    "native",  # a plain WebSocket on <prefix>/websocket, no SockJS framing
]

TRICKY = [
    "a,b,,c,",
    ",leading comma",
    "",
    "double \"quotes\" and 'single' and `back`",
    "new\nline\r\nand\ttab",
    "emoji 😀👍🏽 and ü, 日本",
    "</script><script>alert(1)</script><!--",
    '{"json": [1, 2, {"k": "v,w"}], "s": "\\"esc\\""}',
    "backslash \\ \\n \\u0041 %41 %u0041",
    "line\u2028separator\u2029paragraph",
]
"""Payloads full of what the framing and the transports must escape."""


def repeated(size: int) -> str:
    """``size`` characters of :data:`TRICKY` over and over: every escape,
    in one message larger than a read, a poll and ``response_limit``."""
    chunk = "|".join(TRICKY)
    return (chunk * (size // len(chunk) + 1))[:size]


PAYLOADS = [*TRICKY, "x" * 5000, repeated(64 * 1024), repeated(300 * 1024)]


def differences(got: list[str], sent: list[str]) -> list[str]:
    """How ``got`` differs from ``sent``, briefly: a failure must not print
    370 KiB of text."""
    if len(got) != len(sent):
        return [f"{len(got)} messages of {[len(g) for g in got]} characters"]
    found = []
    for i, (g, s) in enumerate(zip(got, sent, strict=True)):
        if g != s:
            at = first_difference(g, s)
            around = slice(max(at - 20, 0), at + 20)
            found.append(
                f"payload {i} ({len(s)} characters): {len(g)} arrived, differing "
                f"at {at}: {g[around]!r} for {s[around]!r}"
            )
    return found


def first_difference(a: str, b: str) -> int:
    pairs = enumerate(zip(a, b, strict=False))
    return next((i for i, (x, y) in pairs if x != y), min(len(a), len(b)))


def expected_greetings() -> dict[str, list[str]]:
    return {
        "ann": ["Ann says hi!", "Ann nods: hello from ann"],
        "bob": ["Bob doesn't agree.", "Bob says no to: hello from bob"],
        "carl": ["Carl says goodbye!"],
        WEIRD: [WEIRD, "weird: a,b"],
        **{name: [f"{name} ready", f"{name}: ping {name}"] for name in NUMBERED},
    }


async def open_everything(
    page: Page, servers: Servers, transport: str, token: str, client: str
) -> None:
    url = servers.websocket if transport == "native" else servers.endpoint
    await page.evaluate(
        """([transport, url, token, weird, numbered, odd, ours]) => {
            harness.connect(transport, url);
            harness.open("tag", token);
            harness.open("ann", "hello from ann");
            harness.open("bob", "hello from bob");
            harness.open("carl");
            harness.open("echo");
            harness.open(weird, "a,b");
            for (const name of numbered) harness.open(name, "ping " + name);
            if (ours) {
                // send() before the socket is open: queued, flushed after sub
                harness.open("queue");
                harness.send("queue", "early 1");
                harness.send("queue", "early, 2");
                for (const name of odd) harness.open(name, "ping " + name);
            }
        }""",
        [transport, url, token, WEIRD, NUMBERED, ODD, client == "ours"],
    )


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("driver", DRIVERS)
async def test_client_over_transport(
    page: Page, driver_servers: Servers, services: Services, client: str, transport: str
) -> None:
    servers = driver_servers
    ours = client == "ours"
    await page.goto(f"{servers.page_origin}/{client}.html")
    token = uuid.uuid4().hex
    await open_everything(page, servers, transport, token, client)

    # -- every greeting and reply, as each client saw them -------------------
    expected = expected_greetings()
    if ours:
        expected["queue"] = ["early 1", "early, 2"]
        expected.update({n: [f"{n} ready", f"{n}: ping {n}"] for n in ODD})
    await wait_for(
        page,
        """(expected) => expected.every(
            ([name, msgs]) => harness.messages(name).length >= msgs.length)
            && harness.has("carl", "close")""",
        list(expected.items()),  # not an object: one name is "__proto__"
        what="greetings and replies on every channel",
    )
    if transport != "native":
        assert await page.evaluate("harness.sock.transport") == transport
    got = await page.evaluate(
        "(names) => names.map(n => [n, harness.messages(n)])", list(expected)
    )
    assert dict(got) == expected

    carl = await page.evaluate("harness.log.carl")
    assert [event[0] for event in carl] == ["open", "message", "close"]
    if ours:
        assert carl[2] == ["close", 1000, "closed by server"]

    # -- what the server saw ----------------------------------------------------
    connection = await services.connection(token)
    on_server = services.channels_of(connection)
    names = {"tag", "ann", "bob", "carl", "echo", WEIRD, *NUMBERED}
    if ours:
        names |= {"queue", *ODD}
    assert set(on_server) == names
    assert await wait_closed(on_server["carl"]) is CloseReason.SERVER_CLOSED
    assert services.received[on_server[WEIRD]] == ["a,b"]
    assert on_server[WEIRD].topic == "weird%20name%2C%FC/%25%uD83D%uDE00"
    if ours:
        assert services.received[on_server["queue"]] == ["early 1", "early, 2"]

    # -- payloads full of commas, quotes, newlines, emoji, </script>; 300 KiB ----
    await page.evaluate(
        "(payloads) => payloads.forEach(p => harness.send('echo', p))", PAYLOADS
    )
    await wait_for(
        page,
        "(n) => harness.messages('echo').length >= n",
        len(PAYLOADS),
        what="the echo of every payload",
    )
    assert differences(await page.evaluate("harness.messages('echo')"), PAYLOADS) == []
    assert differences(services.received[on_server["echo"]], PAYLOADS) == []

    # -- the client closes one channel ----------------------------------------------
    await page.evaluate("""() => {
        harness.close("bob");
        harness.send("bob", "after close");  // ours drops it; the original sends it
        harness.send("ann", "still here");
    }""")
    assert await wait_closed(on_server["bob"]) is CloseReason.CLIENT_CLOSED
    await wait_for(
        page,
        "() => harness.has('bob', 'close') && harness.messages('ann').length === 3",
        what="bob's close and ann's third message",
    )
    # Frames arrive in order, so "msg,bob,after close" (if sent) came before
    # ann's last message: the server has counted it by now.
    assert services.received[on_server["ann"]][-1] == "still here"
    assert services.received[on_server["bob"]] == ["hello from bob"]
    counters = connection.counters
    assert counters.invalid_frames == 0
    assert counters.ignored_frames == (0 if ours else 1)

    # -- the socket closes under the remaining channels --------------------------------
    assert await page.evaluate("harness.errors") == []
    still_open = names - {"bob", "carl"}
    await page.evaluate("harness.sock.close()")
    for name in sorted(still_open):
        reason = await wait_closed(on_server[name])
        assert reason is CloseReason.CONNECTION_LOST, name
    assert connection.closed
    await wait_for(
        page,
        "() => harness.socketEvents.some(e => e[0] === 'close')",
        what="the socket's close event",
    )
    log = dict(await page.evaluate("Object.entries(harness.log)"))
    if ours:
        await wait_for(
            page,
            "(names) => names.every(n => harness.has(n, 'close'))",
            sorted(still_open),
            what="every channel's close event",
        )
        log = dict(await page.evaluate("Object.entries(harness.log)"))
        socket_close = next(
            e for e in await page.evaluate("harness.socketEvents") if e[0] == "close"
        )
        for name in still_open:
            closes = [e for e in log[name] if e[0] == "close"]
            assert closes == [
                ["close", socket_close[1], socket_close[2] or "connection closed"]
            ], name
        for name in names:  # exactly once, whoever closed it
            assert [e[0] for e in log[name]].count("close") == 1, name
    else:
        # The original leaves its channels open when the socket closes.
        for name in still_open:
            assert not any(e[0] == "close" for e in log[name]), name
    errors = await page.evaluate("harness.errors")
    if transport == "jsonp-polling":
        # sockjs-client drops its callback when it closes, but the poll the
        # server holds still answers (a heartbeat): that cross-origin script
        # then fails, whichever server. Nothing of ours runs there.
        errors = [e for e in errors if not e.startswith("Script error.")]
    assert errors == []
