"""Connect, subscribe, exchange, disconnect, many times over: nothing stays.

CYCLES cycles run CONCURRENCY at a time, each ending a different way: ``uns``
then close, close without ``uns``, TCP reset without a close frame, SockJS's
websocket transport, a plain-WebSocket client that leaves before its
channel's handler has answered, SockJS xhr-polling that stops polling (the
session must expire after the server's ``disconnect_delay``, 1 s here) and
xhr-streaming that drops its TCP connection mid-stream.

The cycles run in two halves. Once each half has settled, the server must
hold no connection, channel, SockJS session (the polling ways open sessions
in sockjs's session manager) or extra task. Its RSS must have grown less
than ``--rss-bound`` MB (60) over its idle size: most of that is the high
water of SockJS sessions alive at once, which the process keeps for reuse
(a polling session outlives its client until sockjs's sweep, every 5 s,
finds it expired: some 1,500 sessions, about 16 KB each, here). A leak
shows as growth over the second half, which reuses what the first one
freed: less than ``--leak-bound`` MB (5; 10 KB leaked per channel makes
it 49 MB)::

    python -m stress.churn            # 10,000 cycles
    python -m stress.churn --short    # 500 cycles, for CI
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any

import aiohttp

from .common import (
    PREFIX,
    Carrier,
    RawWebSocket,
    Report,
    ServerProcess,
    mb,
    raise_fd_limit,
)

WAYS = (
    "uns+close",
    "close",
    "reset",
    "sockjs",
    "leave early",
    "xhr",
    "xhr_streaming",
)


async def polling_cycle(
    http: aiohttp.ClientSession, port: int, text: str, streaming: bool
) -> None:
    """A SockJS session over HTTP, left the way browsers leave: a polling
    client just stops polling (the session must expire), a streaming one
    drops its TCP connection mid-stream."""
    server, session_id = f"{secrets.randbelow(1000):03}", uuid.uuid4().hex[:8]
    session = f"http://127.0.0.1:{port}{PREFIX}/{server}/{session_id}"
    if streaming:
        stream = await http.post(f"{session}/xhr_streaming")
        try:
            await stream.content.readuntil(b"o\n")  # after a prelude of h's
            await xhr_send(http, session, "sub,echo", text)
            while text.encode() not in (line := await stream.content.readline()):
                if not line:
                    raise ConnectionError("the stream ended before the echo")
        finally:
            stream.close()
        return
    async with http.post(f"{session}/xhr") as response:
        assert await response.text() == "o\n"
    await xhr_send(http, session, "sub,echo", text)
    while True:
        async with http.post(f"{session}/xhr") as response:
            if text in await response.text():
                return


async def xhr_send(http: aiohttp.ClientSession, session: str, *frames: str) -> None:
    async with http.post(f"{session}/xhr_send", data=json.dumps(frames)) as response:
        assert response.status == 204, response.status


async def cycle(http: aiohttp.ClientSession, port: int, index: int) -> None:
    way = WAYS[index % len(WAYS)]
    text = f"msg,echo,cycle {index}"
    if way in ("xhr", "xhr_streaming"):
        await polling_cycle(http, port, text, streaming=way == "xhr_streaming")
        return
    if way == "reset":
        raw = await RawWebSocket.connect(port, "/multiplex/websocket")
        raw.send_frame(0x1, b"sub,echo")
        raw.send_frame(0x1, text.encode())
        while (await raw.read_frame())[1] != text.encode():
            pass
        raw.abort()
        return
    transport = {"sockjs": "sockjs", "leave early": "ws"}.get(way, "raw")
    carrier = await Carrier.connect(http, port, transport)
    try:
        await carrier.send("sub,echo", text)
        if way != "leave early":
            while text not in await carrier.receive():
                pass
        if way == "uns+close":
            await carrier.send("uns,echo")
    finally:
        await carrier.close()


async def churn(
    port: int, indexes: range, concurrency: int
) -> tuple[Counter[str], float]:
    """Run the cycles numbered ``indexes``, ``concurrency`` at a time."""
    errors: Counter[str] = Counter()
    pending = iter(indexes)

    async def runner(http: aiohttp.ClientSession) -> None:
        for index in pending:
            try:
                async with asyncio.timeout(10):
                    await cycle(http, port, index)
            except Exception as exc:
                errors[f"{WAYS[index % len(WAYS)]}: {type(exc).__name__}"] += 1

    started = time.monotonic()
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as http:
        await asyncio.gather(*(runner(http) for _ in range(concurrency)))
    return errors, time.monotonic() - started


@dataclass
class Half:
    """What one half of the cycles left behind, once settled."""

    errors: Counter[str]
    elapsed: float
    sessions_live: int  # SockJS HTTP sessions alive as the last cycle ended
    settled: bool
    stats: dict[str, Any]
    rss: int


def run_half(server: ServerProcess, indexes: range, args: argparse.Namespace) -> Half:
    async def main() -> tuple[Counter[str], float]:
        async with asyncio.timeout(args.timeout):
            return await churn(server.port, indexes, args.concurrency)

    errors, elapsed = asyncio.run(main())
    sessions_live = server.stats()["sockjs_sessions"]
    settled, _ = server.wait_stats(
        args.settle, connections=0, channels=0, sockjs_sessions=0
    )
    stats = server.stats(collect=True)
    return Half(errors, elapsed, sessions_live, settled, stats, server.rss_kb())


def run(args: argparse.Namespace, report: Report) -> None:
    with ServerProcess("--disconnect-delay", str(args.disconnect_delay)) as server:
        idle = server.stats(collect=True)
        rss_idle = server.rss_kb()
        middle = args.cycles // 2
        first = run_half(server, range(middle), args)
        second = run_half(server, range(middle, args.cycles), args)
        stats = second.stats
        errors = first.errors + second.errors
        elapsed = first.elapsed + second.elapsed
        growth = second.rss - rss_idle
        leak = second.rss - first.rss
        report.row("cycles", args.cycles)
        report.row("concurrency", args.concurrency)
        report.row("cycles/s", f"{args.cycles / elapsed:,.0f}")
        report.row("connections accepted", stats["connections_accepted"])
        report.row(
            "SockJS HTTP sessions alive at the end of each half",
            f"{first.sessions_live}, {second.sessions_live}",
        )
        report.row("server RSS idle", mb(rss_idle))
        report.row(f"server RSS after {middle} cycles, settled", mb(first.rss))
        report.row(f"server RSS after {args.cycles} cycles, settled", mb(second.rss))
        report.row("server tasks idle/end", f"{idle['tasks']} / {stats['tasks']}")
        report.row("errors", f"{sum(errors.values())} {dict(errors)}")
        report.check("no client error", not errors, dict(errors))
        report.check(
            "every cycle reached the server",
            stats["connections_accepted"] == args.cycles,
            f"{stats['connections_accepted']} of {args.cycles}",
        )
        for name, half in (("first", first), ("second", second)):
            report.check(
                f"live connections, channels, sessions back to zero ({name} half)",
                half.settled,
                f"connections {half.stats['connections']}, "
                f"channels {half.stats['channels']}, "
                f"sockjs sessions {half.stats['sockjs_sessions']}",
            )
        report.check(
            "no task left behind",
            stats["tasks"] <= idle["tasks"] + 1,
            f"{stats['tasks']} tasks, {idle['tasks']} when idle",
        )
        report.check(
            f"RSS growth < {args.rss_bound} MB",
            growth < args.rss_bound * 1024,
            mb(growth),
        )
        report.check(
            f"RSS growth over the second half < {args.leak_bound} MB",
            leak < args.leak_bound * 1024,
            mb(leak),
        )
        report.check("server up", server.alive())
        report.check(
            "no exception logged", server.tracebacks() == 0, server.tracebacks()
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--short", action="store_true", help="the CI size")
    parser.add_argument("--cycles", type=int)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--rss-bound", type=float, default=60.0, metavar="MB")
    parser.add_argument("--leak-bound", type=float, default=5.0, metavar="MB")
    parser.add_argument("--settle", type=float, default=15.0, metavar="SECONDS")
    parser.add_argument(
        "--disconnect-delay",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="the server's SockJS disconnect_delay: how long an abandoned "
        "polling session lives (over --settle, sessions stay: the check fails)",
    )
    parser.add_argument("--timeout", type=float, help="seconds for the cycles")
    args = parser.parse_args(argv)
    if args.cycles is None:
        args.cycles = 500 if args.short else 10_000
    if args.timeout is None:
        args.timeout = 30.0 if args.short else 240.0
    raise_fd_limit()
    report = Report(f"churn: {args.cycles} cycles, {args.concurrency} at a time")
    try:
        run(args, report)
    except TimeoutError:
        report.check("within time", False, f"cycles took over {args.timeout} s")
    report.print()
    return report.exit_code()


if __name__ == "__main__":
    sys.exit(main())
