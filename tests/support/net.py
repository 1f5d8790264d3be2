"""Ports on 127.0.0.1."""

from __future__ import annotations

import socket

__all__ = ["free_port"]


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listened on a moment ago.

    For a process the test starts with ``--port``: the probe is closed
    before the port is returned, so another process could take it first.
    A server in the test's own process should listen on port 0 instead.
    """
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port
