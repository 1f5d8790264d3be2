"""Peers for the client tests: our server in-process or as a process, the
original node server, and an in-memory carrier at the client's own seam
(the TCP proxy that can cut connections is ``tests/support/proxy.py``).

Everything listens on 127.0.0.1 only; every process started here is killed
by whoever started it (the fixtures do it in their teardown).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from aiohttp import web

from websocket_multiplex import Channel, CloseReason, MultiplexServer
from websocket_multiplex.adapters.aiohttp import add_sockjs_endpoint
from websocket_multiplex.adapters.asgi import MultiplexASGI
from websocket_multiplex.asyncio.client import Backoff, ClientState
from websocket_multiplex.codes import CloseCode
from websocket_multiplex.demo import demo_server

from ..servers import uvicorn_running

TIMEOUT = 5.0
FAST = Backoff(initial=0.05, maximum=0.2)
NODE_DIR = Path(__file__).parent.parent / "node"
REFERENCE_SERVER = NODE_DIR / "reference_server.js"
WEIRD_NAMES_SERVER = Path(__file__).parent / "weird_names_server.js"
WEIRD = "weird name,ü/%😀"
PAYLOADS = ["a,b,,c", "😀 emoji, 日本", 'JSON {"k": [1, 2]}', "", "msg,ann,x", "%u0041"]


def run_in_own_loop(scenario: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run ``scenario`` in a fresh event loop in a daemon thread.

    Fails if the loop is still busy after a deadline, which is what a task
    spinning without ever yielding looks like from outside.
    """
    errors: list[BaseException] = []

    def target() -> None:
        try:
            asyncio.run(scenario())
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(TIMEOUT * 2)
    if thread.is_alive():
        pytest.fail("the event loop is blocked: a task never yields")
    if errors:
        raise errors[0]


# -- our server, in this process ------------------------------------------------


class Recorder:
    """How the channels of the ``rec`` service ended, as the server saw it.

    ``flood N`` makes it send N messages at once.
    """

    def __init__(self) -> None:
        self.closed: asyncio.Queue[CloseReason] = asyncio.Queue()

    async def __call__(self, channel: Channel) -> None:
        await channel.send("ready")
        async for data in channel:  # read on: only the client ends the channel
            if data.startswith("flood "):
                for n in range(int(data.split()[1])):
                    await channel.send(str(n))
        assert channel.close_reason is not None
        self.closed.put_nowait(channel.close_reason)


def make_server() -> tuple[MultiplexServer, Recorder]:
    """The demo's services (ann, bob, carl, echo), plus:

    - an echo service under the name :data:`WEIRD`;
    - ``rec``, a :class:`Recorder`;
    - ``headers``, which answers a header name with that header's value;
    - ``once``, which echoes one message and closes.
    """
    server = demo_server()
    recorder = Recorder()

    async def echo(channel: Channel) -> None:
        async for data in channel:
            await channel.send(data)

    async def headers(channel: Channel) -> None:
        async for name in channel:
            await channel.send(channel.request.headers.get(name, "<none>"))

    async def once(channel: Channel) -> None:
        await channel.close(await channel.receive())

    server.register(WEIRD, echo)
    server.register("once", once)
    server.register("rec", recorder)
    server.register("headers", headers)
    return server, recorder


@contextlib.asynccontextmanager
async def serving(app: web.Application, port: int = 0) -> AsyncIterator[int]:
    """Run ``app`` on 127.0.0.1 in this event loop; yield its port."""
    runner = web.AppRunner(app, handler_cancellation=True)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


def sockjs_app(server: MultiplexServer, **options: Any) -> web.Application:
    """SockJS at ``/multiplex``, its raw WebSocket at ``/multiplex/websocket``
    (``options``: more SockJS options)."""
    app = web.Application()
    add_sockjs_endpoint(
        app,
        server,
        prefix="/multiplex",
        sockjs_url="http://127.0.0.1:1/unused.js",
        **options,
    )
    return app


async def cut_connections(server: MultiplexServer) -> int:
    """Close every carrier from the server side without ``uns`` frames."""
    connections = server.connections
    for connection in connections:
        await connection.transport.close(CloseCode.APPLICATION, "cut by the test")
    return len(connections)


@contextlib.asynccontextmanager
async def uvicorn_serving(server: MultiplexServer) -> AsyncIterator[int]:
    """Serve ``server`` with the ASGI adapter under uvicorn; yield the port."""
    config = uvicorn.Config(
        MultiplexASGI(server),
        ws="wsproto",
        lifespan="off",
        log_config=None,
        log_level="warning",
    )
    async with uvicorn_running(config) as port:
        yield port


# -- processes --------------------------------------------------------------------


class Processes:
    """Starts servers as processes and kills every one of them at the end."""

    def __init__(self) -> None:
        self._started: list[asyncio.subprocess.Process] = []

    async def demo(self, port: int) -> asyncio.subprocess.Process:
        """``websocket-multiplex demo --port port``, once it is listening."""
        command = ["-m", "websocket_multiplex", "demo", "--port", str(port)]
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            *command,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        self._started.append(process)
        assert process.stdout is not None
        async with asyncio.timeout(20):
            line = (await process.stdout.readline()).decode()
        assert f"http://127.0.0.1:{port}/" in line, line
        return process

    async def kill(self, process: asyncio.subprocess.Process) -> None:
        if process.returncode is None:
            process.send_signal(signal.SIGKILL)
        async with asyncio.timeout(TIMEOUT):
            await process.wait()

    async def kill_all(self) -> None:
        for process in self._started:
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(signal.SIGCONT)  # a stopped one, too
                await self.kill(process)


class NodeServer:
    """The original server (tests/node/reference_server.js) in a process."""

    def __init__(self, script: Path, *args: str) -> None:
        self.process = subprocess.Popen(
            ["node", str(script), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        try:
            self.ready = self.next_line()
        except BaseException:
            self.stop()
            raise
        assert self.ready.get("ready") is True, self.ready
        self.url: str = self.ready["url"]
        self.websocket: str = self.ready["websocket"]

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line)

    def next_line(self, timeout: float = 15.0) -> dict[str, Any]:
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"node said nothing: {self.stderr()}") from None
        return dict(json.loads(line))

    def wait_for(self, **fields: Any) -> dict[str, Any]:
        """Skip lines until one has all of ``fields``; return it."""
        while True:
            line = self.next_line()
            if all(line.get(key) == value for key, value in fields.items()):
                return line

    def command(self, line: str) -> dict[str, Any]:
        """Send one stdin command; return its answer (skipping events)."""
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()
        while "event" in (answer := self.next_line()):
            pass
        return answer

    def stderr(self) -> str:
        if self.process.poll() is None:
            return "(still running)"
        assert self.process.stderr is not None
        return self.process.stderr.read()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=TIMEOUT)
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()


# -- the client's seam: carriers in memory ------------------------------------


class MemoryCarrier:
    """A :class:`~websocket_multiplex.asyncio.client.Carrier` the test drives.

    ``sent`` is what the client wrote; ``feed`` plays the server's frames;
    ``peer_gone`` ends it as a dropped connection does: sends fail at once,
    but the reader sees the end only when it next runs.
    """

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.closed = False
        self.send_gate: asyncio.Event | None = None  # set: sends wait for it
        self.sending = asyncio.Event()
        self._incoming: asyncio.Queue[str | None] = asyncio.Queue()

    async def send(self, text: str) -> None:
        if self.closed:
            raise ConnectionResetError("Cannot write to closing transport")
        self.sending.set()
        if self.send_gate is not None:
            await self.send_gate.wait()
        self.sent.append(text)

    async def receive(self) -> str | None:
        item = await self._incoming.get()
        if isinstance(item, BaseException):
            raise item
        return item

    async def close(self) -> None:
        self.peer_gone()

    def feed(self, text: str) -> None:
        self._incoming.put_nowait(text)

    def peer_gone(self) -> None:
        if not self.closed:
            self.closed = True
            self._incoming.put_nowait(None)

    def fail(self, error: BaseException) -> None:
        """Make the pending ``receive`` raise ``error``."""
        self._incoming.put_nowait(error)  # type: ignore[arg-type]


class MemoryNetwork:
    """Opens :class:`MemoryCarrier` s; ``failures`` are raised first, in order."""

    def __init__(self) -> None:
        self.carriers: list[MemoryCarrier] = []
        self.failures: list[BaseException] = []
        self.next_carrier: MemoryCarrier | None = None
        self.opened = asyncio.Event()

    async def open(self) -> MemoryCarrier:
        if self.failures:
            raise self.failures.pop(0)
        carrier, self.next_carrier = self.next_carrier or MemoryCarrier(), None
        self.carriers.append(carrier)
        self.opened.set()
        return carrier

    @property
    def current(self) -> MemoryCarrier:
        return self.carriers[-1]


class States:
    """Records a client's states and the reason given with each, for
    ``on_state``."""

    def __init__(self) -> None:
        self.seen: list[ClientState] = []
        self.reasons: list[str] = []
        self._changed = asyncio.Event()

    def __call__(self, state: ClientState, reason: str) -> None:
        self.seen.append(state)
        self.reasons.append(reason)
        self._changed.set()

    async def wait_count(self, state: ClientState, count: int) -> None:
        """Wait until the client went ``count`` times into ``state``."""
        while self.seen.count(state) < count:
            self._changed.clear()
            await self._changed.wait()
