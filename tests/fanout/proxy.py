"""A TCP relay on 127.0.0.1 in front of a real Redis, that a test can cut.

Cutting closes every connection through it and closes new ones as soon as
they are accepted, while Redis keeps running with its data: a network
partition, not a restart. Restoring lets new connections through again.
"""

from __future__ import annotations

import asyncio
import contextlib


class Proxy:
    """``await start()``, ``cut()``, ``restore()``, ``await close()``."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self._open = True
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._pipes: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def cut(self) -> None:
        self._open = False
        for writer in self._writers:
            writer.close()

    def restore(self) -> None:
        self._open = True

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
        for pipe in self._pipes:
            pipe.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)

    async def _relay(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        if not self._open:
            writer.close()
            return
        try:
            upstream_reader, upstream = await asyncio.open_connection(
                "127.0.0.1", self.target_port
            )
        except OSError:
            writer.close()
            return
        if not self._open:  # cut while it connected
            writer.close()
            upstream.close()
            return
        self._writers.update((writer, upstream))
        for source, sink in ((reader, upstream), (upstream_reader, writer)):
            pipe = asyncio.create_task(self._pipe(source, sink))
            self._pipes.add(pipe)
            pipe.add_done_callback(self._pipes.discard)

    async def _pipe(
        self, source: asyncio.StreamReader, sink: asyncio.StreamWriter
    ) -> None:
        """Copy until either side ends, then close the sink (and thereby,
        through the other pipe, the source)."""
        try:
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            self._writers.discard(sink)
            sink.close()
            with contextlib.suppress(OSError):
                await sink.wait_closed()
