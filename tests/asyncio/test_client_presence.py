"""client_presence.py: what a client channel keeps of shared presence."""

from __future__ import annotations

import asyncio

from websocket_multiplex import MemberJoined, MemberLeft, PresenceSnapshot
from websocket_multiplex.asyncio.client_presence import PresenceInbox

from .helpers import TIMEOUT


async def read(inbox: PresenceInbox) -> list[object]:
    """What is unread, up to the channel's close."""
    inbox.close()
    async with asyncio.timeout(TIMEOUT):
        return [event async for event in inbox.events()]


async def test_unread_events_past_the_limit_become_one_gap_per_group() -> None:
    inbox = PresenceInbox(limit=3)
    inbox.received(PresenceSnapshot("a", frozenset({"x"})))
    inbox.received(PresenceSnapshot("b", frozenset()))
    inbox.received(MemberJoined("a", "y"))
    inbox.received(MemberLeft("a", "x"))  # one past the limit
    inbox.received(MemberJoined("b", "z"))
    assert await read(inbox) == [
        PresenceSnapshot("a", frozenset({"y"}), gap=True),
        PresenceSnapshot("b", frozenset(), gap=True),
        MemberJoined("b", "z"),
    ]
    assert inbox.members("a") == {"y"} and inbox.members("b") == {"z"}


async def test_a_second_snapshot_of_a_group_is_a_gap() -> None:
    inbox = PresenceInbox(limit=8)
    inbox.received(PresenceSnapshot("a", frozenset({"x"})))
    inbox.received(PresenceSnapshot("a", frozenset({"w"})))  # a new session's
    assert await read(inbox) == [
        PresenceSnapshot("a", frozenset({"x"})),
        PresenceSnapshot("a", frozenset({"w"}), gap=True),
    ]


async def test_a_reader_waits_for_the_next_event_and_stops_on_close() -> None:
    inbox = PresenceInbox(limit=8)
    events = inbox.events()
    waiting = asyncio.ensure_future(anext(events))
    await asyncio.sleep(0)
    assert not waiting.done()
    inbox.received(PresenceSnapshot("a", frozenset()))
    assert await asyncio.wait_for(waiting, TIMEOUT) == PresenceSnapshot(
        "a", frozenset()
    )
    inbox.close()
    assert [event async for event in events] == []
