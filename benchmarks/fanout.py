"""Fan-out benchmark: one publisher, many subscriber channels, one room.

Runs the chat example (examples/chat/app.py) as real worker processes,
subscriber clients in other processes, and the publisher in this one::

    python benchmarks/fanout.py            # 1,000 and 10,000 subscribers
    python benchmarks/fanout.py --short    # a quick check (~10 s)

For each broker (in memory with one worker; Redis with two workers, the
subscribers' connections spread over both) and each number of subscriber
channels (``--per-connection`` channels per SockJS websocket connection):

* **burst**: the publisher sends ``--deliveries / subscribers`` messages as
  fast as it can; *deliveries/s* is every message received by every
  subscriber over the time from the first send to the last receipt;
* **paced**: the publisher sends at half the rate the burst achieved, so
  nothing queues up; *p50* and *p99* are the delivery latencies (the send
  time travels in the payload; every process reads the same monotonic
  clock).

Every process shares the machine's cores, so the numbers are those of the
whole system (workers, Redis, clients), not of a worker alone. The exit
status is 1 if any message was not delivered.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
CHAT_SERVER = ROOT / "examples" / "chat" / "app.py"
CONNECT_CONCURRENCY = 50  # handshakes in flight per client process


# -- a lean SockJS websocket client: the clients must not be the bottleneck --


class Connection:
    """One SockJS websocket carrying ``chat`` channels, frames by hand."""

    def __init__(
        self, ws: aiohttp.ClientWebSocketResponse, channels: int, extended: bool
    ) -> None:
        self.ws = ws
        self.topics = ["chat"] + [f"chat#{i}" for i in range(1, channels)]
        # A client of ours: it offers a session (docs/PROTOCOL-EXTENSIONS.md,
        # section 3), acknowledges every 32 frames, and gets group messages
        # as "pub" frames when the broker keeps histories (section 4).
        self.extended = extended
        self.frames = 0
        self.acked = 0

    @classmethod
    async def open(
        cls,
        http: aiohttp.ClientSession,
        base: str,
        channels: int,
        extended: bool = False,
    ) -> Connection:
        url = f"{base}/multiplex/000/{uuid.uuid4().hex[:8]}/websocket"
        ws = await http.ws_connect(url.replace("http", "ws", 1), autoping=True)
        if (await ws.receive_str(timeout=10)) != "o":
            raise ConnectionError(f"{url}: not a SockJS session")
        return cls(ws, channels, extended)

    async def send(self, *messages: str) -> None:
        await self.ws.send_str(json.dumps(messages))

    async def join(self, room: str) -> None:
        """Open every channel and join ``room`` on each; wait for the answers."""
        frames = [f for t in self.topics for f in (f"sub,{t}", f"msg,{t},/join {room}")]
        if self.extended:
            frames.insert(0, f"hey,r1,{uuid.uuid4().hex}")
        await self.send(*frames)
        joined = 0
        while joined < len(self.topics):
            for _topic, event in await self.receive():
                if event["type"] != "joined":
                    raise RuntimeError(f"joining {room!r}: {event}")
                joined += 1

    async def receive(self) -> list[tuple[str, dict[str, Any]]]:
        """The next SockJS frame's chat events, as (topic, event) pairs."""
        while True:
            message = await self.ws.receive()
            if message.type is not aiohttp.WSMsgType.TEXT:
                raise ConnectionError(f"the connection ended: {message}")
            frame: str = message.data
            if frame.startswith("a"):
                events = []
                for text in json.loads(frame[1:]):
                    if text.startswith(("hey,", "ack,")):  # the session's own
                        continue
                    self.frames += 1
                    kind, topic, payload = text.split(",", 2)
                    if kind == "msg":
                        events.append((topic, json.loads(payload)))
                    elif kind == "pub":  # group, epoch, offset, then the message
                        events.append((topic, json.loads(payload.split(",", 3)[3])))
                if self.extended and self.frames - self.acked >= 32:
                    self.acked = self.frames
                    await self.send(f"ack,{self.frames}")
                return events
            if frame.startswith("c"):
                raise ConnectionError(f"the server closed the session: {frame}")
            # "h": a heartbeat


# -- subscriber processes ------------------------------------------------------


@dataclass
class Phase:
    """What one subscriber process saw of one phase."""

    received: int = 0
    first_ns: int = 0
    last_ns: int = 0
    latencies_us: list[int] = field(default_factory=list)
    complete: asyncio.Event = field(default_factory=asyncio.Event)
    expected: int | None = None

    def record(self, sent_ns: int, now: int) -> None:
        self.received += 1
        self.first_ns = self.first_ns or now
        self.last_ns = now
        self.latencies_us.append((now - sent_ns) // 1000)
        if self.received == self.expected:
            self.complete.set()


class Subscribers:
    """This process's share of the subscribers, driven over stdin/stdout.

    Prints ``{"ready": channels}`` once every channel has joined the room;
    then for each ``{"phase": NAME, "messages": M, "timeout": T, "latencies":
    BOOL}`` line on stdin, prints what it received of that phase once every
    channel has M messages of it, or after T seconds.
    """

    def __init__(self, extended: bool = False) -> None:
        self.phases: dict[str, Phase] = {}
        self.channels = 0
        self.extended = extended

    async def run(
        self, bases: list[str], connections: int, per: int, room: str
    ) -> None:
        limit = asyncio.Semaphore(CONNECT_CONCURRENCY)
        # No pool limit: each websocket holds a connection (aiohttp's default
        # limit, 100, would make the 101st handshake wait forever).
        unlimited = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=unlimited) as http:

            async def joined(i: int) -> Connection:
                async with limit:
                    base = bases[i % len(bases)]
                    connection = await Connection.open(http, base, per, self.extended)
                    await connection.join(room)
                    return connection

            opened = await asyncio.gather(*(joined(i) for i in range(connections)))
            self.channels = connections * per
            readers = [asyncio.create_task(self.read(c)) for c in opened]
            emit({"ready": self.channels})
            try:
                while line := await asyncio.to_thread(sys.stdin.readline):
                    await self.report(json.loads(line))
            finally:
                for task in readers:
                    task.cancel()
                await asyncio.gather(*readers, return_exceptions=True)
                await asyncio.gather(*(c.ws.close() for c in opened))

    def phase(self, name: str) -> Phase:
        if name not in self.phases:
            self.phases[name] = Phase()
        return self.phases[name]

    async def read(self, connection: Connection) -> None:
        try:
            await self._read(connection)
        except ConnectionError as exc:  # e.g. dropped as a slow client
            print(f"subscriber connection lost: {exc}", file=sys.stderr)

    async def _read(self, connection: Connection) -> None:
        while True:
            events = await connection.receive()
            now = time.monotonic_ns()
            for _topic, event in events:
                if event["type"] == "message":
                    name, _seq, sent_ns = event["text"].split()
                    self.phase(name).record(int(sent_ns), now)

    async def report(self, command: dict[str, Any]) -> None:
        phase = self.phase(command["phase"])
        phase.expected = command["messages"] * self.channels
        if phase.received >= phase.expected:
            phase.complete.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(phase.complete.wait(), command["timeout"])
        emit(
            {
                "received": phase.received,
                "first_ns": phase.first_ns,
                "last_ns": phase.last_ns,
                "latencies_us": phase.latencies_us if command["latencies"] else [],
            }
        )


def emit(report: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(report) + "\n")
    sys.stdout.flush()


# -- processes -----------------------------------------------------------------


async def read_line(process: subprocess.Popen[bytes], timeout: float) -> str:
    """The next line ``process`` prints, within ``timeout`` seconds."""
    assert process.stdout is not None
    try:
        line = await asyncio.wait_for(
            asyncio.to_thread(process.stdout.readline), timeout
        )
    except TimeoutError:
        raise RuntimeError(f"no answer within {timeout} s: {process.args!r}") from None
    if not line:
        raise RuntimeError(f"exited with {process.wait()}: {process.args!r}")
    return line.decode()


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.asynccontextmanager
async def started(
    commands: list[list[str]], ready_timeout: float
) -> AsyncIterator[list[subprocess.Popen[bytes]]]:
    """Start processes, wait for the first line of each, stop them after."""
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for command in commands:
            processes.append(
                subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
            )
        await asyncio.gather(*(read_line(p, ready_timeout) for p in processes))
        yield processes
    finally:
        for process in processes:
            if process.stdin is not None:
                with contextlib.suppress(OSError):
                    process.stdin.close()
        for process in processes:
            stop(process)


def redis_answers(url: str) -> str | None:
    """``None`` if Redis answers at ``url``, else why not."""
    try:
        import redis
    except ImportError:
        return "redis-py is not installed"
    client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
    try:
        client.ping()
    except redis.RedisError as exc:
        return f"Redis does not answer at {url} ({exc})"
    finally:
        client.close()
    return None


# -- the benchmark ---------------------------------------------------------------


@dataclass
class Result:
    broker: str
    workers: int
    subscribers: int
    connections: int
    burst_messages: int = 0
    expected: int = 0
    delivered: int = 0
    deliveries_per_s: float = 0.0
    paced_rate: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0

    @property
    def lost(self) -> int:
        return self.expected - self.delivered


def ask_all(clients: list[subprocess.Popen[bytes]], command: dict[str, Any]) -> None:
    for client in clients:
        assert client.stdin is not None
        client.stdin.write((json.dumps(command) + "\n").encode())
        client.stdin.flush()


async def gather_reports(
    clients: list[subprocess.Popen[bytes]], timeout: float
) -> list[dict[str, Any]]:
    lines = await asyncio.gather(*(read_line(c, timeout + 10) for c in clients))
    return [json.loads(line) for line in lines]


async def run_phase(
    publisher: Connection,
    clients: list[subprocess.Popen[bytes]],
    name: str,
    messages: int,
    rate: float | None,
    timeout: float,
) -> tuple[int, list[dict[str, Any]]]:
    """Publish ``messages`` (at ``rate`` per second, or flat out); collect."""
    command = {"phase": name, "messages": messages, "timeout": timeout}
    ask_all(clients, {**command, "latencies": rate is not None})
    start = time.monotonic()
    first_ns = 0
    for seq in range(messages):
        if rate is not None:
            await asyncio.sleep(max(0.0, start + seq / rate - time.monotonic()))
        sent = time.monotonic_ns()
        await publisher.send(f"msg,chat,{name} {seq} {sent}")
        first_ns = first_ns or sent
        if seq % 16 == 15:
            await asyncio.sleep(0)  # let the socket drain
    return first_ns, await gather_reports(clients, timeout)


def percentile(values: list[int], fraction: float) -> float:
    return values[min(len(values) - 1, int(fraction * len(values)))] / 1000


async def scenario(
    args: argparse.Namespace, broker: str, subscribers: int, history: int | None = None
) -> Result:
    """Start the workers and the subscriber processes, then measure.

    ``history``: the workers' ``--history-size``, and subscribers that are
    clients of ours (the extended protocol); ``None``: the defaults and
    base-protocol subscribers."""
    workers = 2 if broker == "redis" else 1
    connections = max(1, subscribers // args.per_connection)
    per = subscribers // connections
    result = Result(broker, workers, connections * per, connections)
    ports = [free_port() for _ in range(workers)]
    redis = ["--redis-url", args.redis_url] if broker == "redis" else []
    if history is not None:
        redis += ["--history-size", str(history)]
        result.broker += f" history {history}"
    worker_commands = [
        [sys.executable, str(CHAT_SERVER), "--port", str(port), *redis]
        for port in ports
    ]
    bases = [f"http://127.0.0.1:{port}" for port in ports]
    room = f"bench-{uuid.uuid4().hex[:8]}"
    client_commands = [
        [sys.executable, __file__, "--role", "subscribers", "--room", room,
         "--bases", ",".join(bases), "--connections", str(share),
         "--per-connection", str(per), *(["--extended"] if history is not None else [])]
        for share in split(connections, args.client_processes) if share
    ]  # fmt: skip
    async with (
        started(worker_commands, 20),
        started(client_commands, 120) as clients,
        aiohttp.ClientSession() as http,
    ):
        connection = await Connection.open(http, bases[0], 1)
        await connection.join(room)
        drain = asyncio.create_task(drain_forever(connection))
        try:
            await measure(args, result, connection, clients)
        finally:
            drain.cancel()
            await connection.ws.close()
    return result


async def measure(
    args: argparse.Namespace,
    result: Result,
    publisher: Connection,
    clients: list[subprocess.Popen[bytes]],
) -> None:
    burst = max(1, args.deliveries // result.subscribers)
    first_ns, reports = await run_phase(
        publisher, clients, "burst", burst, None, args.phase_timeout
    )
    result.burst_messages = burst
    result.expected = burst * result.subscribers
    result.delivered = sum(r["received"] for r in reports)
    last_ns = max(r["last_ns"] for r in reports)
    result.deliveries_per_s = result.delivered / max(1e-9, (last_ns - first_ns) / 1e9)

    # Half the rate the burst reached: latency without a queue building up.
    rate = result.deliveries_per_s / 2 / result.subscribers
    rate = min(200.0, max(1.0, rate))
    paced = max(5, min(args.paced_messages, int(rate * args.paced_seconds)))
    _, reports = await run_phase(
        publisher, clients, "paced", paced, rate, args.phase_timeout
    )
    result.paced_rate = rate
    result.expected += paced * result.subscribers
    result.delivered += sum(r["received"] for r in reports)
    latencies = sorted(v for r in reports for v in r["latencies_us"])
    if latencies:
        result.p50_ms = percentile(latencies, 0.50)
        result.p99_ms = percentile(latencies, 0.99)


async def drain_forever(connection: Connection) -> None:
    with contextlib.suppress(ConnectionError, asyncio.CancelledError):
        while True:
            await connection.receive()


def split(total: int, parts: int) -> list[int]:
    return [total // parts + (i < total % parts) for i in range(parts)]


def table(results: Sequence[Result]) -> str:
    header = (
        "broker", "workers", "subscribers", "connections", "burst msgs",
        "delivered", "deliveries/s", "paced msg/s", "p50 ms", "p99 ms",
    )  # fmt: skip
    rows = [header] + [
        (
            r.broker, str(r.workers), f"{r.subscribers:,}", f"{r.connections:,}",
            str(r.burst_messages), f"{r.delivered:,}/{r.expected:,}",
            f"{r.deliveries_per_s:,.0f}", f"{r.paced_rate:.1f}",
            f"{r.p50_ms:.1f}", f"{r.p99_ms:.1f}",
        )
        for r in results
    ]  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        " | ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in rows
    ]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


async def benchmark(args: argparse.Namespace) -> int:
    brokers = list(args.brokers)
    why_not = redis_answers(args.redis_url) if "redis" in brokers else None
    if why_not is not None:
        print(f"skipping the Redis runs: {why_not}", file=sys.stderr)
        brokers.remove("redis")
    results = []
    started_at = time.monotonic()
    for broker in brokers:
        for subscribers in args.subscribers:
            if args.history_pairs:
                results += await history_pairs(args, broker, subscribers)
                continue
            print(
                f"{broker}: {subscribers:,} subscribers…", file=sys.stderr, flush=True
            )
            results.append(await scenario(args, broker, subscribers))
    print(table(results))
    if args.history_pairs:
        print(history_ratios(results))
    print(f"({time.monotonic() - started_at:.0f} s; {os.cpu_count()} cores)")
    lost = [r for r in results if r.lost]
    for r in lost:
        print(
            f"LOST {r.lost:,} deliveries: {r.broker}, {r.subscribers:,}",
            file=sys.stderr,
        )
    return 1 if lost else 0


async def history_pairs(
    args: argparse.Namespace, broker: str, subscribers: int
) -> list[Result]:
    """Without a history, then with one (alternating which goes first),
    ``args.history_pairs`` times; subscribers are clients of ours."""
    results = []
    for i in range(args.history_pairs):
        sizes = (0, 1000) if i % 2 == 0 else (1000, 0)
        for size in sizes:
            print(
                f"{broker}: {subscribers:,} subscribers, history {size}, "
                f"pair {i + 1}/{args.history_pairs}…",
                file=sys.stderr,
                flush=True,
            )
            results.append(await scenario(args, broker, subscribers, size))
    return results


def history_ratios(results: Sequence[Result]) -> str:
    """Per broker and size: with / without a history, for each pair (the
    median first)."""
    lines = ["deliveries/s with a history / without (median of the pairs):"]
    groups: dict[tuple[str, int], dict[int, list[float]]] = {}
    for r in results:
        base, _, size = r.broker.rpartition(" history ")
        pairs = groups.setdefault((base, r.subscribers), {0: [], 1000: []})
        pairs[int(size)].append(r.deliveries_per_s)
    for (base, subscribers), pairs in groups.items():
        ratios = [w / wo for w, wo in zip(pairs[1000], pairs[0], strict=False) if wo]
        if ratios:
            shown = ", ".join(f"{x:.2f}" for x in ratios)
            lines.append(
                f"  {base}, {subscribers:,} subscribers: "
                f"{statistics.median(ratios):.2f}x ({shown})"
            )
    return "\n".join(lines)


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--short", action="store_true", help="a quick check")
    parser.add_argument(
        "--subscribers",
        type=lambda text: [int(n) for n in text.split(",")],
        default=[1000, 10000],
        help="subscriber channels, comma-separated (default: 1000,10000)",
    )
    parser.add_argument(
        "--brokers",
        type=lambda text: text.split(","),
        default=["memory", "redis"],
        help="memory (1 worker), redis (2 workers) or both (default)",
    )
    parser.add_argument("--per-connection", type=int, default=10, help="default: 10")
    parser.add_argument(
        "--client-processes", type=int, default=2, help="default: %(default)s"
    )
    parser.add_argument(
        "--deliveries",
        type=int,
        default=200_000,
        help="deliveries in the burst: subscribers x messages (default: %(default)s)",
    )
    parser.add_argument("--paced-seconds", type=float, default=3.0)
    parser.add_argument("--paced-messages", type=int, default=300)
    parser.add_argument("--phase-timeout", type=float, default=60.0)
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
        help="default: $REDIS_URL or %(default)s",
    )
    parser.add_argument(
        "--history-pairs",
        type=int,
        default=0,
        help="instead: each scenario without and with group histories, this "
        "many pairs, subscribers speaking our extended protocol",
    )
    # The subscriber processes this script starts:
    parser.add_argument("--role", choices=["subscribers"], help=argparse.SUPPRESS)
    parser.add_argument("--room", help=argparse.SUPPRESS)
    parser.add_argument("--bases", help=argparse.SUPPRESS)
    parser.add_argument("--connections", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--extended", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.short:
        args.subscribers, args.deliveries = [100], 2_000
        args.paced_seconds, args.phase_timeout = 1.0, 20.0
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    if args.role == "subscribers":
        subscribers = Subscribers(args.extended)
        asyncio.run(
            subscribers.run(
                args.bases.split(","), args.connections, args.per_connection, args.room
            )
        )
        return 0
    return asyncio.run(benchmark(args))


if __name__ == "__main__":
    sys.exit(main())
