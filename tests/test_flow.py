"""The flow-control decisions of one connection (flow.py): each rule of
docs/LIMITS.md "Incoming data" and "Outgoing data", then models.

The models drive a :class:`Ledger` and an :class:`Output` with random
steps under small limits, so that examples reach every bound, and check
each decision against the rules written again here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from websocket_multiplex.flow import (
    SLOW_FACTOR,
    Held,
    Ledger,
    Output,
    Overflow,
    Shed,
    Verdict,
)
from websocket_multiplex.limits import Limits

LIMITS = Limits(max_queue=3, max_queue_size=10, max_connection_queue_size=24)


def filled(ledger: Ledger, topic: str, *sizes: int) -> Held:
    """Open ``topic`` and deliver messages of ``sizes``, each admitted (and
    so counted) without a shed (an ``Overflow`` that sheds nothing, past the fast path's
    smaller bound, is as good as ``None``)."""
    held = ledger.open(topic)
    for size in sizes:
        assert ledger.admit(topic, held, size) in (None, Overflow((), deliver=True))
    return held


def admitted(overflow: Overflow | None) -> bool:
    """Whether the message is to be delivered, with or without sheds."""
    return overflow is None or overflow.deliver


# -- Ledger: the unread messages of one connection -----------------------------


def test_a_message_that_fits_is_delivered() -> None:
    ledger = Ledger(LIMITS)
    held = filled(ledger, "a", 4, 5)
    assert (held.count, held.size, ledger.size) == (2, 9, 9)


def test_reading_and_dropping_give_the_room_back() -> None:
    ledger = Ledger(LIMITS)
    a = filled(ledger, "a", 4, 5)
    b = filled(ledger, "b", 6)
    a.took(4)
    assert (a.count, a.size, ledger.size) == (1, 5, 11)
    b.drop()
    assert (b.count, b.size, ledger.size) == (0, 0, 5)
    b.drop()  # a second drop frees nothing more
    assert ledger.size == 5


def test_a_channel_past_max_queue_is_shed_and_the_message_dropped() -> None:
    ledger = Ledger(LIMITS)
    held = filled(ledger, "a", 1, 1, 1)
    overflow = ledger.admit("a", held, 1)
    assert overflow == Overflow((Shed("a", "max_queue"),), deliver=False)
    assert (held.count, held.size, ledger.size) == (0, 0, 0)


def test_a_channel_past_max_queue_size_is_shed_and_the_message_dropped() -> None:
    ledger = Ledger(LIMITS)
    other = filled(ledger, "b", 2)
    held = filled(ledger, "a", 6)
    overflow = ledger.admit("a", held, 5)
    assert overflow == Overflow((Shed("a", "max_queue_size"),), deliver=False)
    assert (held.count, held.size) == (0, 0)
    assert ledger.size == other.size == 2  # the other channel goes on


def test_an_empty_inbox_takes_a_message_larger_than_max_queue_size() -> None:
    ledger = Ledger(LIMITS)
    filled(ledger, "b", 5)
    held = ledger.open("a")
    assert admitted(ledger.admit("a", held, 15))  # 15 > max_queue_size
    held.arrived(15)
    # It holds one message past the bound: the next one sheds it.
    assert ledger.admit("a", held, 0) == Overflow(
        (Shed("a", "max_queue_size"),), deliver=False
    )


def test_the_fullest_open_channels_are_shed_until_the_message_fits() -> None:
    ledger = Ledger(LIMITS)
    a = filled(ledger, "a", 8)
    b = filled(ledger, "b", 5, 5)
    c = filled(ledger, "c", 6)
    own = ledger.open("d")
    # 24 + 9 > 24: b, the fullest, goes; then 14 + 9 fits.
    assert ledger.admit("d", own, 9) == Overflow(
        (Shed("b", "max_connection_queue_size"),), deliver=True
    )  # d's message is counted: admitted
    assert (b.count, b.size, ledger.size) == (0, 0, 8 + 6 + 9)
    # 23 + 12: d (9), then a (8) go, the fullest first; c keeps its messages.
    other = ledger.open("e")
    assert ledger.admit("e", other, 12) == Overflow(
        (
            Shed("d", "max_connection_queue_size"),
            Shed("a", "max_connection_queue_size"),
        ),
        deliver=True,
    )
    assert (a.size, own.size, c.size, ledger.size) == (0, 0, 6, 6 + 12)  # e counted


def test_the_message_s_own_channel_is_shed_when_it_is_the_fullest() -> None:
    ledger = Ledger(LIMITS)
    filled(ledger, "b", 8)
    held = filled(ledger, "a", 9)
    filled(ledger, "c", 7)
    # 24 + 1 > 24, and a (9) holds the most: its message goes with it.
    assert ledger.admit("a", held, 1) == Overflow(
        (Shed("a", "max_connection_queue_size"),), deliver=False
    )
    assert ledger.size == 15


def test_closed_channels_still_count_until_read_but_are_never_shed() -> None:
    ledger = Ledger(LIMITS)
    # 18 unread in two channels the client closed while their handlers were busy.
    closed = [filled(ledger, topic, 9) for topic in ("a", "x")]
    ledger.closed("a")
    ledger.closed("x")
    open_ = filled(ledger, "b", 4)
    own = ledger.open("c")
    # 22 + 5 > 24: the open channel b goes, not the closed ones that hold more.
    assert ledger.admit("c", own, 5) == Overflow(
        (Shed("b", "max_connection_queue_size"),), deliver=True
    )
    assert (open_.size, closed[0].size, closed[1].size) == (0, 9, 9)
    # Once read, their characters no longer count.
    closed[0].took(9)
    assert ledger.size == 14
    assert admitted(ledger.admit("c", own, 5))


def test_when_only_closed_channels_hold_anything_the_own_channel_is_shed() -> None:
    ledger = Ledger(LIMITS)
    for topic in ("a", "x"):
        filled(ledger, topic, 10)
        ledger.closed(topic)
    idle = ledger.open("c")  # open, holding nothing: shedding it frees nothing
    held = ledger.open("b")
    assert ledger.admit("b", held, 5) == Overflow(
        (Shed("b", "max_connection_queue_size"),), deliver=False
    )
    assert ledger.size == 20
    assert ledger.admit("c", idle, 4) == Overflow((), deliver=True)  # still open


def test_an_empty_connection_takes_one_message_larger_than_the_limits() -> None:
    # LIMITS.md: "An empty inbox takes any message ... whatever the limits";
    # so does an empty connection, past max_connection_queue_size too.
    # (Limits.max_connection_queue_size says "if no open channel holds any,
    # the message's own channel is shed": true only when closed channels
    # hold the rest, as above; here nothing is held at all.)
    ledger = Ledger(LIMITS)
    held = ledger.open("a")
    assert ledger.admit("a", held, 100) == Overflow((), deliver=True)
    # Any further message sheds it: to another channel, that one goes on.
    other = ledger.open("b")
    assert ledger.admit("b", other, 1) == Overflow(
        (Shed("a", "max_connection_queue_size"),), deliver=True
    )
    assert ledger.size == 1  # b's message, counted when admitted


def test_a_topic_opened_again_gets_a_new_share_and_the_old_one_still_counts() -> None:
    ledger = Ledger(LIMITS)
    old = filled(ledger, "a", 7)
    ledger.closed("a")
    new = filled(ledger, "a", 3)
    assert new is not old
    assert (old.size, new.size, ledger.size) == (7, 3, 10)


# -- Output: what is queued for one client -------------------------------------

OUT = Limits(write_limit=10, slow_client_timeout=5.0)


def test_up_to_write_limit_there_is_room() -> None:
    output = Output(OUT)
    assert output.idle
    assert output.queued(4, 0.0, waits=True) is Verdict.ROOM
    assert output.queued(6, 0.0, waits=False) is Verdict.ROOM  # 10: not above
    assert (output.size, output.deadline(), output.idle) == (10, None, False)


def test_above_write_limit_a_sender_that_can_wait_is_told_full() -> None:
    output = Output(OUT)
    assert output.queued(11, 1.0, waits=True) is Verdict.FULL
    assert output.deadline() == 6.0


def test_a_frame_nobody_waits_for_is_full_too_below_slow_factor() -> None:
    output = Output(OUT)
    assert output.queued(11, 1.0, waits=False) is Verdict.FULL


@pytest.mark.parametrize("waits", [True, False])
def test_a_client_above_write_limit_longer_than_slow_client_timeout_is_slow(
    waits: bool,
) -> None:
    output = Output(OUT)
    assert output.queued(11, 1.0, waits=True) is Verdict.FULL
    assert output.queued(1, 6.0, waits) is Verdict.FULL  # 5 s: not longer
    assert not output.too_slow(6.0)
    assert output.too_slow(6.001)
    assert output.queued(1, 6.001, waits) is Verdict.SLOW


def test_the_time_above_write_limit_counts_from_when_the_queue_went_above() -> None:
    output = Output(OUT)
    assert output.queued(8, 0.0, waits=True) is Verdict.ROOM  # not yet above
    assert output.queued(8, 2.0, waits=True) is Verdict.FULL
    assert output.queued(8, 4.0, waits=True) is Verdict.FULL
    assert output.deadline() == 7.0  # from 2.0, not 0.0 nor 4.0
    assert output.queued(1, 7.5, waits=True) is Verdict.SLOW


def test_slow_by_slow_factor_only_for_frames_nobody_waits_for() -> None:
    bound = SLOW_FACTOR * OUT.write_limit
    output = Output(OUT)
    # At SLOW_FACTOR times write_limit, not above it: still FULL (the docs
    # say a queue that "reaches" it is dropped; the code drops above it).
    assert output.queued(bound, 0.0, waits=False) is Verdict.FULL
    assert output.queued(1, 0.0, waits=True) is Verdict.FULL  # a sender waits
    assert output.queued(bound, 0.0, waits=True) is Verdict.FULL
    assert output.queued(0, 0.0, waits=False) is Verdict.SLOW
    # Without the waiting frames: one character past the bound.
    output = Output(OUT)
    assert output.queued(bound + 1, 0.0, waits=False) is Verdict.SLOW


def test_taken_resets_the_size_and_the_timer() -> None:
    output = Output(OUT)
    output.queued(30, 0.0, waits=False)
    output.taken()
    assert (output.size, output.deadline(), output.too_slow(100.0)) == (0, None, False)
    assert output.idle
    assert output.queued(10, 100.0, waits=True) is Verdict.ROOM
    assert output.queued(1, 101.0, waits=True) is Verdict.FULL
    assert output.deadline() == 106.0  # a new timer, from the new crossing


def test_deadline_is_when_the_client_becomes_too_slow() -> None:
    output = Output(OUT)
    assert output.deadline() is None
    assert not output.too_slow(1e9)
    output.queued(11, 3.0, waits=True)
    deadline = output.deadline()
    assert deadline == 8.0
    assert not output.too_slow(deadline)
    assert output.too_slow(deadline + 1e-3)


def test_a_frame_may_go_at_once_only_when_nothing_is_queued_or_being_written() -> None:
    output = Output(OUT)
    output.writing = True
    assert not output.idle
    output.writing = False
    output.queued(1, 0.0, waits=True)
    assert not output.idle
    output.taken()
    assert output.idle


# -- a model of the ledger -----------------------------------------------------


@dataclass
class Share:
    """A channel as the model sees it: its topic and its unread messages."""

    topic: str
    held: Held
    open: bool = True
    messages: list[int] = field(default_factory=list)

    @property
    def size(self) -> int:
        return sum(self.messages)


class LedgerModel:
    """Drives a ledger as a connection does: a topic is open at most once,
    messages are admitted only on open channels and delivered only when the
    ledger says so, shed channels are closed; the application reads or drops
    what open and closed channels hold."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.ledger = Ledger(limits)
        self.shares: list[Share] = []

    def step(self, op: str, topic: str, pick: int, size: int) -> None:
        if op == "admit":  # a message for topic, subscribed first if need be
            share = self.open_share(topic)
            if share is None:
                share = Share(topic, self.ledger.open(topic))
                self.shares.append(share)
            self.admit(share, size)
        elif op == "close":
            share = self.open_share(topic)
            if share is not None:
                self.ledger.closed(topic)
                share.open = False
        elif op == "took":
            share = self.choose([s for s in self.shares if s.messages], pick)
            if share is not None:
                share.held.took(share.messages.pop(0))
        else:  # drop: a shed channel, a handler that returned
            share = self.choose(self.shares, pick)
            if share is not None:
                share.held.drop()
                share.messages.clear()
        self.check()

    def open_share(self, topic: str) -> Share | None:
        return next((s for s in self.shares if s.open and s.topic == topic), None)

    @staticmethod
    def choose(shares: list[Share], pick: int) -> Share | None:
        return shares[pick % len(shares)] if shares else None

    def admit(self, own: Share, size: int) -> None:
        open_sizes = {s.topic: s.size for s in self.shares if s.open}
        total = sum(s.size for s in self.shares)
        overflow = self.ledger.admit(own.topic, own.held, size)
        check_admission(self.limits, own, size, open_sizes, total, overflow)
        shed = set() if overflow is None else {s.topic for s in overflow.shed}
        for share in self.shares:
            if share.open and share.topic in shed:
                assert (share.held.count, share.held.size) == (0, 0)
                share.messages.clear()
                share.open = False
        if admitted(overflow):  # counted by admit
            own.messages.append(size)

    def check(self) -> None:
        limits, ledger = self.limits, self.ledger
        for share in self.shares:
            assert share.held.count == len(share.messages)
            assert share.held.size == share.size
        assert ledger.size == sum(share.size for share in self.shares) >= 0
        # Only arrivals raise these, each admitted: they hold at all times.
        for share in self.shares:
            if share.open:
                assert share.held.count <= limits.max_queue
                assert share.held.size <= limits.max_queue_size or (
                    share.held.count == 1
                )
        if ledger.size > limits.max_connection_queue_size:
            # One message past the bound, taken by a connection that held no
            # characters (empty messages are not counted).
            held = [size for share in self.shares for size in share.messages if size]
            assert len(held) == 1, held


def check_admission(
    limits: Limits,
    own: Share,
    size: int,
    open_sizes: dict[str, int],
    total: int,
    overflow: Overflow | None,
) -> None:
    """The ledger's answer to a message of ``size`` for ``own``, given what
    the open channels (``open_sizes``) and all of them (``total``) held."""
    count = len(own.messages)
    if count >= limits.max_queue:
        assert overflow == Overflow((Shed(own.topic, "max_queue"),), False)
    elif count and own.size + size > limits.max_queue_size:
        assert overflow == Overflow((Shed(own.topic, "max_queue_size"),), False)
    elif not total or total + size <= limits.max_connection_queue_size:
        assert admitted(overflow) and not (overflow and overflow.shed), overflow
    else:
        assert overflow is not None
        remaining, open_sizes = total, dict(open_sizes)
        for index, shed in enumerate(overflow.shed):
            assert shed.limit == "max_connection_queue_size", shed
            # It did not fit yet, and what goes is the fullest open channel
            # (the message's own one too, if nothing open holds anything).
            assert remaining and remaining + size > limits.max_connection_queue_size
            assert shed.topic in open_sizes, "a closed channel was shed"
            fullest = max(open_sizes.values())
            assert open_sizes[shed.topic] == fullest, (shed, open_sizes)
            if shed.topic == own.topic:
                assert index == len(overflow.shed) - 1 and not overflow.deliver
            else:
                assert fullest > 0
            remaining -= open_sizes.pop(shed.topic)
        if overflow.deliver:
            assert not remaining or remaining + size <= (
                limits.max_connection_queue_size
            )
        else:
            assert overflow.shed and overflow.shed[-1].topic == own.topic


small_limits = st.builds(
    Limits,
    max_queue=st.integers(1, 4),
    max_queue_size=st.integers(1, 12),
    max_connection_queue_size=st.integers(1, 24),
)
ledger_steps = st.lists(
    st.tuples(
        st.sampled_from(["admit"] * 5 + ["close", "took", "took", "drop"]),
        st.sampled_from("abcde"),
        st.integers(0, 7),
        st.integers(0, 15),
    ),
    min_size=4,
    max_size=60,
)


@settings(max_examples=400, deadline=None)
@given(small_limits, ledger_steps)
@example(  # closed channels hold 20: a (3) is shed, then b, its message dropped
    Limits(max_queue=3, max_queue_size=12, max_connection_queue_size=24),
    [
        ("admit", "c", 0, 10),
        ("close", "c", 0, 0),
        ("admit", "d", 0, 10),
        ("close", "d", 0, 0),
        ("admit", "a", 0, 3),
        ("admit", "b", 0, 5),
    ],
)
@example(  # an empty connection takes one message past every bound
    Limits(max_queue=1, max_queue_size=1, max_connection_queue_size=1),
    [("admit", "a", 0, 15), ("admit", "b", 0, 0), ("admit", "b", 0, 3)],
)
def test_the_ledger_follows_the_model(
    limits: Limits, steps: list[tuple[str, str, int, int]]
) -> None:
    model = LedgerModel(limits)
    for step in steps:
        model.step(*step)


# -- a model of the output -----------------------------------------------------


class OutputModel:
    """Drives an output as an outbox does: frames queued by senders that
    wait (each told FULL waits until the writer takes the queue) or not, the
    writer taking everything, the clock moving forward."""

    def __init__(self, limits: Limits) -> None:
        self.limit = limits.write_limit
        self.timeout = limits.slow_client_timeout
        self.output = Output(limits)
        self.size = 0
        self.above_since: float | None = None  # above write_limit since
        self.waiting = 0  # characters of frames whose senders wait
        self.slow = False  # told SLOW: the client is dropped
        self.now = 0.0

    def step(self, op: str, size: int, waits: bool, seconds: float) -> None:
        if op == "queue":
            self.queue(size, waits)
        elif op == "wait":
            self.now += seconds
        else:
            self.taken()
        self.check()

    def queue(self, size: int, waits: bool) -> None:
        verdict = self.output.queued(size, self.now, waits)
        self.size += size
        if self.size > self.limit and self.above_since is None:
            self.above_since = self.now
        assert verdict is self.expected(waits), (verdict, self.size)
        if verdict is Verdict.FULL and waits:
            self.waiting += size
        self.slow = self.slow or verdict is Verdict.SLOW
        if not self.slow:
            # Frames nobody waits for stop at SLOW_FACTOR * write_limit (so
            # at most one of them goes past it, and is told SLOW).
            assert self.size <= SLOW_FACTOR * self.limit + self.waiting

    def expected(self, waits: bool) -> Verdict:
        """Room up to write_limit; slow once above it for longer than
        slow_client_timeout, or, for a frame nobody waits for, above
        SLOW_FACTOR times it; else full."""
        if self.above_since is None:
            return Verdict.ROOM
        if self.now - self.above_since > self.timeout:
            return Verdict.SLOW
        if not waits and self.size > SLOW_FACTOR * self.limit:
            return Verdict.SLOW
        return Verdict.FULL

    def taken(self) -> None:
        self.output.taken()
        self.size = self.waiting = 0
        self.above_since = None
        self.slow = False

    def check(self) -> None:
        output = self.output
        assert output.size == self.size
        assert output.idle == (not self.size)
        deadline = None if self.above_since is None else self.above_since + self.timeout
        assert output.deadline() == deadline
        assert output.too_slow(self.now) == (
            deadline is not None and self.now > deadline
        )


output_steps = st.lists(
    st.tuples(
        st.sampled_from(["queue", "queue", "queue", "wait", "taken"]),
        st.integers(0, 12),
        st.booleans(),
        st.sampled_from([0.0, 0.25, 0.5, 1.0, 2.5]),
    ),
    max_size=60,
)


@settings(max_examples=400, deadline=None)
@given(st.integers(1, 10), st.sampled_from([0.5, 1.0, 2.0]), output_steps)
def test_the_output_follows_the_model(
    write_limit: int, timeout: float, steps: list[tuple[str, int, bool, float]]
) -> None:
    model = OutputModel(Limits(write_limit=write_limit, slow_client_timeout=timeout))
    for step in steps:
        model.step(*step)
