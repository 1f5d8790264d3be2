"""A client that stops reading while a service floods it.

The ``firehose`` service writes TOTAL characters in SIZE-character messages
to a client that never reads its socket (aiohttp pauses the socket when
nobody calls ``receive``, so the kernel buffers fill). The server runs with
``Limits(slow_client_timeout=2)``. Checks:

* the server's RSS stays under ``--rss-bound`` MB above its idle size
  (24 MB in the short form, 100 MB in the long one). A slow connection
  holds at most twice ``Limits.write_limit`` (1 MiB) of queued output plus
  its framing and aiohttp's buffers: two slow SockJS clients cost about
  10 MB here. The bound must stay under half of what the two firehoses ask
  (checked), so that a server that held what it was asked would fail;
  each transport gets a fresh server, as freed memory stays in the process;
* the server gives up on those connections (``slow_client_closes``; there
  are two), and the one that reads again as soon as the server gave up
  finds close code 4008, reason ``slow client``, after what was queued;
* a second client on the same server keeps doing echo round trips
  throughout, none slower than ``--latency-bound`` seconds.

Also reported: whether the server released the other one's TCP connection,
which never reads again (within ``--linger`` seconds of giving up)::

    python -m stress.slow            # 200 MB, over sockjs, ws and raw
    python -m stress.slow --short    # 32 MB over sockjs, for CI
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

import aiohttp

from .common import (
    TRANSPORTS,
    Carrier,
    Closed,
    Control,
    Echoer,
    Report,
    RssSampler,
    ServerProcess,
    mb,
    raise_fd_limit,
)

SLOW_CLIENT_TIMEOUT = 2.0


async def read_to_close(carrier: Carrier) -> tuple[int, Closed]:
    """Read everything until the close: characters read, and the close."""
    received = 0
    try:
        async with asyncio.timeout(30):
            while True:
                received += sum(map(len, await carrier.receive()))
    except Closed as closed:
        return received, closed
    except TimeoutError:
        return received, Closed(None, "no close within 30 s of reading again")


async def episode(
    server: ServerProcess,
    http: aiohttp.ClientSession,
    transport: str,
    args: argparse.Namespace,
    report: Report,
) -> None:
    before = await server.astats(http)
    rss_idle = server.rss_kb()
    control = Control(await Echoer.connect(http, server.port))
    with RssSampler(server.pid) as sampler:
        # Two clients that stop reading: the reader comes back as soon as
        # the server gave up on it, the sleeper never does.
        reader = await Carrier.connect(http, server.port, transport)
        sleeper = await Carrier.connect(http, server.port, transport)
        for slow in (reader, sleeper):
            await slow.send("sub,firehose", f"msg,firehose,{args.total} {args.size}")
        started = time.monotonic()
        give_up = started + SLOW_CLIENT_TIMEOUT + args.fill_timeout
        while time.monotonic() < give_up:
            stats = await server.astats(http)
            if stats["slow_client_closes"] >= before["slow_client_closes"] + 2:
                break
            if stats["firehose"]["finished"] > before["firehose"]["finished"]:
                break
            await asyncio.sleep(0.1)
        decided = time.monotonic() - started
        received, close = await read_to_close(reader)
        # Does the server let go of the sleeper's socket?
        peer = sleeper.ws.get_extra_info("sockname")[1]
        released = False
        linger_until = time.monotonic() + args.linger
        while time.monotonic() < linger_until and not released:
            released = server.established(peer) == 0
            await asyncio.sleep(0.2)
        released_after = time.monotonic() - started - decided
        _, sleeper_close = await read_to_close(sleeper)
        await reader.close()
        await sleeper.close()
        await control.stop()
        rss_peak = sampler.peak
    after = await server.astats(http)
    sent = after["firehose"]["sent_chars"] - before["firehose"]["sent_chars"]
    name = f"[{transport}]"
    report.row(f"{name} firehose asked", mb(args.total / 1024))
    report.row(f"{name} server sent before giving up", mb(sent / 1024))
    report.row(f"{name} reader read after resuming", mb(received / 1024))
    report.row(f"{name} server gave up after", f"{decided:.1f} s")
    report.row(f"{name} close seen by reader", f"{close.code} {close.reason!r}")
    report.row(
        f"{name} close seen by sleeper",
        f"{sleeper_close.code} {sleeper_close.reason!r} (read after {args.linger} s)",
    )
    report.row(f"{name} server RSS idle / peak", f"{mb(rss_idle)} / {mb(rss_peak)}")
    report.row(
        f"{name} control round trips",
        f"{control.echoer.count}, worst {control.echoer.worst * 1000:.0f} ms",
    )
    report.check(
        f"{name} server gave up on both slow clients",
        after["slow_client_closes"] == before["slow_client_closes"] + 2,
        f"slow_client_closes {after['slow_client_closes']}",
    )
    report.check(
        f"{name} RSS peak < idle + {args.rss_bound} MB",
        rss_peak - rss_idle < args.rss_bound * 1024,
        f"+{mb(rss_peak - rss_idle)}",
    )
    report.check(
        f"{name} control client unaffected",
        not control.errors
        and control.echoer.count >= decided / 0.5
        and control.echoer.worst < args.latency_bound,
        f"{control.echoer.count} round trips, worst "
        f"{control.echoer.worst:.2f} s (< {args.latency_bound} s) {control.errors}",
    )
    close_ok = (close.code, close.reason) == (4008, "slow client")
    report.check(f"{name} closed 4008 'slow client'", close_ok, close)
    report.check(
        f"{name} sleeper's TCP released",
        released,
        f"within {args.linger} s of giving up: "
        + (
            f"yes, after {released_after:.1f} s"
            if released
            else "no, still established"
        ),
    )
    report.check(
        f"{name} no connection left",
        after["connections"] == before["connections"],
        f"{after['connections']} connections",
    )


async def run(args: argparse.Namespace, report: Report) -> None:
    asked = 2 * args.total / 2**20  # MB, two slow clients
    report.row("RSS bound / firehoses ask", f"{args.rss_bound} MB / {asked:.0f} MB")
    report.check(
        "RSS check can fail (bound < half the ask)",
        args.rss_bound < asked / 2,
        f"{args.rss_bound} MB < {asked / 2:.0f} MB",
    )
    limits = [f"slow_client_timeout={SLOW_CLIENT_TIMEOUT}", *args.limit]
    for transport in args.transport:
        # A server of its own per transport: memory the allocator kept from
        # one episode would hide the next one's growth.
        with ServerProcess(*(f"--limit={limit}" for limit in limits)) as server:
            async with aiohttp.ClientSession() as http:
                async with asyncio.timeout(args.timeout):
                    await episode(server, http, transport, args, report)
            name = f"[{transport}]"
            report.check(f"{name} server up", server.alive())
            report.check(
                f"{name} no exception logged",
                server.tracebacks() == 0,
                server.tracebacks(),
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--short", action="store_true", help="the CI size")
    parser.add_argument("--total", type=int, help="characters the firehose writes")
    parser.add_argument("--size", type=int, default=100_000, help="per message")
    parser.add_argument(
        "--transport", action="append", choices=TRANSPORTS, help="repeatable"
    )
    parser.add_argument("--rss-bound", type=float, metavar="MB")
    parser.add_argument("--latency-bound", type=float, default=1.0, metavar="SECONDS")
    parser.add_argument("--fill-timeout", type=float, default=20.0, metavar="SECONDS")
    parser.add_argument("--linger", type=float, metavar="SECONDS")
    parser.add_argument("--timeout", type=float, default=90.0, help="per transport")
    parser.add_argument(
        "--limit",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a Limits field for the server, e.g. write_limit=1e9 (no backpressure)",
    )
    args = parser.parse_args(argv)
    if args.total is None:
        # Over what loopback buffers can hold (about 16 MB seen here).
        args.total = 32_000_000 if args.short else 200_000_000
    if args.rss_bound is None:
        args.rss_bound = 24.0 if args.short else 100.0
    if args.transport is None:
        args.transport = ["sockjs"] if args.short else ["sockjs", "ws", "raw"]
    if args.linger is None:
        args.linger = 7.0 if args.short else 10.0  # the server's grace is 5 s
    raise_fd_limit()
    report = Report(f"slow consumer: firehose of {mb(args.total / 1024)}")
    try:
        asyncio.run(run(args, report))
    except TimeoutError:
        report.check("within time", False, f"over {args.timeout} s")
    report.print()
    return report.exit_code()


if __name__ == "__main__":
    sys.exit(main())
