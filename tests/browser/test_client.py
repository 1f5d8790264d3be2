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


async def test_same_name_channels_get_instance_topics(client: Page) -> None:
    # The original silently replaced (and orphaned) the first channel.
    result = await run(
        client,
        """
        const sock = new FakeSocket(1);
        const m = new WebSocketMultiplex(sock);
        const first = m.channel("news");
        const second = m.channel("news");
        const third = m.channel("news");
        const logs = [first, second, third].map((c) => record(c));
        const topics = [first, second, third].map((c) => [c.name, c.topic]);
        await tick();
        sock.receive("msg,news,to first");
        sock.receive("msg,news#2,to third");
        sock.receive("msg,news#1,to second");
        first.send("from first");
        second.send("from second");
        first.close();
        sock.receive("msg,news,late for first");
        await tick();
        const again = m.channel("news");  // the plain topic is free again
        const weird = m.channel("a b");
        const weirdToo = m.channel("a b");
        third.close();
        const fourth = m.channel("news");  // "news" is open again
        return {topics, logs, sent: sock.sent,
                later: [again, weird, weirdToo, fourth].map((c) => c.topic)};
    """,
    )
    assert result["topics"] == [
        ["news", "news"],
        ["news", "news#1"],
        ["news", "news#2"],
    ]
    assert result["logs"] == [
        [["open", 1], ["message", "to first"], ["close", 1000, "", True]],
        [["open", 1], ["message", "to second"]],
        [["open", 1], ["message", "to third"]],
    ]
    assert result["later"] == ["news", "a%20b", "a%20b#3", "news#4"]
    assert result["sent"] == [
        "sub,news",
        "sub,news#1",
        "sub,news#2",
        "msg,news,from first",
        "msg,news#1,from second",
        "uns,news",
        "sub,news",
        "sub,a%20b",
        "sub,a%20b#3",
        "uns,news#2",
        "sub,news#4",
    ]


async def test_refusal_notice_closes_with_its_code(client: Page) -> None:
    # The original ignores "err" and sees only the "uns" (reason-less close).
    result = await run(
        client,
        """
        const sock = new FakeSocket(1);
        const m = new WebSocketMultiplex(sock);
        const logs = {};
        for (const n of ["nope", "ann", "odd", "err-only", "bob"]) {
            logs[n] = recordAll(m.channel(n));
        }
        // Refused before the open event: it never opens, as a WebSocket
        // whose handshake fails.
        sock.receive("err,nope,404 no such service");
        sock.receive("uns,nope");
        await tick();
        sock.receive("msg,ann,hello");
        sock.receive("err,ann,500 service failed");
        sock.receive("uns,ann");
        sock.receive("err,odd,without a code, but, commas");
        sock.receive("uns,odd");
        sock.receive("err,err-only,429 too many");    // no "uns": still open
        sock.receive("msg,err-only,still here");
        sock.receive("err,unknown,404 no such service");  // no such channel
        sock.receive("uns,unknown");
        sock.receive("uns,bob");                      // a plain server close
        await tick();
        return {logs, states: [m.channel("x").readyState], sent: sock.sent};
    """,
    )
    assert result["logs"] == {
        "nope": [["close", 404, "no such service", True, True]],
        "ann": [
            ["open", 1],
            ["message", "hello"],
            ["close", 500, "service failed", True, True],
        ],
        "odd": [
            ["open", 1],
            ["close", 1011, "without a code, but, commas", True, True],
        ],
        "err-only": [["open", 1], ["message", "still here"]],
        "bob": [["open", 1], ["close", 1000, "closed by server", True, False]],
    }
    assert result["sent"] == [
        "sub,nope",
        "sub,ann",
        "sub,odd",
        "sub,err-only",
        "sub,bob",
        "sub,x",
    ]


async def test_a_restart_notice_keeps_channels_of_a_reconnecting_multiplexer(
    client: Page,
) -> None:
    # Our server's graceful shutdown: "err,T,1001 ..." then "uns,T" for each
    # channel, then the connection closes with 1001. The channels live on.
    result = await run(
        client,
        """
        const factory = fakeFactory();
        const m = new WebSocketMultiplex(factory, {
            resume: false, reconnect: {initialDelay: 5}});
        const events = recordMultiplexer(m);
        const channels = {};
        const logs = {};
        for (const n of ["ann", "echo", "bob", "failing"]) {
            channels[n] = m.channel(n);
            logs[n] = recordAll(channels[n]);
        }
        const first = factory.sockets[0];
        first.open();
        await tick();
        // Subscribed on the open socket, its open event still pending.
        channels.late = m.channel("late");
        logs.late = recordAll(channels.late);
        for (const topic of ["late", "ann", "echo", "bob"]) {
            first.receive("err," + topic + ",1001 server shutting down");
            first.receive("uns," + topic);
        }
        // Any other notice still closes, reconnecting or not.
        first.receive("err,failing,500 service failed");
        first.receive("uns,failing");
        await tick();
        const kept = ["ann", "echo", "bob", "late"].map((n) => channels[n].readyState);
        // Not subscribed any more: sends queue although the socket is still
        // open, and closing puts nothing on the wire.
        channels.ann.send("in the gap");
        channels.bob.close();
        const firstSent = first.sent.slice();
        first.close(1001, "server shutdown", true);
        await until(() => factory.sockets.length === 2);
        const second = factory.sockets[1];
        second.open();
        await tick();
        second.receive("msg,ann,Ann says hi!");
        return {kept, events, logs, firstSent, second: second.sent};
    """,
    )
    restart = ["reconnect", 1001, "server shutdown", True]
    assert result["kept"] == [1, 1, 1, 1]
    assert result["logs"] == {
        "ann": [["open", 1], restart, ["message", "Ann says hi!"]],
        "echo": [["open", 1], restart],
        "bob": [["open", 1], ["close", 1000, "", True, False]],
        "failing": [["open", 1], ["close", 500, "service failed", True, True]],
        "late": [["open", 1], restart],
    }
    assert result["firstSent"] == [
        "sub,ann",
        "sub,echo",
        "sub,bob",
        "sub,failing",
        "sub,late",
    ]
    # Same topics again, the queued message after its sub; bob is gone.
    assert result["second"] == [
        "sub,ann",
        "msg,ann,in the gap",
        "sub,echo",
        "sub,late",
    ]
    assert [e[0] for e in result["events"]] == ["open", "reconnecting", "open"]
    assert result["events"][1][3] == 1001


async def test_a_restart_notice_closes_without_reconnection(client: Page) -> None:
    # Nothing will subscribe the channel again: it closes, with the notice's
    # code and text, but refused is false (a shutdown is not a refusal).
    result = await run(
        client,
        """
        const plain = new FakeSocket(1);
        const factory = fakeFactory();
        const noRetries = fakeFactory();
        const multiplexers = [
            new WebSocketMultiplex(plain),
            new WebSocketMultiplex(factory, {reconnect: false}),
            new WebSocketMultiplex(noRetries, {reconnect: {maxAttempts: 0}}),
        ];
        factory.sockets[0].open();
        noRetries.sockets[0].open();
        const sockets = [plain, factory.sockets[0], noRetries.sockets[0]];
        const logs = multiplexers.map((m) => recordAll(m.channel("ann")));
        await tick();
        for (const sock of sockets) {
            sock.receive("err,ann,1001 server shutting down");
            sock.receive("uns,ann");
        }
        await tick();
        for (const sock of sockets) sock.close(1001, "server shutdown", true);
        await tick();
        return {logs, made: [factory.sockets.length, noRetries.sockets.length],
                sent: sockets.map((s) => s.sent)};
    """,
    )
    closed = [["open", 1], ["close", 1001, "server shutting down", True, False]]
    assert result == {
        "logs": [closed, closed, closed],
        "made": [1, 1],
        "sent": [["sub,ann"]] * 3,
    }


async def test_queued_sends_are_bounded(client: Page) -> None:
    result = await run(
        client,
        """
        const failures = [];
        const attempt = (channel, text) => {
            try { channel.send(text); return true; }
            catch (e) { failures.push([e.name, e.message]); return false; }
        };
        const sock = new FakeSocket(0);
        const m = new WebSocketMultiplex(sock, {maxQueue: 3});
        const ann = m.channel("ann");
        const bob = m.channel("bob");
        const before = [attempt(ann, "a1"), attempt(ann, "a2"), attempt(bob, "b1"),
                        attempt(bob, "b2"), attempt(ann, "a3")];
        ann.close();  // its two queued messages leave the count
        const freed = [attempt(bob, "b3"), attempt(bob, "b4"), attempt(bob, "b5")];
        sock.open();
        // Subscribed on an open socket: nothing queues, nothing counts.
        const open = [];
        for (let i = 0; i < 10; i++) open.push(attempt(bob, "o" + i));
        return {before, freed, open: open.every(Boolean), failures, sent: sock.sent};
    """,
    )
    assert result["before"] == [True, True, True, False, False]
    assert result["freed"] == [True, True, False]
    assert result["open"] is True
    assert len(result["failures"]) == 3
    for name, message in result["failures"]:
        assert name == "QueueFullError"
        assert "queue full" in message and "connection is down" in message
        assert "maxQueue 3" in message
    assert result["sent"] == [
        "sub,bob",
        "msg,bob,b1",
        "msg,bob,b3",
        "msg,bob,b4",
        *(f"msg,bob,o{i}" for i in range(10)),
    ]


async def test_queue_bound_in_reconnection_gaps_and_its_option(client: Page) -> None:
    result = await run(
        client,
        """
        const full = (f) => {
            try { f(); return "sent"; } catch (e) { return e.name; }
        };
        const factory = fakeFactory();
        const m = new WebSocketMultiplex(factory, {maxQueue: 2, resume: false,
                                                   reconnect: {initialDelay: 2}});
        const ann = m.channel("ann");
        const bob = m.channel("bob");
        factory.sockets[0].open();
        const gaps = [];
        for (let n = 1; n <= 2; n++) {
            factory.sockets[n - 1].close(1006, "", false);
            gaps.push([full(() => ann.send("g" + n)), full(() => bob.send("g" + n)),
                       full(() => ann.send("over " + n))]);
            await until(() => factory.sockets.length === n + 1);
            factory.sockets[n].open();  // the queue empties: the next gap has room
        }
        // The default is 1000 messages; Infinity is no bound; 0 never queues.
        const byDefault = new WebSocketMultiplex(new FakeSocket(0)).channel("x");
        let queued = 0;
        while (full(() => byDefault.send("m")) === "sent" && queued < 5000) queued++;
        const many = new WebSocketMultiplex(new FakeSocket(0), {maxQueue: Infinity})
            .channel("x");
        for (let i = 0; i < 5000; i++) many.send("m");
        const none = new WebSocketMultiplex(new FakeSocket(0), {maxQueue: 0});
        const bad = [];
        for (const maxQueue of [-1, "10", NaN, null, true]) {
            bad.push(full(() => new WebSocketMultiplex(new FakeSocket(0), {maxQueue})));
        }
        return {gaps, sent: factory.sockets.map((s) => s.sent), queued,
                none: full(() => none.channel("x").send("m")), bad};
    """,
    )
    assert result["gaps"] == [["sent", "sent", "QueueFullError"]] * 2
    assert result["sent"] == [
        ["sub,ann", "sub,bob"],
        ["sub,ann", "msg,ann,g1", "sub,bob", "msg,bob,g1"],
        ["sub,ann", "msg,ann,g2", "sub,bob", "msg,bob,g2"],
    ]
    assert result["queued"] == 1000
    assert result["none"] == "QueueFullError"
    assert result["bad"] == ["TypeError"] * 5


async def test_plain_socket_never_reconnects(client: Page) -> None:
    result = await run(
        client,
        """
        const errors = [];
        for (const reconnect of [true, {maxAttempts: 3}]) {
            try { new WebSocketMultiplex(new FakeSocket(), {reconnect}); }
            catch (e) { errors.push(e.name); }
        }
        const bad = [];
        for (const reconnect of ["yes", {initialDelay: -1}, {maxDelay: "1s"}]) {
            try { new WebSocketMultiplex(fakeFactory(), {reconnect}); }
            catch (e) { bad.push(e.name); }
        }
        const sock = new FakeSocket(0);
        const m = new WebSocketMultiplex(sock, {reconnect: false});
        const events = recordMultiplexer(m);
        const ann = m.channel("ann");
        const log = recordAll(ann);
        sock.open();
        sock.close(1006, "", false);
        await tick();
        ann.send("dropped");
        return {errors, bad, events, log, state: m.readyState, sent: sock.sent};
    """,
    )
    lost = [1006, "connection closed", False]
    assert result == {
        "errors": ["TypeError", "TypeError"],
        "bad": ["TypeError", "TypeError", "TypeError"],
        "events": [["open", False], ["close", *lost]],
        "log": [["open", 1], ["close", *lost, False]],
        "state": 3,
        "sent": ["sub,ann"],
    }


async def test_reconnects_and_resubscribes_open_channels(client: Page) -> None:
    result = await run(
        client,
        """
        const factory = fakeFactory();
        const m = new WebSocketMultiplex(factory, {
            resume: false, reconnect: {initialDelay: 5}});
        const events = recordMultiplexer(m);
        const logs = {};
        const ann = m.channel("ann");
        const news = m.channel("news");
        const news2 = m.channel("news");
        const bob = m.channel("bob");
        for (const c of [ann, news, news2, bob]) logs[c.topic] = recordAll(c);
        const first = factory.sockets[0];
        first.open();
        bob.close();
        first.receive("msg,ann,hi");
        first.close(1006, "", false);
        // The gap: channels stay open, sends queue, a new channel waits.
        const gap = {states: [ann.readyState, news2.readyState], mux: m.readyState};
        ann.send("during the gap");
        const carl = m.channel("carl");
        logs.carl = recordAll(carl);
        news.close();  // closed during the gap: nothing on the wire for it
        first.receive("msg,ann,from the old socket");  // ignored
        await until(() => factory.sockets.length === 2);
        const second = factory.sockets[1];
        gap.sentBeforeOpen = second.sent.slice();
        second.open();
        await tick();
        second.receive("msg,ann,hi again");
        ann.send("after");
        return {gap, events, logs, first: first.sent, second: second.sent,
                mux: m.readyState, socket: m.socket === second && m.ws === second};
    """,
    )
    gap = result["gap"]
    assert gap == {"states": [1, 1], "mux": 0, "sentBeforeOpen": []}
    lost = [1006, "connection closed", False]
    assert result["events"] == [
        ["open", False],
        ["reconnecting", 1, result["events"][1][2], 1006],
        ["open", True],
    ]
    assert 0 <= result["events"][1][2] < 5
    assert result["logs"] == {
        "ann": [
            ["open", 1],
            ["message", "hi"],
            ["reconnect", *lost],
            ["message", "hi again"],
        ],
        "news": [["open", 1], ["close", 1000, "", True, False]],
        "news#1": [["open", 1], ["reconnect", *lost]],
        "bob": [["open", 1], ["close", 1000, "", True, False]],
        "carl": [["open", 1]],
    }
    assert result["first"] == [
        "sub,ann",
        "sub,news",
        "sub,news#1",
        "sub,bob",
        "uns,bob",
    ]
    # Same topics as before, then what was queued in the gap.
    assert result["second"] == [
        "sub,ann",
        "msg,ann,during the gap",
        "sub,news#1",
        "sub,carl",
        "msg,ann,after",
    ]
    assert result["mux"] == 1
    assert result["socket"] is True


async def test_backoff_with_full_jitter_then_gives_up(client: Page) -> None:
    result = await run(
        client,
        """
        Math.random = () => 0.5;  // this page only: make the jitter visible
        const factory = fakeFactory();
        const m = new WebSocketMultiplex(factory, {resume: false,
            reconnect: {initialDelay: 4, maxDelay: 10, maxAttempts: 4}});
        const events = recordMultiplexer(m);
        const ann = m.channel("ann");
        const log = recordAll(ann);
        // The first socket never opens: the channel waits, still CONNECTING.
        factory.sockets[0].close(1002, "refused", false);
        await until(() => factory.sockets.length === 2);
        const waiting = ann.readyState;
        factory.sockets[1].open();
        factory.sockets[1].close(1006, "", false);  // opened once: count restarts
        for (let n = 3; n <= 6; n++) {
            await until(() => factory.sockets.length === n);
            factory.sockets[n - 1].close(1006, "gone " + n, false);
        }
        await tick();
        await new Promise((resolve) => setTimeout(resolve, 30));
        return {waiting, events, log, made: factory.sockets.length,
                state: m.readyState, closedLater: await (async () => {
                    const late = m.channel("late");
                    const l = recordAll(late);
                    await tick();
                    return l;
                })()};
    """,
    )
    final = [1006, "gone 6", False]
    assert result["waiting"] == 0
    assert result["events"] == [
        ["reconnecting", 1, 2, 1002],
        ["open", False],  # the first socket that opened
        ["reconnecting", 1, 2, 1006],
        ["reconnecting", 2, 4, 1006],
        ["reconnecting", 3, 5, 1006],  # 0.5 * min(10, 16)
        ["reconnecting", 4, 5, 1006],
        ["close", *final],
    ]
    assert result["log"] == [["open", 1], ["close", *final, False]]
    assert result["made"] == 6
    assert result["state"] == 3
    assert result["closedLater"] == [["close", *final, False]]


async def test_close_stops_everything(client: Page) -> None:
    result = await run(
        client,
        """
        const factory = fakeFactory();
        const m = new WebSocketMultiplex(factory, {
            resume: false, reconnect: {initialDelay: 1}});
        const events = recordMultiplexer(m);
        const ann = m.channel("ann");
        const log = recordAll(ann);
        factory.sockets[0].open();
        factory.sockets[0].close(1006, "", false);
        m.close(4001, "bye");  // while a reconnection is pending
        const state = [m.readyState, ann.readyState];
        ann.send("dropped");
        m.close();  // once only
        await new Promise((resolve) => setTimeout(resolve, 20));

        // Over an open plain socket: it is closed too, with code and reason.
        const sock = new FakeSocket(1);
        const closes = [];
        sock.close = (code, reason) => {
            closes.push([code, reason]);
            FakeSocket.prototype.close.call(sock, 1000, "", true);
        };
        const plain = new WebSocketMultiplex(sock);
        const plainEvents = recordMultiplexer(plain);
        const bob = plain.channel("bob");
        const bobLog = recordAll(bob);
        await tick();
        plain.close();
        bob.send("dropped");
        await tick();
        return {state, events, log, made: factory.sockets.length, closes,
                plainEvents, bobLog, sent: sock.sent};
    """,
    )
    assert result["state"] == [3, 2]
    assert result["events"] == [
        ["open", False],
        ["reconnecting", 1, 0, 1006],
        ["close", 4001, "bye", True],
    ]
    assert result["log"] == [["open", 1], ["close", 4001, "bye", True, False]]
    assert result["made"] == 1
    assert result["closes"] == [[None, None]]
    assert result["plainEvents"] == [["close", 1000, "", True]]
    assert result["bobLog"] == [["open", 1], ["close", 1000, "", True, False]]
    assert result["sent"] == ["sub,bob"]


async def test_a_factory_may_give_an_open_socket(client: Page) -> None:
    result = await run(
        client,
        """
        const sockets = [];
        const m = new WebSocketMultiplex(() => {
            const sock = new FakeSocket(1);
            sockets.push(sock);
            return sock;
        }, {resume: false, reconnect: {initialDelay: 1}});
        const events = recordMultiplexer(m);
        const log = recordAll(m.channel("ann"));
        await tick();
        sockets[0].close(1001, "going away", true);
        await until(() => sockets.length === 2);
        await tick();
        return {events: events.map((e) => [e[0], e[1]]), log,
                sent: sockets.map((s) => s.sent)};
    """,
    )
    assert result == {
        "events": [["reconnecting", 1], ["open", True]],
        "log": [["open", 1], ["reconnect", 1001, "going away", True]],
        "sent": [["sub,ann"], ["sub,ann"]],
    }


async def test_a_throwing_factory_counts_as_a_failed_attempt(client: Page) -> None:
    result = await run(
        client,
        """
        const factory = fakeFactory();
        let fail = false;
        const m = new WebSocketMultiplex(() => {
            if (fail) { fail = false; throw new Error("no network"); }
            return factory();
        }, {resume: false, reconnect: {initialDelay: 2}});
        const events = recordMultiplexer(m);
        const ann = m.channel("ann");
        factory.sockets[0].open();
        fail = true;
        factory.sockets[0].close(1006, "", false);
        await until(() => factory.sockets.length === 2);
        factory.sockets[1].open();
        return {events: events.map((e) => e.slice(0, 2)), reported,
                sent: factory.sockets[1].sent};
    """,
    )
    assert result == {
        "events": [
            ["open", False],
            ["reconnecting", 1],
            ["reconnecting", 2],
            ["open", True],
        ],
        "reported": ["no network"],
        "sent": ["sub,ann"],
    }


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
        "channelClass": True,
        "global": "undefined",
        "messages": ["Ann says hi!", "Ann nods: from a module"],
    }
