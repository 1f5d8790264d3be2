"""Reconnection over real sockets: servers killed, connections cut or stalled.

Our server runs either as a real process (``websocket-multiplex demo``),
killed with SIGKILL and started again on the same port, or in this event
loop behind a :class:`~tests.support.proxy.Proxy` that resets or silently
drops the connections. After every outage, every channel must be subscribed
again and answer: none may be left open but dead. These are the base
protocol's reconnections (``resume=False``, as with any server that does not
resume); tests/client/test_resume.py has the resumed ones.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Callable

import pytest

from websocket_multiplex import (
    Backoff,
    ChannelClosed,
    CloseReason,
    DisconnectCause,
    Disconnection,
)
from websocket_multiplex.asyncio.client import (
    ClientChannel,
    ClientState,
    MultiplexClient,
)
from websocket_multiplex.client import connect

from ..support.net import free_port
from ..support.proxy import Proxy, answer_503, hang_up
from .support import (
    FAST,
    TIMEOUT,
    Processes,
    States,
    make_server,
    run_in_own_loop,
    serving,
    sockjs_app,
)

ENDPOINTS = ["sockjs", "websocket"]


def url_of(kind: str, port: int) -> str:
    base = f"127.0.0.1:{port}/multiplex"
    return f"http://{base}" if kind == "sockjs" else f"ws://{base}/websocket"


@pytest.fixture
async def processes() -> AsyncIterator[Processes]:
    started = Processes()
    yield started
    await started.kill_all()


@pytest.fixture
async def proxy() -> AsyncIterator[Proxy]:
    """Our server in this loop, behind a proxy the test controls."""
    server, _ = make_server()
    async with serving(sockjs_app(server)) as port, Proxy(port) as proxy:
        yield proxy


async def answers(channel: ClientChannel) -> None:
    """Check that ``channel`` is alive: a message goes there and back."""
    replies: dict[str, Callable[[str], str]] = {
        "ann": lambda text: f"Ann nods: {text}",
        "bob": lambda text: f"Bob says no to: {text}",
        "echo": lambda text: text,
    }
    await channel.send(f"are you there, {channel.topic}?")
    expected = replies[channel.name](f"are you there, {channel.topic}?")
    assert await channel.receive(TIMEOUT) == expected


async def all_answer(client: MultiplexClient) -> None:
    for channel in client.channels:
        await answers(channel)


async def reconnected(client: MultiplexClient, states: States) -> None:
    async with asyncio.timeout(TIMEOUT):
        await states.wait_count(ClientState.RECONNECTING, 1)
        await states.wait_count(ClientState.OPEN, 2)
    assert client.state is ClientState.OPEN


@pytest.mark.parametrize("kind", ENDPOINTS)
async def test_server_killed_and_restarted(processes: Processes, kind: str) -> None:
    port = free_port()
    server = await processes.demo(port)
    states = States()
    client = await connect(
        url_of(kind, port), reconnect=FAST, resume=False, on_state=states
    )
    ann, bob = await client.channel("ann"), await client.channel("bob")
    echo, echo2 = await client.channel("echo"), await client.channel("echo")
    carl, nope = await client.channel("carl"), await client.channel("nope")
    assert await ann.receive(TIMEOUT) == "Ann says hi!"
    assert await bob.receive(TIMEOUT) == "Bob doesn't agree."
    async with asyncio.timeout(TIMEOUT):
        assert await carl.wait_closed() is CloseReason.SERVER_CLOSED
        assert await nope.wait_closed() is CloseReason.REFUSED
    await all_answer(client)

    await processes.kill(server)
    async with asyncio.timeout(TIMEOUT):
        await states.wait_count(ClientState.RECONNECTING, 2)  # one attempt failed
    sending = asyncio.create_task(echo.send("sent during the outage"))
    await asyncio.sleep(0)
    assert not sending.done()  # it waits for the connection
    await processes.demo(port)
    await reconnected(client, states)
    async with asyncio.timeout(TIMEOUT):
        await sending

    assert states.seen.count(ClientState.OPEN) == 2
    assert await echo.receive(TIMEOUT) == "sent during the outage"
    assert await ann.receive(TIMEOUT) == "Ann says hi!"  # greeted anew
    assert await bob.receive(TIMEOUT) == "Bob doesn't agree."
    assert set(client.channels) == {ann, bob, echo, echo2}
    assert [c.gaps for c in client.channels] == [1, 1, 1, 1]
    assert client.reconnects == 1
    await all_answer(client)  # none left open but dead
    assert (carl.gaps, nope.gaps) == (0, 0)  # closed ones stay closed
    with pytest.raises(ChannelClosed):
        await carl.send("x")
    await client.close()


async def test_stopped_server_is_noticed_by_the_heartbeat(
    processes: Processes,
) -> None:
    # SIGSTOP: the TCP connection stays up but nothing answers, not even
    # WebSocket pings. Only the heartbeat can tell.
    port = free_port()
    server = await processes.demo(port)
    states = States()
    client = await connect(
        url_of("sockjs", port),
        reconnect=FAST,
        resume=False,
        heartbeat=0.5,
        open_timeout=1.0,
        on_state=states,
    )
    ann = await client.channel("ann")
    assert await ann.receive(TIMEOUT) == "Ann says hi!"
    server.send_signal(signal.SIGSTOP)
    try:
        async with asyncio.timeout(TIMEOUT):
            await states.wait_count(ClientState.RECONNECTING, 1)
    finally:
        server.send_signal(signal.SIGCONT)
    await reconnected(client, states)
    assert await ann.receive(TIMEOUT) == "Ann says hi!"
    assert ann.gaps == 1
    await all_answer(client)
    await client.close()


@pytest.mark.parametrize("kind", ENDPOINTS)
async def test_connection_reset_without_close_frame(proxy: Proxy, kind: str) -> None:
    states = States()
    client = await connect(
        url_of(kind, proxy.port), reconnect=FAST, resume=False, on_state=states
    )
    ann, echo = await client.channel("ann"), await client.channel("echo")
    assert await ann.receive(TIMEOUT) == "Ann says hi!"
    proxy.abort()
    await reconnected(client, states)
    assert await ann.receive(TIMEOUT) == "Ann says hi!"
    assert (ann.gaps, echo.gaps) == (1, 1)
    await all_answer(client)
    await client.close()


@pytest.mark.parametrize("kind", ENDPOINTS)
async def test_dead_peer_is_noticed_by_the_heartbeat(proxy: Proxy, kind: str) -> None:
    states = States()
    url = url_of(kind, proxy.port)
    client = await connect(
        url, reconnect=FAST, resume=False, heartbeat=0.5, on_state=states
    )
    ann, echo = await client.channel("ann"), await client.channel("echo")
    assert await ann.receive(TIMEOUT) == "Ann says hi!"
    proxy.stall()  # a pulled cable: no FIN, no RST, no pong
    await reconnected(client, states)
    assert await ann.receive(TIMEOUT) == "Ann says hi!"
    assert (ann.gaps, echo.gaps) == (1, 1)
    await all_answer(client)
    await client.close()


@pytest.mark.parametrize("refuse", [answer_503, hang_up], ids=["503", "hang-up"])
async def test_failed_handshakes_during_an_outage_are_retried(
    proxy: Proxy, refuse: Callable[[asyncio.StreamWriter], None]
) -> None:
    # What a restarting server behind a load balancer looks like.
    states = States()
    client = await connect(
        url_of("sockjs", proxy.port), reconnect=FAST, resume=False, on_state=states
    )
    echo = await client.channel("echo")
    proxy.refuse = refuse
    proxy.abort()
    async with asyncio.timeout(TIMEOUT):
        await proxy.wait_connections(1 + 3)  # three attempts were turned away
    assert client.state is ClientState.RECONNECTING
    proxy.refuse = None
    await reconnected(client, states)
    await answers(echo)
    await client.close()


@pytest.mark.parametrize("kind", ENDPOINTS)
async def test_gives_up_after_max_attempts(proxy: Proxy, kind: str) -> None:
    states = States()
    backoff = Backoff(initial=0.01, maximum=0.05, max_attempts=3)
    client = await connect(
        url_of(kind, proxy.port), reconnect=backoff, resume=False, on_state=states
    )
    ann, echo = await client.channel("ann"), await client.channel("echo")
    assert await ann.receive(TIMEOUT) == "Ann says hi!"
    proxy.refuse = hang_up  # the server stays down
    proxy.abort()  # a reset: no close frame
    async with asyncio.timeout(TIMEOUT):
        await states.wait_count(ClientState.RECONNECTING, 1)
        lost = client.disconnection
        assert await echo.wait_closed() is CloseReason.CONNECTION_LOST
    assert lost is not None
    assert lost.cause is DisconnectCause.LOST
    assert ann.close_reason is CloseReason.CONNECTION_LOST
    assert client.state is ClientState.CLOSED
    assert states.seen.count(ClientState.RECONNECTING) == 3
    gave_up = client.disconnection
    assert gave_up is not None
    assert gave_up == Disconnection(
        DisconnectCause.GAVE_UP, attempts=3, error=gave_up.error
    )
    assert isinstance(gave_up.error, Exception)  # what the last attempt met
    assert str(gave_up) == "gave up after 3 reconnection attempts"
    await client.close()  # closed already: nothing to do
    assert client.disconnection is gave_up


def test_busy_sender_survives_resets() -> None:
    # A task sending all the time is likely to send in the instant between
    # a reset and the reader noticing it. That used to spin forever and
    # block the event loop, so this runs in a loop of its own.
    async def scenario() -> None:
        server, _ = make_server()
        async with serving(sockjs_app(server)) as port, Proxy(port) as proxy:
            await reset_a_busy_sender(proxy)

    run_in_own_loop(scenario)


async def reset_a_busy_sender(proxy: Proxy) -> None:
    states = States()
    url = url_of("websocket", proxy.port)
    client = await connect(url, reconnect=FAST, resume=False, on_state=states)
    echo = await client.channel("echo")
    sent = 0
    progress = asyncio.Event()

    async def send_all_the_time() -> None:
        nonlocal sent
        while True:
            await echo.send(str(sent))
            sent += 1
            progress.set()
            await asyncio.sleep(0)

    async def drain() -> None:
        async for _message in echo:
            pass

    tasks = [asyncio.create_task(send_all_the_time()), asyncio.create_task(drain())]
    try:
        for resets in range(1, 4):
            async with asyncio.timeout(TIMEOUT):
                until = sent + 50
                while sent < until:  # the sender is at it
                    progress.clear()
                    await progress.wait()
                proxy.abort()
                await states.wait_count(ClientState.OPEN, 1 + resets)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    assert echo.gaps == 3
    await client.close()


async def test_a_graceful_restart_keeps_the_channels() -> None:
    """server.close() says 1001 before each uns: the client resubscribes."""
    from aiohttp import web

    from websocket_multiplex import Backoff, Channel, ClientState, MultiplexServer
    from websocket_multiplex.adapters.aiohttp import add_sockjs_endpoint
    from websocket_multiplex.client import connect

    def make_app() -> tuple[web.Application, MultiplexServer]:
        server = MultiplexServer()

        @server.channel("echo")
        async def echo(channel: Channel) -> None:
            async for data in channel:
                await channel.send(data)

        app = web.Application()
        add_sockjs_endpoint(app, server)
        return app, server

    app, _ = make_app()
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    states: list[ClientState] = []
    reconnected = asyncio.Event()

    def on_state(state: ClientState, reason: str) -> None:
        states.append(state)
        if state is ClientState.OPEN and ClientState.RECONNECTING in states:
            reconnected.set()

    client = await connect(
        f"http://127.0.0.1:{port}/multiplex",
        reconnect=Backoff(initial=0.05, maximum=0.2),
        on_state=on_state,
    )
    try:
        echo = await client.channel("echo")
        await echo.send("before")
        assert await echo.receive(timeout=5) == "before"
        await runner.cleanup()  # graceful: server.close() on shutdown
        app, _ = make_app()
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        async with asyncio.timeout(10):
            await reconnected.wait()
        assert not echo.closed
        await echo.send("after")
        assert await echo.receive(timeout=5) == "after"
        assert echo.gaps == 1
    finally:
        await client.close()
        await runner.cleanup()
