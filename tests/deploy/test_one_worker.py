"""The chat example on one worker with no Redis (no ``--redis-url``): the
first setup of docs/DEPLOYMENT.md, where rooms live in the worker's memory.

Clients connect to the worker directly, over the SockJS websocket transport
and over xhr-polling.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import AsyncExitStack

import aiohttp
import pytest

from .chat_clients import WebSocketChat, XhrChat, ask, expect, new_room, opened
from .processes import chat_workers


@pytest.fixture(scope="module")
def worker() -> Iterator[tuple[str, int]]:
    """The worker's base URL and pid."""
    with chat_workers(1) as [(port, pid)]:
        yield f"http://127.0.0.1:{port}", pid


async def test_a_room_on_one_worker_without_redis(worker: tuple[str, int]) -> None:
    base, pid = worker
    async with AsyncExitStack() as stack, asyncio.timeout(20):
        ann = await opened(stack, WebSocketChat.open(base))
        bob = await opened(stack, XhrChat.open(base))
        eve = await opened(stack, WebSocketChat.open(base))  # in another room
        room, elsewhere = new_room(), new_room()
        assert (await ask(ann, "/whoami", "whoami"))["pid"] == pid
        assert (await ask(ann, "/nick ann", "nick"))["nick"] == "ann"
        for chat, joined in ((ann, room), (bob, room), (eve, elsewhere)):
            assert (await ask(chat, f"/join {joined}", "joined"))["room"] == joined
        for chat in (ann, bob):
            assert (await ask(chat, "/who", "presence"))["count"] == 2
        assert (await ask(eve, "/who", "presence"))["count"] == 1

        await ann.send("hello from ann")
        message = await expect(bob, "message")
        assert message == {
            "type": "message",
            "room": room,
            "from": "ann",
            "text": "hello from ann",
        }
        await bob.send("hello from bob")
        assert (await expect(ann, "message"))["text"] == "hello from bob"
        # In memory, a publish is delivered before publish returns: a line
        # sent back to its sender, or one reaching the other room, would
        # come before these answers.
        for chat in (ann, bob, eve):
            assert (await ask(chat, "/whoami", "whoami"))["pid"] == pid

        assert (await ask(ann, "/leave", "left"))["room"] == room
        assert (await ask(bob, "/who", "presence"))["count"] == 1
        await bob.send("anyone?")
        assert (await ask(ann, "/whoami", "whoami"))["pid"] == pid


async def test_the_page_and_its_client_are_served(worker: tuple[str, int]) -> None:
    base, _ = worker
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base}/") as page:
            assert page.status == 200
            assert "<title>websocket-multiplex chat</title>" in await page.text()
        async with http.get(f"{base}/websocket-multiplex/websocket-multiplex.js") as js:
            assert js.status == 200
            assert "WebSocketMultiplex" in await js.text()
