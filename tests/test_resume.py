"""The resumable session's book (websocket_multiplex.resume): unit tests of
each rule and of the wire vectors, and a model of a client and a server
whose carrier is cut at random points, checking that every frame arrives
exactly once and in order both ways."""

from __future__ import annotations

from collections import deque

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from websocket_multiplex.resume import (
    ACK_EVERY,
    Book,
    Hello,
    format_ack,
    is_control,
    parse_ack,
)


@pytest.mark.parametrize(
    ("frame", "hello"),
    [
        ("hey,r1,Zm9v-bar_1", Hello("Zm9v-bar_1")),
        ("hey,r1,Zm9v-bar_1,0", Hello("Zm9v-bar_1", 0)),
        ("hey,r1,tok,123456", Hello("tok", 123456)),
    ],
)
def test_hello_vectors(frame: str, hello: Hello) -> None:
    assert Hello.parse(frame) == hello
    assert hello.format() == frame


@pytest.mark.parametrize(
    "frame",
    [
        "hey",
        "hey,r1",
        "hey,r2,tok",  # another version: ignored, the session stays base
        "hey,r1,",
        "hey,r1,bye",  # the goodbye
        "hey,r1,tok,",
        "hey,r1,tok,-1",
        "hey,r1,tok,1,2",
        "hey,r1,,3",
        "hey,r1,tok,1234567890123456789",
        "hey,r1,tök,1",
        "hey,r1,tok,\u0661",  # a digit, but not an ASCII one
        "msg,r1,tok,1",
        "hey,r1," + "t" * 65 + ",1",
    ],
)
def test_what_is_not_a_hello(frame: str) -> None:
    assert Hello.parse(frame) is None


def test_ack_vectors() -> None:
    assert format_ack(32) == "ack,32"
    assert parse_ack("ack,32") == 32
    for junk in ["ack", "ack,", "ack,x", "ack,-1", "ack,1,2", "msg,1", "ack,\u00b2"]:
        assert parse_ack(junk) is None
    assert is_control("ack,1") and is_control("hey,r1")
    assert not is_control("msg,ack,1") and not is_control("hey")


def test_a_sent_frame_is_kept_until_acknowledged() -> None:
    book = Book()
    book.sent("sub,a")
    book.sent("msg,a,hello")
    assert book.retained_size == len("sub,a") + len("msg,a,hello")
    assert book.acknowledged(1)
    assert book.retained_size == len("msg,a,hello")
    assert book.acknowledged(2)
    assert book.retained_size == 0
    assert book.resend_after(2) == []


def test_an_ack_beyond_what_was_sent_or_backwards_is_refused() -> None:
    book = Book()
    book.sent("sub,a")
    assert not book.acknowledged(2)
    assert book.acknowledged(1)
    assert not book.acknowledged(0)
    assert book.retained_size == 0


def test_acks_are_batched_and_flushed() -> None:
    book = Book()
    acks = [book.received() for _ in range(ACK_EVERY * 2 + 3)]
    assert [ack for ack in acks if ack] == [
        f"ack,{ACK_EVERY}",
        f"ack,{ACK_EVERY * 2}",
    ]
    assert book.ack() == f"ack,{ACK_EVERY * 2 + 3}"
    assert book.ack() is None


def test_the_timer_ack_rides_with_frames_going_out_then_goes_alone() -> None:
    book = Book()
    book.received()
    assert book.due() is None  # one frame waits: not due yet
    book.timer_armed()
    assert book.timer_fired() == "ack,1"  # nothing went out: alone
    book.received()
    book.timer_armed()
    book.sent("msg,a,x")
    assert book.timer_fired() is None  # frames go out: the next carry it
    assert book.overdue
    assert book.due() == "ack,2"
    assert not book.overdue
    book.received()
    book.timer_armed()
    book.sent("msg,a,y")
    assert book.timer_fired() is None
    book.timer_armed()  # armed once more; frames still go out, but:
    book.sent("msg,a,z")
    assert book.timer_fired() == "ack,3"  # alone, at twice the delay at most
    assert book.timer_fired() is None  # nothing left to acknowledge


def test_resend_after_gives_exactly_what_the_peer_lacks() -> None:
    book = Book()
    for n in range(1, 6):
        book.sent(f"msg,a,{n}")
    assert book.acknowledged(2)
    assert book.resend_after(3) == ["msg,a,4", "msg,a,5"]
    assert book.resend_after(1) is None  # forgotten already: cannot resume
    assert book.resend_after(6) is None  # more than was ever sent
    assert book.resend_after(5) == []


def test_a_hello_acknowledges_what_was_received() -> None:
    book = Book()
    book.received()
    book.received()
    assert book.hello("tok") == Hello("tok", 2)
    assert book.ack() is None


class _Side:
    """One peer of the model: its book, what it sent, what it delivered."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.book = Book()
        self.next = 1
        self.delivered: list[str] = []

    def send(self) -> str:
        frame = f"msg,{self.name},{self.next}"
        self.next += 1
        self.book.sent(frame)
        return frame

    def take(self, frame: str) -> str | None:
        """Handle one frame from the peer; an ack to send back, if due."""
        count = parse_ack(frame)
        if count is not None:
            assert self.book.acknowledged(count)
            return None
        self.delivered.append(frame)
        return self.book.received()


class CutCarrier(RuleBasedStateMachine):
    """Client and server stream to each other over a carrier that is cut
    at random points (whatever is in flight is lost), then resume."""

    def __init__(self) -> None:
        super().__init__()
        self.client, self.server = _Side("c"), _Side("s")
        self.to_server: deque[str] = deque()
        self.to_client: deque[str] = deque()

    @rule()
    def client_sends(self) -> None:
        self.to_server.append(self.client.send())

    @rule()
    def server_sends(self) -> None:
        self.to_client.append(self.server.send())

    @precondition(lambda self: self.to_server)
    @rule()
    def server_reads(self) -> None:
        ack = self.server.take(self.to_server.popleft())
        if ack:
            self.to_client.append(ack)

    @precondition(lambda self: self.to_client)
    @rule()
    def client_reads(self) -> None:
        ack = self.client.take(self.to_client.popleft())
        if ack:
            self.to_server.append(ack)

    @rule(side=st.sampled_from(["client", "server"]))
    def timer_flush(self, side: str) -> None:
        ack = getattr(self, side).book.ack()
        if ack:
            (self.to_server if side == "client" else self.to_client).append(ack)

    @rule()
    def cut_and_resume(self) -> None:
        """What the asyncio layers do on a new carrier: the client says
        how far it got, the server answers and resends, the client
        resends. Nothing is sent meanwhile."""
        self.to_server.clear()
        self.to_client.clear()
        asked = Hello.parse(self.client.book.hello("tok").format())
        assert asked is not None
        server_resend = self.server.book.resend_after(asked.received)
        assert server_resend is not None
        answer = Hello.parse(self.server.book.hello("tok").format())
        assert answer is not None
        client_resend = self.client.book.resend_after(answer.received)
        assert client_resend is not None
        self.to_client.extend(server_resend)
        self.to_server.extend(client_resend)

    @invariant()
    def delivered_once_in_order(self) -> None:
        for side, peer in ((self.client, self.server), (self.server, self.client)):
            expected = [
                f"msg,{peer.name},{n}" for n in range(1, len(side.delivered) + 1)
            ]
            assert side.delivered == expected

    def teardown(self) -> None:
        """With the carrier left alone, everything arrives and is forgotten."""
        for _ in range(10_000):
            if self.to_server:
                self.server_reads()
            elif self.to_client:
                self.client_reads()
            else:
                self.timer_flush("client")
                self.timer_flush("server")
                if not (self.to_server or self.to_client):
                    break
        assert len(self.client.delivered) == self.server.next - 1
        assert len(self.server.delivered) == self.client.next - 1
        assert self.client.book.retained_size == self.server.book.retained_size == 0


CutCarrier.TestCase.settings = settings(max_examples=300, stateful_step_count=80)
TestCutCarrier = CutCarrier.TestCase
