"""Random frame sequences through a whole connection: invariants that hold.

No exception escapes, the channel table matches the core's, and the server
never sends on a topic it has closed (or that was never opened).
"""

from __future__ import annotations

import asyncio

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from websocket_multiplex import Channel, Limits, MultiplexServer
from websocket_multiplex.testing import connect_in_memory

from .helpers import drain, settle

TOPICS = ["echo", "closer", "boom", "chatty", "nobody", "echo#1", "toString"]
frames = st.one_of(
    st.builds(
        lambda kind, topic, payload: ",".join(
            part for part in (kind, topic, payload) if part is not None
        ),
        st.sampled_from(["sub", "msg", "uns", "err", "x"]),
        st.sampled_from(TOPICS),
        st.none() | st.text(max_size=5),
    ),
    st.text(max_size=10),
)


def make_server() -> MultiplexServer:
    server = MultiplexServer(limits=Limits(max_channels=4, max_queue=3))

    @server.channel("echo")
    async def echo(channel: Channel) -> None:
        async for data in channel:
            await channel.send(data)

    @server.channel("closer")
    async def closer(channel: Channel) -> None:
        await channel.close(await channel.receive())

    @server.channel("boom")
    async def boom(channel: Channel) -> None:
        await channel.receive()
        raise RuntimeError("boom")

    @server.channel("chatty")
    async def chatty(channel: Channel) -> None:
        for i in range(5):
            await channel.send(str(i))
            await asyncio.sleep(0)

    return server


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(frames, max_size=30))
@example(["sub,echo", "msg,echo,a", "uns,echo", "msg,echo,b", "sub,echo"])
@example(["sub,chatty", "uns,chatty", "sub,closer", "uns,closer,x", "msg,closer,y"])
def test_random_sequences_keep_the_invariants(texts: list[str]) -> None:
    asyncio.run(run_sequence(texts))


async def run_sequence(texts: list[str]) -> None:
    server = make_server()
    client = await connect_in_memory(server)
    # Topics the server may still send on, as the client can tell from the
    # wire: a ``sub`` opens one (a refusal's ``uns`` closes it again), and a
    # ``uns`` from either side closes it. Each step settles and drains, so
    # nothing the server sent before the client's ``uns`` is still in flight.
    open_on_server: set[str] = set()
    for text in texts:
        kind, _, rest = text.partition(",")
        topic = rest.split(",", 1)[0]
        if kind == "sub" and topic:
            open_on_server.add(topic)
        elif kind == "uns":
            open_on_server.discard(topic)
        await client.send(text)
        await settle()
        connection = client.connection
        assert {
            c.topic for c in connection.channels
        } == connection._protocol.open_topics
        for frame in drain(client):
            assert frame is not None, "the server closed the connection"
            kind, topic = frame.split(",", 2)[:2]
            assert topic in open_on_server, f"{frame!r} on a topic not open"
            if kind == "uns":
                open_on_server.discard(topic)
    await client.close()
    await settle()
    assert server.connections == set()
