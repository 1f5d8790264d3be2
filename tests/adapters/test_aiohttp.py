"""The aiohttp adapters over real sockets on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from websocket_multiplex import CloseReason, MultiplexServer
from websocket_multiplex.adapters.aiohttp import add_sockjs_endpoint, add_websocket_route
from websocket_multiplex.testing import check_adapter_conformance, conformance_server

from .carriers import (
    RawWebSocketCarrier,
    SockJSWebSocketCarrier,
    SockJSXhrPollingCarrier,
    wait_until,
)


async def start(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{port}"


@pytest.fixture
async def sockjs_url() -> AsyncIterator[str]:
    app = web.Application()
    add_sockjs_endpoint(app, conformance_server(), prefix="/multiplex")
    runner, base = await start(app)
    yield f"{base}/multiplex"
    await runner.cleanup()


async def test_conformance_raw_sockjs_websocket(sockjs_url: str) -> None:
    ws_url = sockjs_url.replace("http", "ws") + "/websocket"
    await check_adapter_conformance(lambda: RawWebSocketCarrier.connect(ws_url))


async def test_conformance_sockjs_websocket_transport(sockjs_url: str) -> None:
    url = sockjs_url.replace("http", "ws")
    await check_adapter_conformance(lambda: SockJSWebSocketCarrier.connect(url))


async def test_conformance_sockjs_xhr_polling(sockjs_url: str) -> None:
    await check_adapter_conformance(lambda: SockJSXhrPollingCarrier.connect(sockjs_url))


async def test_conformance_plain_websocket_route() -> None:
    app = web.Application()
    add_websocket_route(app, conformance_server(), "/ws")
    runner, base = await start(app)
    try:
        url = base.replace("http", "ws") + "/ws"
        await check_adapter_conformance(lambda: RawWebSocketCarrier.connect(url))
    finally:
        await runner.cleanup()
