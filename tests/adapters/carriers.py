"""Client ends of real carriers, for the conformance check over sockets.

Each speaks one transport exactly as a browser would, with aiohttp's client:
the raw WebSocket, SockJS over WebSocket, and SockJS xhr-polling.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import deque

import aiohttp

from websocket_multiplex.sockjs.frames import (
    OPEN,
    encode_client_message,
    parse_server_frame,
)


class RawWebSocketCarrier:
    def __init__(
        self, session: aiohttp.ClientSession, ws: aiohttp.ClientWebSocketResponse
    ):
        self._session = session
        self.ws = ws

    @classmethod
    async def connect(cls, url: str, **kwargs: object) -> RawWebSocketCarrier:
        session = aiohttp.ClientSession()
        return cls(session, await session.ws_connect(url, **kwargs))  # type: ignore[arg-type]

    async def send(self, text: str) -> None:
        await self.ws.send_str(text)

    async def receive(self) -> str | None:
        message = await self.ws.receive()
        return message.data if message.type is aiohttp.WSMsgType.TEXT else None

    async def close(self) -> None:
        await self.ws.close()
        await self._session.close()


class _SockJSFrames:
    """Unpacks SockJS frames (o, h, a[...], c[...]) into messages."""

    def __init__(self) -> None:
        self.messages: deque[str | None] = deque()
        self.opened = False
        self.close_frame: list[object] | None = None

    def feed(self, text: str) -> None:
        frame = parse_server_frame(text)
        if frame.kind == OPEN:
            self.opened = True
        elif frame.kind == "a":
            self.messages.extend(frame.messages)
        elif frame.kind == "c":
            self.close_frame = [frame.code, frame.reason]
            self.messages.append(None)


class SockJSWebSocketCarrier:
    def __init__(
        self, session: aiohttp.ClientSession, ws: aiohttp.ClientWebSocketResponse
    ):
        self._session = session
        self.ws = ws
        self.frames = _SockJSFrames()

    @classmethod
    async def connect(cls, base_url: str) -> SockJSWebSocketCarrier:
        session = aiohttp.ClientSession()
        url = f"{base_url}/000/{uuid.uuid4().hex[:8]}/websocket"
        carrier = cls(session, await session.ws_connect(url))
        assert await carrier.ws.receive_str() == "o"
        return carrier

    async def send(self, text: str) -> None:
        await self.ws.send_str(encode_client_message([text]))

    async def receive(self) -> str | None:
        while not self.frames.messages:
            message = await self.ws.receive()
            if message.type is not aiohttp.WSMsgType.TEXT:
                return None
            self.frames.feed(message.data)
        return self.frames.messages.popleft()

    async def close(self) -> None:
        await self.ws.close()
        await self._session.close()


class SockJSXhrPollingCarrier:
    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self._session = session
        self.url = url
        self.frames = _SockJSFrames()

    @classmethod
    async def connect(cls, base_url: str) -> SockJSXhrPollingCarrier:
        session = aiohttp.ClientSession()
        # A random server id, as sockjs-client draws one: nginx routes on it.
        server_id = f"{random.randrange(1000):03d}"
        carrier = cls(session, f"{base_url}/{server_id}/{uuid.uuid4().hex[:8]}")
        await carrier._poll()
        assert carrier.frames.opened
        return carrier

    async def _poll(self) -> None:
        async with self._session.post(f"{self.url}/xhr") as response:
            assert response.status == 200, response.status
            for line in (await response.text()).splitlines():
                self.frames.feed(line)

    async def send(self, text: str) -> None:
        async with self._session.post(
            f"{self.url}/xhr_send", data=encode_client_message([text])
        ) as response:
            assert response.status == 204, response.status

    async def receive(self) -> str | None:
        while not self.frames.messages:
            await self._poll()
        return self.frames.messages.popleft()

    async def close(self) -> None:
        await self._session.close()


async def wait_until(predicate, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    """Await a condition the server reaches asynchronously, bounded in time."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)
