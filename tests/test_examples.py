"""Every example folder, run as its README says: a subprocess, the Python
client, the CLI and a real Chromium on its page.

The four ways to run the same small app (aiohttp, FastAPI, Starlette, plain
ASGI under uvicorn) are driven here; the chat with Redis (examples/chat) is
run by tests/deploy/, one worker and two behind nginx.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from playwright.async_api import Page, async_playwright

from websocket_multiplex import CloseReason
from websocket_multiplex.client import connect

from .support.chromium import launch
from .support.net import free_port

EXAMPLES = Path(__file__).parent.parent / "examples"
SOCKJS_CLIENT = (
    Path(__file__).parent / "node/node_modules/sockjs-client/dist/sockjs.min.js"
)
WAYS = ["aiohttp", "fastapi", "starlette", "asgi"]
FOLDERS = [*WAYS, "chat"]
TIMEOUT = 10.0


@contextlib.asynccontextmanager
async def example(name: str) -> AsyncIterator[tuple[asyncio.subprocess.Process, str]]:
    """``python examples/NAME/app.py --port P``, once it says it listens."""
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(EXAMPLES / name / "app.py"),
        "--port",
        str(port),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    try:
        async with asyncio.timeout(20):
            line = (await process.stdout.readline()).decode()
        assert line == f"listening on http://127.0.0.1:{port}/\n", line
        yield process, f"http://127.0.0.1:{port}"
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


@pytest.mark.parametrize("name", FOLDERS)
def test_every_example_folder_has_the_same_files(name: str) -> None:
    files = sorted(path.name for path in (EXAMPLES / name).iterdir())
    assert [f for f in files if f != "__pycache__"] == [
        "README.md",
        "app.py",
        "index.html",
    ]
    readme = (EXAMPLES / name / "README.md").read_text()
    assert f"python examples/{name}/app.py" in readme


@pytest.mark.parametrize("name", WAYS)
async def test_the_example_serves_its_page_and_channels(name: str) -> None:
    async with example(name) as (process, base), aiohttp.ClientSession() as http:
        async with http.get(f"{base}/") as page:
            assert page.status == 200
            assert page.content_type == "text/html"
            assert "/websocket-multiplex/websocket-multiplex.js" in await page.text()
        script = f"{base}/websocket-multiplex/websocket-multiplex.js"
        async with http.get(script) as got:
            assert got.status == 200
            assert "WebSocketMultiplex" in await got.text()
        # SockJS and the raw WebSocket, from the Python client.
        for url in (
            f"{base}/multiplex",
            f"{base.replace('http', 'ws')}/multiplex/websocket",
        ):
            async with connect(url, reconnect=False) as client:
                ann = await client.channel("ann")
                echo = await client.channel("echo")
                assert await ann.receive(timeout=TIMEOUT) == "Ann says hi!"
                await ann.send("hello")
                await echo.send('a,"b" 😀')
                assert await ann.receive(timeout=TIMEOUT) == "Ann nods: hello"
                assert await echo.receive(timeout=TIMEOUT) == 'a,"b" 😀'
        # A shutdown closes the channels first: the client hears it.
        async with connect(f"{base}/multiplex", reconnect=False) as client:
            echo = await client.channel("echo")
            await echo.send("ping")
            assert await echo.receive(timeout=TIMEOUT) == "ping"
            process.send_signal(signal.SIGTERM)
            async with asyncio.timeout(TIMEOUT):
                async for _ in echo:
                    pass
            assert echo.close_reason is CloseReason.SHUTDOWN
        # uvicorn, once shut down, raises again the signal it caught, so
        # that its parent sees how it ended; aiohttp's run_app returns.
        ended = 0 if name == "aiohttp" else -signal.SIGTERM
        async with asyncio.timeout(TIMEOUT):
            assert await process.wait() == ended
        assert process.stdout is not None and process.stderr is not None
        log = (await process.stdout.read() + await process.stderr.read()).decode()
        assert "GET /" not in log, "no access log by default"
        assert "Traceback" not in log


async def talk(page: Page, base: str) -> str:
    await page.goto(f"{base}/")
    await page.wait_for_function(
        "document.querySelector('#ann .log').textContent.includes('Ann says hi!')"
    )
    for box, text in (("ann", "hello"), ("echo", 'a,"b" 😀')):
        await page.fill(f"#{box} input", text)
        await page.press(f"#{box} input", "Enter")
    await page.wait_for_function(
        "document.querySelector('#echo .log').textContent.includes('a,\"b\" 😀')"
    )
    await page.wait_for_function(
        "document.querySelector('#ann .log').textContent.includes('Ann nods: hello')"
    )
    return await page.inner_text("#status")


@pytest.mark.parametrize("name", WAYS)
async def test_the_example_page_in_chromium(name: str) -> None:
    """With sockjs-client (served in the CDN's stead) and without it."""
    assert SOCKJS_CLIENT.is_file(), "run `npm ci --prefix tests/node` first"
    async with example(name) as (_, base), async_playwright() as playwright:
        browser = await launch(playwright)
        try:
            async with asyncio.timeout(30):
                page = await browser.new_page()
                await page.route(
                    "https://cdn.jsdelivr.net/**",
                    lambda route: route.fulfill(
                        path=SOCKJS_CLIENT, content_type="text/javascript"
                    ),
                )
                assert await talk(page, base) == "connected: SockJS websocket"
                offline = await browser.new_page()
                await offline.route("https://cdn.jsdelivr.net/**", lambda r: r.abort())
                assert await talk(offline, base) == "connected: native WebSocket"
        finally:
            await browser.close()
