"""A service that streams numbered messages and records what it is sent,
for the tests that cut connections under it (tests/client/test_resume.py,
tests/browser/test_resume.py)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from websocket_multiplex import Channel, CloseReason, Limits, MultiplexServer

__all__ = ["PAD", "Stream", "streaming_server"]

PAD = "x" * 40
"""After each number: a cut then falls anywhere in a frame, not only between."""


@dataclass
class Stream:
    """What one server handler saw of its channel."""

    received: list[int] = field(default_factory=list)
    close_reason: CloseReason | None = None
    complete: asyncio.Event = field(default_factory=asyncio.Event)  # all came
    done: asyncio.Event = field(default_factory=asyncio.Event)  # handler ended


def streaming_server(
    count: int, limits: Limits | None = None
) -> tuple[MultiplexServer, dict[str, Stream]]:
    """``stream`` sends ``count`` numbered messages and records what comes."""
    server = MultiplexServer(limits=limits or Limits())
    streams: dict[str, Stream] = {}

    @server.channel("stream")
    async def stream(channel: Channel) -> None:
        seen = streams[channel.topic] = Stream()

        async def send() -> None:
            for n in range(1, count + 1):
                await channel.send(f"{n} {PAD}")

        sender = asyncio.create_task(send())
        try:
            async for data in channel:
                seen.received.append(int(data.split(" ", 1)[0]))
                if len(seen.received) == count:
                    seen.complete.set()
        finally:
            seen.close_reason = channel.close_reason
            sender.cancel()
            seen.done.set()

    return server, streams
