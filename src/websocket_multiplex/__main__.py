"""The ``websocket-multiplex`` command line.

``demo`` serves the example page; ``connect`` is an interactive client
(:mod:`websocket_multiplex.cli`).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from . import cli

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
    from .adapters.aiohttp import DEFAULT_SOCKJS_URL, run_app
    from .demo import demo_app

    app = demo_app(args.sockjs_url or DEFAULT_SOCKJS_URL)
    run_app(
        app,
        args.host,
        args.port,
        ready=lambda url: print(f"websocket-multiplex demo: open {url}", flush=True),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
