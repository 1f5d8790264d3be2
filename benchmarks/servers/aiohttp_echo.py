"""The floor under our aiohttp adapters: a plain aiohttp WebSocket echo.

    python benchmarks/servers/aiohttp_echo.py

Any path; every text message is sent back unchanged. No multiplexing (the
load generator ignores the ``sub`` frames that come back), so the
difference between this and our servers is what the multiplexer costs.
aiohttp accepts permessage-deflate whenever a client offers it. See
_common.py for the ready line and the stdin commands.
"""

from __future__ import annotations

import asyncio

from _common import announce, serve_commands, versions
from aiohttp import WSMsgType, web


async def echo(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    try:
        async for message in ws:
            if message.type is WSMsgType.TEXT:
                await ws.send_str(message.data)
    except ConnectionResetError:
        pass  # the client hung up with replies still to send
    return ws


async def main() -> None:
    app = web.Application()
    app.router.add_get("/{tail:.*}", echo)
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    announce(runner.addresses[0][1], versions=versions("aiohttp"))
    try:
        await serve_commands()
    finally:
        await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
