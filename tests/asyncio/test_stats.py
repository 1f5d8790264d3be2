"""Server statistics, their Prometheus form, and graceful shutdown."""

from __future__ import annotations

import asyncio

from websocket_multiplex import Channel, Limits, MultiplexServer
from websocket_multiplex.testing import connect_in_memory

from .helpers import frames, settle


def echo_server(**kwargs: object) -> MultiplexServer:
    server = MultiplexServer(**kwargs)  # type: ignore[arg-type]

    @server.channel("echo")
    async def echo(channel: Channel) -> None:
        async for data in channel:
            await channel.send(data)

    @server.channel("boom")
    async def boom(channel: Channel) -> None:
        raise RuntimeError("boom")

    return server


async def test_gauges_and_counters_survive_closed_connections() -> None:
    server = echo_server(
        authorize=lambda s: s.name != "boom" or s.request.path == "/ok"
    )
    first = await connect_in_memory(server)
    for text in (
        "sub,echo",
        "msg,echo,hello",
        "junk",
        "msg,nobody,x",
        "sub,nobody",
        "sub,boom",
    ):
        await first.send(text)
    await frames(first, 5)  # echo, 404 err+uns, 403 err+uns
    second = await connect_in_memory(server)
    await second.send("sub,echo")
    await settle()

    stats = server.stats()
    assert stats.connections == 2
    assert stats.connections_accepted == 2
    assert stats.channels == {"echo": 2}
    assert stats.frames_received == 7
    assert stats.invalid_frames == 1
    assert stats.ignored_frames == 1
    assert stats.refused_subscriptions == 1
    assert stats.authorization_refusals == 1
    assert stats.chars_received == sum(
        map(
            len,
            (
                "sub,echo",
                "msg,echo,hello",
                "junk",
                "msg,nobody,x",
                "sub,nobody",
                "sub,boom",
                "sub,echo",
            ),
        )
    )

    await first.close()
    after = server.stats()
    assert after.connections == 1
    assert after.channels == {"echo": 1}
    assert after.frames_received == 7  # totals keep what closed connections saw
    assert after.chars_sent == stats.chars_sent
    await second.close()


async def test_prometheus_text() -> None:
    server = echo_server(limits=Limits(max_topic_length=5))
    client = await connect_in_memory(server)
    await client.send("sub,echo")
    await client.send("sub,toolong")
    await client.send("sub,boom")
    assert await frames(client, 2) == ["err,boom,500 service failed", "uns,boom"]
    text = server.stats().to_prometheus()
    gauge = "# TYPE websocket_multiplex_connections gauge\n"
    assert f"{gauge}websocket_multiplex_connections 1\n" in text
    assert 'websocket_multiplex_channels{service="echo"} 1' in text
    assert "websocket_multiplex_handler_failures_total 1" in text
    assert 'websocket_multiplex_limits_hit_total{limit="max_topic_length"} 1' in text
    await client.close()


async def test_shutdown_refuses_new_connections_and_closes_every_channel() -> None:
    server = echo_server()
    client = await connect_in_memory(server)
    await client.send("sub,echo")
    await settle()
    closing = asyncio.ensure_future(server.close())
    late = await connect_in_memory(server)  # arrives during shutdown
    await closing
    assert await frames(client, 3) == [
        "err,echo,1001 server shutting down",
        "uns,echo",
        None,
    ]
    assert client.transport.closed_with == (1001, "server shutdown")
    await settle()
    assert late.transport.closed_with == (1001, "server shutdown")
    assert server.connections == set()
    assert not [t for t in asyncio.all_tasks() if "multiplex" in t.get_name()]


async def test_a_shed_channel_is_a_limit_hit_in_the_stats() -> None:
    server = MultiplexServer(limits=Limits(max_queue=1))
    release = asyncio.Event()

    @server.channel("lazy")
    async def lazy(channel: Channel) -> None:
        await release.wait()

    client = await connect_in_memory(server)
    for text in ("sub,lazy", "msg,lazy,1", "msg,lazy,2"):
        await client.send(text)
    assert await frames(client, 2) == ["err,lazy,503 channel overloaded", "uns,lazy"]
    assert server.stats().limits_hit == {"max_queue": 1}
    text = server.stats().to_prometheus()
    assert 'websocket_multiplex_limits_hit_total{limit="max_queue"} 1\n' in text
    release.set()
    await client.close()
    assert server.stats().limits_hit == {"max_queue": 1}  # kept once closed


async def test_sizes_are_named_characters_not_bytes() -> None:
    server = echo_server()
    client = await connect_in_memory(server)
    await client.send("sub,echo")
    await client.send("msg,echo,é😀")  # 11 characters, 15 bytes of UTF-8
    assert await frames(client, 1) == ["msg,echo,é😀"]
    stats = server.stats()
    assert stats.chars_received == len("sub,echo") + 11
    assert stats.chars_sent == 11
    text = stats.to_prometheus()
    assert "websocket_multiplex_chars_received_total 19\n" in text
    assert "# HELP websocket_multiplex_chars_sent_total Characters" in text
    assert "bytes" not in text.lower()
    await client.close()
