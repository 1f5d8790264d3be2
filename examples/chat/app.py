"""A chat over websocket-multiplex: rooms and presence, on one worker or many.

One worker, no Redis (groups live in the process)::

    python examples/chat/app.py --port 8001

Several workers sharing rooms through Redis (put them behind a load balancer
with sticky SockJS sessions: deploy/nginx.conf, docs/DEPLOYMENT.md)::

    python examples/chat/app.py --port 8001 --redis-url redis://127.0.0.1:6379/0
    python examples/chat/app.py --port 8002 --redis-url redis://127.0.0.1:6379/0

The page is at ``/``, SockJS at ``/multiplex`` (the raw WebSocket at
``/multiplex/websocket``). The ``chat`` service reads lines of text and
answers with JSON objects, one per message:

==================  ==========================================================
client sends        server answers (to this channel only, unless said)
==================  ==========================================================
``/join ROOM``      leaves the current room, joins ROOM:
                    ``{"type": "joined", "room": ROOM}``
``/leave``          ``{"type": "left", "room": ROOM}``
``/nick NAME``      ``{"type": "nick", "nick": NAME}``
``/who``            ``{"type": "presence", "room": ROOM, "count": N}``: members
                    of the room on every worker (``server.members``); an
                    error while Redis is unreachable
``/whoami``         ``{"type": "whoami", "worker": "HOST:PORT", "pid": PID,
                    "nick": NICK}``: which worker serves this connection
any other line      published to the room, to every member **but the sender**:
                    ``{"type": "message", "room": ROOM, "from": NICK,
                    "text": LINE}`` (the page shows its own lines itself)
==================  ==========================================================

Mistakes are answered ``{"type": "error", "text": ...}``. A channel may also
join a room when it opens, from the connection's query string
(``ws://host/multiplex/websocket?room=lobby``). One channel is in one room at
a time; open one ``chat`` channel per room to be in several.

Presence is counted on request rather than announced on every join: with N
members, announcing each join to the room costs N² deliveries.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Final

from aiohttp import web

from websocket_multiplex import Channel, MultiplexServer
from websocket_multiplex.adapters.aiohttp import (
    DEFAULT_SOCKJS_URL,
    add_client_routes,
    add_sockjs_endpoint,
    run_app,
)
from websocket_multiplex.fanout import Broker, BrokerUnavailable, InMemoryBroker

MAX_ROOM: Final = 64  # characters in a room name
MAX_NICK: Final = 32
MAX_LINE: Final = 4096  # characters in one chat line
PAGE: Final = Path(__file__).with_name("index.html")


class Member:
    """One ``chat`` channel: its nick and the room it is in."""

    def __init__(self, server: MultiplexServer, channel: Channel, worker: str) -> None:
        self.server = server
        self.channel = channel
        self.worker = worker
        self.nick = f"guest-{channel.connection.id}"
        self.room: str | None = None
        self.commands: dict[str, Callable[[str], Awaitable[None]]] = {
            "/join": self.join,
            "/leave": self.leave,
            "/nick": self.rename,
            "/who": self.who,
            "/whoami": self.whoami,
        }

    async def reply(self, kind: str, **fields: object) -> None:
        await self.channel.send(json.dumps({"type": kind, **fields}))

    async def on_line(self, line: str) -> None:
        if line.startswith("/"):
            command, _, argument = line.partition(" ")
            run = self.commands.get(command)
            if run is None:
                await self.reply("error", text=f"unknown command {command[:20]!r}")
            else:
                await run(argument.strip())
        else:
            await self.say(line)

    async def join(self, room: str) -> None:
        if not room or len(room) > MAX_ROOM:
            await self.reply("error", text=f"a room name has 1 to {MAX_ROOM} chars")
            return
        if self.room is not None:
            await self.channel.leave(self.room)
        await self.channel.join(room)
        self.room = room
        await self.reply("joined", room=room)

    async def leave(self, _argument: str) -> None:
        if self.room is not None:
            room, self.room = self.room, None
            await self.channel.leave(room)
            await self.reply("left", room=room)

    async def rename(self, nick: str) -> None:
        if not nick or len(nick) > MAX_NICK:
            await self.reply("error", text=f"a nick has 1 to {MAX_NICK} characters")
            return
        self.nick = nick
        await self.reply("nick", nick=nick)

    async def who(self, _argument: str) -> None:
        if self.room is None:
            await self.reply("error", text="join a room first: /join ROOM")
            return
        # members() lists every member on every worker: fine on request,
        # too dear to do on every join of a big room.
        try:
            count = len(await self.server.members(self.room))
        except BrokerUnavailable:
            # Redis is away: the other workers' members are unknown. Say so
            # and keep the channel (an exception would close it).
            await self.reply("error", text="presence is unavailable, try again")
            return
        await self.reply("presence", room=self.room, count=count)

    async def whoami(self, _argument: str) -> None:
        await self.reply("whoami", worker=self.worker, pid=os.getpid(), nick=self.nick)

    async def say(self, text: str) -> None:
        if self.room is None:
            await self.reply("error", text="join a room first: /join ROOM")
        elif len(text) > MAX_LINE:
            await self.reply("error", text=f"a line has at most {MAX_LINE} chars")
        else:
            message = {"type": "message", "room": self.room, "from": self.nick}
            try:
                await self.server.publish(
                    self.room,
                    json.dumps({**message, "text": text}),
                    exclude=self.channel,
                )
            except BrokerUnavailable:
                await self.reply("error", text="the room is unavailable, try again")


def chat_server(*, broker: Broker | None = None, worker: str = "") -> MultiplexServer:
    """The ``chat`` service; ``worker`` names this process in ``/whoami``."""
    server = MultiplexServer(broker=broker)

    @server.channel("chat")
    async def chat(channel: Channel) -> None:
        member = Member(server, channel, worker)
        room = channel.request.query.get("room")
        if room:
            await member.join(room)
        async for line in channel:
            await member.on_line(line)

    return server


def chat_app(
    server: MultiplexServer, *, sockjs_url: str = DEFAULT_SOCKJS_URL
) -> web.Application:
    """The page at ``/``, SockJS at ``/multiplex``, the browser client.

    ``sockjs_url`` is sockjs-client 1.x: a URL, or a local file that the
    endpoint serves as ``/multiplex/sockjs.min.js`` (the page falls back to
    a native WebSocket when it cannot load it).
    """
    app = web.Application()
    if "://" in sockjs_url:
        add_sockjs_endpoint(app, server, prefix="/multiplex", sockjs_url=sockjs_url)
    else:
        local = Path(sockjs_url)
        add_sockjs_endpoint(app, server, prefix="/multiplex", sockjs_url=local)
        sockjs_url = "/multiplex/sockjs.min.js"
    add_client_routes(app, "/websocket-multiplex")
    page = PAGE.read_text().replace("{{SOCKJS_URL}}", sockjs_url)

    async def index(_request: web.Request) -> web.Response:
        return web.Response(text=page, content_type="text/html")

    app.router.add_get("/", index)
    return app


def redis_broker(url: str, history_size: int = 1000) -> Broker:
    """A RedisBroker, imported only when asked for (it needs ``redis``)."""
    try:
        from websocket_multiplex.fanout.redis import RedisBroker
    except ImportError as exc:
        raise SystemExit(
            f"--redis-url needs redis-py: pip install 'websocket-multiplex[redis]' "
            f"({exc})"
        ) from None
    return RedisBroker(url=url, history_size=history_size)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1", help="default: %(default)s")
    parser.add_argument("--port", type=int, default=8001, help="default: %(default)s")
    parser.add_argument(
        "--redis-url",
        help="share rooms with other workers through Redis, e.g. "
        "redis://127.0.0.1:6379/0 (default: one worker, rooms in memory)",
    )
    parser.add_argument(
        "--sockjs-url",
        default=DEFAULT_SOCKJS_URL,
        help="sockjs-client 1.x for the page: a URL or a local file "
        "(default: the jsDelivr CDN)",
    )
    parser.add_argument(
        "--history-size",
        type=int,
        default=1000,
        help="messages each room keeps for members that come back "
        "(docs/PROTOCOL-EXTENSIONS.md, section 4); 0 keeps none "
        "(default: %(default)s)",
    )
    args = parser.parse_args(argv)
    if "://" not in args.sockjs_url and not Path(args.sockjs_url).is_file():
        parser.error(f"--sockjs-url {args.sockjs_url!r} is neither a URL nor a file")
    logging.basicConfig(
        level=logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    worker = f"{args.host}:{args.port}"
    broker = (
        redis_broker(args.redis_url, args.history_size)
        if args.redis_url
        else InMemoryBroker(history_size=args.history_size)
    )
    app = chat_app(
        chat_server(broker=broker, worker=worker), sockjs_url=args.sockjs_url
    )
    ready = (
        f"chat: listening on http://{worker}/ (pid {os.getpid()}, "
        f"rooms {'in Redis' if args.redis_url else 'in memory'})"
    )
    # Not web.run_app: this one lets the channels say goodbye while the
    # worker still listens, so polling clients hear it too.
    run_app(
        app,
        args.host,
        args.port,
        ready=lambda _url: print(ready, flush=True),  # once it is listening
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
