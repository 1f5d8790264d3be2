"""``websocket-multiplex connect``: talk to channels from a terminal or a script.

Like ``wscat`` for one multiplexed connection: lines read from stdin go to
a channel, messages from every channel are printed with the channel's name.
The line syntax and the output formats are in :data:`CONNECT_EPILOG`, which
is also what ``websocket-multiplex connect --help`` prints.
"""

from __future__ import annotations

import argparse
import asyncio
import codecs
import contextlib
import json
import logging
import math
import os
import sys
import threading
import urllib.parse
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TextIO

from .events import (
    CloseReason,
    MemberJoined,
    PresenceEvent,
    PresenceSnapshot,
)
from .exceptions import ChannelClosed, LocalProtocolError

if TYPE_CHECKING:
    from .asyncio.client import ClientChannel, ClientState

__all__ = [
    "CONNECT_EPILOG",
    "Output",
    "Router",
    "add_connect_command",
    "channel_labels",
    "connect",
]

CONNECT_EPILOG = """\
lines:
  With one --channel, every line is sent to it unchanged. With several,
  a line goes to the current channel (at first, the first one), and
    @NAME text   sends "text" to the channel NAME
    @NAME        makes NAME the current channel
    @@text       sends "@text" to the current channel
  A channel given twice is a second, independent channel named NAME#2.
  One line is one message; a trailing "\\r" is removed.

output:
  Messages go to stdout as "[NAME] text"; channel closes, refusals and
  connection states go to stderr as "* ..." lines. With --json, stdout
  carries one JSON object per line, and nothing else:
    {"channel": "ann", "data": "Ann says hi!"}
    {"event": "connected", "url": "http://127.0.0.1:9999/multiplex"}
    {"event": "reconnecting", "reason": "attempt 1 in 0.07s; the connection was lost"}
    {"event": "reconnecting", "reason": "attempt 2 in 0.36s; attempt 1 failed: ..."}
    {"event": "reconnected"}
    {"event": "resumed"}
    {"event": "closed", "channel": "carl", "reason": "server_closed", "detail": ""}
    {"event": "closed", "channel": "x", "reason": "refused", "detail": "404 ..."}
    {"event": "disconnected", "reason": "closed by the server: 1001 ..."}
    {"event": "error", "channel": "carl", "message": "..."}
  A service that shares a group's presence with a channel (our server)
  adds events: first the members, then each change ("change" is
  "snapshot", "gap", "joined", "left" or "expired"):
    {"event": "presence", "channel": "chat", "group": "lobby",
     "change": "snapshot", "members": "host:1:2/3/chat host:1:2/4/chat"}
    {"event": "presence", "channel": "chat", "group": "lobby",
     "change": "joined", "member": "host:1:2/5/chat"}

modes:
  Interactive (stdin is a terminal): runs until end of input (Ctrl-D),
  Ctrl-C, or until every channel is closed. Otherwise (a pipe or a file,
  or --no-interactive): sends each line of stdin, then goes on printing
  for --wait seconds after the end of input, or until every channel is
  closed, whichever comes first.

exit status:
  0, or 1 when the connection could not be made or was lost for good.

examples:
  websocket-multiplex connect http://127.0.0.1:9999/multiplex -c ann -c bob
  echo hello | websocket-multiplex connect \\
      ws://127.0.0.1:9999/multiplex/websocket -c echo --json
"""

_CLOSE_TEXT = {
    CloseReason.SERVER_CLOSED: "closed by the server",
    CloseReason.REFUSED: "refused",
    CloseReason.SHUTDOWN: "closed: the server is shutting down",
    CloseReason.CONNECTION_LOST: "closed: the connection is gone",
    CloseReason.INBOX_FULL: "closed: too many unread messages",
}


def add_connect_command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    """Add ``connect`` to the ``websocket-multiplex`` subcommands."""
    parser = commands.add_parser(
        "connect",
        help="an interactive client: send lines to channels, print what comes back",
        description="Open channels over one connection; send lines, print messages.",
        epilog=CONNECT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "url",
        metavar="URL",
        type=_url,
        help="http(s)://HOST/PREFIX for SockJS (e.g. http://127.0.0.1:9999/"
        "multiplex), ws(s)://HOST/PATH for a plain WebSocket (e.g. "
        "ws://127.0.0.1:9999/multiplex/websocket)",
    )
    parser.add_argument(
        "-c",
        "--channel",
        dest="channels",
        metavar="NAME",
        action="append",
        type=_channel_name,
        required=True,
        help="open a channel to the service NAME; repeat for more channels",
    )
    parser.add_argument(
        "--json", action="store_true", help="JSON lines on stdout (see below)"
    )
    parser.add_argument(
        "--interactive",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="default: interactive when stdin is a terminal",
    )
    parser.add_argument(
        "--wait",
        type=_seconds,
        default=1.0,
        metavar="SECONDS",
        help="non-interactive: go on printing this long after the end of "
        "input; 'inf' waits until every channel is closed (default: %(default)s)",
    )
    parser.add_argument(
        "--no-reconnect",
        dest="reconnect",
        action="store_false",
        help="when the connection drops, close every channel and exit "
        "(default: reconnect and subscribe every channel again)",
    )
    parser.add_argument(
        "--no-resume",
        dest="resume",
        action="store_false",
        help="do not offer the server a resumable session; reconnecting "
        "then subscribes every channel again, and messages sent meanwhile "
        "may be lost (default: with a server of ours, a reconnection "
        "carries on where the connection stopped)",
    )
    parser.add_argument(
        "--transport",
        choices=("websocket", "xhr-polling"),
        default="websocket",
        help="the SockJS transport for an http(s):// URL: xhr-polling for a "
        "network that lets no WebSocket through (default: %(default)s)",
    )
    parser.add_argument(
        "-H",
        "--header",
        dest="headers",
        metavar="K:V",
        action="append",
        type=_header,
        default=[],
        help="an HTTP header for the handshake, e.g. 'Authorization: Bearer x'",
    )
    parser.add_argument(
        "--heartbeat",
        type=_seconds,
        default=20.0,
        metavar="SECONDS",
        help="ping the server this often; a missing pong means the connection "
        "is dead (default: %(default)s)",
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log the client's internals"
    )


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if math.isnan(value) or value < 0:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a number of seconds (e.g. 2.5, or inf)"
        )
    return value


def _channel_name(text: str) -> str:
    if not text:
        raise argparse.ArgumentTypeError(
            "a channel needs the name of a service, e.g. -c chat"
        )
    return text


def _url(text: str) -> str:
    parts = urllib.parse.urlsplit(text)
    if parts.scheme not in ("http", "https", "ws", "wss") or not parts.hostname:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a server's URL: give http(s)://HOST/PREFIX for "
            "SockJS or ws(s)://HOST/PATH for a plain WebSocket"
        )
    try:
        parts.port  # noqa: B018 - it checks the port
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: its port is not a number from 0 to 65535"
        ) from None
    return text


def connect_failure(exc: BaseException) -> str:
    """Why a connection could not be made, in the user's terms."""
    import aiohttp

    if isinstance(exc, aiohttp.WSServerHandshakeError):
        if exc.status == 200:
            return (
                "the server answered HTTP 200, not a WebSocket handshake: a "
                "ws:// URL must be the WebSocket's own (e.g. "
                "ws://HOST/multiplex/websocket); for SockJS give the http:// "
                "prefix (e.g. http://HOST/multiplex)"
            )
        return f"the server refused the WebSocket handshake (HTTP {exc.status})"
    if isinstance(exc, aiohttp.ClientResponseError):
        return f"the server answered HTTP {exc.status} {exc.message}".rstrip()
    if isinstance(exc, aiohttp.ClientConnectorError):
        os_error = exc.os_error
        reason = os.strerror(os_error.errno) if os_error.errno else str(os_error)
        return f"{exc.host}:{exc.port}: {reason}"
    try:
        return str(exc) or type(exc).__name__
    except Exception:  # some of aiohttp's need the request they came from
        return type(exc).__name__


def _header(text: str) -> tuple[str, str]:
    name, colon, value = text.partition(":")
    if not colon or not name.strip():
        raise argparse.ArgumentTypeError(f"{text!r}: write a header as NAME:VALUE")
    return name.strip(), value.strip()


def channel_labels(names: Sequence[str]) -> list[str]:
    """What each channel is called on screen: its name, ``NAME#2`` for a repeat."""
    seen: dict[str, int] = {}
    labels = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        labels.append(name if seen[name] == 1 else f"{name}#{seen[name]}")
    return labels


class Router:
    """Which channel a line goes to, by the syntax of :data:`CONNECT_EPILOG`."""

    def __init__(self, labels: Sequence[str]) -> None:
        self.labels = list(labels)
        self.current = self.labels[0]
        self._longest_first = sorted(self.labels, key=len, reverse=True)

    def route(self, line: str) -> tuple[str, str] | None:
        """``(label, text)`` to send, or ``None`` if the line only switched.

        Raises ``LookupError`` for ``@NAME`` when no channel is called NAME.
        """
        if len(self.labels) == 1 or not line.startswith("@"):
            return self.current, line
        if line.startswith("@@"):
            return self.current, line[1:]
        for label in self._longest_first:  # names may contain spaces
            head, rest = line[1 : 1 + len(label)], line[1 + len(label) :]
            if head == label and rest[:1] in ("", " "):
                if not rest:
                    self.current = label
                    return None
                return label, rest[1:]
        name = line[1:].split(" ", 1)[0]
        raise LookupError(
            f"no channel {name!r} (channels: {', '.join(self.labels)}; "
            "write @@ to send a line starting with @)"
        )


class Output:
    """Where messages and events go: text for people, or JSON lines."""

    def __init__(self, as_json: bool, out: TextIO, err: TextIO) -> None:
        self.as_json = as_json
        self._out = out
        self._err = err
        self.gone = asyncio.Event()  # stdout was closed by its reader

    def message(self, label: str, data: str) -> None:
        if self.as_json:
            self._json({"channel": label, "data": data})
        else:
            self._write(self._out, f"[{label}] {data}")

    def event(self, event: str, text: str, **fields: str) -> None:
        if self.as_json:
            self._json({"event": event, **fields})
        else:
            self._write(self._err, f"* {text}")

    def presence(self, label: str, event: PresenceEvent) -> None:
        """One presence event of a channel (docs/PROTOCOL-EXTENSIONS.md,
        section 6); members are ids, which hold no spaces."""
        fields = {"channel": label, "group": event.group}
        if isinstance(event, PresenceSnapshot):
            members = " ".join(sorted(event.members))
            fields |= {"change": "gap" if event.gap else "snapshot", "members": members}
            after = "after a gap, " if event.gap else ""
            text = f"{after}{len(event.members)} members {members}".rstrip()
        elif isinstance(event, MemberJoined):
            fields |= {"change": "joined", "member": event.member}
            text = f"+ {event.member}"
        else:
            fields |= {"change": event.reason.value, "member": event.member}
            text = f"- {event.member} ({event.reason.value})"
        self.event("presence", f"[{label}] {event.group}: {text}", **fields)

    def closed(self, label: str, reason: CloseReason, detail: str) -> None:
        text = _CLOSE_TEXT.get(reason, f"closed: {reason.value}")
        self.event(
            "closed",
            f"[{label}] {text}" + (f": {detail}" if detail else ""),
            channel=label,
            reason=reason.name.lower(),
            detail=detail,
        )

    def error(self, message: str, label: str | None = None) -> None:
        if label is None:
            self.event("error", f"error: {message}", message=message)
        else:
            text = f"[{label}] error: {message}"
            self.event("error", text, channel=label, message=message)

    def _json(self, record: dict[str, str]) -> None:
        self._write(self._out, json.dumps(record))  # ASCII: any terminal, any pipe

    def _write(self, stream: TextIO, line: str) -> None:
        if self.gone.is_set():
            return
        try:
            stream.write(line + "\n")
            stream.flush()
        except BrokenPipeError:
            # The reader went away (``| head``): stop, and keep the
            # interpreter from complaining when it flushes at exit.
            with contextlib.suppress(OSError):
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, stream.fileno())
            self.gone.set()


def connect(args: argparse.Namespace) -> int:
    """Run ``websocket-multiplex connect``; return the exit status."""
    logging.getLogger("websocket_multiplex").setLevel(
        logging.DEBUG if args.verbose else logging.WARNING
    )
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):  # lone surrogates from the wire
            stream.reconfigure(errors="backslashreplace")
    interactive = args.interactive
    if interactive is None:
        interactive = sys.stdin is not None and sys.stdin.isatty()
    output = Output(args.json, sys.stdout, sys.stderr)
    try:
        return asyncio.run(_session(args, output, interactive))
    except KeyboardInterrupt:
        return 130


async def _session(args: argparse.Namespace, output: Output, interactive: bool) -> int:
    from .asyncio.client import Backoff, ClientState
    from .client import connect as open_client

    on_state = _StatePrinter(output, args.url)
    try:
        client = await open_client(
            args.url,
            reconnect=Backoff() if args.reconnect else False,
            headers=dict(args.headers),
            heartbeat=args.heartbeat or None,
            on_state=on_state,
            resume=args.resume,
            transport=args.transport,
        )
    except Exception as exc:  # any failure to connect is the user's to see
        output.error(f"cannot connect to {args.url}: {connect_failure(exc)}")
        return 1
    labels = channel_labels(args.channels)
    tasks: list[asyncio.Future[Any]] = []
    channels: dict[str, ClientChannel] = {}
    try:
        try:
            channels = {
                label: await client.channel(name)
                for label, name in zip(labels, args.channels, strict=True)
            }
        except LocalProtocolError:  # lost for good already (--no-reconnect)
            return 1
        if interactive:
            _greet(output, labels)
        watchers = [
            asyncio.create_task(_watch(label, channel, output))
            for label, channel in channels.items()
        ]
        tasks.extend(watchers)
        tasks += [
            asyncio.create_task(_watch_presence(label, channel, output))
            for label, channel in channels.items()
        ]
        all_closed = asyncio.gather(*watchers)
        tasks.append(all_closed)
        sender = asyncio.create_task(_send_lines(Router(labels), channels, output))
        stdout_gone = asyncio.create_task(output.gone.wait())
        tasks += [sender, stdout_gone]
        ends: set[asyncio.Future[Any]] = {all_closed, sender, stdout_gone}
        done, _ = await asyncio.wait(ends, return_when=asyncio.FIRST_COMPLETED)
        if done == {sender} and not interactive:
            wait = None if math.isinf(args.wait) else args.wait
            first = asyncio.FIRST_COMPLETED
            await asyncio.wait(ends - done, timeout=wait, return_when=first)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        # Ended not by us (we close below): the connection is gone, or the
        # server shut down, whichever the client saw first: 1 either way.
        lost = client.state is ClientState.CLOSED or any(
            channel.close_reason is CloseReason.SHUTDOWN
            for channel in channels.values()
        )
        await client.close()
    return 1 if lost else 0


class _StatePrinter:
    """Turns the client's state changes into ``connected``/``reconnecting``/... ."""

    def __init__(self, output: Output, url: str) -> None:
        self._output = output
        self._url = url
        self._connected_once = False

    def __call__(self, state: ClientState, reason: str) -> None:
        from .asyncio.client import ClientState

        if state is ClientState.OPEN and not self._connected_once:
            self._connected_once = True
            self._output.event("connected", f"connected to {self._url}", url=self._url)
        elif state is ClientState.OPEN and reason == "resumed":
            text = "resumed; nothing was lost"
            self._output.event("resumed", text)
        elif state is ClientState.OPEN:
            text = "reconnected; channels subscribed again (messages may be lost)"
            self._output.event("reconnected", text)
        elif state is ClientState.RECONNECTING:
            text = f"reconnecting ({reason})"
            self._output.event("reconnecting", text, reason=reason)
        elif state is ClientState.CLOSED and reason != "closed by the application":
            self._output.event("disconnected", f"disconnected: {reason}", reason=reason)


def _greet(output: Output, labels: Sequence[str]) -> None:
    if output.as_json:
        return
    more = "; '@NAME text' sends to another channel" if len(labels) > 1 else ""
    output.event("hint", f"lines go to [{labels[0]}]{more}; Ctrl-D quits")


async def _watch(label: str, channel: ClientChannel, output: Output) -> None:
    async for data in channel:
        output.message(label, data)
    assert channel.close_reason is not None
    output.closed(label, channel.close_reason, channel.close_detail)


async def _watch_presence(label: str, channel: ClientChannel, output: Output) -> None:
    """Presence the service shares with the channel (section 6 of
    docs/PROTOCOL-EXTENSIONS.md), as events: nothing comes from a server
    that shares none."""
    async for event in channel.presence():
        output.presence(label, event)


async def _send_lines(
    router: Router, channels: dict[str, ClientChannel], output: Output
) -> None:
    """Send each line of stdin, in order; a line waits out a reconnection."""
    lines = _stdin_lines()
    while (line := await lines.get()) is not None:
        try:
            routed = router.route(line)
        except LookupError as exc:
            output.error(str(exc))
            continue
        if routed is None:
            continue
        label, text = routed
        try:
            await channels[label].send(text)
        except (ChannelClosed, ConnectionError) as exc:
            output.error(f"not sent: {exc}", label)


def _stdin_lines() -> asyncio.Queue[str | None]:
    """Lines of stdin as they come, then ``None``; works for ttys, pipes, files.

    A daemon thread does blocking ``os.read`` calls: the event loop cannot
    watch regular files, and making a terminal non-blocking would leak to
    the shell. Raw reads hold no lock of ``sys.stdin``, so the interpreter
    can exit while the thread still waits for input.
    """
    loop = asyncio.get_running_loop()
    lines: asyncio.Queue[str | None] = asyncio.Queue()

    def put(line: str | None) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: we are done
            loop.call_soon_threadsafe(lines.put_nowait, line)

    def read() -> None:
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        pending = ""
        try:
            fd = sys.stdin.fileno()
            while chunk := os.read(fd, 1 << 16):
                *complete, pending = (pending + decoder.decode(chunk)).split("\n")
                for line in complete:
                    put(line.removesuffix("\r"))
        except (AttributeError, ValueError, OSError):
            pass  # no stdin, or it broke: that is the end of input
        pending += decoder.decode(b"", final=True)
        if pending:
            put(pending.removesuffix("\r"))
        put(None)

    threading.Thread(target=read, name="stdin reader", daemon=True).start()
    return lines
