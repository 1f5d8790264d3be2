"""uvicorn as adapters.uvicorn runs it: what SockJS needs of the server.

Raw HTTP over a socket, so that nothing between the test and uvicorn
rewrites what is sent: a POST asking for an upgrade, an HTTP/1.0 client.
"""

from __future__ import annotations

import asyncio
import socket

import aiohttp

from websocket_multiplex import Limits, SockJSConnection
from websocket_multiplex.adapters import uvicorn as sockjs_uvicorn
from websocket_multiplex.adapters.asgi import SockJSASGI

from ..support.net import free_port
from .drivers import serving

TIMEOUT = 5.0


async def close_at_once(connection: SockJSConnection) -> None:
    await connection.close(3000, "Go away!")


async def exchange(port: int, request: bytes) -> tuple[bytes, bool]:
    """Send ``request``; return all the server sent, and whether it then
    closed the connection (rather than waiting)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    received = b""
    closed = True
    try:
        async with asyncio.timeout(2.0):
            while chunk := await reader.read(65536):
                received += chunk
    except TimeoutError:
        closed = False
    writer.close()
    return received, closed


def port_of(url: str) -> int:
    return int(url.split(":")[2].split("/")[0])


async def test_a_post_asking_for_an_upgrade_gets_sockjs_405() -> None:
    """uvicorn alone gives such a request to its WebSocket library (400, or
    405 with a body); SockJS answers 405 with Allow and nothing else."""
    async with serving("uvicorn", close_at_once, prefix="/close") as served:
        request = (
            b"POST /close/0/0/websocket HTTP/1.1\r\nHost: x\r\n"
            b"Upgrade: WebSocket\r\nConnection: Upgrade\r\nContent-Length: 0\r\n\r\n"
        )
        received, _ = await exchange(port_of(served.url), request)
    head, body = received.split(b"\r\n\r\n", 1)
    status, *lines = head.lower().split(b"\r\n")
    names = {line.split(b":")[0] for line in lines}
    assert status.startswith(b"http/1.1 405")
    assert b"allow: get" in lines
    assert b"content-type" not in names
    assert body == b""


async def test_an_http_1_0_client_gets_a_stream_it_can_read() -> None:
    """No chunks for HTTP/1.0: the stream ends when the connection closes."""
    async with serving("uvicorn", close_at_once, prefix="/close") as served:
        request = (
            b"POST /close/000/abcdef/xhr_streaming HTTP/1.0\r\n"
            b"Connection: Keep-Alive\r\nContent-Length: 0\r\n\r\n"
        )
        received, closed = await exchange(port_of(served.url), request)
    head, body = received.split(b"\r\n\r\n", 1)
    names = {line.split(b":")[0] for line in head.lower().split(b"\r\n")[1:]}
    assert not names & {b"transfer-encoding", b"content-length"}
    assert body == b"h" * 2048 + b'\no\nc[3000,"Go away!"]\n'
    assert closed


def test_config_takes_the_limits_and_declines_deflate() -> None:
    app = SockJSASGI(close_at_once, limits=Limits(max_message_size=12345))
    config = sockjs_uvicorn.config(app, port=0)
    assert config.ws_max_size == 12345
    assert config.ws_per_message_deflate is False
    assert config.http is sockjs_uvicorn.H11Protocol
    assert sockjs_uvicorn.config(app, ws_max_size=99).ws_max_size == 99


async def test_a_shutdown_says_goodbye_to_held_requests_first() -> None:
    """uvicorn alone would stop listening, then wait for every request to
    end (a held stream never does) before the lifespan's shutdown: forever,
    and no goodbye. The adapter's Server closes the application first."""

    async def echo(connection: SockJSConnection) -> None:
        async for message in connection:
            await connection.send(message)

    app = SockJSASGI(echo, prefix="/echo")
    server = sockjs_uvicorn.server(app, log_config=None, log_level="warning")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    serving = asyncio.create_task(server.serve(sockets=[listener]))
    async with asyncio.timeout(TIMEOUT):
        while not server.started:
            await asyncio.sleep(0.01)
    port = listener.getsockname()[1]
    async with aiohttp.ClientSession() as http:
        stream = await http.post(
            f"http://127.0.0.1:{port}/echo/000/abcdef/xhr_streaming"
        )
        async with asyncio.timeout(TIMEOUT):
            assert (await stream.content.readline()).startswith(b"hhhh")
            assert await stream.content.readline() == b"o\n"
        server.should_exit = True
        async with asyncio.timeout(TIMEOUT):
            assert (
                await stream.content.readline() == b'c[3000,"server shutting down"]\n'
            )
            assert await stream.content.readline() == b""  # the stream ended
            await serving
    listener.close()


async def test_ready_gets_the_url_and_the_access_log_is_off() -> None:
    """``ready`` as ``run_app``'s; and no access log unless asked for: one
    line per request is a log volume any client chooses (tests/test_examples.py
    reads a real process's log)."""
    listening: asyncio.Queue[str] = asyncio.Queue()
    app = SockJSASGI(close_at_once, prefix="/x")
    server = sockjs_uvicorn.server(
        app, port=free_port(), ready=listening.put_nowait, log_config=None
    )
    assert server.config.access_log is False
    assert sockjs_uvicorn.config(app, access_log=True).access_log is True
    serving = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(TIMEOUT):
            url = await listening.get()
        assert url == f"http://127.0.0.1:{server.config.port}/"
        async with aiohttp.ClientSession() as http, http.get(f"{url}x/info") as got:
            assert got.status == 200
    finally:
        server.should_exit = True
        async with asyncio.timeout(TIMEOUT):
            await serving
