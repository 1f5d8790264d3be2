"""Our browser client reconnects through a real server restart, in Chromium.

The server is ``websocket-multiplex demo`` (ann greets, echo echoes) in a
subprocess, so the test can stop it while the page has open channels and
start it again on the same port: with SIGKILL (no goodbye: the connection
just breaks) and with SIGTERM (a graceful shutdown: aiohttp's run_app runs
on_shutdown, whose ``server.close()`` sends every channel
``err,<topic>,1001 server shutting down`` and ``uns`` before closing the
connection with 1001). Either way the page must notice, keep its channels
open, subscribe them again with the same topics once the server is back
(the services greet again), send what was queued in the gap, and leave no
channel silently dead.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio
from playwright.async_api import Page

from ..support.net import free_port
from .conftest import Servers, wait_for

pytestmark = pytest.mark.asyncio(loop_scope="session")

TRANSPORTS = ["websocket", "xhr-polling", "native"]
RECONNECT = {"reconnect": {"initialDelay": 100, "maxDelay": 400}}


@dataclass
class DemoServer:
    """``python -m websocket_multiplex demo`` on a fixed port, restartable."""

    port: int
    sockjs_file: Path
    log: Path
    process: asyncio.subprocess.Process | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/multiplex"

    @property
    def websocket(self) -> str:
        return f"ws://127.0.0.1:{self.port}/multiplex/websocket"

    async def start(self) -> None:
        """Start it and wait until it listens."""
        assert self.process is None
        with self.log.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable,
                *("-m", "websocket_multiplex", "demo"),
                *("--port", str(self.port), "--sockjs-url", str(self.sockjs_file)),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
            )
        assert self.process.stdout is not None
        try:
            async with asyncio.timeout(20):
                line = await self.process.stdout.readline()
        except TimeoutError:
            line = b""
        if b"websocket-multiplex demo" not in line:
            await self.kill()
            pytest.fail(f"the demo server did not start:\n{self.log.read_text()}")

    async def stop(self) -> int:
        """SIGTERM: a graceful shutdown; wait for the exit, return its code."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(30):
                code = await self.process.wait()
        except TimeoutError:
            await self.kill()
            log = self.log.read_text()
            pytest.fail(f"SIGTERM did not stop the demo server:\n{log}")
        self.process = None
        return code

    async def kill(self) -> None:
        """SIGKILL: no goodbye to any client."""
        if self.process is not None:
            self.process.kill()
            await self.process.wait()
            self.process = None


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def demo(
    node_modules: Path, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[DemoServer]:
    server = DemoServer(
        port=free_port(),
        sockjs_file=node_modules / "sockjs-client" / "dist" / "sockjs.min.js",
        log=tmp_path_factory.mktemp("demo") / "server.log",
    )
    try:
        yield server
    finally:
        await server.kill()


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_channels_survive_a_server_restart(
    page: Page, servers: Servers, demo: DemoServer, transport: str
) -> None:
    if demo.process is None:
        await demo.start()
    await page.goto(f"{servers.page_origin}/ours.html")
    url = demo.websocket if transport == "native" else demo.endpoint
    await page.evaluate(
        """([transport, url, options]) => {
            harness.connectReconnecting(transport, url, options);
            harness.openAs("first", "ann", "one");
            harness.openAs("second", "ann", "two");
            harness.open("echo", "a,b 😀");
            harness.open("nope");
        }""",
        [transport, url, RECONNECT],
    )
    await wait_for(
        page,
        """() => harness.messages("first").length >= 2
            && harness.messages("second").length >= 2
            && harness.messages("echo").length >= 1
            && harness.has("nope", "close")""",
        what="greetings, replies and the refusal before the restart",
    )
    assert await page.evaluate("harness.log.nope") == [
        ["open"],
        ["close", 404, "no such service", "refused"],
    ]

    # -- the server dies under open channels ----------------------------------------
    await demo.kill()
    await wait_for(
        page,
        "() => harness.multiplexerEvents.some(e => e[0] === 'reconnecting')",
        what="the multiplexer's reconnecting event",
    )
    during = await page.evaluate("""() => {
        harness.send("echo", "sent in the gap, queued");
        return ["first", "second", "echo"].map(
            n => [harness.channels[n].readyState, harness.has(n, "close")]);
    }""")
    assert during == [[1, False]] * 3  # open, as far as the page is concerned

    # -- it comes back on the same port ---------------------------------------------
    await demo.start()
    await wait_for(
        page,
        """() => ["first", "second", "echo"].every(n => harness.has(n, "reconnect"))
            && harness.messages("first").length >= 3
            && harness.messages("second").length >= 3
            && harness.messages("echo").length >= 2""",
        what="every channel resubscribed, greeted again, the queued message echoed",
        timeout=30,
    )
    await page.evaluate("""() => {
        harness.send("first", "after");
        harness.send("second", "after too");
    }""")
    await wait_for(
        page,
        """() => harness.messages("first").length >= 4
            && harness.messages("second").length >= 4""",
        what="replies on both ann channels after the restart",
    )
    log = dict(await page.evaluate("Object.entries(harness.log)"))
    assert harness_messages(log, "first") == [
        "Ann says hi!",
        "Ann nods: one",
        "Ann says hi!",  # a new channel for the service: its handler ran again
        "Ann nods: after",
    ]
    assert harness_messages(log, "second") == [
        "Ann says hi!",
        "Ann nods: two",
        "Ann says hi!",
        "Ann nods: after too",
    ]
    assert harness_messages(log, "echo") == ["a,b 😀", "sent in the gap, queued"]
    for label in ["first", "second", "echo"]:
        kinds = [e[0] for e in log[label]]
        assert kinds.count("open") == 1, label
        assert kinds.count("close") == 0, label
        assert kinds.count("reconnect") == 1, label
    assert log["nope"][-1][0] == "close"  # refused before: not resubscribed
    assert await page.evaluate(
        "['first', 'second', 'echo'].map(n => harness.channels[n].topic)"
    ) == ["ann", "ann#1", "echo"]
    events = await page.evaluate("harness.multiplexerEvents")
    assert events[0] == ["open", False]
    assert events[-1] == ["open", True]
    assert {e[0] for e in events[1:-1]} == {"reconnecting"}

    # -- close() ends it: every channel closes, no more reconnecting ----------------
    await page.evaluate("harness.multiplexer.close()")
    await wait_for(
        page,
        """() => ["first", "second", "echo"].every(n => harness.has(n, "close"))
            && harness.multiplexerEvents.some(e => e[0] === "close")""",
        what="every channel's close event after multiplexer.close()",
    )
    log = dict(await page.evaluate("Object.entries(harness.log)"))
    for label in ["first", "second", "echo"]:
        assert log[label][-1] == ["close", 1000, ""], label
    assert (await page.evaluate("harness.multiplexerEvents"))[-1] == ["close", 1000, ""]
    assert await page.evaluate("harness.multiplexer.readyState") == 3
    assert await page.evaluate("harness.errors") == []


def harness_messages(log: dict[str, list[list[object]]], label: str) -> list[object]:
    return [e[1] for e in log[label] if e[0] == "message"]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_channels_survive_a_graceful_restart(
    page: Page, servers: Servers, demo: DemoServer, transport: str
) -> None:
    if demo.process is None:
        await demo.start()
    await page.goto(f"{servers.page_origin}/ours.html")
    url = demo.websocket if transport == "native" else demo.endpoint
    await page.evaluate(
        """([transport, url, options]) => {
            harness.connectReconnecting(transport, url, options);
            harness.open("echo", "before");
            harness.open("ann", "hello");
        }""",
        [transport, url, RECONNECT],
    )
    await wait_for(
        page,
        """() => harness.messages("ann").length >= 2
            && harness.messages("echo").length >= 1""",
        what="ann's greeting and replies before the restart",
    )

    # -- SIGTERM: the server says goodbye to each channel, then exits ----------------
    assert await demo.stop() == 0
    await wait_for(
        page,
        "() => harness.multiplexerEvents.some(e => e[0] === 'reconnecting')",
        what="the multiplexer's reconnecting event",
    )
    assert sorted(await page.evaluate("harness.notices")) == [
        "err,ann,1001 server shutting down",
        "err,echo,1001 server shutting down",
    ]
    during = await page.evaluate("""() => {
        harness.send("echo", "sent in the gap, queued");
        return ["ann", "echo"].map(
            n => [harness.channels[n].readyState, harness.has(n, "close")]);
    }""")
    assert during == [[1, False]] * 2  # kept open despite the uns

    # -- it comes back on the same port ---------------------------------------------
    await demo.start()
    await wait_for(
        page,
        """() => ["ann", "echo"].every(n => harness.has(n, "reconnect"))
            && harness.messages("ann").length >= 3
            && harness.messages("echo").length >= 2""",
        what="both channels resubscribed, ann greeted again, the queued echo",
        timeout=30,
    )
    await page.evaluate("""() => {
        harness.send("ann", "after");
        harness.send("echo", "after too");
    }""")
    await wait_for(
        page,
        """() => harness.messages("ann").length >= 4
            && harness.messages("echo").length >= 3""",
        what="replies on both channels after the restart",
    )
    log = dict(await page.evaluate("Object.entries(harness.log)"))
    assert harness_messages(log, "ann") == [
        "Ann says hi!",
        "Ann nods: hello",
        "Ann says hi!",  # subscribed again: a new channel, greeted again
        "Ann nods: after",
    ]
    assert harness_messages(log, "echo") == [
        "before",
        "sent in the gap, queued",
        "after too",
    ]
    for label in ["ann", "echo"]:
        kinds = [e[0] for e in log[label]]
        assert kinds.count("open") == 1, label
        assert kinds.count("close") == 0, label
        assert kinds.count("reconnect") == 1, label
    assert await page.evaluate(
        "['ann', 'echo'].map(n => harness.channels[n].topic)"
    ) == ["ann", "echo"]
    events = await page.evaluate("harness.multiplexerEvents")
    assert events[0] == ["open", False]
    assert events[1][:2] == ["reconnecting", 1]
    # The reconnect event carries the lost socket's close code, whatever the
    # transport made of the server's 1001 (SockJS frames say 3000, the raw
    # endpoint 1000, polling sees the connection fail).
    for label in ["ann", "echo"]:
        (reconnect,) = [e for e in log[label] if e[0] == "reconnect"]
        assert reconnect[1] == events[1][2], label
    assert events[-1] == ["open", True]
    assert {e[0] for e in events[1:-1]} == {"reconnecting"}
    assert await page.evaluate("harness.errors") == []
