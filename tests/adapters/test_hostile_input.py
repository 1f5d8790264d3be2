"""Hostile input on the raw endpoint and the SockJS HTTP transports.

PROTOCOL.md: anything invalid is ignored and the connection stays usable.
The reference node server dies on ``sub,toString``; ours must not.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from websocket_multiplex.adapters.aiohttp import add_sockjs_endpoint
from websocket_multiplex.testing import conformance_server

from .carriers import RawWebSocketCarrier
from .test_aiohttp import start

JUNK = [
    "",
    ",",
    ",,",
    "foo",
    "msg",
    "msg,",
    "sub,",
    "uns,echo",
    "msg,echo,not open yet",
    "SUB,echo",
    " sub,echo",
    "sub,toString",
    "sub,__proto__",
    "sub,constructor",
    "msg,constructor,x",
    "msg,__proto__,x",
    "uns,hasOwnProperty",
    "sub,valueOf,extra",
    "sub,%00",
    "sub,\x00",
    "sub," + "x" * 10_000,
    "\ud800",
    "msg,echo\n,x",
    "x" * 100_000,
]


JUNK_SUBS = {
    junk.split(",", 2)[0] + "," + junk.split(",", 2)[1]
    for junk in JUNK
    if junk.startswith("sub,")
}


@pytest.fixture
async def endpoint() -> AsyncIterator[str]:
    app = web.Application()
    add_sockjs_endpoint(app, conformance_server(), prefix="/multiplex")
    runner, base = await start(app)
    yield f"{base}/multiplex"
    await runner.cleanup()


async def echo_works(carrier: RawWebSocketCarrier, text: str = "still alive") -> None:
    """Echo answers; anything before its answer is a refusal of a junk sub."""
    await carrier.send(f"msg,echo,{text}")
    async with asyncio.timeout(5):
        while (got := await carrier.receive()) != f"msg,echo,{text}":
            assert got is not None, "the server closed the connection"
            kind, topic = got.split(",", 2)[:2]
            assert kind in ("err", "uns") and f"sub,{topic}" in JUNK_SUBS, got


async def test_junk_frames_are_ignored_and_the_connection_stays_usable(
    endpoint: str,
) -> None:
    carrier = await RawWebSocketCarrier.connect(
        endpoint.replace("http", "ws") + "/websocket"
    )
    try:
        for junk in JUNK:
            if junk == "\ud800":
                continue  # not encodable as UTF-8: see the binary test below
            await carrier.send(junk)
        await carrier.send("sub,echo")
        await echo_works(carrier)
        for junk in JUNK:
            if junk != "\ud800":
                await carrier.send(junk)  # "uns,echo" among them closes echo
        await carrier.send("sub,echo")
        await echo_works(carrier, "after the second round")
    finally:
        await carrier.close()


async def test_binary_and_invalid_utf8_cost_at_most_that_connection(
    endpoint: str,
) -> None:
    ws_url = endpoint.replace("http", "ws") + "/websocket"
    survivor = await RawWebSocketCarrier.connect(ws_url)
    await survivor.send("sub,echo")
    vandal = await RawWebSocketCarrier.connect(ws_url)
    try:
        await vandal.send("sub,echo")
        await vandal.ws.send_bytes(b"\xff\xfe binary")
        await vandal.ws._writer.send_frame(b"msg,echo,\xc3\x28", aiohttp.WSMsgType.TEXT)  # type: ignore[union-attr]
        async with asyncio.timeout(5):
            # aiohttp closes a connection that sends invalid UTF-8 (1007).
            assert await vandal.receive() is None
        assert vandal.ws.close_code == 1007
        await echo_works(survivor)
    finally:
        await vandal.close()
        await survivor.close()


async def test_sockjs_http_transports_reject_bad_bodies(endpoint: str) -> None:
    session_url = f"{endpoint}/000/{uuid.uuid4().hex[:8]}"
    async with aiohttp.ClientSession() as http:
        assert await (await http.post(session_url + "/xhr")).text() == "o\n"
        for body in (b"", b"not json", b"[", b"\xff\xfe"):
            response = await http.post(session_url + "/xhr_send", data=body)
            assert response.status == 500, body  # sockjs: "Payload expected" etc.
        # JSON that is not an array is not a batch: refused as sockjs-node
        # does, nothing delivered, the session goes on.
        for body in (b'{"a": 1}', b"null", b"1", b'"sub,echo"'):
            response = await http.post(session_url + "/xhr_send", data=body)
            assert (response.status, await response.text()) == (
                500,
                "Payload expected.",
            ), body
        # Non-string items in a well-formed batch are skipped, strings kept.
        batch = json.dumps([1, None, {"sub": "echo"}, ["x"], "sub,echo", "msg,echo,ok"])
        assert (await http.post(session_url + "/xhr_send", data=batch)).status == 204
        assert (
            await (await http.post(session_url + "/xhr")).text() == 'a["msg,echo,ok"]\n'
        )
        unknown = f"{endpoint}/000/{uuid.uuid4().hex[:8]}/xhr_send"
        assert (await http.post(unknown, data='["sub,echo"]')).status == 404
