"""The test doubles themselves: the conformance check passes and can fail."""

from __future__ import annotations

import pytest

from websocket_multiplex import MultiplexServer
from websocket_multiplex.testing import (
    ClientCarrier,
    MemoryClient,
    check_adapter_conformance,
    conformance_server,
    connect_in_memory,
)


async def test_conformance_in_memory() -> None:
    server = conformance_server()
    await check_adapter_conformance(lambda: connect_in_memory(server))
    assert server.connections == set()  # the check closed its carrier


async def test_memory_client_is_a_client_carrier() -> None:
    client: ClientCarrier = await connect_in_memory(MultiplexServer())
    assert isinstance(client, ClientCarrier)
    await client.close()


class DropsCommas(MemoryClient):
    """A carrier that mangles payloads, as a broken adapter might."""

    async def receive(self) -> str | None:
        text = await super().receive()
        return None if text is None else text.replace(",,", ",")


async def test_conformance_check_catches_a_broken_carrier() -> None:
    server = conformance_server()

    async def connect() -> DropsCommas:
        client = await connect_in_memory(server)
        return DropsCommas(client.connection, client.transport)

    with pytest.raises(AssertionError, match="expected"):
        await check_adapter_conformance(connect, timeout=1.0)
