"""Clients of the chat example's ``chat`` service, for the deployment tests.

The chat answers each line with a JSON object (examples/chat/app.py);
these clients speak it over the SockJS websocket transport (our Python
client) and over xhr-polling (frame by frame, every poll and send its own
HTTP request).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any, Protocol, TypeVar

from websocket_multiplex import ClientChannel, MultiplexClient
from websocket_multiplex.client import connect

from ..adapters.carriers import SockJSXhrPollingCarrier

Workers = dict[int, str]  # pid -> "127.0.0.1:port"


class Chat(Protocol):
    async def send(self, line: str) -> None: ...

    async def receive(self, timeout: float | None = None) -> str: ...

    async def close(self) -> None: ...


C = TypeVar("C", bound=Chat)


async def expect(chat: Chat, kind: str) -> dict[str, Any]:
    """The next message on ``chat``, which must be of type ``kind``."""
    event: dict[str, Any] = json.loads(await chat.receive(timeout=5))
    assert event["type"] == kind, event
    return event


async def ask(chat: Chat, line: str, kind: str) -> dict[str, Any]:
    await chat.send(line)
    return await expect(chat, kind)


class CountingXhr(SockJSXhrPollingCarrier):
    """xhr-polling that counts its requests and the sessions it was given."""

    polls = sends = opens = 0

    async def _poll(self) -> None:
        self.polls += 1
        opened, self.frames.opened = self.frames.opened, False
        await super()._poll()
        self.opens += self.frames.opened  # a second "o": a new session
        self.frames.opened |= opened

    async def send(self, text: str) -> None:
        self.sends += 1
        await super().send(text)


class XhrChat:
    """A ``chat`` channel spoken frame by frame over SockJS xhr-polling.

    It polls only while ``receive`` waits: a session left without a poll
    for the server's ``disconnect_delay`` (5 s) is closed.
    """

    def __init__(self, carrier: CountingXhr) -> None:
        self.carrier = carrier

    @classmethod
    async def open(cls, base: str) -> XhrChat:
        carrier = await CountingXhr.connect(f"{base}/multiplex")
        assert isinstance(carrier, CountingXhr)
        await carrier.send("sub,chat")
        return cls(carrier)

    async def send(self, line: str) -> None:
        await self.carrier.send(f"msg,chat,{line}")

    async def receive(self, timeout: float | None = None) -> str:
        async with asyncio.timeout(timeout):
            frame = await self.carrier.receive()
        assert frame is not None and frame.startswith("msg,chat,"), frame
        return frame.removeprefix("msg,chat,")

    async def close(self) -> None:
        await self.carrier.close()


class WebSocketChat:
    """A ``chat`` channel of our Python client (SockJS websocket transport)."""

    def __init__(self, client: MultiplexClient, channel: ClientChannel) -> None:
        self.client = client
        self.channel = channel

    @classmethod
    async def open(cls, base: str) -> WebSocketChat:
        client = await connect(f"{base}/multiplex", reconnect=False)
        return cls(client, await client.channel("chat"))

    async def send(self, line: str) -> None:
        await self.channel.send(line)

    async def receive(self, timeout: float | None = None) -> str:
        return await self.channel.receive(timeout=timeout)

    async def close(self) -> None:
        await self.client.close()


async def opened(stack: AsyncExitStack, chat: Awaitable[C]) -> C:
    """``chat``, once open; closed when ``stack`` unwinds."""
    ready = await chat
    stack.push_async_callback(ready.close)
    return ready


async def one_per_worker(
    stack: AsyncExitStack, open_chat: Callable[[], Awaitable[C]], workers: Workers
) -> list[C]:
    """Open chats until one landed on each worker (in ``workers`` order).

    nginx hashes the random SockJS server id, so each new session lands
    on either worker; 20 attempts all landing on one is a 1-in-500,000
    event with an even split.
    """
    found: dict[int, C] = {}
    for _ in range(20):
        chat = await opened(stack, open_chat())
        pid = (await ask(chat, "/whoami", "whoami"))["pid"]
        found.setdefault(pid, chat)
        if len(found) == len(workers):
            return [found[pid] for pid in workers]
    raise AssertionError(f"20 sessions, all on worker(s) {list(found)}")


def new_room() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"  # Redis may be shared with other runs
