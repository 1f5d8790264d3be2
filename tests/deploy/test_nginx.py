"""Two chat workers behind a real nginx (deploy/nginx.conf), sharing rooms
through Redis: what docs/DEPLOYMENT.md tells people to run.

Clients reach the workers only through nginx. Each asks ``/whoami`` to
learn which worker it landed on; the tests open clients until both workers
are covered, then check that rooms span workers, on every transport, and
that every request of a SockJS session reaches the same worker.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import pytest
from playwright.async_api import Page

from websocket_multiplex import ChannelGap, GroupGap, MultiplexServer
from websocket_multiplex.asyncio.client import ClientChannel
from websocket_multiplex.client import connect
from websocket_multiplex.fanout.redis import RedisBroker

from ..client.support import FAST
from ..support.chromium import CHROMIUM, launch
from ..support.proxy import Proxy
from .chat_clients import (
    WebSocketChat,
    Workers,
    XhrChat,
    ask,
    expect,
    new_room,
    one_per_worker,
)
from .processes import (
    SOCKJS_CLIENT,
    chat_workers,
    nginx,
    require_nginx,
    require_redis,
    unavailable,
)


@pytest.fixture(scope="module")
def workers() -> Iterator[Workers]:
    require_nginx()
    args = ["--redis-url", require_redis()]
    if SOCKJS_CLIENT.is_file():
        args += ["--sockjs-url", str(SOCKJS_CLIENT)]
    with chat_workers(2, *args) as started:
        yield {pid: f"127.0.0.1:{port}" for port, pid in started}


@pytest.fixture(scope="module")
def proxy(workers: Workers, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with nginx(tmp_path_factory.mktemp("nginx"), list(workers.values())) as url:
        yield url


def cutter_url(proxy: str, cutter: Proxy) -> str:
    """The SockJS endpoint of nginx at ``proxy``, through ``cutter``."""
    port = urlsplit(proxy).port
    return f"{proxy.replace(f':{port}', f':{cutter.port}')}/multiplex"


@pytest.fixture
async def stack() -> AsyncIterator[AsyncExitStack]:
    async with AsyncExitStack() as stack:
        yield stack


# -- tests -----------------------------------------------------------------------


async def test_websocket_clients_on_two_workers_share_a_room(
    proxy: str, workers: Workers, stack: AsyncExitStack
) -> None:
    async with asyncio.timeout(20):
        a, b = await one_per_worker(stack, lambda: WebSocketChat.open(proxy), workers)
        room = new_room()
        for chat in (a, b):
            assert (await ask(chat, f"/join {room}", "joined"))["room"] == room
        for chat in (a, b):  # presence spans the workers
            assert (await ask(chat, "/who", "presence"))["count"] == 2
        await a.send("hello from A")
        assert (await expect(b, "message"))["text"] == "hello from A"
        await b.send("hello from B")
        assert (await expect(a, "message"))["text"] == "hello from B"
        # The sender is excluded: what A gets next is the answer to its
        # question, not its own line back.
        assert (await ask(a, "/whoami", "whoami"))["pid"] == next(iter(workers))


async def test_a_dropped_connection_resumes_on_the_worker_that_holds_it(
    proxy: str, workers: Workers
) -> None:
    """nginx hashes the SockJS server id, which our client keeps for all its
    connections: each resume reaches the worker holding the session, so the
    chat handler goes on (its nick and room kept) with nothing lost. Hashed
    on the session id, as before, each resume would land on either worker:
    six in a row on the right one is a 1-in-64 chance."""
    port = urlsplit(proxy).port
    assert port is not None
    async with asyncio.timeout(30), Proxy(port) as cutter:
        client = await connect(cutter_url(proxy, cutter), reconnect=FAST)
        chat = WebSocketChat(client, await client.channel("chat"))
        try:
            pid = (await ask(chat, "/whoami", "whoami"))["pid"]
            room = new_room()
            await ask(chat, f"/join {room}", "joined")
            for n in range(1, 7):
                cutter.abort()  # a reset: no close frame, nginx then drops it
                # Sent into a dead connection or while resuming: kept, resent.
                assert (await ask(chat, "/whoami", "whoami"))["pid"] == pid
                assert (await ask(chat, "/who", "presence"))["room"] == room
                assert client.resumptions == n
        finally:
            await client.close()


async def test_a_client_whose_worker_dies_mid_stream_misses_no_publish(
    tmp_path: Path,
) -> None:
    """The worker holding a client's session is killed while a script
    publishes to the client's room: the client lands on the other worker
    through nginx (a new session: the old one died with its worker),
    joins the room again, and gets from the room's history in Redis
    every publish it missed, then the live ones: each once, in order."""
    redis_url = require_redis()
    count = 300
    with (
        chat_workers(2, "--redis-url", redis_url, logs=tmp_path) as started,
        nginx(tmp_path / "nginx", [f"127.0.0.1:{p}" for p, _ in started]) as url,
    ):
        client = await connect(f"{url}/multiplex", reconnect=FAST)
        channel = await client.channel("chat", report_gaps=True)
        chat = WebSocketChat(client, channel)
        publisher = MultiplexServer(broker=RedisBroker(redis_url))
        try:
            async with asyncio.timeout(60):
                pid = (await ask(chat, "/whoami", "whoami"))["pid"]
                room = new_room()
                await ask(chat, f"/join {room}", "joined")
                # At a pace that outlasts the client's move to the other worker.
                streaming = asyncio.create_task(
                    publish_numbers(publisher, room, 1, count, pace=0.005)
                )
                got: list[int] = []
                while len(got) < count:
                    try:
                        event = json.loads(await channel.receive())
                    except ChannelGap:  # on the other worker, a new handler
                        await channel.send(f"/join {room}")
                        continue
                    if event["type"] == "message":
                        got.append(int(event["text"]))
                    if len(got) == count // 4:
                        os.kill(pid, signal.SIGKILL)
                await streaming
                assert (await ask(chat, "/whoami", "whoami"))["pid"] != pid
        finally:
            await publisher.close()
            await client.close()
    assert got == list(range(1, count + 1))
    assert channel.gaps == 1 and channel.group_gaps == 0


async def test_a_client_whose_worker_dies_past_the_room_s_history_gets_a_gap(
    tmp_path: Path,
) -> None:
    """The same with rooms that keep 5 messages, and 20 published while
    the client cannot reconnect: it learns that it lost some (a GroupGap),
    then gets the 5 the room kept, then the live ones."""
    redis_url = require_redis()
    args = ["--redis-url", redis_url, "--history-size", "5"]
    with (
        chat_workers(2, *args, logs=tmp_path) as started,
        nginx(tmp_path / "nginx", [f"127.0.0.1:{p}" for p, _ in started]) as url,
    ):
        port = urlsplit(url).port
        assert port is not None
        # The publisher trims the streams: every process the same size.
        publisher = MultiplexServer(broker=RedisBroker(redis_url, history_size=5))
        async with Proxy(port) as cutter:
            client = await connect(cutter_url(url, cutter), reconnect=FAST)
            channel = await client.channel("chat", report_gaps=True)
            chat = WebSocketChat(client, channel)
            try:
                async with asyncio.timeout(60):
                    pid = (await ask(chat, "/whoami", "whoami"))["pid"]
                    room = new_room()
                    await ask(chat, f"/join {room}", "joined")
                    await publish_numbers(publisher, room, 1, 3)
                    assert await numbers_in(channel, room, 3) == [1, 2, 3]
                    cutter.cut()  # and hold the client off meanwhile
                    os.kill(pid, signal.SIGKILL)
                    await publish_numbers(publisher, room, 4, 23)
                    cutter.restore()
                    with pytest.raises(ChannelGap) as gap:
                        await channel.receive(5)
                    assert type(gap.value) is ChannelGap  # its session died
                    await channel.send(f"/join {room}")
                    with pytest.raises(GroupGap):
                        await channel.receive(5)
                    assert await numbers_in(channel, room, 5) == list(range(19, 24))
                    await publish_numbers(publisher, room, 24, 24)
                    assert await numbers_in(channel, room, 1) == [24]
                    assert (await ask(chat, "/whoami", "whoami"))["pid"] != pid
            finally:
                await publisher.close()
                await client.close()


async def numbers_in(channel: ClientChannel, room: str, count: int) -> list[int]:
    """The next ``count`` numbers the script published to ``room``."""
    got = []
    while len(got) < count:
        event = json.loads(await channel.receive(5))
        if event["type"] == "message" and event["room"] == room:
            got.append(int(event["text"]))
    return got


async def publish_numbers(
    publisher: MultiplexServer, room: str, first: int, last: int, pace: float = 0.0
) -> None:
    """What a script publishing to a room does, a ``pace`` (seconds) apart."""
    for n in range(first, last + 1):
        message = {"type": "message", "room": room, "from": "script", "text": str(n)}
        await publisher.publish(room, json.dumps(message))
        if pace:
            await asyncio.sleep(pace)


async def test_xhr_polling_sessions_stay_on_their_worker(
    proxy: str, workers: Workers, stack: AsyncExitStack
) -> None:
    # Every poll and every send is its own HTTP request; the session lives
    # in one worker's memory, so a request that reached the other worker
    # would be answered 404 (xhr_send) or open a new session (xhr).
    async with asyncio.timeout(25):
        a, b = await one_per_worker(stack, lambda: XhrChat.open(proxy), workers)
        room = new_room()
        for chat in (a, b):
            await ask(chat, f"/join {room}", "joined")
        for i in range(20):
            await a.send(f"a{i}")
            assert (await expect(b, "message"))["text"] == f"a{i}"
            await b.send(f"b{i}")
            assert (await expect(a, "message"))["text"] == f"b{i}"
            if i % 5 == 4:
                for chat, pid in zip((a, b), workers, strict=True):
                    assert (await ask(chat, "/whoami", "whoami"))["pid"] == pid
        for chat in (a, b):  # each poll and send an HTTP request through nginx
            assert chat.carrier.opens == 1
            assert chat.carrier.polls >= 25 and chat.carrier.sends >= 25


async def test_xhr_polling_and_websocket_meet_across_workers(
    proxy: str, workers: Workers, stack: AsyncExitStack
) -> None:
    async with asyncio.timeout(20):
        polling, _ = await one_per_worker(stack, lambda: XhrChat.open(proxy), workers)
        _, socket = await one_per_worker(
            stack, lambda: WebSocketChat.open(proxy), workers
        )
        room = new_room()
        for chat in (polling, socket):
            await ask(chat, f"/join {room}", "joined")
        await polling.send("from polling")
        assert (await expect(socket, "message"))["text"] == "from polling"
        await socket.send("from websocket")
        assert (await expect(polling, "message"))["text"] == "from websocket"


async def test_xhr_streaming_frames_arrive_while_the_response_is_open(
    proxy: str,
) -> None:
    # xhr-streaming holds one response open and writes each frame into it;
    # every frame must reach the client at once, not when the response ends.
    # (nginx 1.22 passes small chunks on promptly even with proxy_buffering
    # on; the template turns it off all the same, as streams never need it.)
    session = f"{proxy}/multiplex/000/{uuid.uuid4().hex[:8]}"
    async with aiohttp.ClientSession() as http, asyncio.timeout(10):
        async with http.post(f"{session}/xhr_streaming") as stream:
            assert (await stream.content.readline()).strip(b"h") == b"\n"  # prelude
            assert await stream.content.readline() == b"o\n"
            for frame in ("sub,chat", "msg,chat,/whoami"):
                async with http.post(
                    f"{session}/xhr_send", data=json.dumps([frame])
                ) as sent:
                    assert sent.status == 204
            line = await stream.content.readline()
        [frame] = json.loads(line.removeprefix(b"a"))
        assert json.loads(frame.removeprefix("msg,chat,"))["type"] == "whoami"


async def test_without_the_hash_polling_sessions_break(
    workers: Workers, tmp_path: Path
) -> None:
    # The control: the same configuration without sticky sessions (round
    # robin) sends the session's second request to the other worker.
    statuses = []
    with nginx(tmp_path, list(workers.values()), sticky=False) as base:
        session = f"{base}/multiplex/000/{uuid.uuid4().hex[:8]}"
        async with aiohttp.ClientSession() as http, asyncio.timeout(10):
            async with http.post(f"{session}/xhr") as opened:
                assert await opened.text() == "o\n"
            for _ in range(4):
                async with http.post(
                    f"{session}/xhr_send", data=json.dumps(["sub,chat"])
                ) as sent:
                    statuses.append(sent.status)
    assert 404 in statuses, statuses


async def test_the_chat_page_through_nginx(proxy: str, workers: Workers) -> None:
    # Two browser pages on different workers, in one room.
    from playwright.async_api import async_playwright

    if not Path(CHROMIUM).is_file():
        unavailable(f"no Chromium at {CHROMIUM}: apt-get install chromium")
    room = new_room()
    async with async_playwright() as playwright, asyncio.timeout(30):
        browser = await launch(playwright)
        try:
            pages: dict[int, Page] = {}
            for _ in range(12):
                page = await browser.new_page()
                await page.route("https://cdn.jsdelivr.net/**", lambda r: r.abort())
                pid = await open_chat_page(page, proxy, room)
                if pid in pages:  # the way a tab closes: unload included
                    await page.close(run_before_unload=True)
                else:
                    pages[pid] = page
                if len(pages) == 2:
                    break
            assert len(pages) == 2, "12 pages, all on one worker"
            first, second = (pages[pid] for pid in workers)
            await second.wait_for_function(
                f"document.getElementById('presence').textContent === '2 in {room}'"
            )
            await first.fill("#line", "hello from the first page")
            await first.press("#line", "Enter")
            await second.wait_for_function(
                "document.getElementById('log').textContent"
                ".includes(': hello from the first page')"
            )
            if SOCKJS_CLIENT.is_file():
                assert "SockJS" in await first.inner_text("#status")
        finally:
            await browser.close()


async def open_chat_page(page: Page, proxy: str, room: str) -> int:
    """Load the page, join ``room``; the pid of the worker serving it."""
    await page.goto(f"{proxy}/")
    served = page.locator("#log .system", has_text="served by worker")
    text = await served.inner_text()
    await page.fill("#room", room)
    await page.click("#join button")
    await page.locator("#log", has_text=f"joined {room}").wait_for()
    match = re.search(r"pid (\d+)", text)
    assert match is not None, text
    return int(match[1])
