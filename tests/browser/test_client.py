"""Our browser client's own semantics, in Chromium, over a socket driven by hand.

Where the behaviour differs from the original multiplex_client.js, the
test says so. The real transports are in test_transports.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from playwright.async_api import Browser, Page

from .conftest import HERE, Servers

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest_asyncio.fixture(loop_scope="session")
async def client(browser: Browser, servers: Servers) -> AsyncIterator[Page]:
    """A blank page with our classic script (as the package serves it) loaded."""
    context = await browser.new_context()
    page = await context.new_page()
    await page.goto(f"{servers.page_origin}/blank.html")
    await page.add_script_tag(
        url=f"{servers.page_origin}/websocket-multiplex/websocket-multiplex.js"
    )
    await page.add_script_tag(content=(HERE / "fake_socket.js").read_text())
    try:
        yield page
    finally:
        await context.close()


async def run(page: Page, body: str) -> Any:
    """Run an async JS function body in the page and return its result."""
    return await page.evaluate(f"async () => {{ {body} }}")


async def test_defines_the_global_like_the_original(client: Page) -> None:
    assert await run(
        client,
        """
        const m = new WebSocketMultiplex(new FakeSocket());
        const C = WebSocketMultiplex.Channel;
        return [typeof window.WebSocketMultiplex, C.CONNECTING, C.OPEN, C.CLOSING,
                C.CLOSED, m.channel("a").OPEN, m.ws === m.socket];
    """,
    ) == ["function", 0, 1, 2, 3, 1, True]


async def test_send_before_open_is_queued_and_flushed_after_sub(client: Page) -> None:
    # The original throws here: SockJS refuses send() while connecting.
    result = await run(
        client,
        """
        const sock = new FakeSocket(0);
        const ann = new WebSocketMultiplex(sock).channel("ann");
        const log = record(ann);
        ann.send("a");
        ann.send("b,c");
        const before = [sock.sent.slice(), ann.readyState];
        sock.open();
        ann.send("d");
        await tick();
        return {before, sent: sock.sent, log, state: ann.readyState};
    """,
    )
    assert result == {
        "before": [[], 0],
        "sent": ["sub,ann", "msg,ann,a", "msg,ann,b,c", "msg,ann,d"],
        "log": [["open", 1]],
        "state": 1,
    }


async def test_subscribes_at_once_on_an_open_socket(client: Page) -> None:
    result = await run(
        client,
        """
        const sock = new FakeSocket(1);
        const ann = new WebSocketMultiplex(sock).channel("ann");
        const sync = [sock.sent.slice(), ann.readyState];
        const log = record(ann);  // handlers set after channel(): still in time
        ann.send("right away");
        await tick();
        return {sync, sent: sock.sent, log};
    """,
    )
    assert result == {
        "sync": [["sub,ann"], 0],
        "sent": ["sub,ann", "msg,ann,right away"],
        "log": [["open", 1]],
    }


async def test_a_frame_arriving_before_the_open_event_opens_first(client: Page) -> None:
    assert await run(
        client,
        """
        const sock = new FakeSocket(1);
        const carl = new WebSocketMultiplex(sock).channel("carl");
        const log = record(carl);
        sock.receive("msg,carl,bye");
        sock.receive("uns,carl");
        await tick();
        return log;
    """,
    ) == [["open", 1], ["message", "bye"], ["close", 1000, "closed by server", True]]


async def test_parses_frames_like_the_reference(client: Page) -> None:
    assert await run(
        client,
        """
        const sock = new FakeSocket(0);
        const ann = new WebSocketMultiplex(sock).channel("ann");
        const log = record(ann);
        sock.open();
        for (const frame of [
            "msg,ann,a,b,,c", "msg,ann,", "msg,ann", "msg,ann,\\n\\"😀",
            "", "msg", "foo,ann,x", "sub,ann", "sub,ann,x",
            "msg,bob,not ours", "uns,bob", "msg,,x", "MSG,ann,x",
        ]) {
            sock.receive(frame);
        }
        sock.receive(new ArrayBuffer(3));  // a binary WebSocket message
        return log;
    """,
    ) == [
        ["open", 1],
        ["message", "a,b,,c"],
        ["message", ""],
        ["message", ""],
        ["message", '\n"😀'],
    ]


async def test_names_are_escaped_into_topics(client: Page) -> None:
    vectors = {
        "ann": "ann",
        "weird name,ü/%": "weird%20name%2C%FC/%25",
        "a@*_+-./b": "a@*_+-./b",
        "日本": "%u65E5%u672C",
        "😀": "%uD83D%uDE00",
        "~!#$&()=?": "%7E%21%23%24%26%28%29%3D%3F",
    }
    result = await client.evaluate(
        """(names) => {
            const sock = new FakeSocket(1);
            const m = new WebSocketMultiplex(sock);
            const channels = names.map((n) => m.channel(n));
            channels.forEach((c) => c.send("x"));
            return {topics: channels.map((c) => [c.name, c.topic]), sent: sock.sent};
        }""",
        list(vectors),
    )
    assert result["topics"] == [list(pair) for pair in vectors.items()]
    topics = list(vectors.values())
    assert result["sent"] == [f"sub,{t}" for t in topics] + [
        f"msg,{t},x" for t in topics
    ]


async def test_prototype_names_are_plain_names(client: Page) -> None:
    # The original keeps channels in a plain object: these names break it.
    result = await run(
        client,
        """
        const sock = new FakeSocket(1);
        const m = new WebSocketMultiplex(sock);
        // Frames for prototype names nobody opened are ignored.
        for (const name of ["__proto__", "toString", "constructor", "hasOwnProperty"]) {
            sock.receive("msg," + name + ",x");
            sock.receive("uns," + name);
        }
        const logs = Object.create(null);
        for (const name of ["__proto__", "toString", "constructor", "hasOwnProperty"]) {
            logs[name] = record(m.channel(name));
        }
        await tick();
        sock.receive("msg,__proto__,p");
        sock.receive("msg,toString,t");
        sock.receive("uns,constructor");
        sock.close();
        return [Object.entries(logs), sock.sent];
    """,
    )
    logs, sent = result
    assert dict(logs) == {
        "__proto__": [
            ["open", 1],
            ["message", "p"],
            ["close", 1000, "Normal closure", True],
        ],
        "toString": [
            ["open", 1],
            ["message", "t"],
            ["close", 1000, "Normal closure", True],
        ],
        "constructor": [["open", 1], ["close", 1000, "closed by server", True]],
        "hasOwnProperty": [["open", 1], ["close", 1000, "Normal closure", True]],
    }
    assert sent == [
        "sub,__proto__",
        "sub,toString",
        "sub,constructor",
        "sub,hasOwnProperty",
    ]


async def test_close_sends_uns_once_and_nothing_after(client: Page) -> None:
    # The original puts later sends on the wire; WebSocket semantics drop them.
    result = await run(
        client,
        """
        const sock = new FakeSocket(1);
        const ann = new WebSocketMultiplex(sock).channel("ann");
        const log = record(ann);
        await tick();
        ann.close(4000, "done here");
        const closing = ann.readyState;
        ann.send("dropped");
        ann.close();
        sock.receive("msg,ann,too late");
        await tick();
        ann.send("dropped too");
        sock.close();
        return {closing, state: ann.readyState, sent: sock.sent, log};
    """,
    )
    assert result == {
        "closing": 2,
        "state": 3,
        "sent": ["sub,ann", "uns,ann"],
        "log": [["open", 1], ["close", 4000, "done here", True]],
    }


async def test_close_before_the_socket_opens_sends_nothing(client: Page) -> None:
    assert await run(
        client,
        """
        const sock = new FakeSocket(0);
        const m = new WebSocketMultiplex(sock);
        const ann = m.channel("ann");
        const log = record(ann);
        ann.send("never");
        ann.close();
        await tick();
        sock.open();
        m.channel("bob");
        return {sent: sock.sent, log};
    """,
    ) == {"sent": ["sub,bob"], "log": [["close", 1000, "", True]]}


async def test_socket_close_closes_every_channel_once(client: Page) -> None:
    # The original's channels never hear that the socket closed.
    result = await run(
        client,
        """
        const sock = new FakeSocket(0);
        const m = new WebSocketMultiplex(sock);
        const logs = {};
        for (const name of ["a", "b", "c", "d"]) logs[name] = record(m.channel(name));
        sock.open();
        const e = m.channel("e");
        logs.e = record(e);
        e.close();                          // closing, not closed yet
        sock.receive("uns,d");              // d closed by the server first
        logs.f = record(m.channel("f"));    // subscribed, open event pending
        sock.close(1006, "", false);
        await tick();
        logs.g = record(m.channel("g"));    // made after the socket closed
        await tick();
        return logs;
    """,
    )
    lost = ["close", 1006, "connection closed", False]
    assert result == {
        "a": [["open", 1], lost],
        "b": [["open", 1], lost],
        "c": [["open", 1], lost],
        "d": [["open", 1], ["close", 1000, "closed by server", True]],
        "e": [["close", 1000, "", True]],
        "f": [lost],
        "g": [lost],
    }


async def test_one_channel_per_name_until_it_closes(client: Page) -> None:
    # The original silently replaced (and orphaned) the first channel.
    result = await run(
        client,
        """
        const sock = new FakeSocket(1);
        const m = new WebSocketMultiplex(sock);
        const first = m.channel("news");
        let error = null;
        try { m.channel("news"); } catch (e) { error = e.message; }
        first.close();
        const second = m.channel("news");
        sock.receive("msg,news,fresh");
        await tick();
        return {error, sent: sock.sent, firstState: first.readyState,
                second: second.readyState};
    """,
    )
    assert "already open" in result["error"]
    assert result["sent"] == ["sub,news", "uns,news", "sub,news"]
    assert result["firstState"] == 3
    assert result["second"] == 1


async def test_listeners_behave_like_event_target(client: Page) -> None:
    result = await run(
        client,
        """
        const sock = new FakeSocket(1);
        const m = new WebSocketMultiplex(sock);
        const ann = m.channel("ann");
        const bob = m.channel("bob");
        const calls = [];
        const listener = (e) => calls.push("listener " + e.data);
        ann.onmessage = function (e) {
            calls.push(`on ${e.data} ${this === ann} ${e.target === ann}`);
            throw new Error("handler bug");
        };
        ann.addEventListener("message", listener);
        ann.addEventListener("message", listener);  // added once only
        const once = (e) => calls.push("once " + e.data);
        ann.addEventListener("message", once, {once: true});
        const object = {handleEvent: (e) => calls.push("object " + e.data)};
        ann.addEventListener("message", object);
        bob.addEventListener("close", () => calls.push("bob closed"));
        ann.addEventListener("close", () => { throw new Error("close bug"); });
        await tick();
        sock.receive("msg,ann,1");
        ann.removeEventListener("message", listener);
        sock.receive("msg,ann,2");
        sock.close();
        await tick();
        return {calls, reported};
    """,
    )
    assert result["calls"] == [
        "on 1 true true",
        "listener 1",
        "once 1",
        "object 1",
        "on 2 true true",
        "object 2",
        "bob closed",  # ann's failing close listener did not stop bob's
    ]
    assert result["reported"] == ["handler bug", "handler bug", "close bug"]


async def test_binary_data_is_refused(client: Page) -> None:
    assert await run(
        client,
        """
        const sock = new FakeSocket(1);
        const ann = new WebSocketMultiplex(sock).channel("ann");
        const refused = [];
        for (const data of [new ArrayBuffer(1), new Uint8Array(1), new Blob(["x"])]) {
            try { ann.send(data); } catch (e) { refused.push(e.name); }
        }
        ann.send(42);  // anything else is sent as text, as the original does
        return [refused, sock.sent];
    """,
    ) == [["TypeError", "TypeError", "TypeError"], ["sub,ann", "msg,ann,42"]]


async def test_module_build_in_a_module_script(page: Page, servers: Servers) -> None:
    await page.goto(f"{servers.page_origin}/esm.html?ws={servers.websocket}")
    await page.wait_for_function("() => window.esm && window.esm.messages.length >= 2")
    assert await page.evaluate("window.esm") == {
        "same": True,
        "global": "undefined",
        "messages": ["Ann says hi!", "Ann nods: from a module"],
    }
