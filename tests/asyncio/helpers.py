"""Shared by the asyncio-layer tests: bounded waits on a memory client."""

from __future__ import annotations

import asyncio
from typing import Any, TypeVar

from websocket_multiplex.testing import MemoryClient

TIMEOUT = 5.0
T = TypeVar("T")


async def frames(client: MemoryClient, count: int) -> list[str | None]:
    """The next ``count`` messages the server sent (``None``: carrier closed)."""
    async with asyncio.timeout(TIMEOUT):
        return [await client.receive() for _ in range(count)]


async def frame(client: MemoryClient) -> str | None:
    (received,) = await frames(client, 1)
    return received


async def item(queue: asyncio.Queue[T]) -> T:
    async with asyncio.timeout(TIMEOUT):
        return await queue.get()


async def settle() -> None:
    """Let every ready task run a few steps: a bounded yield, never a timer."""
    for _ in range(20):
        await asyncio.sleep(0)


def nothing_sent(client: MemoryClient) -> bool:
    return client.transport.to_client.empty()


def drain(client: MemoryClient) -> list[Any]:
    """Every message already sent and not yet read."""
    queue = client.transport.to_client
    return [queue.get_nowait() for _ in range(queue.qsize())]
