"""Many connections with many channels each, every message echoed in order.

Opens CONNECTIONS connections to one server process (held open together),
each with CHANNELS channels to the ``echo`` service (instance topics
``echo``, ``echo#1``, ...), then every channel sends MESSAGES numbered
messages at once and checks that each comes back, in order, none lost.
Client work is split over ``--clients`` processes::

    python -m stress.load            # 2,000 x 10 channels x 20 messages
    python -m stress.load --short    # 200 x 10 x 10, for CI

Exits 1 when a message is lost or out of order, a connection fails, the
server's gauges do not show every connection and channel open at once and
back to zero at the end, or the server logged an exception.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import sys
import time
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import Connection as Pipe
from typing import Any

import aiohttp

from websocket_multiplex.events import MessageReceived
from websocket_multiplex.protocol import ClientProtocol

from .common import (
    Carrier,
    Closed,
    Report,
    RssSampler,
    ServerProcess,
    mb,
    raise_fd_limit,
)

OPEN_CONCURRENCY = 100  # handshakes in flight per client process


@dataclass
class Tally:
    """What one client process saw."""

    opened: int = 0
    sent: int = 0
    received: int = 0
    misordered: int = 0
    unexpected: int = 0
    lost: int = 0
    closed: int = 0
    errors: int = 0
    first_errors: list[str] = field(default_factory=list)

    def error(self, what: str, exc: BaseException) -> None:
        self.errors += 1
        if len(self.first_errors) < 5:
            self.first_errors.append(f"{what}: {exc!r}")


class LoadConnection:
    """One client connection: its channels and the next number each expects."""

    def __init__(self, carrier: Carrier, channels: int) -> None:
        self.carrier = carrier
        self.protocol = ClientProtocol()
        self.topics, self.subs = zip(
            *(self.protocol.open("echo") for _ in range(channels)), strict=True
        )
        self.expected = dict.fromkeys(self.topics, 0)

    async def open(self) -> None:
        """Subscribe every channel and wait for one echo on each."""
        protocol = self.protocol
        await self.carrier.send(
            *self.subs,
            *(protocol.send(topic, "ready") for topic in self.topics),
        )
        waiting = set(self.topics)
        while waiting:
            for frame in await self.carrier.receive():
                event = protocol.receive(frame)
                if isinstance(event, MessageReceived) and event.payload == "ready":
                    waiting.discard(event.topic)

    async def send_all(self, messages: int, padding: str, tally: Tally) -> None:
        for seq in range(messages):
            frames = [self.protocol.send(t, f"{seq}:{padding}") for t in self.topics]
            await self.carrier.send(*frames)
            tally.sent += len(frames)

    async def receive_all(self, messages: int, tally: Tally) -> None:
        remaining = messages * len(self.topics)
        while remaining:
            for frame in await self.carrier.receive():
                event = self.protocol.receive(frame)
                if not isinstance(event, MessageReceived):
                    tally.unexpected += 1
                    continue
                seq = int(event.payload.split(":", 1)[0])
                if seq != self.expected[event.topic]:
                    tally.misordered += 1
                self.expected[event.topic] = seq + 1
                tally.received += 1
                remaining -= 1

    async def close(self, unsubscribe: bool) -> None:
        if unsubscribe:
            await self.carrier.send(*map(self.protocol.close, self.topics))
        await self.carrier.close()


async def _worker(pipe: Pipe, args: dict[str, Any]) -> None:
    tally = Tally()
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as http:
        gate = asyncio.Semaphore(OPEN_CONCURRENCY)

        async def connect() -> LoadConnection | None:
            async with gate:
                try:
                    carrier = await Carrier.connect(
                        http, args["port"], args["transport"]
                    )
                    connection = LoadConnection(carrier, args["channels"])
                    async with asyncio.timeout(30):
                        await connection.open()
                except (aiohttp.ClientError, OSError, Closed, TimeoutError) as exc:
                    tally.error("open", exc)
                    return None
                tally.opened += 1
                return connection

        opened = await asyncio.gather(*(connect() for _ in range(args["count"])))
        connections = [c for c in opened if c is not None]
        pipe.send(("opened", asdict(tally)))
        await asyncio.to_thread(pipe.recv)  # "go"

        padding = "p" * args["size"]

        async def exchange(connection: LoadConnection) -> None:
            sender = asyncio.ensure_future(
                connection.send_all(args["messages"], padding, tally)
            )
            try:
                async with asyncio.timeout(args["exchange_timeout"]):
                    await connection.receive_all(args["messages"], tally)
                await sender
            except (aiohttp.ClientError, OSError, Closed, TimeoutError) as exc:
                tally.error("exchange", exc)
                sender.cancel()
            tally.lost += sum(
                args["messages"] - n for n in connection.expected.values()
            )

        await asyncio.gather(*map(exchange, connections))
        pipe.send(("exchanged", asdict(tally)))
        await asyncio.to_thread(pipe.recv)  # "close"

        async def close(index: int, connection: LoadConnection) -> None:
            try:
                await connection.close(unsubscribe=index % 2 == 0)
                tally.closed += 1
            except (aiohttp.ClientError, OSError) as exc:
                tally.error("close", exc)

        await asyncio.gather(*(close(i, c) for i, c in enumerate(connections)))
        pipe.send(("closed", asdict(tally)))


def worker(pipe: Pipe, args: dict[str, Any]) -> None:
    raise_fd_limit()
    asyncio.run(_worker(pipe, args))


class Workers:
    """The client processes, stepped through the phases together."""

    def __init__(self, args: argparse.Namespace, port: int) -> None:
        context = multiprocessing.get_context("spawn")
        self.pipes: list[Pipe] = []
        self.processes = []
        shares = [args.connections // args.clients] * args.clients
        shares[0] += args.connections - sum(shares)
        for count in shares:
            parent, child = context.Pipe()
            settings = {
                "port": port,
                "count": count,
                "channels": args.channels,
                "messages": args.messages,
                "size": args.size,
                "transport": args.transport,
                "exchange_timeout": args.timeout,
            }
            process = context.Process(target=worker, args=(child, settings))
            process.start()
            self.pipes.append(parent)
            self.processes.append(process)

    def step(self, expected: str, deadline: float, order: str | None = None) -> Tally:
        """Optionally tell every worker to go on, then sum their tallies."""
        if order is not None:
            for pipe in self.pipes:
                pipe.send(order)
        total = Tally()
        for pipe in self.pipes:
            if not pipe.poll(max(0.0, deadline - time.monotonic())):
                raise TimeoutError(f"a client process did not report {expected!r}")
            phase, tally = pipe.recv()
            assert phase == expected, (phase, expected)
            for name, value in tally.items():
                if name == "first_errors":
                    total.first_errors += value
                else:
                    setattr(total, name, getattr(total, name) + value)
        return total

    def stop(self) -> None:
        for process in self.processes:
            process.join(5)
            if process.is_alive():
                process.kill()


def run(args: argparse.Namespace, report: Report) -> None:
    deadline = time.monotonic() + args.timeout
    channels = args.connections * args.channels
    expected_messages = channels * args.messages
    with ServerProcess() as server, RssSampler(server.pid) as sampler:
        rss_idle = server.rss_kb()
        workers = Workers(args, server.port)
        try:
            started = time.monotonic()
            tally = workers.step("opened", deadline)
            open_time = time.monotonic() - started
            stats = server.stats()
            rss_open = server.rss_kb()
            report.row("connections opened", f"{tally.opened} in {open_time:.1f} s")
            report.row("channels open at once", stats["channels"])
            report.check(
                "every connection open at once",
                stats["connections"] == args.connections,
                f"server counts {stats['connections']} of {args.connections}",
            )
            report.check(
                "every channel open at once",
                stats["channels"] == channels,
                f"server counts {stats['channels']} of {channels}",
            )
            sampler.reset()
            started = time.monotonic()
            tally = workers.step("exchanged", deadline, "go")
            elapsed = time.monotonic() - started
            rss_peak = sampler.peak
            tally = workers.step("closed", deadline, "close")
        finally:
            workers.stop()
        settled, stats = server.wait_stats(15, connections=0, channels=0)
        rss_after = server.rss_kb()
        report.row("messages sent", tally.sent)
        report.row("messages echoed", f"{tally.received} of {expected_messages}")
        report.row("msgs/s (round trips)", f"{tally.received / elapsed:,.0f}")
        report.row("exchange time", f"{elapsed:.1f} s")
        report.row("server RSS idle", mb(rss_idle))
        report.row("server RSS all open", mb(rss_open))
        report.row("server RSS peak", mb(rss_peak))
        report.row("server RSS after close", mb(rss_after))
        per = (rss_open - rss_idle) / max(1, args.connections)
        report.row("RSS per connection", f"{per:.1f} kB ({args.channels} channels)")
        report.row("errors", f"{tally.errors} {tally.first_errors[:3]}")
        report.check("no connection error", tally.errors == 0, tally.errors)
        report.check("none lost", tally.lost == 0, f"{tally.lost} lost")
        report.check("in order", tally.misordered == 0, f"{tally.misordered} out")
        report.check(
            "no unexpected frame", tally.unexpected == 0, f"{tally.unexpected} frames"
        )
        report.check(
            "every message echoed",
            tally.received == expected_messages,
            f"{tally.received} of {expected_messages}",
        )
        report.check(
            "gauges back to zero",
            settled,
            f"connections {stats['connections']}, channels {stats['channels']}",
        )
        report.check("server up", server.alive())
        report.check(
            "no exception logged", server.tracebacks() == 0, server.tracebacks()
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--short", action="store_true", help="the CI size")
    parser.add_argument("--connections", type=int)
    parser.add_argument("--channels", type=int)
    parser.add_argument("--messages", type=int, help="per channel")
    parser.add_argument("--size", type=int, default=32, help="payload characters")
    parser.add_argument("--clients", type=int, help="client processes")
    parser.add_argument("--transport", choices=("raw", "sockjs", "ws"), default="raw")
    parser.add_argument("--timeout", type=float, help="seconds for the whole run")
    args = parser.parse_args(argv)
    defaults = (200, 10, 10, 1, 40.0) if args.short else (2000, 10, 20, 2, 280.0)
    for name, value in zip(
        ("connections", "channels", "messages", "clients", "timeout"),
        defaults,
        strict=True,
    ):
        if getattr(args, name) is None:
            setattr(args, name, value)
    raise_fd_limit()
    report = Report(
        f"load: {args.connections} connections x {args.channels} channels x "
        f"{args.messages} messages ({args.transport})"
    )
    try:
        run(args, report)
    except TimeoutError as exc:
        report.check("within time", False, f"{exc} ({args.timeout} s)")
    report.print()
    return report.exit_code()


if __name__ == "__main__":
    sys.exit(main())
