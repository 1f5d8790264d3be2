"""MultiplexClient over in-memory carriers: its own seam, timing under control.

The races here are hard to hit over sockets on purpose; these tests set them
up exactly. Tests that could block the event loop run it in a thread of
their own, so a regression fails instead of hanging the suite.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from websocket_multiplex import (
    ChannelClosed,
    ChannelGap,
    CloseReason,
    DisconnectCause,
    Disconnection,
    LocalProtocolError,
)
from websocket_multiplex.asyncio.client import Backoff, ClientState, MultiplexClient
from websocket_multiplex.codes import GOING_AWAY, NO_SUCH_SERVICE, CloseCode

from .support import (
    FAST,
    TIMEOUT,
    MemoryCarrier,
    MemoryNetwork,
    States,
    run_in_own_loop,
)


async def started(net: MemoryNetwork, **options: Any) -> MultiplexClient:
    options.setdefault("reconnect", FAST)
    options.setdefault("resume", False)  # the base protocol's frames
    client = MultiplexClient(net.open, **options)
    await client.start()
    return client


async def reconnected(client: MultiplexClient) -> None:
    async with asyncio.timeout(TIMEOUT):
        await client.wait_for(ClientState.OPEN)
        while client.reconnects == 0:  # wait_for(OPEN) may see the old state
            await client.wait_for(ClientState.RECONNECTING)
            await client.wait_for(ClientState.OPEN)


# -- frames on the wire ---------------------------------------------------------


async def test_channels_subscribe_send_and_unsubscribe() -> None:
    net = MemoryNetwork()
    client = await started(net)
    ann = await client.channel("ann")
    await ann.send("a,b")
    await ann.close()
    weird = await client.channel("weird name,ü/%😀")
    await weird.send("😀")
    assert net.current.sent == [
        "sub,ann",
        "msg,ann,a,b",
        "uns,ann",
        "sub,weird%20name%2C%FC/%25%uD83D%uDE00",
        "msg,weird%20name%2C%FC/%25%uD83D%uDE00,😀",
    ]
    await client.close()


async def test_inbox_full_closes_only_that_channel_and_unsubscribes() -> None:
    net = MemoryNetwork()
    client = await started(net, max_queue=2)
    flood, calm = await client.channel("flood"), await client.channel("calm")
    for n in range(3):
        net.current.feed(f"msg,flood,{n}")
    net.current.feed("msg,calm,still here")
    async with asyncio.timeout(TIMEOUT):
        assert await flood.wait_closed() is CloseReason.INBOX_FULL
    assert [await flood.receive(), await flood.receive()] == ["0", "1"]
    with pytest.raises(ChannelClosed):
        await flood.receive()
    assert await calm.receive(timeout=TIMEOUT) == "still here"
    assert "uns,flood" in net.current.sent
    await client.close()


async def test_inbox_is_bounded_in_characters_too() -> None:
    net = MemoryNetwork()
    client = await started(net, max_queue_size=100)
    flood, calm = await client.channel("flood"), await client.channel("calm")
    net.current.feed("msg,flood," + "a" * 150)  # an empty inbox takes it
    net.current.feed("msg,flood," + "b")  # 151 > 100: too much
    net.current.feed("msg,calm,still here")
    async with asyncio.timeout(TIMEOUT):
        assert await flood.wait_closed() is CloseReason.INBOX_FULL
    assert await flood.receive() == "a" * 150
    assert await calm.receive(timeout=TIMEOUT) == "still here"
    assert "uns,flood" in net.current.sent
    await client.close()


async def test_second_receiver_is_refused() -> None:
    client = await started(MemoryNetwork())
    channel = await client.channel("a")
    first = asyncio.create_task(channel.receive())
    await asyncio.sleep(0)  # let it start waiting
    with pytest.raises(LocalProtocolError):
        await channel.receive(timeout=TIMEOUT)
    first.cancel()
    await client.close()


async def test_a_refusal_closes_the_channel_with_the_notice() -> None:
    net = MemoryNetwork()
    client = await started(net)
    nope = await client.channel("nope")
    net.current.feed(f"err,nope,{NO_SUCH_SERVICE}")
    net.current.feed("uns,nope")
    async with asyncio.timeout(TIMEOUT):
        assert await nope.wait_closed() is CloseReason.REFUSED
    assert nope.close_detail == NO_SUCH_SERVICE
    assert client.channels == []
    await client.close()


async def test_a_server_going_away_keeps_the_channel_for_the_next_connection() -> None:
    net = MemoryNetwork()
    client = await started(net)
    news = await client.channel("news")
    net.current.feed(f"err,news,{GOING_AWAY}")
    net.current.feed("uns,news")
    net.current.peer_gone()
    await reconnected(client)
    assert net.current.sent == ["sub,news"]
    assert not news.closed
    assert client.channels == [news]
    await client.close()


# -- losing and regaining the carrier ----------------------------------------------


def test_send_racing_a_dropped_carrier_waits_for_the_reconnection() -> None:
    # The carrier fails sends as soon as the connection drops, before the
    # reader task has run and seen the end of it (aiohttp does exactly this:
    # "Cannot write to closing transport"). A send in that window used to
    # retry at once, forever, without yielding: the whole loop hung.
    async def scenario() -> None:
        net = MemoryNetwork()
        client = await started(net)
        echo = await client.channel("echo")
        first = net.current
        first.peer_gone()
        async with asyncio.timeout(TIMEOUT):
            await echo.send("after the drop")
        assert net.current is not first
        assert net.current.sent == ["sub,echo", "msg,echo,after the drop"]
        assert echo.gaps == 1
        await client.close()

    run_in_own_loop(scenario)


@pytest.mark.parametrize(
    "failure",
    [
        aiohttp.ServerDisconnectedError(),  # accepted, then hung up
        aiohttp.WSServerHandshakeError(
            None,  # type: ignore[arg-type]
            (),
            status=503,
            message="Invalid response status",
        ),
        aiohttp.ClientConnectorError,  # an OSError, for comparison
    ],
    ids=["disconnected", "handshake-503", "refused"],
)
async def test_any_failed_attempt_is_retried(failure: Any) -> None:
    # While a server restarts, a reconnection attempt may meet a socket that
    # closes, or a proxy answering 503; neither is an OSError. Such an error
    # used to end the reconnection task: the client stayed RECONNECTING
    # forever, its channels open but dead and its senders stuck.
    if failure is aiohttp.ClientConnectorError:
        failure = ConnectionRefusedError("connection refused")
    net = MemoryNetwork()
    states = States()
    client = await started(net, on_state=states)
    echo = await client.channel("echo")
    net.failures = [failure, failure]
    net.current.peer_gone()
    await reconnected(client)
    assert states.seen.count(ClientState.RECONNECTING) == 3  # two failed attempts
    assert net.current.sent == ["sub,echo"]
    await echo.send("back")
    assert net.current.sent[-1] == "msg,echo,back"
    await client.close()


async def test_a_failing_carrier_is_a_lost_connection() -> None:
    # A carrier whose receive() raises (a SockJS frame that is not JSON, a
    # bug in a custom carrier) used to kill the reader silently: every
    # channel stayed open and dead.
    net = MemoryNetwork()
    client = await started(net)
    echo = await client.channel("echo")
    net.current.fail(ValueError("a broken frame"))
    await reconnected(client)
    assert net.current.sent == ["sub,echo"]
    assert echo.gaps == 1
    await client.close()


async def test_a_failing_carrier_without_reconnection_closes_every_channel() -> None:
    net = MemoryNetwork()
    client = await started(net, reconnect=None)
    echo = await client.channel("echo")
    net.current.fail(ValueError("a broken frame"))
    async with asyncio.timeout(TIMEOUT):
        assert await echo.wait_closed() is CloseReason.CONNECTION_LOST
    assert client.state is ClientState.CLOSED


async def test_channel_opened_while_resubscribing_is_subscribed_too() -> None:
    net = MemoryNetwork()
    client = await started(net)
    a = await client.channel("a")
    gated = net.next_carrier = MemoryCarrier()
    gated.send_gate = asyncio.Event()
    net.current.peer_gone()
    async with asyncio.timeout(TIMEOUT):
        await gated.sending.wait()  # "sub,a" is on its way, not yet sent
    b = await client.channel("b")
    gated.send_gate.set()
    await reconnected(client)
    assert "sub,b" in gated.sent, gated.sent
    assert (a.gaps, b.gaps) == (1, 0)  # b had no connection to lose
    await client.close()


async def test_gives_up_after_max_attempts_and_closes_every_channel() -> None:
    net = MemoryNetwork()
    states = States()
    backoff = Backoff(initial=0.01, maximum=0.01, max_attempts=2)
    client = await started(net, reconnect=backoff, on_state=states)
    a, b = await client.channel("a"), await client.channel("a")
    refused = ConnectionRefusedError("refused")
    net.failures = [ConnectionRefusedError(), refused]
    net.current.peer_gone()
    async with asyncio.timeout(TIMEOUT):
        assert await a.wait_closed() is CloseReason.CONNECTION_LOST
        assert await b.wait_closed() is CloseReason.CONNECTION_LOST
    assert states.seen == [
        ClientState.CONNECTING,
        ClientState.OPEN,
        ClientState.RECONNECTING,
        ClientState.RECONNECTING,
        ClientState.CLOSED,
    ]
    assert states.reasons[2].endswith("; the connection was lost")
    assert states.reasons[3].endswith("; attempt 1 failed: ConnectionRefusedError()")
    assert states.reasons[4] == "gave up after 2 reconnection attempts"
    assert client.disconnection == Disconnection(
        DisconnectCause.GAVE_UP, attempts=2, error=refused
    )
    with pytest.raises(ChannelClosed):
        await a.send("x")


# -- what the application sees ---------------------------------------------------


async def test_states_from_connecting_to_closed_by_the_server() -> None:
    net = MemoryNetwork()
    states = States()
    client = await started(net, reconnect=None, on_state=states)
    echo = await client.channel("echo")
    net.current.close_frame = (CloseCode.APPLICATION, "go away now")  # type: ignore[attr-defined]
    net.current.peer_gone()
    async with asyncio.timeout(TIMEOUT):
        assert await echo.wait_closed() is CloseReason.CONNECTION_LOST
    assert states.seen == [ClientState.CONNECTING, ClientState.OPEN, ClientState.CLOSED]
    assert states.reasons[-1] == "closed by the server: 3000 go away now"
    server_close = Disconnection(
        DisconnectCause.SERVER, CloseCode.APPLICATION, "go away now"
    )
    assert client.disconnection == server_close
    assert client.disconnection.cause is not DisconnectCause.GAVE_UP


async def test_first_connection_failing_raises_and_stays_connecting() -> None:
    net = MemoryNetwork()
    net.failures = [ConnectionRefusedError("nobody home")]
    states = States()
    client = MultiplexClient(net.open, reconnect=FAST, on_state=states, resume=False)
    with pytest.raises(ConnectionRefusedError):
        await client.start()
    assert states.seen == [ClientState.CONNECTING]
    await client.start()  # may be tried again
    assert states.seen == [ClientState.CONNECTING] * 2 + [ClientState.OPEN]
    await client.close()


async def test_gaps_are_raised_in_order_with_the_messages() -> None:
    net = MemoryNetwork()
    client = await started(net)
    told, plain = await client.channel("a", report_gaps=True), await client.channel("b")
    for topic in ("a", "b"):
        net.current.feed(f"msg,{topic},1")
        net.current.feed(f"msg,{topic},2")
    net.current.peer_gone()
    await reconnected(client)
    net.current.feed("msg,a,3")
    net.current.feed("msg,b,3")
    assert await told.receive(TIMEOUT) == "1"
    assert await told.receive(TIMEOUT) == "2"
    with pytest.raises(ChannelGap) as gap:
        await told.receive(TIMEOUT)
    assert await told.receive(TIMEOUT) == "3"
    assert gap.value.name == "a"
    assert gap.value.reconnections == 1
    assert gap.value.disconnection == Disconnection(DisconnectCause.LOST)
    # The default: the same stream without the marker, and the count.
    assert [await plain.receive(TIMEOUT) for _ in range(3)] == ["1", "2", "3"]
    assert (told.gaps, plain.gaps) == (1, 1)
    await client.close()


async def test_a_waiting_receiver_learns_of_the_gap_at_once() -> None:
    net = MemoryNetwork()
    client = await started(net)
    told = await client.channel("a", report_gaps=True)
    waiting = asyncio.create_task(told.receive(TIMEOUT))
    await asyncio.sleep(0)  # let it start waiting
    net.current.peer_gone()
    with pytest.raises(ChannelGap):
        await waiting
    net.current.feed("msg,a,after")
    assert await told.receive(TIMEOUT) == "after"
    await client.close()


async def test_a_gap_already_read_is_not_counted_again() -> None:
    net = MemoryNetwork()
    client = await started(net)
    told = await client.channel("a", report_gaps=True)
    for count in (1, 2):
        net.current.peer_gone()
        async with asyncio.timeout(TIMEOUT):
            while client.reconnects < count:
                await client.wait_for(ClientState.RECONNECTING)
                await client.wait_for(ClientState.OPEN)
        with pytest.raises(ChannelGap) as gap:
            await told.receive(TIMEOUT)
        assert gap.value.reconnections == 1
    assert told.gaps == 2
    await client.close()


async def test_iteration_raises_the_gap_and_goes_on_after_it() -> None:
    net = MemoryNetwork()
    client = await started(net)
    told = await client.channel("a", report_gaps=True)
    net.current.feed("msg,a,before")
    first = net.current
    first.peer_gone()
    await reconnected(client)
    net.current.feed("msg,a,between")
    net.current.peer_gone()  # a second reconnection, nothing read meanwhile
    async with asyncio.timeout(TIMEOUT):
        while client.reconnects < 2:
            await client.wait_for(ClientState.RECONNECTING)
            await client.wait_for(ClientState.OPEN)
    net.current.peer_gone()  # and a third, with no message in between
    async with asyncio.timeout(TIMEOUT):
        while client.reconnects < 3:
            await client.wait_for(ClientState.RECONNECTING)
            await client.wait_for(ClientState.OPEN)
    net.current.feed("msg,a,after")
    net.current.feed("uns,a")
    seen: list[object] = []
    async with asyncio.timeout(TIMEOUT):
        while True:
            try:
                async for message in told:
                    seen.append(message)
                break
            except ChannelGap as gap:
                seen.append(gap.reconnections)
    assert seen == ["before", 1, "between", 2, "after"]
    assert told.gaps == 3
    await client.close()


# -- misuse and waits that end: what the user is told ---------------------------


async def test_an_opening_used_as_a_channel_says_to_await_it() -> None:
    net = MemoryNetwork()
    client = await started(net)
    opening = client.channel("ann")
    with pytest.raises(AttributeError, match=r"must be awaited.*await client.channel"):
        opening.send  # noqa: B018 - the attribute is what fails
    with pytest.raises(AttributeError, match="nothing_of_a_channel"):
        opening.nothing_of_a_channel  # type: ignore[attr-defined]  # noqa: B018
    channel = await opening  # it still opens as it should
    assert net.current.sent == ["sub,ann"]
    await channel.close()
    await client.close()


async def test_a_receive_that_times_out_names_the_channel_and_the_wait() -> None:
    net = MemoryNetwork()
    client = await started(net)
    channel = await client.channel("ann")
    with pytest.raises(
        TimeoutError, match=r"no message on channel 'ann' within 0.01 s"
    ):
        await channel.receive(timeout=0.01)
    await client.close()


async def test_wait_for_that_times_out_says_the_state_it_is_in() -> None:
    net = MemoryNetwork()
    client = await started(net)
    said = r"did not become CLOSED within 0\.01 s \(it is OPEN\)"
    with pytest.raises(TimeoutError, match=said):
        await client.wait_for(ClientState.CLOSED, timeout=0.01)
    await client.close()
