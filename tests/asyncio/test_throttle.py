"""LogThrottle: one line per kind per interval, then a count; and the lines
of a server that any client can trigger at will go through it."""

from __future__ import annotations

import logging

import pytest

from websocket_multiplex import (
    Channel,
    ChannelHandler,
    MultiplexServer,
    Subscription,
)
from websocket_multiplex.asyncio.throttle import LogThrottle
from websocket_multiplex.testing import connect_in_memory

from .helpers import frames

logger = logging.getLogger("tests.throttle")


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def records(caplog: pytest.LogCaptureFixture, name: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == name]


def test_one_line_per_key_per_interval_then_the_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    throttle = LogThrottle(interval=10.0, clock=clock)
    with caplog.at_level(logging.INFO, logger=logger.name):
        throttle.info(logger, "refused", "refused %s", "a")
        for offset in (0.0, 5.0, 9.99):
            clock.now = 1000.0 + offset
            throttle.info(logger, "refused", "refused %s", "b")
        assert [r.getMessage() for r in records(caplog, logger.name)] == ["refused a"]
        assert throttle.suppressed == {"refused": 3}

        clock.now = 1010.0  # the interval since the last line logged is over
        throttle.warning(logger, "refused", "refused %s", "c")
    messages = [(r.levelno, r.getMessage()) for r in records(caplog, logger.name)]
    assert messages == [
        (logging.INFO, "refused a"),
        (logging.WARNING, "refused c (3 similar lines suppressed)"),
    ]
    assert throttle.suppressed == {}


def test_keys_are_throttled_apart(caplog: pytest.LogCaptureFixture) -> None:
    throttle = LogThrottle(interval=10.0, clock=Clock())
    with caplog.at_level(logging.INFO, logger=logger.name):
        for _ in range(3):
            throttle.info(logger, "refused", "refused")
            throttle.info(logger, "slow", "slow")
    assert [r.getMessage() for r in records(caplog, logger.name)] == [
        "refused",
        "slow",
    ]
    assert throttle.suppressed == {"refused": 2, "slow": 2}


def test_only_the_first_traceback_of_an_interval_is_kept(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    throttle = LogThrottle(interval=10.0, clock=clock)
    with caplog.at_level(logging.ERROR, logger=logger.name):
        for i in range(4):
            if i == 3:
                clock.now += 10.0
            try:
                raise ValueError(f"bad input {i}")
            except ValueError:
                throttle.exception(logger, "handler failed: x", "failed %d", i)
    first, later = records(caplog, logger.name)
    assert first.getMessage() == "failed 0"
    assert first.exc_info is not None and "bad input 0" in str(first.exc_info[1])
    assert later.getMessage() == "failed 3 (2 similar lines suppressed)"
    assert later.exc_info is not None and "bad input 3" in str(later.exc_info[1])


def test_each_server_has_its_own_throttle(caplog: pytest.LogCaptureFixture) -> None:
    # So that one server (or one test) cannot silence another's lines.
    first, second = MultiplexServer(), MultiplexServer()
    with caplog.at_level(logging.INFO, logger="tests.throttle"):
        first.log_throttle.info(logger, "refused", "first %s", 1)
        first.log_throttle.info(logger, "refused", "first %s", 2)
        second.log_throttle.info(logger, "refused", "second %s", 1)
    logged = [r.getMessage() for r in records(caplog, "tests.throttle")]
    assert logged == ["first 1", "second 1"]


# -- what a client can make a server log ------------------------------------------


def tracebacks(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in records(caplog, "websocket_multiplex") if r.exc_info]


async def test_a_handler_failing_on_input_logs_one_traceback_per_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = MultiplexServer()

    @server.channel("parse")
    async def parse(channel: Channel) -> None:
        async for data in channel:
            int(data)  # the client decides whether this raises

    client = await connect_in_memory(server)
    with caplog.at_level(logging.ERROR, logger="websocket_multiplex"):
        for _ in range(5):
            await client.send("sub,parse")
            await client.send("msg,parse,not a number")
            assert await frames(client, 2) == [
                "err,parse,500 service failed",
                "uns,parse",
            ]
    (record,) = tracebacks(caplog)
    assert "handler of channel 'parse' failed" in record.getMessage()
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], ValueError)
    assert server.log_throttle.suppressed == {"handler failed: parse": 4}
    assert client.connection.stats.handler_failures == 5  # all still counted
    await client.close()


async def test_a_failing_callback_logs_one_traceback_per_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = MultiplexServer()

    @server.channel("parse")
    class Parse(ChannelHandler):
        def on_message(self, data: str) -> None:
            int(data)

    client = await connect_in_memory(server)
    with caplog.at_level(logging.ERROR, logger="websocket_multiplex"):
        for _ in range(3):
            await client.send("sub,parse")
            await client.send("msg,parse,x")
            assert await frames(client, 2) == [
                "err,parse,500 service failed",
                "uns,parse",
            ]
    (record,) = tracebacks(caplog)
    assert "Parse.on_message failed" in record.getMessage()
    key = f"callback failed: {Parse.on_message.__qualname__}"
    assert server.log_throttle.suppressed == {key: 2}
    await client.close()


async def test_an_authorizer_failing_on_input_logs_one_traceback_per_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def by_token(subscription: Subscription) -> bool:
        return int(subscription.request.query["token"]) > 0  # KeyError: no token

    server = MultiplexServer(authorize=by_token)

    @server.channel("private")
    async def private(channel: Channel) -> None:
        await channel.send("secret")

    client = await connect_in_memory(server)
    with caplog.at_level(logging.INFO, logger="websocket_multiplex"):
        for _ in range(4):
            await client.send("sub,private")
            assert await frames(client, 2) == [
                "err,private,403 refused",
                "uns,private",
            ]
    (record,) = tracebacks(caplog)
    assert "authorizer of 'private' failed" in record.getMessage()
    assert server.log_throttle.suppressed == {
        "authorizer failed: private": 3,
        "refused": 3,
    }
    assert client.connection.stats.authorization_refusals == 4
    await client.close()


async def test_a_throttled_line_does_not_silence_another_server(
    caplog: pytest.LogCaptureFixture,
) -> None:
    servers = [MultiplexServer(), MultiplexServer()]
    for server in servers:

        @server.channel("boom")
        async def boom(channel: Channel) -> None:
            raise RuntimeError("boom")

    with caplog.at_level(logging.ERROR, logger="websocket_multiplex"):
        for server in servers:
            client = await connect_in_memory(server)
            await client.send("sub,boom")
            assert await frames(client, 2) == [
                "err,boom,500 service failed",
                "uns,boom",
            ]
            await client.close()
    assert len(tracebacks(caplog)) == 2
