"""A TCP relay on 127.0.0.1 in front of an upstream port, under the test's control.

It stands for the network between a peer and a server (a client and our
server, a broker and Redis), and breaks it the ways networks break:

- :meth:`Proxy.abort` resets every connection at once (RST: no close
  frame, no FIN), as a crashed peer or a NAT dropping state does;
- :meth:`Proxy.stall` silently drops everything on the current
  connections, as a dead peer or a pulled cable would;
- :meth:`Proxy.cut` closes every connection (FIN) and closes new ones as
  soon as they are accepted, until :meth:`Proxy.restore`: a network
  partition, while the upstream keeps running with its data;
- :attr:`Proxy.refuse`, when set, gets each new connection's writer
  instead of the upstream (:func:`hang_up`, :func:`answer_503`);
- :attr:`Proxy.cut_after`, when set, gives each new connection a budget
  of bytes (both ways together): the chunk that goes past it is forwarded
  only up to it, wherever that falls (mid-frame, mid-header), and the
  connection is closed on both sides;
- :attr:`Proxy.swallow`, when set, is shown each chunk the upstream sends
  and the number of bytes its connection brought the client before: a
  chunk it takes is not forwarded, and the connection closes on both
  sides. Swallow the start of an answer on a kept-alive connection and a
  browser sends the request again on its own, over a new connection
  (Chromium does, for a reused connection that closed before the answer
  began): the answer is lost without the page seeing a cut.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

__all__ = ["Proxy", "answer_503", "hang_up"]

Refusal = Callable[[asyncio.StreamWriter], None]


def hang_up(writer: asyncio.StreamWriter) -> None:
    """Close a new connection at once: the server is down."""
    writer.close()


def answer_503(writer: asyncio.StreamWriter) -> None:
    """Answer a new connection ``503 Service Unavailable`` and close it."""
    writer.write(
        b"HTTP/1.1 503 Service Unavailable\r\n"
        b"Content-Length: 0\r\nConnection: close\r\n\r\n"
    )
    writer.close()


class Proxy:
    """Forwards ``127.0.0.1:port`` to ``127.0.0.1:upstream``.

    Use ``async with Proxy(upstream) as proxy`` or ``await proxy.start()``
    then ``await proxy.close()``; :attr:`port` is known once started.
    :attr:`connections` counts the connections accepted (refused ones too),
    and :meth:`wait_connections` waits for that count.
    """

    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self.port = 0
        self.connections = 0
        self.refuse: Refusal | None = None
        self.cut_after: Callable[[], int] | None = None
        self.swallow: Callable[[bytes, int], bool] | None = None
        self.swallowed = 0
        """Chunks taken by :attr:`swallow`."""
        self.cuts = 0
        """Connections ended by :attr:`cut_after` or :attr:`swallow`."""
        self._pairs: list[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = []
        self._stalled: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self._accepted = asyncio.Event()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        """Stop listening, reset what is still connected, stop every pump."""
        if self._server is not None:
            self._server.close()
        self.abort()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def __aenter__(self) -> Proxy:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def wait_connections(self, count: int) -> None:
        """Wait until ``count`` connections were accepted in all."""
        while self.connections < count:
            self._accepted.clear()
            await self._accepted.wait()

    def abort(self) -> None:
        """Reset every current connection, on both sides."""
        for client, upstream in self._pairs:
            client.transport.abort()
            upstream.transport.abort()
        self._pairs.clear()

    def _end(self, pair: tuple[asyncio.StreamWriter, asyncio.StreamWriter]) -> None:
        """Reset one connection on both sides, after what was written."""
        if pair not in self._pairs:
            return
        self._pairs.remove(pair)
        self.cuts += 1
        for writer in pair:
            # What was written goes out first; then a reset, no close frame.
            writer.close()

    def stall(self) -> None:
        """Drop, from now on, whatever either side of a current connection sends."""
        for client, upstream in self._pairs:
            self._stalled.update((client, upstream))

    def cut(self) -> None:
        """Close every current connection and close new ones at once."""
        self.refuse = hang_up
        for client, upstream in self._pairs:
            client.close()
            upstream.close()
        self._pairs.clear()

    def restore(self) -> None:
        """Let new connections through again (after :meth:`cut`)."""
        self.refuse = None

    async def _accept(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.connections += 1
        self._accepted.set()
        if self.refuse is not None:
            self.refuse(writer)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(
                "127.0.0.1", self.upstream
            )
        except OSError:
            writer.transport.abort()
            return
        if self.refuse is not None:  # cut while it connected
            writer.close()
            up_writer.close()
            return
        pair = (writer, up_writer)
        self._pairs.append(pair)
        budget = [self.cut_after()] if self.cut_after is not None else None
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            answers = sink is writer
            task = asyncio.create_task(
                self._pump(source, sink, pair, budget, answers=answers)
            )
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pump(
        self,
        source: asyncio.StreamReader,
        sink: asyncio.StreamWriter,
        pair: tuple[asyncio.StreamWriter, asyncio.StreamWriter],
        budget: list[int] | None,
        *,
        answers: bool,
    ) -> None:
        """Copy until the source ends, then close the sink (and thereby,
        through the other pump, the source); a stalled sink gets nothing.
        ``budget``: the bytes this connection may still carry, shared by
        both pumps (``None``: no limit). ``answers``: the upstream's side,
        which :attr:`swallow` sees."""
        brought = 0
        with contextlib.suppress(OSError):
            while data := await source.read(1 << 16):
                if answers and self.swallow is not None and self.swallow(data, brought):
                    self.swallowed += 1
                    self._end(pair)
                    return
                brought += len(data)
                if budget is not None and len(data) >= budget[0]:
                    sink.write(data[: max(budget[0], 0)])
                    budget[0] = 0
                    self._end(pair)
                    return
                if budget is not None:
                    budget[0] -= len(data)
                if sink not in self._stalled:
                    sink.write(data)
                    await sink.drain()
        if sink not in self._stalled:
            sink.close()
