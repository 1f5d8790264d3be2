"""What the Python benchmark servers share: services, the ready line, stdin.

Every server of benchmarks/run.py, Python or node, behaves the same way:

* it listens on 127.0.0.1 on a free port and prints one JSON line,
  ``{"ready": true, "port": P, "pid": N, "versions": {...}}``;
* for each ``gc`` line on stdin it runs a full garbage collection and
  answers ``{"gc": true}`` (so that memory readings do not count garbage);
* EOF on stdin ends it: a runner that dies leaves no server behind.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import sys
from importlib import metadata
from typing import Any

from websocket_multiplex import Channel, ChannelHandler, MultiplexServer

SERVICES = 10
"""Services echo0 .. echo9, each echoing every message on its channel."""


def echo_server() -> MultiplexServer:
    """A multiplexer whose services echo0 .. echo9 send every message back."""
    server = MultiplexServer()

    async def echo(channel: Channel) -> None:
        async for data in channel:
            await channel.send(data)

    for k in range(SERVICES):
        server.register(f"echo{k}", echo)
    return server


class Echo(ChannelHandler):
    """The same echo as a task-free service: plain callbacks, no task."""

    def on_message(self, data: str) -> None:
        self.channel.send_nowait(data)


def callback_echo_server() -> MultiplexServer:
    """echo0 .. echo9 as task-free ChannelHandler services."""
    server = MultiplexServer()
    for k in range(SERVICES):
        server.register(f"echo{k}", Echo)
    return server


def versions(*distributions: str) -> dict[str, str]:
    """The Python version and those of ``distributions``."""
    found = {"python": sys.version.split()[0]}
    for name in distributions:
        found[name] = metadata.version(name)
    return found


def announce(port: int, **extra: Any) -> None:
    """Print the ready line the runner waits for."""
    line = {"ready": True, "port": port, "pid": os.getpid(), **extra}
    print(json.dumps(line), flush=True)


async def serve_commands() -> None:
    """Answer ``gc`` lines from stdin until it ends."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), sys.stdin
    )
    while line := await reader.readline():
        if line.strip() == b"gc":
            gc.collect()
            print(json.dumps({"gc": True}), flush=True)
