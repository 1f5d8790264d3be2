"""The resumable streams' book (websocket_multiplex.resume): unit tests of
each rule, and a model of a client and a server whose carrier is cut at
random points, checking that every frame of every channel arrives exactly
once and in order, and that both books end empty."""

from __future__ import annotations

from collections import deque

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from websocket_multiplex.resume import (
    ACK_EVERY,
    Position,
    Streams,
    format_positions,
    parse_positions,
)


def test_a_sent_frame_is_kept_until_acknowledged() -> None:
    book = Streams()
    book.sent("a", "sub,a")
    book.sent("a", "msg,a,hello")
    assert book.retained_size == len("sub,a") + len("msg,a,hello")
    assert book.acknowledged("a", 1)
    assert book.retained_size == len("msg,a,hello")
    assert book.acknowledged("a", 2)
    assert book.retained_size == 0
    assert "a" in book  # still open: nothing forgotten


def test_an_ack_beyond_what_was_sent_or_backwards_is_ignored() -> None:
    book = Streams()
    book.sent("a", "sub,a")
    assert not book.acknowledged("a", 2)
    assert book.acknowledged("a", 1)
    assert not book.acknowledged("a", 0)
    assert not book.acknowledged("nothing", 1)
    assert book.retained_size == 0


def test_acks_are_batched_and_flushed() -> None:
    book = Streams()
    acks = [book.received("a", "msg") for _ in range(ACK_EVERY * 2 + 3)]
    assert [ack for ack in acks if ack] == [
        f"ack,a,{ACK_EVERY}",
        f"ack,a,{ACK_EVERY * 2}",
    ]
    assert book.due_acks() == [f"ack,a,{ACK_EVERY * 2 + 3}"]
    assert book.due_acks() == []


def test_a_close_is_acknowledged_at_once_and_must_be_answered() -> None:
    book = Streams()
    book.received("a", "sub")
    assert book.received("a", "uns") == "ack,a,2"
    assert book.must_answer_close("a")
    book.sent("a", "uns,a")
    assert not book.must_answer_close("a")
    assert "a" in book  # our uns is not acknowledged yet
    book.acknowledged("a", 1)
    assert "a" not in book  # both ends closed and acknowledged: forgotten


def test_positions_round_trip_and_bad_ones_are_refused() -> None:
    positions = [Position("a", 1, 2), Position("news#3", 0, 17)]
    assert parse_positions(format_positions(positions), 10) == positions
    assert parse_positions("", 10) == []
    for bad in ("a", "a:1", "a:x:1", ":1:1", "a:1:-1", "a:1:1,", "a:\u0661:1"):
        assert parse_positions(bad, 10) is None, bad
    assert parse_positions("a:1:1,b:1:1", 1) is None  # over the limit


def test_resume_resends_exactly_what_the_peer_has_not() -> None:
    client, server = Streams(), Streams()
    for frame in ("sub,a", "msg,a,1", "msg,a,2"):
        client.sent("a", frame)
    server.received("a", "sub")  # msg 1 and 2 were lost with the carrier
    server.sent("a", "msg,a,x")  # and this never reached the client
    resend, answer = server.resume(client.positions(), listed_all=True)
    assert resend == ["msg,a,x"]
    assert answer == [Position("a", 1, 1)]
    resend, _ = client.resume(answer, listed_all=False)
    assert resend == ["msg,a,1", "msg,a,2"]


def test_a_lost_sub_is_resent_whole() -> None:
    client, server = Streams(), Streams()
    client.sent("a", "sub,a")
    client.sent("a", "msg,a,1")
    _, answer = server.resume(client.positions(), listed_all=True)
    assert answer == [Position("a", 0, 0)]
    resend, _ = client.resume(answer, listed_all=False)
    assert resend == ["sub,a", "msg,a,1"]


def test_a_channel_the_client_forgot_is_forgotten_by_the_server() -> None:
    server = Streams()
    server.received("a", "sub")
    server.received("a", "uns")
    server.sent("a", "uns,a")  # the client's ack of it was lost
    resend, answer = server.resume([], listed_all=True)
    assert (resend, answer, len(server), server.retained_size) == ([], [], 0, 0)


def test_a_channel_the_server_forgot_is_acknowledged_whole() -> None:
    client = Streams()
    client.sent("a", "sub,a")
    client.received("a", "uns")
    client.sent("a", "uns,a")  # the server's ack of it was lost
    _, answer = Streams().resume(client.positions(), listed_all=True)
    assert answer == [Position("a", 2, 1)]
    resend, _ = client.resume(answer, listed_all=False)
    assert resend == []
    assert len(client) == 0


# -- the model ---------------------------------------------------------------------


class Side:
    """One side of the model: its book, what it sent and got per topic."""

    def __init__(self) -> None:
        self.book = Streams()
        self.open: set[str] = set()
        self.sent: dict[str, list[str]] = {}
        self.got: dict[str, list[str]] = {}
        self.out: deque[str] = deque()  # in flight towards the peer

    def send(self, topic: str, frame: str) -> None:
        self.book.sent(topic, frame)
        self.sent.setdefault(topic, []).append(frame)
        self.out.append(frame)

    def close(self, topic: str) -> None:
        self.open.discard(topic)
        self.send(topic, f"uns,{topic}")

    def take(self, frame: str) -> None:
        """One frame from the peer, as the asyncio layer will handle it."""
        kind, topic, rest = [*frame.split(",", 2), ""][:3]
        if kind == "ack":
            assert self.book.acknowledged(topic, int(rest)), frame
            return
        self.got.setdefault(topic, []).append(frame)
        ack = self.book.received(topic, kind)
        if ack is not None:
            self.out.append(ack)
        if kind == "sub":
            self.open.add(topic)
        elif kind == "uns":
            self.open.discard(topic)
            if self.book.must_answer_close(topic):
                self.close(topic)


class CutCarrier(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.client, self.server = Side(), Side()
        self.topics = 0

    @rule()
    def client_opens(self) -> None:
        self.topics += 1
        topic = f"t{self.topics}"  # a session never reuses a topic
        self.client.open.add(topic)
        self.client.send(topic, f"sub,{topic}")

    @rule(which=st.integers(0, 7), server=st.booleans())
    def send(self, which: int, server: bool) -> None:
        side = self.server if server else self.client
        if side.open:
            topic = sorted(side.open)[which % len(side.open)]
            side.send(topic, f"msg,{topic},{len(side.sent.get(topic, []))}")

    @rule(which=st.integers(0, 7), server=st.booleans())
    def close(self, which: int, server: bool) -> None:
        side = self.server if server else self.client
        if side.open:
            side.close(sorted(side.open)[which % len(side.open)])

    @rule(count=st.integers(1, 5), server=st.booleans())
    def deliver(self, count: int, server: bool) -> None:
        sender, receiver = (
            (self.server, self.client) if server else (self.client, self.server)
        )
        for _ in range(count):
            if sender.out:
                receiver.take(sender.out.popleft())

    @rule(server=st.booleans())
    def flush_acks(self, server: bool) -> None:
        side = self.server if server else self.client
        side.out.extend(side.book.due_acks())

    @rule(lost_answer=st.booleans())
    def cut(self, lost_answer: bool) -> None:
        """The carrier goes, with everything in flight; a new one comes."""
        client, server = self.client, self.server
        client.out.clear()
        server.out.clear()
        if lost_answer:  # the server answers, and that carrier goes too
            server.book.resume(client.book.positions(), listed_all=True)
        theirs = parse_positions(format_positions(client.book.positions()), 10_000)
        assert theirs is not None
        resend, answer = server.book.resume(theirs, listed_all=True)
        server.out.extend(resend)
        resend, _ = client.book.resume(answer, listed_all=False)
        client.out.extend(resend)

    @invariant()
    def nothing_arrives_twice_or_out_of_order(self) -> None:
        for receiver, sender in (
            (self.server, self.client),
            (self.client, self.server),
        ):
            for topic, got in receiver.got.items():
                assert got == sender.sent.get(topic, [])[: len(got)], topic

    def teardown(self) -> None:
        """Deliver everything, close what is open: both books empty out."""
        client, server = self.client, self.server
        for side in (client, server):
            for topic in sorted(side.open):
                side.close(topic)
        for _ in range(10_000):
            if not (client.out or server.out):
                client.out.extend(client.book.due_acks())
                server.out.extend(server.book.due_acks())
                if not (client.out or server.out):
                    break
            while client.out:
                server.take(client.out.popleft())
            while server.out:
                client.take(server.out.popleft())
        for receiver, sender in ((server, client), (client, server)):
            assert receiver.got == {t: f for t, f in sender.sent.items() if f}
        for side in (client, server):
            assert len(side.book) == 0
            assert side.book.retained_size == 0


CutCarrier.TestCase.settings = settings(max_examples=400, stateful_step_count=60)
test_a_cut_carrier_loses_nothing_and_repeats_nothing = CutCarrier.TestCase


@pytest.mark.parametrize("count", [0, 1, ACK_EVERY - 1, ACK_EVERY])
def test_an_idle_side_owes_no_ack(count: int) -> None:
    book = Streams()
    for _ in range(count):
        book.received("a", "msg")
    book.due_acks()
    assert book.due_acks() == []
