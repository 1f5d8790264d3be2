"""The server every stress script starts in a subprocess of its own.

An aiohttp application with a SockJS endpoint at ``/multiplex`` (so the raw
WebSocket is ``/multiplex/websocket``), a plain WebSocket route at ``/ws``,
the Prometheus metrics at ``/metrics`` and a JSON snapshot at ``/stats``.
Services:

``echo``
    sends every message back, in order.
``firehose``
    reads one message ``"TOTAL SIZE"`` and sends TOTAL characters in
    messages of SIZE characters, then closes the channel; it stops early
    when the channel closes under it.

It prints ``READY <port> <pid>`` once it listens, and exits on SIGTERM, when
its standard input closes (its parent is gone) or after ``--lifetime``
seconds, so a stress run can never leave it behind::

    python -m stress.server --limit slow_client_timeout=2
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import gc
import logging
import os
import resource
import signal
import sys
from collections import Counter
from typing import Any

from aiohttp import web

from websocket_multiplex import Channel, ChannelClosed, Limits, MultiplexServer
from websocket_multiplex.adapters.aiohttp import (
    SOCKJS_ENDPOINTS,
    add_metrics_route,
    add_sockjs_endpoint,
    add_websocket_route,
)

PREFIX = "/multiplex"
FIREHOSE = {"sent_chars": 0, "started": 0, "finished": 0, "cut_short": 0}


def build(limits: Limits, disconnect_delay: float) -> web.Application:
    server = MultiplexServer(limits=limits, handler_timeout=2.0, close_timeout=2.0)
    server.register("echo", echo)
    server.register("firehose", firehose)
    app = web.Application()
    add_sockjs_endpoint(app, server, prefix=PREFIX, disconnect_delay=disconnect_delay)
    sessions = app[SOCKJS_ENDPOINTS][PREFIX].sessions  # to count them
    add_websocket_route(app, server, "/ws")
    add_metrics_route(app, server, "/metrics")
    app.router.add_get("/stats", stats_route(server, sessions))
    return app


async def echo(channel: Channel) -> None:
    async for data in channel:
        await channel.send(data)


async def firehose(channel: Channel) -> None:
    total, size = map(int, (await channel.receive()).split())
    chunk = "x" * size
    FIREHOSE["started"] += 1
    try:
        for _ in range(total // size):
            await channel.send(chunk)
            FIREHOSE["sent_chars"] += size
    except ChannelClosed:
        FIREHOSE["cut_short"] += 1
        return
    FIREHOSE["finished"] += 1
    await channel.close()


def stats_route(server: MultiplexServer, sessions: dict[str, Any]) -> Any:
    async def stats(request: web.Request) -> web.Response:
        if request.query.get("gc"):
            gc.collect()
        snapshot = dataclasses.asdict(server.stats())
        snapshot["channels_by_service"] = snapshot.pop("channels")
        snapshot["channels"] = sum(snapshot["channels_by_service"].values())
        snapshot["sockjs_sessions"] = len(sessions)
        snapshot["tasks"] = len(asyncio.all_tasks())
        snapshot["firehose"] = dict(FIREHOSE)
        snapshot["pid"] = os.getpid()
        if request.query.get("objects"):  # what the heap holds, for leak hunts
            kinds = Counter(type(o).__qualname__ for o in gc.get_objects())
            snapshot["objects"] = dict(kinds.most_common(25))
        return web.json_response(snapshot)

    return stats


def raise_fd_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


async def serve(args: argparse.Namespace) -> None:
    given: dict[str, Any] = dict(map(parse_limit, args.limit))
    limits = Limits(**given)
    runner = web.AppRunner(build(limits, args.disconnect_delay), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, args.host, args.port, backlog=4096)
    await site.start()
    port = runner.addresses[0][1]
    print(f"READY {port} {os.getpid()}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    orphaned = loop.run_in_executor(None, sys.stdin.read)  # EOF: parent gone
    orphaned.add_done_callback(lambda _: stop.set())
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(args.lifetime):
            await stop.wait()
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(5):
            await runner.cleanup()
    logging.shutdown()
    sys.stderr.flush()
    os._exit(0)  # the stdin reader thread would keep the process alive


def parse_limit(text: str) -> tuple[str, float | int]:
    name, _, value = text.partition("=")
    kind = type(getattr(Limits(), name))
    return name, kind(float(value)) if kind is int else kind(value)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--limit",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a Limits field, e.g. slow_client_timeout=2",
    )
    parser.add_argument("--disconnect-delay", type=float, default=1.0)
    parser.add_argument(
        "--lifetime", type=float, default=900.0, help="exit after this many seconds"
    )
    args = parser.parse_args(argv)
    raise_fd_limit()
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
