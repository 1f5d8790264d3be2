"""A real redis-server of our own, on a free 127.0.0.1 port, that a test can
kill and start again on the same port."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
from pathlib import Path
from typing import NoReturn

import pytest

from ..support.net import free_port

REDIS_SERVER = shutil.which("redis-server")
START_TIMEOUT = 10.0


def unavailable(reason: str) -> NoReturn:
    """Skip for want of a system dependency; under CI, fail instead."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set: scripts/test.sh installs it)")
    pytest.skip(reason, allow_module_level=True)


class RedisServer:
    """``await start()``, ``await kill()`` (SIGKILL: no goodbye to clients),
    ``await start()`` again: same port, empty data set."""

    def __init__(self, directory: Path) -> None:
        if REDIS_SERVER is None:
            unavailable("redis-server is not installed: apt-get install redis-server")
        self.executable = REDIS_SERVER
        self.directory = directory
        self.port = free_port()
        self.process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        assert self.process is None, "already running"
        self.process = await asyncio.create_subprocess_exec(
            self.executable,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.directory),
            "--logfile", str(self.directory / "redis.log"),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        # Readiness is the server's state, not an event we can await: poll.
        async with asyncio.timeout(START_TIMEOUT):
            while not await self._answers():
                if self.process.returncode is not None:
                    log = (self.directory / "redis.log").read_text(errors="replace")
                    raise RuntimeError(f"redis-server exited:\n{log[-2000:]}")
                await asyncio.sleep(0.01)

    async def kill(self) -> None:
        """Kill the server as a crash would; returns once it is gone."""
        if self.process is None:
            return
        process, self.process = self.process, None
        if process.returncode is None:
            process.send_signal(signal.SIGKILL)
        async with asyncio.timeout(START_TIMEOUT):
            await process.wait()

    async def _answers(self) -> bool:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        except OSError:
            return False
        try:
            writer.write(b"PING\r\n")
            return await reader.readline() == b"+PONG\r\n"
        except OSError:
            return False
        finally:
            writer.close()
            await writer.wait_closed()
