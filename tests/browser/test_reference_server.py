"""Our browser client against the ORIGINAL node server, in Chromium.

The server is tests/node/reference_server.js: websocket-multiplex 0.1.0's
multiplex_server.js on sockjs-node 0.3.24, unmodified, with the classic
ann/bob/carl services and echo. It speaks only the base protocol, so the
extensions must fall back on their own: a second channel of a name and a
channel to an unknown service stay silent (and open), as documented.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from playwright.async_api import Page

from .conftest import NODE, Servers, wait_for
from .test_transports import PAYLOADS

pytestmark = pytest.mark.asyncio(loop_scope="session")

TRANSPORTS = ["websocket", "xhr-polling", "native"]
STILL_OPEN = ["ann", "bob", "echo", "ann2", "nope"]


@dataclass
class ReferenceServer:
    process: asyncio.subprocess.Process
    ready: dict[str, Any]

    async def command(self, line: str) -> dict[str, Any]:
        """Send a stdin command (see the script's header); return its answer."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(line.encode() + b"\n")
        await self.process.stdin.drain()
        async with asyncio.timeout(10):
            answer: dict[str, Any] = json.loads(await self.process.stdout.readline())
        return answer


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def reference(node_modules: Path) -> AsyncIterator[ReferenceServer]:
    process = await asyncio.create_subprocess_exec(
        "node",
        str(NODE / "reference_server.js"),
        *("--port", "0"),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    try:
        async with asyncio.timeout(20):
            line = await process.stdout.readline()
        if not line:
            pytest.fail(f"reference_server.js failed: {await process.stderr.read()!r}")
        ready = json.loads(line)
        assert ready["ready"] is True
        yield ReferenceServer(process, ready)
    finally:
        process.kill()
        await process.wait()


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_ours_against_the_original_server(
    page: Page, servers: Servers, reference: ReferenceServer, transport: str
) -> None:
    await page.goto(f"{servers.page_origin}/ours.html")
    url = reference.ready["websocket" if transport == "native" else "url"]
    await page.evaluate(
        """([transport, url]) => {
            harness.connect(transport, url);
            harness.open("ann", "hello from ann");
            harness.open("bob", "hello from bob");
            harness.open("carl");
            harness.open("echo");
            harness.openAs("ann2", "ann", "second");  // ann#1: unknown there
            harness.open("nope");
        }""",
        [transport, url],
    )
    await wait_for(
        page,
        """() => harness.messages("ann").length >= 2
            && harness.messages("bob").length >= 2
            && harness.has("carl", "close")""",
        what="ann, bob and carl",
    )
    if transport != "native":
        assert await page.evaluate("harness.sock.transport") == transport
    assert await page.evaluate("harness.messages('ann')") == [
        "Ann says hi!",
        "Ann nods: hello from ann",
    ]
    assert await page.evaluate("harness.messages('bob')") == [
        "Bob doesn't agree.",
        "Bob says no to: hello from bob",
    ]
    assert await page.evaluate("harness.log.carl") == [
        ["open"],
        ["message", "Carl says goodbye!"],
        ["close", 1000, "closed by server"],
    ]

    # -- echo: commas, quotes, newlines, emoji come back unchanged -------------------
    await page.evaluate(
        "(payloads) => payloads.forEach(p => harness.send('echo', p))", PAYLOADS
    )
    await wait_for(
        page,
        "(n) => harness.messages('echo').length >= n",
        len(PAYLOADS),
        what="the echo of every payload",
    )
    assert await page.evaluate("harness.messages('echo')") == PAYLOADS

    # -- no extensions there: the second ann and the unknown service stay silent -------
    # The server answers frames in order: it read ann2's greeting and nope's
    # sub long before the echoes that came back.
    silent = await page.evaluate(
        "['ann2', 'nope'].map(n => [harness.channels[n].readyState, harness.log[n]])"
    )
    assert silent == [[1, [["open"]]], [1, [["open"]]]]
    assert await page.evaluate("harness.channels.ann2.topic") == "ann#1"

    # -- the server closes the connection: every open channel hears it once -----------
    assert (await reference.command("close 3000 server says bye"))["closed"] >= 1
    await wait_for(
        page,
        "(names) => names.every(n => harness.has(n, 'close'))",
        STILL_OPEN,
        what="every open channel's close event",
    )
    socket_close = await page.evaluate(
        "harness.socketEvents.find(e => e[0] === 'close')"
    )
    assert socket_close == ["close", 3000, "server says bye"]
    log = dict(await page.evaluate("Object.entries(harness.log)"))
    for name in STILL_OPEN:
        closes = [e for e in log[name] if e[0] == "close"]
        assert closes == [["close", 3000, "server says bye"]], name
    assert await page.evaluate("harness.errors") == []
