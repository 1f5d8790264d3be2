"""The error tree: drawn in exceptions.py's docstring as it is in the code,
with messages that say what to do, and the old import paths still working."""

from __future__ import annotations

import re

import pytest

import websocket_multiplex
from websocket_multiplex import exceptions
from websocket_multiplex.exceptions import (
    BrokerUnavailable,
    ChannelGap,
    ConcurrentReceive,
    DisconnectCause,
    Disconnection,
    LocalProtocolError,
    MultiplexError,
)


def drawn_tree() -> dict[str, str | None]:
    """Each class in the docstring's tree, with the parent it is drawn under."""
    assert exceptions.__doc__ is not None
    block = exceptions.__doc__.split("::\n\n", 1)[1].split("\n\n", 1)[0]
    parents: dict[str, str | None] = {}
    stack: list[tuple[int, str]] = []  # (column of the name, name), outermost first
    for line in block.splitlines():
        found = re.match(r"\s*(?:[│ ]*[├└]── )?([A-Z]\w+)", line)
        if found is None:  # a continuation of the comment above
            continue
        column, name = found.start(1), found.group(1)
        while stack and stack[-1][0] >= column:
            stack.pop()
        parents[name] = stack[-1][1] if stack else None
        stack.append((column, name))
    return parents


def error_classes() -> dict[str, type[BaseException]]:
    return {
        name: value
        for name in exceptions.__all__
        if isinstance(value := getattr(exceptions, name), type)
        and issubclass(value, BaseException)
    }


def test_the_tree_draws_every_error() -> None:
    assert sorted(drawn_tree()) == sorted(error_classes())


def test_each_error_is_drawn_under_its_base() -> None:
    classes = error_classes()
    for name, parent in drawn_tree().items():
        bases = classes[name].__bases__
        if parent is None:
            assert bases == (Exception,), name
        else:
            assert classes[parent] in bases, name


def test_every_error_is_exported_at_the_top_level() -> None:
    for name, error in error_classes().items():
        assert getattr(websocket_multiplex, name) is error


def test_old_import_paths_still_work() -> None:
    from websocket_multiplex import asyncio as wm_asyncio
    from websocket_multiplex import fanout
    from websocket_multiplex.asyncio import client
    from websocket_multiplex.fanout import broker

    assert fanout.BrokerUnavailable is broker.BrokerUnavailable is BrokerUnavailable
    assert client.ChannelGap is wm_asyncio.ChannelGap is ChannelGap
    assert client.Disconnection is Disconnection
    assert client.DisconnectCause is DisconnectCause


def test_concurrent_receive_says_what_to_do_instead() -> None:
    error = ConcurrentReceive("news")
    assert isinstance(error, LocalProtocolError)
    assert error.name == "news"
    assert str(error) == (
        "channel 'news' is already being received from: "
        "read it from one task only and share the messages yourself"
    )


def test_channel_gap_carries_how_the_connection_ended() -> None:
    ended = Disconnection(DisconnectCause.SERVER, code=1001, reason="restart")
    gap = ChannelGap("news", ended, reconnections=2)
    assert (gap.name, gap.disconnection, gap.reconnections) == ("news", ended, 2)
    assert str(gap) == (
        "channel 'news': messages may have been lost here "
        "(closed by the server: 1001 restart)"
    )


@pytest.mark.parametrize(
    ("disconnection", "text"),
    [
        (Disconnection(DisconnectCause.APPLICATION), "closed by the application"),
        (
            Disconnection(DisconnectCause.SERVER, code=1000),
            "closed by the server: 1000",
        ),
        (
            Disconnection(DisconnectCause.GAVE_UP, attempts=1),
            "gave up after 1 reconnection attempt",
        ),
        (Disconnection(DisconnectCause.LOST), "the connection was lost"),
        (
            Disconnection(DisconnectCause.LOST, error=ConnectionResetError("x")),
            "the connection was lost: ConnectionResetError('x')",
        ),
    ],
)
def test_disconnection_reads_as_a_reason(
    disconnection: Disconnection, text: str
) -> None:
    assert str(disconnection) == text


def test_broker_unavailable_is_a_multiplex_error() -> None:
    with pytest.raises(MultiplexError, match="Redis is down"):
        raise BrokerUnavailable("Redis is down")
