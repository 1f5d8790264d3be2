"""history.py: the in-memory group history, bounded by count and age."""

from __future__ import annotations

import pytest

from websocket_multiplex.fanout import Delivery
from websocket_multiplex.fanout.broker import Replay
from websocket_multiplex.fanout.history import History
from websocket_multiplex.streams import Position


def published(history: History, count: int, now: float = 0.0) -> list[Delivery]:
    return [history.record(Delivery("g", f"m{n}"), now) for n in range(1, count + 1)]


def at(delivery: Delivery) -> Position:
    assert delivery.position is not None
    return delivery.position


def messages(replay: Replay) -> list[str]:
    return [d.message for d in replay.deliveries]


def test_offsets_count_from_one_in_one_epoch_per_group() -> None:
    history = History()
    got = published(history, 3)
    assert [at(d).offset for d in got] == ["1", "2", "3"]
    assert len({at(d).epoch for d in got}) == 1
    other = history.record(Delivery("h", "x"), 0.0)
    assert at(other).offset == "1" and at(other).epoch != at(got[0]).epoch


def test_what_follows_a_position_and_whether_all_of_it_is_kept() -> None:
    history = History(size=3)
    got = published(history, 5)  # keeps 3, 4, 5
    assert messages(history.since("g", at(got[1]), 0.0)) == ["m3", "m4", "m5"]
    assert history.since("g", at(got[1]), 0.0).complete
    replay = history.since("g", at(got[0]), 0.0)
    assert (messages(replay), replay.complete) == (["m3", "m4", "m5"], False)
    assert history.since("g", at(got[4]), 0.0) == Replay((), complete=True)


def test_age_expires_entries_and_a_group_left_empty_starts_a_new_epoch() -> None:
    history = History(size=10, age=5.0)
    old = published(history, 2, now=0.0)
    newer = history.record(Delivery("g", "m3"), 4.0)
    replay = history.since("g", at(old[0]), 6.0)  # m1 and m2 are too old
    assert (messages(replay), replay.complete) == (["m3"], False)
    assert history.since("g", at(old[1]), 6.0).complete
    # Past every entry's age, a sweep forgets the group: offsets begin again
    # under a new epoch, which no old position matches.
    for n in range(1024):
        history.record(Delivery(f"other{n}", "x"), 20.0)
    assert history.groups == 1024
    again = history.record(Delivery("g", "m4"), 20.0)
    assert at(again).offset == "1" and at(again).epoch != at(newer).epoch
    assert history.since("g", at(newer), 20.0) == Replay((), complete=False)


@pytest.mark.parametrize("size, age", [(0, 1.0), (1, 0.0)])
def test_bounds_must_be_positive(size: int, age: float) -> None:
    with pytest.raises(ValueError, match="size"):
        History(size, age)
