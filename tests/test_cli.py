"""``websocket-multiplex connect`` run as a user runs it: a real process.

The server is ours, running in this event loop on 127.0.0.1, or the
original node server (npm websocket-multiplex 0.1.0 on sockjs-node,
tests/node/reference_server.js) in a process. The CLI is
``python -m websocket_multiplex connect`` with its stdin a pipe, a file or
a terminal (a pty). Tests keep stdin open until they have read what they
expect, so no test depends on how long ``--wait`` is.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pty
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from websocket_multiplex import Channel, MultiplexServer
from websocket_multiplex.cli import Router, channel_labels
from websocket_multiplex.testing import connect_in_memory

from .client.support import (
    PAYLOADS,
    REFERENCE_SERVER,
    WEIRD,
    NodeServer,
    cut_connections,
    make_server,
    serving,
    sockjs_app,
)

TIMEOUT = 10.0


@dataclass
class Server:
    port: int
    mux: MultiplexServer

    @property
    def sockjs(self) -> str:
        return f"http://127.0.0.1:{self.port}/multiplex"

    @property
    def websocket(self) -> str:
        return f"ws://127.0.0.1:{self.port}/multiplex/websocket"


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    mux, _ = make_server()
    async with serving(sockjs_app(mux)) as port:
        yield Server(port, mux)


class Cli:
    """One ``connect`` process; read its output line by line."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.stdout: list[str] = []
        self.stderr: list[str] = []

    async def write(self, *lines: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write("".join(f"{line}\n" for line in lines).encode())
        await self.process.stdin.drain()

    async def end_input(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()

    async def out_until(self, done: Callable[[list[str]], bool]) -> list[str]:
        """Read stdout lines until ``done(lines so far)``."""
        return await self._until(self.process.stdout, self.stdout, done)

    async def err_until(self, text: str) -> list[str]:
        return await self._until(
            self.process.stderr, self.stderr, lambda lines: text in "".join(lines)
        )

    async def json_until(
        self, done: Callable[[list[dict[str, Any]]], bool]
    ) -> list[dict[str, Any]]:
        lines = await self.out_until(lambda lines: done([json.loads(x) for x in lines]))
        return [json.loads(line) for line in lines]

    async def _until(
        self,
        stream: asyncio.StreamReader | None,
        lines: list[str],
        done: Callable[[list[str]], bool],
    ) -> list[str]:
        assert stream is not None
        async with asyncio.timeout(TIMEOUT):
            while not done(lines):
                line = await stream.readline()
                if not line:
                    raise AssertionError(f"output ended; got {lines}, {self.stderr}")
                lines.append(line.decode().rstrip("\n"))
        return lines

    async def exit_status(self) -> int:
        """Wait for the exit; collect the rest of the output."""
        async with asyncio.timeout(TIMEOUT):
            out, err = await self.process.communicate()
        self.stdout += out.decode().splitlines()
        self.stderr += err.decode().splitlines()
        assert self.process.returncode is not None
        return self.process.returncode


Start = Callable[..., Awaitable[Cli]]


@pytest.fixture
async def cli() -> AsyncIterator[Start]:
    started: list[asyncio.subprocess.Process] = []

    async def run(*args: str, stdin: Any = asyncio.subprocess.PIPE) -> Cli:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "websocket_multiplex",
            "connect",
            *args,
            stdin=stdin,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        started.append(process)
        return Cli(process)

    yield run
    for process in started:
        if process.returncode is None:
            process.kill()
            async with asyncio.timeout(TIMEOUT):
                await process.wait()


def has(*wanted: str) -> Callable[[list[str]], bool]:
    return lambda lines: all(line in lines for line in wanted)


def has_records(*wanted: dict[str, Any]) -> Callable[[list[dict[str, Any]]], bool]:
    return lambda records: all(record in records for record in wanted)


# -- pipe mode -------------------------------------------------------------------


def transport_of(kind: str) -> list[str]:
    """The CLI arguments that choose the carrier for ``kind``."""
    return ["--transport", "xhr-polling"] if kind == "xhr-polling" else []


@pytest.mark.parametrize("kind", ["sockjs", "xhr-polling", "websocket"])
async def test_one_channel_gets_every_line_unchanged(
    server: Server, cli: Start, kind: str
) -> None:
    url = server.websocket if kind == "websocket" else server.sockjs
    run = await cli(url, "--channel", "echo", "--wait", "0", *transport_of(kind))
    payloads = ["a,b,,c", "😀 emoji, 日本", "@not a channel", '{"json": [1]}']
    await run.write(*payloads)
    await run.out_until(has(*(f"[echo] {p}" for p in payloads)))
    await run.end_input()
    assert await run.exit_status() == 0
    assert run.stdout == [f"[echo] {p}" for p in payloads]
    assert any("connected to" in line for line in run.stderr)


async def test_several_channels_json(server: Server, cli: Start) -> None:
    channels = ["ann", "bob", "carl", "nope", "echo", "echo", WEIRD]
    args = [arg for name in channels for arg in ("-c", name)]
    run = await cli(server.websocket, *args, "--json", "--wait", "0")
    await run.write(
        "hello, world",  # to ann, the first channel
        "@bob cake",
        "@echo#2 second",
        f"@{WEIRD} spaces work",
        "@echo",  # echo becomes the current channel
        "a,b 😀",
        "@@at",
        "@zzz lost",
    )
    records = await run.json_until(
        has_records(
            {"channel": "ann", "data": "Ann nods: hello, world"},
            {"channel": "bob", "data": "Bob says no to: cake"},
            {"channel": "echo#2", "data": "second"},
            {"channel": WEIRD, "data": "spaces work"},
            {"channel": "echo", "data": "a,b 😀"},
            {"channel": "echo", "data": "@at"},
            {"channel": "carl", "data": "Carl says goodbye!"},
        )
    )
    await run.end_input()
    assert await run.exit_status() == 0
    records += [json.loads(line) for line in run.stdout[len(records) :]]
    assert records[0] == {"event": "connected", "url": server.websocket}
    assert {"channel": "ann", "data": "Ann says hi!"} in records
    closes = {r["channel"]: r for r in records if r.get("event") == "closed"}
    assert closes["carl"] == {
        "event": "closed",
        "channel": "carl",
        "reason": "server_closed",
        "detail": "",
    }
    assert closes["nope"]["reason"] == "refused"
    assert closes["nope"]["detail"].startswith("404 ")
    assert set(closes) == {"carl", "nope"}  # not the ones closed on exit
    errors = [r for r in records if r.get("event") == "error"]
    assert len(errors) == 1
    assert "zzz" in errors[0]["message"]
    assert run.stderr == []  # --json: stdout only


async def test_ends_when_every_channel_is_closed(
    server: Server, cli: Start, tmp_path: Path
) -> None:
    # stdin is a regular file here, which the event loop cannot watch.
    lines = tmp_path / "lines.txt"
    lines.write_text("only once\n")
    with lines.open() as stdin:
        run = await cli(
            server.sockjs, "-c", "once", "-c", "carl", "--wait", "inf", stdin=stdin
        )
        assert await run.exit_status() == 0
    assert sorted(run.stdout) == ["[carl] Carl says goodbye!", "[once] only once"]
    assert any("[once] closed by the server" in line for line in run.stderr)


async def test_last_line_without_newline_is_sent(server: Server, cli: Start) -> None:
    run = await cli(server.sockjs, "-c", "once", "--wait", "inf")
    assert run.process.stdin is not None
    run.process.stdin.write(b"no newline")
    await run.end_input()
    assert await run.exit_status() == 0
    assert run.stdout == ["[once] no newline"]


async def test_headers_reach_the_server(server: Server, cli: Start) -> None:
    run = await cli(
        server.sockjs,
        "-c",
        "headers",
        "-H",
        "X-Token: abc:def",
        "--header",
        "X-B:2",
        "--wait",
        "0",
    )
    await run.write("x-token", "x-b")
    await run.out_until(has("[headers] abc:def", "[headers] 2"))
    await run.end_input()
    assert await run.exit_status() == 0


# -- the connection --------------------------------------------------------------


async def test_reconnection_is_reported_and_channels_come_back(
    server: Server, cli: Start
) -> None:
    run = await cli(
        server.sockjs, "-c", "ann", "-c", "echo", "--wait", "0", "--no-resume"
    )
    await run.out_until(has("[ann] Ann says hi!"))
    assert await cut_connections(server.mux) == 1
    await run.err_until("reconnected")
    await run.out_until(lambda lines: lines.count("[ann] Ann says hi!") == 2)
    await run.write("@echo after")
    await run.out_until(has("[echo] after"))
    await run.end_input()
    assert await run.exit_status() == 0
    assert any("reconnecting (attempt 1 in " in x for x in run.stderr)


async def test_a_cut_connection_is_resumed_with_nothing_lost(
    server: Server, cli: Start
) -> None:
    run = await cli(server.websocket, "-c", "ann", "-c", "echo", "--json")
    await run.json_until(has_records({"channel": "ann", "data": "Ann says hi!"}))
    await run.write("@echo before")
    await run.json_until(has_records({"channel": "echo", "data": "before"}))
    assert await cut_connections(server.mux) == 1
    await run.json_until(has_records({"event": "resumed"}))
    await run.write("@echo after")
    await run.json_until(has_records({"channel": "echo", "data": "after"}))
    await run.end_input()
    assert await run.exit_status() == 0
    records = [json.loads(line) for line in run.stdout]
    # The handlers went on: ann greeted once, nothing came twice.
    assert records.count({"channel": "ann", "data": "Ann says hi!"}) == 1
    assert records.count({"channel": "echo", "data": "before"}) == 1


async def test_no_reconnect_closes_every_channel_and_fails(
    server: Server, cli: Start
) -> None:
    run = await cli(
        server.websocket,
        "-c",
        "ann",
        "-c",
        "echo",
        "--json",
        "--no-reconnect",
        "--wait",
        "inf",
    )
    await run.json_until(has_records({"channel": "ann", "data": "Ann says hi!"}))
    assert await cut_connections(server.mux) == 1
    assert await run.exit_status() == 1
    records = [json.loads(line) for line in run.stdout]
    for name in ("ann", "echo"):
        closed = {"event": "closed", "channel": name, "reason": "connection_lost"}
        assert closed | {"detail": ""} in records
    # The reason's wording is the client's (e.g. the server's close code).
    [disconnected] = [r for r in records if r.get("event") == "disconnected"]
    assert disconnected["reason"]


@pytest.mark.parametrize("as_json", [False, True])
async def test_cannot_connect(cli: Start, as_json: bool) -> None:
    with contextlib.closing(socket.socket()) as probe:
        probe.bind(("127.0.0.1", 0))
        url = f"ws://127.0.0.1:{probe.getsockname()[1]}/nothing"  # not listening
        run = await cli(url, "-c", "ann", *(["--json"] if as_json else []))
        assert await run.exit_status() == 1
    if as_json:
        [record] = [json.loads(line) for line in run.stdout]
        assert record["event"] == "error"
        assert record["message"].startswith(f"cannot connect to {url}")
    else:
        assert run.stdout == []
        assert f"error: cannot connect to {url}" in "\n".join(run.stderr)


# -- against the original node server ---------------------------------------------


@pytest.fixture(scope="module")
def node() -> Iterator[NodeServer]:
    server = NodeServer(REFERENCE_SERVER, "--host", "127.0.0.1", "--port", "0")
    yield server
    server.stop()


def node_url(node: NodeServer, kind: str) -> str:
    return node.url if kind == "sockjs" else node.websocket


@pytest.mark.parametrize("kind", ["sockjs", "xhr-polling", "websocket"])
async def test_original_server_echoes_every_line_unchanged(
    node: NodeServer, cli: Start, kind: str
) -> None:
    url = node_url(node, "sockjs" if kind == "xhr-polling" else kind)
    run = await cli(url, "--channel", "echo", "--wait", "0", *transport_of(kind))
    await run.write(*PAYLOADS)  # commas, emoji, an empty line, "msg,ann,x"
    await run.out_until(lambda lines: len(lines) == len(PAYLOADS))
    await run.end_input()
    assert await run.exit_status() == 0
    assert run.stdout == [f"[echo] {p}" for p in PAYLOADS]
    assert f"* connected to {url}" in run.stderr


@pytest.mark.parametrize("kind", ["sockjs", "websocket"])
async def test_original_server_several_channels_json(
    node: NodeServer, cli: Start, kind: str
) -> None:
    url = node_url(node, kind)
    channels = ["ann", "bob", "carl", "nope", "echo"]
    args = [arg for name in channels for arg in ("-c", name)]
    run = await cli(url, *args, "--json", "--wait", "0")
    await run.write("hello, world", "@bob cake", "@echo a,b 😀", "@nope anyone?")
    records = await run.json_until(
        has_records(
            {"channel": "ann", "data": "Ann says hi!"},
            {"channel": "bob", "data": "Bob doesn't agree."},
            {"channel": "ann", "data": "Ann nods: hello, world"},
            {"channel": "bob", "data": "Bob says no to: cake"},
            {"channel": "echo", "data": "a,b 😀"},
            {"channel": "carl", "data": "Carl says goodbye!"},
            {
                "event": "closed",
                "channel": "carl",
                "reason": "server_closed",
                "detail": "",  # the original sends no notice
            },
        )
    )
    # Frames arrive in order: echo answered after nope's message went out.
    await run.write("@echo last")
    records = await run.json_until(has_records({"channel": "echo", "data": "last"}))
    await run.end_input()
    assert await run.exit_status() == 0
    records += [json.loads(line) for line in run.stdout[len(records) :]]
    assert records[0] == {"event": "connected", "url": url}
    # The original ignores the unknown service: no message, no close.
    assert not [r for r in records if r.get("channel") == "nope"]
    closes = [r["channel"] for r in records if r.get("event") == "closed"]
    assert closes == ["carl"]  # not the ones closed on exit
    assert not [r for r in records if r.get("event") == "error"]
    assert run.stderr == []  # --json: stdout only


@pytest.mark.parametrize("kind", ["sockjs", "websocket"])
async def test_original_server_closing_the_connection(
    node: NodeServer, cli: Start, kind: str
) -> None:
    run = await cli(
        node_url(node, kind),
        *("-c", "ann", "-c", "echo", "--json", "--no-reconnect", "--wait", "inf"),
    )
    await run.json_until(has_records({"channel": "ann", "data": "Ann says hi!"}))
    assert await asyncio.to_thread(node.command, "close") == {"closed": 1}
    assert await run.exit_status() == 1
    records = [json.loads(line) for line in run.stdout]
    for name in ("ann", "echo"):
        closed = {"event": "closed", "channel": name, "reason": "connection_lost"}
        assert closed | {"detail": ""} in records
    [disconnected] = [r for r in records if r.get("event") == "disconnected"]
    assert disconnected["reason"]


@pytest.mark.parametrize("kind", ["sockjs", "websocket"])
async def test_original_server_reconnection(
    node: NodeServer, cli: Start, kind: str
) -> None:
    run = await cli(node_url(node, kind), "-c", "ann", "-c", "echo", "--wait", "0")
    await run.out_until(has("[ann] Ann says hi!"))
    assert await asyncio.to_thread(node.command, "close") == {"closed": 1}
    await run.err_until("reconnected")
    await run.out_until(lambda lines: lines.count("[ann] Ann says hi!") == 2)
    await run.write("@echo after")
    await run.out_until(has("[echo] after"))
    await run.end_input()
    assert await run.exit_status() == 0


# -- interactive -----------------------------------------------------------------


async def test_interactive_on_a_terminal(server: Server, cli: Start) -> None:
    controller, terminal = pty.openpty()
    try:
        run = await cli(server.sockjs, "-c", "ann", "-c", "bob", stdin=terminal)
        os.close(terminal)
        await run.err_until("Ctrl-D quits")
        os.write(controller, b"hi there\n@bob no\n")
        await run.out_until(has("[ann] Ann nods: hi there", "[bob] Bob says no to: no"))
        os.write(controller, b"\x04")  # Ctrl-D: end of input, exit at once
        assert await run.exit_status() == 0
    finally:
        os.close(controller)
    assert "'@NAME text' sends to another channel" in "\n".join(run.stderr)


# -- the line syntax, without a process --------------------------------------------


def test_router() -> None:
    router = Router(channel_labels(["ann", "weird name", "weird", "ann"]))
    assert router.labels == ["ann", "weird name", "weird", "ann#2"]
    assert router.route("hello") == ("ann", "hello")
    assert router.route("@weird name x") == ("weird name", "x")
    assert router.route("@weird x") == ("weird", "x")
    assert router.route("@ann#2 ") == ("ann#2", "")
    assert router.route("@@ann x") == ("ann", "@ann x")
    assert router.route("@weird") is None
    assert router.route("now") == ("weird", "now")
    with pytest.raises(LookupError, match="'nobody'"):
        router.route("@nobody here")
    single = Router(["ann"])
    assert single.route("@bob x") == ("ann", "@bob x")


# -- what a new user is told: one line, and the exit code --------------------------


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["ws://127.0.0.1:1/x", "-c", ""], "a channel needs the name of a service"),
        (["ws://127.0.0.1:1/x", "-c", "a", "--wait", "abc"], "'abc' is not a number"),
        (["ws://127.0.0.1:99999/x", "-c", "a"], "port is not a number from 0 to"),
        (["127.0.0.1:9999", "-c", "a"], "is not a server's URL: give http(s)://"),
    ],
)
async def test_bad_arguments_are_usage_errors(
    cli: Start, args: list[str], said: str
) -> None:
    run = await cli(*args)
    assert await run.exit_status() == 2
    errors = "\n".join(run.stderr)
    assert said in errors and "Traceback" not in errors


async def test_a_refused_connection_says_so_without_ssl_default(cli: Start) -> None:
    with contextlib.closing(socket.socket()) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        run = await cli(f"ws://127.0.0.1:{port}/x", "-c", "ann")
        assert await run.exit_status() == 1
    errors = "\n".join(run.stderr)
    assert f"127.0.0.1:{port}: Connection refused" in errors
    assert "ssl:default" not in errors


async def test_a_ws_url_that_is_not_the_websocket_says_which_to_give(
    server: Server, cli: Start
) -> None:
    url = f"ws://127.0.0.1:{server.port}/multiplex"  # SockJS's prefix, as ws://
    run = await cli(url, "-c", "ann", "--no-interactive", stdin=subprocess.DEVNULL)
    assert await run.exit_status() == 1
    errors = "\n".join(run.stderr)
    assert "not a WebSocket handshake" in errors
    assert "ws://HOST/multiplex/websocket" in errors
    assert "http://HOST/multiplex" in errors


@pytest.mark.parametrize("run_number", range(3))  # the same, every time
async def test_a_server_shutdown_is_not_a_refusal_and_exits_1(
    server: Server, cli: Start, run_number: int
) -> None:
    run = await cli(
        server.websocket,
        "-c",
        "ann",
        "-c",
        "echo",
        "--json",
        "--no-reconnect",
        "--wait",
        "inf",
    )
    await run.json_until(has_records({"channel": "ann", "data": "Ann says hi!"}))
    await server.mux.close()
    assert await run.exit_status() == 1
    records = [json.loads(line) for line in run.stdout]
    closed = [record for record in records if record.get("event") == "closed"]
    assert sorted(record["channel"] for record in closed) == ["ann", "echo"]
    assert {record["reason"] for record in closed} == {"shutdown"}


def changed(change: str) -> Callable[[list[dict[str, Any]]], bool]:
    return lambda records: any(record.get("change") == change for record in records)


async def test_shared_presence_is_printed_as_events(server: Server, cli: Start) -> None:
    member_ids: list[str] = []

    async def lobby(channel: Channel) -> None:
        member_ids.append(channel.member_id)
        await channel.join("lobby")
        channel.share_presence("lobby")
        async for _ in channel:
            pass

    server.mux.register("lobby", lobby)
    run = await cli(server.websocket, "-c", "lobby", "--json")
    await run.json_until(changed("snapshot"))
    client = await connect_in_memory(server.mux)
    await client.send("sub,lobby")
    await run.json_until(changed("joined"))
    await client.close()
    await run.json_until(changed("left"))
    await run.end_input()
    assert await run.exit_status() == 0
    own, other = member_ids
    presence = [json.loads(line) for line in run.stdout if "presence" in line]
    common = {"event": "presence", "channel": "lobby", "group": "lobby"}
    assert presence == [
        {**common, "change": "snapshot", "members": own},
        {**common, "change": "joined", "member": other},
        {**common, "change": "left", "member": other},
    ]
