"""Plain SockJS (no multiplexing) on both drivers, over real sockets.

A handler ``async def handler(connection)`` runs once per session; these
tests check what its user relies on: messages both ways on the WebSocket
and the HTTP transports, the opening request's data, the close when the
handler returns or fails, and the backpressure when it falls behind.
"""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import aiohttp
import pytest

from websocket_multiplex import ConnectionClosed, Limits, SockJSConnection
from websocket_multiplex.sockjs.frames import parse_server_frame

from .carriers import SockJSWebSocketCarrier, SockJSXhrPollingCarrier, wait_until
from .drivers import DRIVERS, serving

TIMEOUT = 5.0
ROOT = Path(__file__).resolve().parents[2]

both_drivers = pytest.mark.parametrize("driver", DRIVERS)


async def echo(connection: SockJSConnection) -> None:
    async for message in connection:
        await connection.send(message)


async def receive(
    carrier: SockJSWebSocketCarrier | SockJSXhrPollingCarrier,
) -> str | None:
    async with asyncio.timeout(TIMEOUT):
        return await carrier.receive()


@both_drivers
async def test_echo_over_the_websocket_and_xhr_polling(driver: str) -> None:
    async with serving(driver, echo) as served:
        for carrier in (
            await SockJSWebSocketCarrier.connect(served.ws_url),
            await SockJSXhrPollingCarrier.connect(served.url),
        ):
            try:
                for text in (
                    "hello",
                    'a "quoted", \\ 😀 </script> \u2028',
                    "x" * 70_000,
                ):
                    await carrier.send(text)
                    assert await receive(carrier) == text
            finally:
                await carrier.close()


@both_drivers
async def test_the_handler_sees_the_opening_request(driver: str) -> None:
    seen: asyncio.Queue[SockJSConnection] = asyncio.Queue()

    async def record(connection: SockJSConnection) -> None:
        seen.put_nowait(connection)
        await connection.wait_closed()

    async with serving(driver, record) as served, aiohttp.ClientSession() as http:
        session = f"{served.url}/000/{uuid.uuid4().hex[:8]}"
        headers = {"Cookie": "token=s3cret", "X-Test": "opening"}
        async with http.post(f"{session}/xhr?user=ann", headers=headers) as response:
            assert await response.text() == "o\n"
        async with asyncio.timeout(TIMEOUT):
            connection = await seen.get()
        request = connection.request
        assert request.query == {"user": "ann"}
        assert request.cookies == {"token": "s3cret"}
        assert request.headers["x-test"] == "opening"
        assert request.remote_address == "127.0.0.1"
        assert request.path.endswith("/xhr")


@both_drivers
async def test_returning_closes_the_session_and_raising_closes_it_with_3000(
    driver: str, caplog: pytest.LogCaptureFixture
) -> None:
    async def greet_and_leave(connection: SockJSConnection) -> None:
        await connection.send("bye")
        if (await connection.receive()) == "fail":
            raise RuntimeError("a bug in the handler")

    caplog.set_level(logging.ERROR, logger="websocket_multiplex")
    async with serving(driver, greet_and_leave) as served:
        outcomes = []
        for last in ("leave", "fail", "fail"):
            carrier = await SockJSWebSocketCarrier.connect(served.ws_url)
            assert await receive(carrier) == "bye"
            await carrier.send(last)
            assert await receive(carrier) is None
            outcomes.append(carrier.frames.close_frame)
            await carrier.close()
    assert outcomes == [
        [1000, "Normal closure"],
        [3000, "handler failed"],
        [3000, "handler failed"],
    ]
    # A client can make a handler fail at will: one traceback per interval.
    failures = [r for r in caplog.records if r.exc_info]
    assert len(failures) == 1


@both_drivers
async def test_close_codes_outside_sockjs_range_become_3000(driver: str) -> None:
    async def close_with(connection: SockJSConnection) -> None:
        code, reason = json.loads(await connection.receive())
        await connection.close(code, reason)
        with pytest.raises(ConnectionClosed):
            await connection.send("after the close")

    async with serving(driver, close_with) as served:
        for sent, expected in (
            ([4321, "mine"], [4321, "mine"]),
            ([1011, "x"], [3000, "x"]),
        ):
            carrier = await SockJSWebSocketCarrier.connect(served.ws_url)
            await carrier.send(json.dumps(sent))
            assert await receive(carrier) is None
            assert carrier.frames.close_frame == expected
            await carrier.close()


@both_drivers
async def test_a_handler_that_falls_behind_slows_its_client_down(driver: str) -> None:
    """Beyond max_queue unread messages the server stops taking the client's:
    the xhr_send that would overflow is answered only once the handler reads."""
    release = asyncio.Event()
    got: list[str] = []

    async def slow(connection: SockJSConnection) -> None:
        await release.wait()
        async for message in connection:
            got.append(message)

    limits = Limits(max_queue=2)
    async with (
        serving(driver, slow, limits=limits) as served,
        aiohttp.ClientSession() as http,
    ):
        session = f"{served.url}/000/{uuid.uuid4().hex[:8]}"
        async with http.post(f"{session}/xhr") as response:
            assert await response.text() == "o\n"

        async def send(text: str) -> int:
            body = json.dumps([text])
            async with http.post(f"{session}/xhr_send", data=body) as answer:
                return answer.status

        assert await send("1") == 204
        held = asyncio.create_task(send("2"))  # the inbox is full after it
        done, _ = await asyncio.wait([held], timeout=0.3)
        assert not done  # waits for the handler
        release.set()
        async with asyncio.timeout(TIMEOUT):
            assert await held == 204
        assert await send("3") == 204
        await wait_until(lambda: got == ["1", "2", "3"])


@both_drivers
async def test_the_sessions_end_when_the_application_closes(driver: str) -> None:
    async with serving(driver, echo) as served:
        carrier = await SockJSWebSocketCarrier.connect(served.ws_url)
        await carrier.send("ping")
        assert await receive(carrier) == "ping"
        application = served.endpoint.app
        await application.close()  # type: ignore[attr-defined]
        assert await receive(carrier) is None
        assert carrier.frames.close_frame == [3000, "server shutting down"]
        await carrier.close()
        async with aiohttp.ClientSession() as http:
            new = f"{served.url}/000/{uuid.uuid4().hex[:8]}/xhr"
            async with http.post(new) as response:
                assert response.status == 503  # no new session while closing


def test_the_asgi_driver_needs_no_aiohttp() -> None:
    """With aiohttp unimportable, SockJSASGI still opens and serves a session
    (driven at the ASGI seam: uvicorn itself is not needed either)."""
    script = textwrap.dedent(
        """
        import asyncio, json, sys
        sys.modules["aiohttp"] = None  # any import of it now fails
        from websocket_multiplex.adapters.asgi import SockJSASGI

        async def echo(connection):
            async for message in connection:
                await connection.send(message)

        async def request(app, method, path, body=b""):
            sent, incoming = [], [{"type": "http.request", "body": body}]
            async def receive():
                if incoming:
                    return incoming.pop()
                await asyncio.Event().wait()
            async def send(message):
                sent.append(message)
            scope = {"type": "http", "method": method, "path": path,
                     "query_string": b"", "headers": [], "client": ("127.0.0.1", 1)}
            await app(scope, receive, send)
            return b"".join(m.get("body", b"") for m in sent if "body" in m)

        async def main():
            app = SockJSASGI(echo, prefix="/echo")
            info = json.loads(await request(app, "GET", "/echo/info"))
            opened = await request(app, "POST", "/echo/0/s/xhr")
            await request(app, "POST", "/echo/0/s/xhr_send", b'["hi"]')
            echoed = await request(app, "POST", "/echo/0/s/xhr")
            print(json.dumps([info["websocket"], opened.decode(), echoed.decode()]))
            await app.close()
            assert "aiohttp" not in [m for m in sys.modules if sys.modules[m]]

        asyncio.run(main())
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [True, "o\n", 'a["hi"]\n']


@both_drivers
async def test_frames_of_a_plain_session_are_sockjs_frames(driver: str) -> None:
    """What the WebSocket carries, frame by frame, is what sockjs-client reads."""
    async with serving(driver, echo) as served, aiohttp.ClientSession() as http:
        url = f"{served.ws_url}/000/{uuid.uuid4().hex[:8]}/websocket"
        async with http.ws_connect(url) as ws:
            assert parse_server_frame(await ws.receive_str()).kind == "o"
            await ws.send_str('["a","b"]')
            got: list[str] = []
            async with asyncio.timeout(TIMEOUT):
                while len(got) < 2:
                    got += parse_server_frame(await ws.receive_str()).messages
            assert got == ["a", "b"]
