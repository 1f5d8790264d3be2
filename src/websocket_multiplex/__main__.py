"""The ``websocket-multiplex`` command line.

``demo`` serves the example page; ``connect`` is an interactive client
(:mod:`websocket_multiplex.cli`).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from . import cli

if TYPE_CHECKING:
    from aiohttp import web

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="websocket-multiplex",
        description="Many virtual channels over one SockJS or WebSocket connection.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo", help="serve the ann/bob/carl example page and its SockJS endpoint"
    )
    demo.add_argument("--host", default="127.0.0.1", help="default: %(default)s")
    demo.add_argument("--port", type=int, default=9999, help="default: %(default)s")
    demo.add_argument(
        "--sockjs-url",
        help="sockjs-client 1.x for the page and the iframe transports: a URL "
        "or a local file (default: the jsDelivr CDN; when it cannot be loaded "
        "the page uses a native WebSocket instead)",
    )
    cli.add_connect_command(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    if args.command == "demo":
        return _demo(args)
    if args.command == "connect":
        return cli.connect(args)
    return 2  # pragma: no cover - argparse rejects unknown commands


def _demo(args: argparse.Namespace) -> int:
    from .adapters.aiohttp import DEFAULT_SOCKJS_URL
    from .demo import demo_app

    app = demo_app(args.sockjs_url or DEFAULT_SOCKJS_URL)
    asyncio.run(_serve_demo(app, args.host, args.port))
    return 0


async def _serve_demo(app: web.Application, host: str, port: int) -> None:
    """Like ``web.run_app``, but on SIGTERM/SIGINT the channels say goodbye
    before aiohttp stops listening: run_app's shutdown stops listening and
    closes idle keep-alive connections first, and a polling client between
    two polls could no longer fetch its ``err,...,1001 server shutting
    down``."""
    from aiohttp import web

    from .demo import DEMO_SERVER

    runner = web.AppRunner(app, handle_signals=False, handler_cancellation=True)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    print(f"websocket-multiplex demo: open http://{host}:{port}/", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
        # Still listening: a polling client fetches its goodbyes with new
        # requests, on new connections too; new sessions get 503 meanwhile.
        await app[DEMO_SERVER].close()
    finally:
        await runner.cleanup()


if __name__ == "__main__":
    sys.exit(main())
