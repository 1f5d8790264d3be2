"""Redis dies and comes back under the deployment of test_nginx.py.

nginx and two chat workers, as docs/DEPLOYMENT.md runs them, but sharing
rooms through a redis-server of this test's own (tests/fanout/
redis_server.py): the test SIGKILLs it while clients on both workers, over
the SockJS websocket and xhr-polling transports, are in one room, then
starts it again on the same port, empty. The workers are never restarted:
each must notice the loss, keep its clients, answer ``/who`` with an error
meanwhile, reconnect by itself, subscribe its rooms again and register its
members again.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from websocket_multiplex import MultiplexServer
from websocket_multiplex.fanout.redis import RedisBroker

from ..fanout.redis_server import RedisServer
from .chat_clients import (
    Chat,
    WebSocketChat,
    XhrChat,
    ask,
    expect,
    new_room,
    one_per_worker,
)
from .processes import chat_workers, nginx, require_nginx, worker_log

RECOVERY_TIMEOUT = 15.0  # the broker's reconnection delays stay under 5 s each


async def test_rooms_recover_after_redis_restarts_without_restarting_workers(
    tmp_path: Path,
) -> None:
    require_nginx()
    (tmp_path / "redis").mkdir()
    redis = RedisServer(tmp_path / "redis")
    await redis.start()
    try:
        with (
            chat_workers(2, "--redis-url", redis.url, logs=tmp_path) as started,
            nginx(tmp_path / "nginx", [f"127.0.0.1:{p}" for p, _ in started]) as proxy,
        ):
            workers = {pid: f"127.0.0.1:{port}" for port, pid in started}
            async with AsyncExitStack() as stack, asyncio.timeout(60):
                sockets = await one_per_worker(
                    stack, lambda: WebSocketChat.open(proxy), workers
                )
                polling = await one_per_worker(
                    stack, lambda: XhrChat.open(proxy), workers
                )
                chats: list[Chat] = [*sockets, *polling]  # workers 1, 2, 1, 2
                pids = [*workers, *workers]
                room = new_room()
                for chat in chats:
                    await ask(chat, f"/join {room}", "joined")
                await everyone_hears_everyone(chats, "before")

                await redis.kill()
                for chat, pid in zip(chats, pids, strict=True):
                    # /who needs Redis: an error line, and the channel stays.
                    error = await ask(chat, "/who", "error")
                    assert "unavailable" in error["text"], error
                    assert (await ask(chat, "/whoami", "whoami"))["pid"] == pid
                # Said while Redis is down: buffered by each worker (within
                # outage_buffer), and heard by everyone once it is back,
                # whichever worker subscribes again first: what a worker
                # published before the other was back comes to the other
                # from the room's history (a new one: Redis restarted empty).
                during = [f"during: {i}" for i in range(len(chats))]
                for chat, line in zip(chats, during, strict=True):
                    await chat.send(line)

                await redis.start()
                heard: list[list[str]] = [[] for _ in chats]
                await asyncio.gather(
                    *(until_present(c, 4, h) for c, h in zip(chats, heard, strict=True))
                )
                for i, chat in enumerate(chats):
                    while len(heard[i]) < len(chats) - 1:
                        heard[i].append((await expect(chat, "message"))["text"])
                    others = [line for j, line in enumerate(during) if j != i]
                    assert sorted(heard[i]) == others, heard[i]
                await everyone_hears_everyone(chats, "after")
                await publish_from_a_script(redis.url, room, "from a script")
                for chat in chats:
                    assert (await expect(chat, "message"))["text"] == "from a script"

                # The same sessions on the same worker processes, throughout.
                for chat, pid in zip(chats, pids, strict=True):
                    assert (await ask(chat, "/whoami", "whoami"))["pid"] == pid
                for chat in polling:
                    assert chat.carrier.opens == 1
        for port, _ in started:
            log = (tmp_path / worker_log(port)).read_text()
            assert f"redis unreachable at {redis.url}, retrying in" in log, log
            assert f"redis reachable again at {redis.url}" in log, log
    finally:
        await redis.kill()


async def everyone_hears_everyone(chats: Sequence[Chat], tag: str) -> None:
    """Each chat says a line in turn; every other chat must get it next.

    The sender is excluded: had a sender got its own line back, it would
    have arrived before the next sender's line, and ``expect`` would see it.
    """
    for i, sender in enumerate(chats):
        line = f"{tag}: {i}"
        await sender.send(line)
        for other in chats:
            if other is not sender:
                assert (await expect(other, "message"))["text"] == line


async def until_present(chat: Chat, count: int, heard: list[str]) -> None:
    """Ask ``/who`` until it counts ``count`` members.

    Each worker answers once it has reconnected (before, an error): the
    count it gives includes the other worker's members once that one has
    subscribed again and registered them, so ``count`` from every chat
    means both workers are back. There is nothing to await from here but
    the answers: ask again, a bounded number of times. Room messages that
    come meanwhile go to ``heard``.
    """
    answers: list[dict[str, Any]] = []
    deadline = time.monotonic() + RECOVERY_TIMEOUT
    while time.monotonic() < deadline:
        await chat.send("/who")
        answer: dict[str, Any] = json.loads(await chat.receive(timeout=5))
        while answer["type"] == "message":
            heard.append(answer["text"])
            answer = json.loads(await chat.receive(timeout=5))
        answers.append(answer)
        if answer["type"] == "presence" and answer["count"] == count:
            return
        assert answer["type"] in {"presence", "error"}, answer
        await asyncio.sleep(0.05)
    raise AssertionError(f"no recovery in {RECOVERY_TIMEOUT} s: {answers[-3:]}")


async def publish_from_a_script(redis_url: str, room: str, text: str) -> None:
    """What docs/DEPLOYMENT.md shows: publish from a process with no clients."""
    message = {"type": "message", "room": room, "from": "script", "text": text}
    server = MultiplexServer(broker=RedisBroker(redis_url, outage_buffer=0))
    try:
        await server.publish(room, json.dumps(message))
    finally:
        await server.close()
