"""Resumable sessions on the server (docs/PROTOCOL-EXTENSIONS.md, section 3),
driven frame by frame over memory carriers: the welcome, acks, a connection
that outlives its carrier, resumes, takeovers, and every way a session ends."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from websocket_multiplex import Channel, CloseReason, Limits, MultiplexServer
from websocket_multiplex.resume import ACK_ALONE, ACK_EVERY, GOODBYE
from websocket_multiplex.testing import MemoryClient, connect_in_memory

from .helpers import drain, frame, frames, item, nothing_sent, settle


def echo_server(
    limits: Limits | None = None, **options: bool
) -> tuple[MultiplexServer, asyncio.Queue[CloseReason | None]]:
    """``echo`` answers every message; ``ended`` gets each handler's close
    reason once its channel closed."""
    server = MultiplexServer(limits=limits or Limits(), **options)
    ended: asyncio.Queue[CloseReason | None] = asyncio.Queue()

    @server.channel("echo")
    async def echo(channel: Channel) -> None:
        async for data in channel:
            await channel.send(data)
        ended.put_nowait(channel.close_reason)

    return server, ended


async def session_on(server: MultiplexServer, token: str = "tok") -> MemoryClient:
    """A memory client that offered ``token`` and was welcomed."""
    client = await connect_in_memory(server)
    await client.send(f"hey,r1,{token}")
    assert await frame(client) == f"hey,r1,{token},0"
    return client


async def test_the_welcome_then_acks_every_32_frames() -> None:
    server, _ = echo_server()
    client = await session_on(server)
    await client.send("sub,echo")
    for n in range(ACK_EVERY - 1):
        await client.send(f"msg,echo,{n}")
    got = await frames(client, ACK_EVERY)
    # The ack goes as the 32nd frame arrives, before its echo.
    assert [f for f in got if f and f.startswith("ack,")] == [f"ack,{ACK_EVERY}"]
    assert [f for f in got if f and f.startswith("msg,")] == [
        f"msg,echo,{n}" for n in range(ACK_EVERY - 1)
    ]
    assert client.connection.session is not None


async def test_acks_ride_with_replies_and_go_alone_only_for_a_sender_heard_out() -> (
    None
):
    server, _ = echo_server()

    @server.channel("sink")
    async def sink(channel: Channel) -> None:
        async for _ in channel:
            pass

    client = await session_on(server)
    # A peer that only sends: no reply carries the ack, which goes alone as
    # the ACK_ALONE-th frame arrives (a timer's would count all of them).
    client.connection.receive("sub,sink")
    for n in range(ACK_ALONE + 9):
        client.connection.receive(f"msg,sink,{n}")
    assert await frame(client) == f"ack,{ACK_ALONE}"
    # With replies going out, the ack due goes in the same write as one.
    client.connection.receive("sub,echo")
    for n in range(ACK_EVERY):
        client.connection.receive(f"msg,echo,{n}")
    got = await frames(client, ACK_EVERY + 1)
    acks = [f for f in got if f and f.startswith("ack,")]
    assert acks == [f"ack,{ACK_ALONE + 10 + 1 + ACK_EVERY}"]
    assert got[0] == "msg,echo,0"


async def test_a_quiet_sender_is_acknowledged_by_the_timer() -> None:
    server, _ = echo_server()
    client = await session_on(server)
    await client.send("sub,echo")
    await client.send("msg,echo,x")
    assert await frames(client, 2) == ["msg,echo,x", "ack,2"]


async def test_the_timer_ack_rides_with_frames_going_out() -> None:
    """While the server keeps sending, the ack the timer finds due goes in
    the same carrier message as the next frames, not in one of its own."""
    server = MultiplexServer()

    @server.channel("ticker")
    async def ticker(channel: Channel) -> None:
        for _ in range(400):  # 2 s at most
            await channel.send("t")
            await asyncio.sleep(0.005)

    client = await session_on(server)
    batches: list[list[str]] = []
    acked = asyncio.Event()
    send_many = client.transport.send_many

    async def recording(texts: list[str]) -> None:
        batches.append(list(texts))
        if "ack,1" in texts:
            acked.set()
        await send_many(texts)

    client.transport.send_many = recording  # type: ignore[method-assign]
    await client.send("sub,ticker")
    await asyncio.wait_for(acked.wait(), 5)
    with_ack = [batch for batch in batches if "ack,1" in batch]
    assert len(with_ack) == 1
    assert any(text.startswith("msg,ticker,") for text in with_ack[0])
    await client.close()


async def test_a_lost_carrier_keeps_the_channels_and_a_resume_resends() -> None:
    server, ended = echo_server()
    first = await session_on(server)
    await first.send("sub,echo")
    await first.send("msg,echo,1")
    assert await frame(first) == "msg,echo,1"
    await first.close()  # the carrier is lost; the client got 1 frame
    assert server.sessions is not None and server.sessions.detached_count == 1
    connection = first.connection
    assert [c.name for c in connection.channels] == ["echo"]
    assert ended.empty()

    second = await connect_in_memory(server)
    await second.send("hey,r1,tok,0")  # as if "msg,echo,1" never arrived
    assert await frames(second, 2) == ["hey,r1,tok,2", "msg,echo,1"]
    await second.send("msg,echo,2")  # frame 3: the stream goes on
    assert await frame(second) == "msg,echo,2"
    assert server.sessions.detached_count == 0
    assert server.connections == {connection}  # one connection, not two
    assert ended.empty()


async def test_what_a_handler_sends_while_detached_is_resent() -> None:
    server = MultiplexServer()
    go = asyncio.Event()

    @server.channel("news")
    async def news(channel: Channel) -> None:
        await go.wait()
        for n in range(3):
            await channel.send(f"n{n}")
        await channel.receive()

    first = await session_on(server)
    await first.send("sub,news")
    await first.close()
    go.set()
    await settle()
    second = await connect_in_memory(server)
    await second.send("hey,r1,tok,0")
    assert await frames(second, 4) == [
        "hey,r1,tok,1",
        "msg,news,n0",
        "msg,news,n1",
        "msg,news,n2",
    ]


async def test_past_the_grace_period_every_channel_ends_not_resumed() -> None:
    server, ended = echo_server(Limits(resume_grace=0.05))
    client = await session_on(server)
    await client.send("sub,echo")
    await client.close()
    assert await item(ended) is CloseReason.NOT_RESUMED
    assert server.connections == set()
    assert server.sessions is not None and len(server.sessions) == 0
    # Too late: a new session, under a token of the server's choosing.
    late = await connect_in_memory(server)
    await late.send("hey,r1,tok,0")
    answer = await frame(late)
    assert answer is not None and answer.endswith(",0")
    assert answer != "hey,r1,tok,0"


async def test_past_the_resume_buffer_while_detached_the_session_ends() -> None:
    server = MultiplexServer(limits=Limits(resume_buffer=1000))
    closed: asyncio.Queue[CloseReason | None] = asyncio.Queue()
    detached = asyncio.Event()

    @server.channel("flood")
    async def flood(channel: Channel) -> None:
        await detached.wait()
        for _ in range(100):
            await channel.send("x" * 100)
        async for _ in channel:  # until it closes
            pass
        closed.put_nowait(channel.close_reason)

    client = await session_on(server)
    await client.send("sub,flood")
    await client.close()
    detached.set()
    assert await item(closed) is CloseReason.NOT_RESUMED
    assert server.connections == set()


async def test_an_impossible_resume_ends_the_old_session_and_begins_a_new_one() -> None:
    server, ended = echo_server()
    first = await session_on(server)
    await first.send("sub,echo")
    await first.close()
    liar = await connect_in_memory(server)
    await liar.send("hey,r1,tok,99")  # the server sent 0 frames
    answer = await frame(liar)
    assert answer is not None and answer != "hey,r1,tok,0"
    assert await item(ended) is CloseReason.NOT_RESUMED


async def test_a_resume_takes_over_a_carrier_not_yet_seen_dead() -> None:
    server, ended = echo_server()
    old = await session_on(server)
    await old.send("sub,echo")
    new = await connect_in_memory(server)
    await new.send("hey,r1,tok,0")
    assert await frame(new) == "hey,r1,tok,1"
    assert await frame(old) is None  # closed by the server
    await old.send("msg,echo,late")  # the old carrier's last frames: dropped
    await new.send("msg,echo,x")
    assert await frame(new) == "msg,echo,x"
    assert nothing_sent(new)
    await old.close()  # its end does not end the session
    assert server.sessions is not None and server.sessions.detached_count == 0
    assert ended.empty()


async def test_a_proposed_token_already_taken_gets_another() -> None:
    server, _ = echo_server()
    await session_on(server, "same")
    other = await connect_in_memory(server)
    await other.send("hey,r1,same")
    answer = await frame(other)
    assert answer is not None and answer.startswith("hey,r1,") and answer.endswith(",0")
    assert answer != "hey,r1,same,0"


@pytest.mark.parametrize(
    "first",
    [
        "sub,echo",  # the base protocol: a hello later means nothing
        "hey,r2,tok",  # another version
        "hey,r1",  # no token
    ],
)
async def test_only_a_first_frame_hello_of_this_version_is_answered(first: str) -> None:
    server, _ = echo_server()
    client = await connect_in_memory(server)
    await client.send(first)
    await client.send("hey,r1,tok")
    await client.send("sub,echo")
    await client.send("msg,echo,x")
    assert await frame(client) == "msg,echo,x"
    assert client.connection.session is None


async def test_a_server_without_resume_ignores_the_hello() -> None:
    server, _ = echo_server(resume=False)
    client = await connect_in_memory(server)
    await client.send("hey,r1,tok")
    await client.send("sub,echo")
    await client.send("msg,echo,x")
    assert await frame(client) == "msg,echo,x"
    assert drain(client) == []


async def test_a_goodbye_ends_the_session_and_closes_its_carrier() -> None:
    """The server closes the carrier on a goodbye: that close is how the
    client knows the goodbye arrived (docs/PROTOCOL-EXTENSIONS.md, 3)."""
    server, ended = echo_server()
    client = await session_on(server)
    await client.send("sub,echo")
    await client.send(GOODBYE)
    assert await item(ended) is CloseReason.CLIENT_CLOSED
    while await client.receive() is not None:
        pass
    assert client.close_frame == (1000, "goodbye")
    assert server.sessions is not None and len(server.sessions) == 0


async def test_a_goodbye_on_a_resumed_carrier_ends_the_connection() -> None:
    server, ended = echo_server()
    first = await session_on(server)
    await first.send("sub,echo")
    await first.close()
    second = await connect_in_memory(server)
    await second.send("hey,r1,tok,0")
    assert await frame(second) == "hey,r1,tok,1"
    await second.send(GOODBYE)
    assert await item(ended) is CloseReason.CLIENT_CLOSED
    while await second.receive() is not None:
        pass
    assert second.close_frame == (1000, "goodbye")
    await second.close()
    assert server.connections == set()


async def test_detached_sessions_are_bounded() -> None:
    server, ended = echo_server(Limits(max_detached_sessions=1))
    first = await session_on(server, "a")
    await first.send("sub,echo")
    second = await session_on(server, "b")
    await second.send("sub,echo")
    await first.close()
    assert ended.empty()
    await second.close()  # one more detached: the oldest ends
    assert await item(ended) is CloseReason.NOT_RESUMED
    assert server.sessions is not None and server.sessions.detached_count == 1


async def test_what_detached_sessions_keep_in_all_is_bounded() -> None:
    """Limits.detached_buffer: what sessions waiting for their client keep
    counts together, frames kept while detached too; past the bound, the
    session that keeps most ends (not the newest, nor the one that grew),
    and the others wait on."""
    server = MultiplexServer(limits=Limits(detached_buffer=5000))
    ended: asyncio.Queue[tuple[str, CloseReason | None]] = asyncio.Queue()
    more = asyncio.Event()

    @server.channel("flood")
    async def flood(channel: Channel) -> None:
        async for data in channel:
            name, count = data.split(":")
            for _ in range(int(count)):
                await channel.send("x" * 100)
            if name == "b":
                await more.wait()  # then 10 more, sent while detached
                for _ in range(10):
                    await channel.send("x" * 100)
        ended.put_nowait((name, channel.close_reason))

    # Each goes away with its frames unacknowledged: a 30, b 10.
    for name, count in (("a", 30), ("b", 10)):
        client = await session_on(server, name)
        await client.send("sub,flood")
        await client.send(f"msg,flood,{name}:{count}")
        sent = await frames(client, count)
        assert all(got and got.startswith("msg,") for got in sent)
        await client.close()
    sessions = server.sessions
    assert sessions is not None
    assert sessions.detached_count == 2
    assert 4000 < sessions.detached_size <= 5000
    assert ended.empty()
    more.set()  # b keeps 10 frames more: past the bound, a (the larger) ends
    assert await item(ended) == ("a", CloseReason.NOT_RESUMED)
    assert sessions.detached_count == 1
    kept = sessions.get("b")
    assert kept is not None and sessions.detached_size == kept.book.retained_size
    assert sessions.detached_size > 2000  # all of b's 20 frames
    control = await session_on(server, "c")  # another client is served
    await control.send("sub,flood")
    await control.send("msg,flood,c:1")
    assert await frame(control) == "msg,flood," + "x" * 100


def documented_exchange() -> list[str]:
    """The first test vector of docs/PROTOCOL-EXTENSIONS.md, section 3."""
    doc = Path(__file__).parents[2] / "docs" / "PROTOCOL-EXTENSIONS.md"
    section = doc.read_text().split("## 3.", 1)[1]
    vectors = section.split("### Test vectors", 1)[1]
    block = vectors.split("\n\n")[2]  # the text, then the first block
    return [line.strip() for line in block.splitlines()]


async def test_the_documented_exchange() -> None:
    lines = documented_exchange()
    assert len(lines) > 10
    server, ended = echo_server()
    carrier = await connect_in_memory(server)

    async def next_from_server() -> str | None:
        while (got := await frame(carrier)) is not None and got.startswith("ack,"):
            pass  # acks come when the timer says: not part of the check
        return got

    for line in lines:
        if line.startswith("--"):
            await carrier.close()
            carrier = await connect_in_memory(server)
            continue
        side, text = line[:2], line[3:].split()[0]
        if side == "C:":
            await carrier.send(text)
        elif not text.startswith("ack,"):
            assert side == "S:", line
            assert await next_from_server() == text, line
    assert ended.empty()  # the handler never saw a close


async def test_a_writer_waiting_for_acks_goes_on_after_a_resume() -> None:
    """The resume acknowledges what the client has: a sender held back by
    resume_buffer must then go on, on the new carrier."""
    server = MultiplexServer(limits=Limits(resume_buffer=1000))
    more = asyncio.Event()

    @server.channel("news")
    async def news(channel: Channel) -> None:
        for n in range(40):
            await channel.send(f"n{n:02d}" + "x" * 96)
        await more.wait()
        await channel.send("last")
        await channel.receive()

    old = await session_on(server)
    await old.send("sub,news")
    got = []
    while len(got) < 40:  # never acknowledged: the writer waits, above 1000
        received = await frame(old)
        if received is not None and received.startswith("msg,"):
            got.append(received)
    new = await connect_in_memory(server)
    await new.send("hey,r1,tok,40")  # the old carrier, not seen dead yet
    assert await frame(new) == "hey,r1,tok,1"
    more.set()
    while (received := await frame(new)) is not None and received.startswith("ack,"):
        pass
    assert received == "msg,news,last"


async def test_an_ended_session_closes_the_carrier_it_is_attached_to() -> None:
    server, ended = echo_server()
    old = await session_on(server)
    await old.send("sub,echo")
    liar = await connect_in_memory(server)
    await liar.send("hey,r1,tok,99")  # impossible: the old session ends
    assert await item(ended) is CloseReason.NOT_RESUMED
    assert await frame(old) is None  # closed, not left open and silent
    assert old.transport.closed_with is not None


async def test_a_flood_of_dropped_sessions_stays_bounded_and_others_are_served() -> (
    None
):
    """A client that opens sessions and drops them, hundreds of times: at
    most max_detached_sessions wait, their buffers within resume_buffer,
    and a control client on the same server is answered throughout."""
    server, _ = echo_server(Limits(max_detached_sessions=20, resume_buffer=10_000))
    control = await session_on(server, "control")
    await control.send("sub,echo")
    for n in range(300):
        flood = await session_on(server, f"flood{n}")
        await flood.send("sub,echo")
        await flood.send("msg,echo," + "x" * 5000)
        await flood.close()
        if n % 50 == 0:
            await control.send(f"msg,echo,{n}")
            while (got := await frame(control)) is not None and got.startswith("ack,"):
                pass
            assert got == f"msg,echo,{n}"
    assert server.sessions is not None
    assert server.sessions.detached_count == 20
    assert len(server.connections) == 21  # the detached ones and the control


async def test_presented_positions_are_bounded_and_others_are_served() -> None:
    """A client may present group positions (``pos``, section 4) that no
    join ever uses: past ``max_stream_positions`` they are dropped and
    counted, and another client is served all the while."""
    limits = Limits(max_stream_positions=16)
    server, _ = echo_server(limits)
    hostile = await session_on(server, "hostile")
    for n in range(1000):
        hostile.connection.receive(f"pos,echo,g{n},pGJXikYw,{n + 1}")
    counters = hostile.connection.counters
    assert counters.limits_hit["max_stream_positions"] == 1000 - 16
    control = await session_on(server, "control")
    await control.send("sub,echo")
    await control.send("msg,echo,still served")
    got = await frames(control, 1)
    assert got == ["msg,echo,still served"]


async def test_a_writer_behind_a_replaced_catch_up_sends_its_frames_once() -> None:
    """A frame sent while a resume's catch-up is under way waits for it;
    when another resume replaces that catch-up, the new one resends the
    frame (it is not acknowledged), so the writer must not send it again."""
    server = MultiplexServer()
    more = asyncio.Event()

    @server.channel("news")
    async def news(channel: Channel) -> None:
        await channel.send("n0")
        await more.wait()
        await channel.send("late")
        await channel.send("after")
        await channel.receive()
        await channel.send("end")  # behind whatever the writer still had
        await channel.receive()

    first = await session_on(server)
    await first.send("sub,news")
    assert await frame(first) == "msg,news,n0"
    await first.close()
    stuck = await connect_in_memory(server)

    async def never(texts: list[str]) -> None:
        await asyncio.Event().wait()  # a carrier that takes nothing more

    stuck.transport.send_many = never  # type: ignore[method-assign]
    await stuck.send("hey,r1,tok,0")  # its catch-up waits on the carrier
    await settle()
    more.set()  # "late" waits behind that catch-up
    await settle()
    third = await connect_in_memory(server)
    await third.send("hey,r1,tok,0")
    got = []
    while (received := await frame(third)) != "msg,news,after":
        got.append(received)
    assert got == ["hey,r1,tok,1", "msg,news,n0", "msg,news,late"]
    await third.send("msg,news,go")
    rest = []
    while (received := await frame(third)) != "msg,news,end":
        rest.append(received)
    assert [text for text in rest if text and not text.startswith("ack,")] == []
