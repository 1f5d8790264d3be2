"""What the stress scripts share: the server subprocess, memory and socket
readings from /proc, client carriers, and the report that sets the exit code.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import resource
import secrets
import select
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
PREFIX = "/multiplex"


def raise_fd_limit() -> int:
    """Raise this process's open-file limit to its hard limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def rss_kb(pid: int) -> int:
    """Resident memory of a process, from /proc/<pid>/status (VmRSS)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def established(port: int, peer: int | None = None) -> int:
    """Established TCP connections whose local port is ``port`` (the server's
    side), only those from the client port ``peer`` if given."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(FileNotFoundError), open(table) as lines:
            next(lines)
            for line in lines:
                _, local, remote, state = line.split()[:4]
                if state != "01" or int(local.rsplit(":", 1)[1], 16) != port:
                    continue
                if peer is None or int(remote.rsplit(":", 1)[1], 16) == peer:
                    count += 1
    return count


def mb(kb: float) -> str:
    return f"{kb / 1024:.1f} MB"


class ServerProcess:
    """``python -m stress.server`` in a subprocess, stopped on exit.

    Its log goes to a temporary file; :meth:`tracebacks` counts the
    exceptions it logged.
    """

    def __init__(self, *args: str, ready_timeout: float = 20.0) -> None:
        self.args = args
        self.ready_timeout = ready_timeout
        self.log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - lives with self
            prefix="stress-server-", suffix=".log", delete=False
        )
        self.proc: subprocess.Popen[str] | None = None
        self.port = 0
        self.pid = 0

    def __enter__(self) -> ServerProcess:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "stress.server", *self.args],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
        )
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], self.ready_timeout)
        line = self.proc.stdout.readline() if ready else ""
        if not line.startswith("READY"):
            self.stop()
            raise RuntimeError(f"the server did not start: {self.log_text()[-2000:]}")
        _, port, pid = line.split()
        self.port, self.pid = int(port), int(pid)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        with contextlib.suppress(OSError):
            proc.stdin.close()  # type: ignore[union-attr]

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def rss_kb(self) -> int:
        return rss_kb(self.pid)

    def established(self, peer: int | None = None) -> int:
        return established(self.port, peer)

    def http(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def ws(self, path: str) -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    def stats(self, collect: bool = False) -> dict[str, Any]:
        url = self.http("/stats" + ("?gc=1" if collect else ""))
        with urllib.request.urlopen(url, timeout=10) as response:
            return json.load(response)  # type: ignore[no-any-return]

    async def astats(self, http: aiohttp.ClientSession) -> dict[str, Any]:
        """:meth:`stats` from inside an event loop, without blocking it."""
        async with http.get(self.http("/stats")) as response:
            return await response.json()  # type: ignore[no-any-return]

    def wait_stats(
        self, timeout: float, **expected: int
    ) -> tuple[bool, dict[str, Any]]:
        """Poll ``/stats`` until every named gauge has its value, or time out."""
        deadline = time.monotonic() + timeout
        while True:
            stats = self.stats()
            if all(stats[name] == value for name, value in expected.items()):
                return True, stats
            if time.monotonic() > deadline:
                return False, stats
            time.sleep(0.2)

    def log_text(self) -> str:
        return Path(self.log.name).read_text(errors="replace")

    def tracebacks(self) -> int:
        return self.log_text().count("Traceback (most recent call last)")


class RssSampler:
    """Samples a process's RSS in a thread; ``peak`` is the largest seen."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.pid = pid
        self.interval = interval
        self.peak = rss_kb(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def reset(self) -> None:
        self.peak = rss_kb(self.pid)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            with contextlib.suppress(OSError, RuntimeError):
                self.peak = max(self.peak, rss_kb(self.pid))


@dataclass
class Report:
    """Figures and checks of one run, printed as tables; checks decide the
    exit code."""

    title: str
    rows: list[tuple[str, str]] = field(default_factory=list)
    checks: list[tuple[str, bool, str]] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def row(self, name: str, value: object) -> None:
        self.rows.append((name, str(value)))

    def check(self, name: str, ok: bool, detail: object = "") -> bool:
        _require_bool(ok)
        self.checks.append((name, bool(ok), str(detail)))
        return bool(ok)

    @property
    def passed(self) -> bool:
        return all(ok for _, ok, _ in self.checks)

    def print(self) -> None:
        self.row("wall time", f"{time.monotonic() - self.started:.1f} s")
        names = [row[0] for row in self.rows + self.checks]
        width = max(map(len, names))
        print(f"\n== {self.title} ==")
        for name, value in self.rows:
            print(f"  {name:<{width}}  {value}")
        print("-- checks --")
        for name, ok, detail in self.checks:
            print(f"  {'PASS' if ok else 'FAIL'}  {name:<{width}}  {detail}")
        print(f"== {'PASS' if self.passed else 'FAIL'} ==", flush=True)

    def exit_code(self) -> int:
        return 0 if self.passed else 1


def _require_bool(ok: object) -> None:
    if not isinstance(ok, bool | int):  # a coroutine would always pass
        raise TypeError(f"a check needs a bool, not {type(ok).__name__}")


# -- client carriers -------------------------------------------------------------


class Closed(Exception):
    """The carrier closed; ``code`` and ``reason`` as the client saw them."""

    def __init__(self, code: int | None, reason: str) -> None:
        super().__init__(f"closed {code} {reason!r}")
        self.code = code
        self.reason = reason


TRANSPORTS = ("raw", "sockjs", "ws")
"""``raw``: the SockJS endpoint's ``<prefix>/websocket``; ``sockjs``: SockJS's
websocket transport; ``ws``: the plain WebSocket route ``/ws``."""


class Carrier:
    """One multiplex connection from an aiohttp client, over one of
    :data:`TRANSPORTS`."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, sockjs: bool) -> None:
        self.ws = ws
        self.sockjs = sockjs

    @classmethod
    async def connect(
        cls, http: aiohttp.ClientSession, port: int, transport: str = "raw"
    ) -> Carrier:
        base = f"ws://127.0.0.1:{port}"
        if transport == "ws":
            return cls(await http.ws_connect(f"{base}/ws", max_msg_size=0), False)
        if transport == "raw":
            url = f"{base}{PREFIX}/websocket"
            return cls(await http.ws_connect(url, max_msg_size=0), False)
        session = f"{secrets.randbelow(1000):03}/{uuid.uuid4().hex[:8]}"
        ws = await http.ws_connect(
            f"{base}{PREFIX}/{session}/websocket", max_msg_size=0
        )
        opening = await ws.receive()
        if opening.data != "o":
            raise Closed(None, f"no SockJS open frame: {opening!r}")
        return cls(ws, True)

    async def send(self, *frames: str) -> None:
        if self.sockjs:
            await self.ws.send_str(json.dumps(frames))
        else:
            for frame in frames:
                await self.ws.send_str(frame)

    async def receive(self) -> list[str]:
        """The next batch of frames; raises :class:`Closed` at the end."""
        while True:
            message = await self.ws.receive()
            if message.type is not aiohttp.WSMsgType.TEXT:
                raise Closed(self.ws.close_code, str(message.extra or ""))
            if not self.sockjs:
                return [message.data]
            kind, body = message.data[:1], message.data[1:]
            if kind == "a":
                return json.loads(body)  # type: ignore[no-any-return]
            if kind == "c":
                code, reason = json.loads(body)
                raise Closed(code, reason)

    async def close(self) -> None:
        await self.ws.close()


class Echoer:
    """A control client: one echo channel, round trips on demand."""

    def __init__(self, carrier: Carrier) -> None:
        self.carrier = carrier
        self.count = 0
        self.worst = 0.0

    @classmethod
    async def connect(cls, http: aiohttp.ClientSession, port: int) -> Echoer:
        carrier = await Carrier.connect(http, port)
        await carrier.send("sub,echo")
        return cls(carrier)

    async def round_trip(self, timeout: float = 5.0) -> float:
        text = f"ping {self.count}"
        started = time.monotonic()
        async with asyncio.timeout(timeout):
            await self.carrier.send(f"msg,echo,{text}")
            while f"msg,echo,{text}" not in await self.carrier.receive():
                pass
        elapsed = time.monotonic() - started
        self.count += 1
        self.worst = max(self.worst, elapsed)
        return elapsed


class Control:
    """Echo round trips every ``interval`` seconds until stopped."""

    def __init__(self, echoer: Echoer, interval: float = 0.05) -> None:
        self.echoer = echoer
        self.interval = interval
        self.errors: list[str] = []
        self._stop = asyncio.Event()
        self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        while not self._stop.is_set() and await self._one():
            await asyncio.sleep(self.interval)

    async def _one(self) -> bool:
        try:
            await self.echoer.round_trip()
        except (Closed, TimeoutError, aiohttp.ClientError) as exc:
            self.errors.append(repr(exc))
            return False
        return True

    async def stop(self) -> None:
        """Stop, with one last round trip, and close the carrier."""
        self._stop.set()
        await self._task
        if not self.errors:
            await self._one()
        await self.echoer.carrier.close()


class RawWebSocket:
    """A WebSocket client that writes any frame at all, broken ones included.

    aiohttp's client only sends well-formed frames; this one speaks
    RFC 6455 over asyncio streams by hand.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, port: int, path: str) -> RawWebSocket:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            (
                f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 101"):
            writer.close()
            raise Closed(None, head.split(b"\r\n")[0].decode(errors="replace"))
        return cls(reader, writer)

    def send_frame(
        self, opcode: int, payload: bytes, *, fin: bool = True, rsv: int = 0
    ) -> None:
        """Queue one masked frame; call :meth:`drain` to wait for the socket."""
        head = bytearray([(0x80 if fin else 0) | (rsv & 7) << 4 | opcode & 0xF])
        length = len(payload)
        if length < 126:
            head.append(0x80 | length)
        elif length < 1 << 16:
            head += struct.pack("!BH", 0x80 | 126, length)
        else:
            head += struct.pack("!BQ", 0x80 | 127, length)
        mask = os.urandom(4)
        head += mask
        self.writer.write(bytes(head) + _mask(payload, mask))

    async def drain(self) -> None:
        await self.writer.drain()

    async def read_frame(self) -> tuple[int, bytes]:
        """The next frame from the server (unmasked); EOF raises IncompleteReadError."""
        first, second = await self.reader.readexactly(2)
        length = second & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", await self.reader.readexactly(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", await self.reader.readexactly(8))
        return first & 0xF, await self.reader.readexactly(length)

    async def wait_closed(self, timeout: float = 5.0) -> tuple[int | None, str]:
        """Read until the server's close frame or EOF: its code and reason."""
        with contextlib.suppress(
            asyncio.IncompleteReadError, ConnectionError, TimeoutError
        ):
            async with asyncio.timeout(timeout):
                while True:
                    opcode, payload = await self.read_frame()
                    if opcode == 0x8:
                        code = struct.unpack("!H", payload[:2])[0] if payload else None
                        return code, payload[2:].decode(errors="replace")
        return None, "no close frame"

    def abort(self) -> None:
        self.writer.transport.abort()

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


def _mask(payload: bytes, mask: bytes) -> bytes:
    if not payload:
        return b""
    key = int.from_bytes((mask * (len(payload) // 4 + 1))[: len(payload)], "big")
    return (int.from_bytes(payload, "big") ^ key).to_bytes(len(payload), "big")
