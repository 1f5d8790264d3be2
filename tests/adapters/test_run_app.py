"""run_app's listening options, each in a process of its own as a user runs
it: a unix socket, TLS, reuse_port, and the keep-alive timeout."""

from __future__ import annotations

import asyncio
import json
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp

from ..support.net import free_port

TIMEOUT = 20.0
SCRIPT = """
import json, ssl, sys
from websocket_multiplex.adapters.aiohttp import run_app
from websocket_multiplex.demo import demo_app

options = json.loads(sys.argv[1])
if "certificate" in options:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(options.pop("certificate"), options.pop("key"))
    options["ssl_context"] = context
run_app(demo_app(), ready=lambda url: print(url, flush=True), **options)
"""


@asynccontextmanager
async def running(**options: Any) -> AsyncIterator[str]:
    """run_app with ``options`` in a child process; yields the URL it says."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        SCRIPT,
        json.dumps(options),
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    try:
        async with asyncio.timeout(TIMEOUT):
            url = (await process.stdout.readline()).decode().strip()
        assert url, "run_app did not start"
        yield url
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            async with asyncio.timeout(TIMEOUT):
                await process.wait()


async def test_a_unix_socket(tmp_path: Path) -> None:
    path = tmp_path / "demo.sock"
    async with running(path=str(path)) as url:
        assert url == f"http+unix://{path}"
        connector = aiohttp.UnixConnector(path=str(path))
        async with (
            aiohttp.ClientSession(connector=connector) as http,
            http.get("http://localhost/") as response,
        ):
            assert response.status == 200
            assert "websocket-multiplex demo" in await response.text()


async def test_tls_with_a_context(tmp_path: Path) -> None:
    key, certificate = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(certificate)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    port = free_port()
    async with running(port=port, certificate=str(certificate), key=str(key)) as url:
        assert url == f"https://127.0.0.1:{port}/"
        trusted = ssl.create_default_context(cafile=str(certificate))
        async with (
            aiohttp.ClientSession() as http,
            http.get(url, ssl=trusted) as response,
        ):
            assert response.status == 200


async def test_two_processes_on_one_port_with_reuse_port() -> None:
    port = free_port()
    async with (
        running(port=port, reuse_port=True) as first,
        running(port=port, reuse_port=True) as second,
    ):
        assert first == second == f"http://127.0.0.1:{port}/"
        async with aiohttp.ClientSession() as http, http.get(first) as response:
            assert response.status == 200


async def test_an_idle_keep_alive_connection_is_closed_after_its_timeout() -> None:
    port = free_port()
    async with running(port=port, keepalive_timeout=0.5):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        async with asyncio.timeout(TIMEOUT):
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(
                next(
                    line.split(b":")[1]
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length")
                )
            )
            await reader.readexactly(length)
            idle_since = time.monotonic()
            assert await reader.read() == b""  # the server closed it
        assert 0.3 <= time.monotonic() - idle_since < 5.0
        writer.close()
