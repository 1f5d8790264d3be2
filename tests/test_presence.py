"""presence.py: one watcher's view of a group, and the prs payloads."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from websocket_multiplex.events import (
    LeaveReason,
    MemberJoined,
    MemberLeft,
    PresenceEvent,
    PresenceSnapshot,
)
from websocket_multiplex.presence import PresenceView, format_presence, parse_presence


def read_all(view: PresenceView) -> list[PresenceEvent]:
    events: list[PresenceEvent] = []
    for _ in range(1000):  # bounded
        change = view.next_event()
        if change is None:
            return events
        events.append(change)
    raise AssertionError("the view never ran dry")


def test_the_first_read_is_a_snapshot_without_a_gap() -> None:
    view = PresenceView("g", limit=8)
    assert view.snapshot_due
    began = view.begin_snapshot()
    assert view.snapshot(began, ["a", "b"]) == PresenceSnapshot(
        "g", frozenset({"a", "b"}), gap=False
    )
    assert not view.snapshot_due
    assert view.members == {"a", "b"}


def test_changes_the_snapshot_already_holds_are_not_events() -> None:
    view = PresenceView("g", limit=8)
    view.changed(MemberJoined("g", "a"))  # reported while the snapshot is fetched
    began = view.begin_snapshot()
    view.changed(MemberJoined("g", "b"))
    view.changed(MemberLeft("g", "c"))  # left before the snapshot saw it
    view.snapshot(began, ["a", "b"])
    view.changed(MemberLeft("g", "a"))
    view.changed(MemberJoined("g", "d"))
    assert read_all(view) == [MemberLeft("g", "a"), MemberJoined("g", "d")]
    assert view.members == {"b", "d"}


def test_a_join_after_the_snapshot_missed_it_is_an_event() -> None:
    view = PresenceView("g", limit=8)
    began = view.begin_snapshot()
    view.changed(MemberJoined("g", "a"))
    view.snapshot(began, [])  # fetched before a's join reached Redis
    assert read_all(view) == [MemberJoined("g", "a")]


def test_past_the_limit_the_watcher_loses_the_changes_and_reads_a_gap() -> None:
    view = PresenceView("g", limit=3)
    view.snapshot(view.begin_snapshot(), [])
    for member in "abcd":  # one more than the limit
        view.changed(MemberJoined("g", member))
    assert view.snapshot_due and view.pending == 0
    view.changed(MemberJoined("g", "e"))  # queued on top of the coming snapshot
    snapshot = view.snapshot(view.begin_snapshot(), ["a", "b", "c", "d", "e"])
    assert snapshot == PresenceSnapshot("g", frozenset("abcde"), gap=True)
    assert read_all(view) == []


def test_a_loss_while_fetching_makes_that_snapshot_stale() -> None:
    view = PresenceView("g", limit=8)
    view.snapshot(view.begin_snapshot(), ["a"])
    view.lost()  # the broker reconnected
    began = view.begin_snapshot()
    view.lost()  # and again, before the members came back
    assert view.snapshot(began, ["a"]) is None
    assert view.snapshot(view.begin_snapshot(), []) == PresenceSnapshot(
        "g", frozenset(), gap=True
    )
    again = view.snapshot(view.begin_snapshot(), [])
    assert again is not None and not again.gap


def test_a_loss_before_the_first_snapshot_is_no_gap() -> None:
    view = PresenceView("g", limit=1)
    view.changed(MemberJoined("g", "a"))
    view.changed(MemberJoined("g", "b"))
    snapshot = view.snapshot(view.begin_snapshot(), ["a", "b"])
    assert snapshot is not None and not snapshot.gap


@given(
    st.lists(st.tuples(st.sampled_from("abc"), st.booleans()), max_size=30),
    st.integers(min_value=0, max_value=30),
)
def test_snapshot_plus_events_is_always_the_membership(
    script: list[tuple[str, bool]], split: int
) -> None:
    """Whatever the snapshot caught of the changes before it, reading on
    ends with the true membership, and every event changes the view."""
    truth: set[str] = set()
    view = PresenceView("g", limit=100)
    began = view.begin_snapshot()
    for index, (member, joined) in enumerate(script):
        if (member in truth) != joined:  # brokers report changes only
            (truth.add if joined else truth.discard)(member)
            view.changed(
                MemberJoined("g", member) if joined else MemberLeft("g", member)
            )
        if index + 1 == split:
            snapshot = view.snapshot(began, set(truth))
    if split == 0 or split > len(script):
        snapshot = view.snapshot(began, set(truth))
    assert snapshot is not None
    seen = set(snapshot.members)
    for event in read_all(view):
        if type(event) is MemberJoined:
            assert event.member not in seen
            seen.add(event.member)
        else:
            assert event.member in seen
            seen.discard(event.member)
    assert seen == truth == view.members


VECTORS = [
    (MemberJoined("lobby", "h:1:2/7/chat"), "lobby,+h%3A1%3A2/7/chat"),
    (MemberLeft("lobby", "h:1:2/7/chat"), "lobby,-h%3A1%3A2/7/chat"),
    (
        MemberLeft("lobby", "h:1:2/7/chat", LeaveReason.EXPIRED),
        "lobby,~h%3A1%3A2/7/chat",
    ),
    (PresenceSnapshot("room, 1", frozenset({"b", "a"})), "room%2C%201,=a,b"),
    (PresenceSnapshot("g", frozenset(), gap=True), "g,!"),
    (PresenceSnapshot("g", frozenset()), "g,="),
]


@pytest.mark.parametrize(("event", "payload"), VECTORS)
def test_the_wire_vectors(event: PresenceEvent, payload: str) -> None:
    assert format_presence(event) == payload
    assert parse_presence(payload) == event


@given(st.text(min_size=1), st.frozensets(st.text(min_size=1), max_size=5))
def test_any_group_and_members_round_trip(group: str, members: frozenset[str]) -> None:
    for event in (
        PresenceSnapshot(group, members, gap=True),
        *(MemberJoined(group, m) for m in members),
        *(MemberLeft(group, m, LeaveReason.EXPIRED) for m in members),
    ):
        assert parse_presence(format_presence(event)) == event


@pytest.mark.parametrize("payload", ["", "g", "g,", "g,+", "g,?x", "g,-"])
def test_payloads_that_are_no_event_parse_to_none(payload: str) -> None:
    assert parse_presence(payload) is None


def test_the_vectors_of_the_spec_parse_and_round_trip() -> None:
    from pathlib import Path

    spec = Path(__file__).parents[1] / "docs" / "PROTOCOL-EXTENSIONS.md"
    section = spec.read_text(encoding="utf-8").split("## 6.")[1]
    vectors = section.split("### Test vectors")[1]
    frames = [line.split()[1] for line in vectors.splitlines() if "S: prs," in line]
    assert len(frames) == 6
    for text in frames:
        payload = text.split(",", 2)[2]
        event = parse_presence(payload)
        assert event is not None and event.group == "room 1", text
        assert format_presence(event) == payload
