"""Closing a connection whose client has stopped reading."""

from __future__ import annotations

import asyncio
from typing import Final

CLOSE_GRACE: Final = 5.0  # seconds a closed client has to read what is queued


def abort_later_if_stuck(socket: asyncio.BaseTransport) -> None:
    asyncio.get_running_loop().call_later(CLOSE_GRACE, abort_if_stuck, socket)


def abort_if_stuck(socket: asyncio.BaseTransport) -> None:
    """Reset a connection whose client still has not read what we wrote.

    A client that stopped reading never reads the close frame either, and
    aiohttp would wait on it forever, holding the socket and its buffers.
    """
    if isinstance(socket, asyncio.WriteTransport) and socket.get_write_buffer_size():
        # A graceful close (is_closing() already true) would wait for the
        # buffer to drain: that is exactly what never happens here.
        socket.abort()


def fit_close_reason(reason: str) -> str:
    """``reason`` cut to what a close frame carries: 123 bytes of UTF-8
    (RFC 6455, 5.5), on a character boundary. Longer makes the frame invalid
    and the client fails the connection (1002) instead of reading the code."""
    return reason.encode()[:123].decode(errors="ignore")
