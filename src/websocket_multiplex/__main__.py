"""The ``websocket-multiplex`` command line.

``demo`` serves the example page; ``connect`` is an interactive client
(:mod:`websocket_multiplex.cli`).
"""

from __future__ import annotations

import argparse
import errno
import logging
import socket
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
    demo.add_argument(
        "--port", type=_port, default=9999, help="0 to 65535; default: %(default)s"
    )
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


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port: give 0 to 65535")
    return port


def _demo(args: argparse.Namespace) -> int:
    from .adapters.aiohttp import DEFAULT_SOCKJS_URL, run_app
    from .demo import demo_app

    try:
        app = demo_app(args.sockjs_url or DEFAULT_SOCKJS_URL)
    except ValueError as exc:  # a --sockjs-url file that cannot be read
        return _failed(f"--sockjs-url: {exc}", 2)
    try:
        run_app(
            app,
            args.host,
            args.port,
            ready=lambda url: print(
                f"websocket-multiplex demo: open {url}", flush=True
            ),
        )
    except OSError as exc:
        return _failed(_listen_failure(args.host, args.port, exc), 1)
    return 0


def _listen_failure(host: str, port: int, exc: OSError) -> str:
    """What to tell a user whose demo could not listen, and what to do."""
    if isinstance(exc, socket.gaierror):
        return (
            f"cannot listen on {host!r}: no such host ({exc.strerror}); "
            "give an address of this machine, e.g. --host 127.0.0.1"
        )
    if exc.errno == errno.EADDRINUSE:
        return (
            f"cannot listen on {host}:{port}: the port is in use (another "
            "demo still running?); pick another one with --port"
        )
    if exc.errno == errno.EADDRNOTAVAIL:
        return (
            f"cannot listen on {host}:{port}: not an address of this machine; "
            "give one with --host, e.g. --host 127.0.0.1"
        )
    if exc.errno == errno.EACCES:
        return (
            f"cannot listen on {host}:{port}: permission denied (ports below "
            "1024 need privileges); pick another one with --port"
        )
    return f"cannot listen on {host}:{port}: {exc.strerror or exc}"


def _failed(message: str, code: int) -> int:
    print(f"websocket-multiplex demo: {message}", file=sys.stderr, flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
