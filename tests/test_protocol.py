"""The sans-I/O state machine: every row of PROTOCOL.md "Semantics", and a model."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from websocket_multiplex.events import (
    ChannelClosedEvent,
    ChannelOpened,
    ChannelRefused,
    CloseReason,
    MessageReceived,
)
from websocket_multiplex.exceptions import LocalProtocolError
from websocket_multiplex.protocol import ClientProtocol, ServerProtocol
from websocket_multiplex.wire import instance_topic, service_topic

REGISTERED = frozenset({"ann", "bob", "weird%20name%2C%FC/%25"})


def make_protocol(*open_topics: str) -> ServerProtocol:
    protocol = ServerProtocol(REGISTERED.__contains__)
    for topic in open_topics:
        assert protocol.receive(f"sub,{topic}") == ChannelOpened(topic)
    return protocol


# -- server: sub,T -------------------------------------------------------------


def test_sub_to_a_registered_topic_opens_a_channel() -> None:
    protocol = make_protocol()
    assert protocol.receive("sub,ann") == ChannelOpened("ann")
    assert protocol.open_topics == {"ann"}
    assert protocol.is_open("ann")
    assert protocol.counters.ignored_frames == 0


def test_sub_with_a_payload_still_opens() -> None:
    assert make_protocol().receive("sub,ann,ignored") == ChannelOpened("ann")


def test_sub_to_an_escaped_topic_opens_it() -> None:
    topic = "weird%20name%2C%FC/%25"
    assert make_protocol().receive(f"sub,{topic}") == ChannelOpened(topic)


def test_sub_to_an_open_topic_is_ignored() -> None:
    protocol = make_protocol("ann")
    assert protocol.receive("sub,ann") is None
    assert protocol.open_topics == {"ann"}
    assert protocol.counters.ignored_frames == 1


def test_sub_to_an_unregistered_topic_is_refused() -> None:
    protocol = make_protocol()
    assert protocol.receive("sub,nobody") == ChannelRefused("nobody")
    assert protocol.open_topics == frozenset()
    assert protocol.counters.refused_subscriptions == 1
    assert protocol.refuse("nobody", "404 no such service") == [
        "err,nobody,404 no such service",
        "uns,nobody",
    ]
    assert protocol.counters.frames_sent == 2


def test_refuse_is_for_topics_that_are_not_open() -> None:
    protocol = make_protocol("ann")
    with pytest.raises(LocalProtocolError):
        protocol.refuse("ann", "403 no")


def test_fail_closes_an_open_channel_with_a_notice() -> None:
    protocol = make_protocol("ann")
    assert protocol.fail("ann", "500 service failed") == [
        "err,ann,500 service failed",
        "uns,ann",
    ]
    assert protocol.open_topics == frozenset()


def test_topics_are_compared_escaped() -> None:
    # The client escapes the name; an unescaped name is another topic.
    protocol = make_protocol()
    assert protocol.receive("sub,weird name,ü/%") == ChannelRefused("weird name")


# -- server: msg,T,P and uns,T -------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "payload"),
    [
        ("msg,ann,hi", "hi"),
        ("msg,ann,a,b,,c", "a,b,,c"),
        ("msg,ann,", ""),
        ("msg,ann", ""),
        ('msg,ann,{"k": [1, 2]}\n😀', '{"k": [1, 2]}\n😀'),
    ],
)
def test_msg_on_an_open_topic_is_delivered(frame: str, payload: str) -> None:
    assert make_protocol("ann").receive(frame) == MessageReceived("ann", payload)


def test_uns_on_an_open_topic_closes_it_without_a_reply() -> None:
    protocol = make_protocol("ann", "bob")
    sent_before = protocol.counters.frames_sent
    assert protocol.receive("uns,ann") == ChannelClosedEvent(
        "ann", CloseReason.CLIENT_CLOSED
    )
    assert protocol.open_topics == {"bob"}
    assert protocol.counters.frames_sent == sent_before


def test_a_closed_topic_can_be_subscribed_again() -> None:
    protocol = make_protocol("ann")
    protocol.receive("uns,ann")
    assert protocol.receive("sub,ann") == ChannelOpened("ann")


# -- either side: ignored ------------------------------------------------------


@pytest.mark.parametrize("frame", ["", "foo", "msg", "msg,", "sub,", ",ann", "x,ann,y"])
def test_invalid_frames_are_counted_and_ignored(frame: str) -> None:
    protocol = make_protocol("ann")
    assert protocol.receive(frame) is None
    assert protocol.counters.invalid_frames == 1
    assert protocol.counters.ignored_frames == 0
    assert protocol.open_topics == {"ann"}


@pytest.mark.parametrize(
    "frame", ["msg,bob,x", "uns,bob", "msg,nobody,x", "uns,nobody", "msg,ann,x"]
)
def test_frames_for_topics_that_are_not_open_are_ignored(frame: str) -> None:
    protocol = make_protocol()
    protocol.receive("sub,ann")
    protocol.receive("uns,ann")
    assert protocol.receive(frame) is None
    assert protocol.counters.ignored_frames == 1
    assert protocol.counters.invalid_frames == 0


@pytest.mark.parametrize(
    "frame",
    [
        "sub,toString",
        "msg,constructor,x",
        "sub,__proto__",
        "uns,hasOwnProperty",
        "msg,__proto__,x",
        "sub,__class__",
        "sub,__dict__",
    ],
)
def test_object_prototype_names_are_ignored(frame: str) -> None:
    # The reference node server crashes on these; they are plain topics here.
    protocol = make_protocol("ann")
    event = protocol.receive(frame)
    if frame.startswith("sub,"):  # a sub nobody answers is refused
        assert event == ChannelRefused(frame[4:])
    else:
        assert event is None
        assert protocol.counters.ignored_frames == 1
    assert protocol.receive("msg,ann,still here") == MessageReceived(
        "ann", "still here"
    )


def test_counters_count_every_frame() -> None:
    protocol = make_protocol()
    for frame in ("sub,ann", "msg,ann,x", "foo", "sub,ann", "uns,ann", "uns,ann"):
        protocol.receive(frame)
    counters = protocol.counters
    assert counters.frames_received == 6
    assert counters.invalid_frames == 1
    assert counters.ignored_frames == 2


# -- server side sends ---------------------------------------------------------


def test_send_frames_a_message() -> None:
    protocol = make_protocol("ann")
    assert protocol.send("ann", "a,b") == "msg,ann,a,b"
    assert protocol.send("ann", "") == "msg,ann,"
    assert protocol.counters.frames_sent == 2


def test_close_with_a_last_message_like_end_data() -> None:
    protocol = make_protocol("ann")
    assert [protocol.send("ann", "bye"), protocol.close("ann")] == [
        "msg,ann,bye",
        "uns,ann",
    ]
    assert not protocol.is_open("ann")
    assert protocol.receive("msg,ann,late") is None


@pytest.mark.parametrize("topic", ["ann", "nobody", "toString"])
def test_send_and_close_on_a_topic_that_is_not_open_raise(topic: str) -> None:
    protocol = make_protocol()
    with pytest.raises(LocalProtocolError, match="not open"):
        protocol.send(topic, "x")
    with pytest.raises(LocalProtocolError):
        protocol.close(topic)
    assert protocol.counters.frames_sent == 0


def test_connection_lost_closes_every_channel_and_sends_nothing() -> None:
    protocol = make_protocol("ann", "bob")
    closed = protocol.connection_lost()
    assert sorted(closed, key=lambda e: e.topic) == [
        ChannelClosedEvent("ann", CloseReason.CONNECTION_LOST),
        ChannelClosedEvent("bob", CloseReason.CONNECTION_LOST),
    ]
    assert protocol.open_topics == frozenset()
    assert protocol.connection_lost() == []


def test_connection_lost_with_another_reason() -> None:
    protocol = make_protocol("ann")
    assert protocol.connection_lost(CloseReason.SHUTDOWN) == [
        ChannelClosedEvent("ann", CloseReason.SHUTDOWN)
    ]


def test_open_topics_is_a_snapshot() -> None:
    protocol = make_protocol("ann")
    topics = protocol.open_topics
    protocol.receive("uns,ann")
    assert topics == {"ann"}


# -- a model of the state machine ----------------------------------------------

TOPICS = [*sorted(REGISTERED), "nobody", "toString", "__proto__", "constructor", ""]
frames = st.one_of(
    st.builds(
        lambda kind, topic, payload: ",".join(
            p for p in (kind, topic, payload) if p is not None
        ),
        st.sampled_from(["sub", "msg", "uns", "foo", "", "MSG"]),
        st.sampled_from(TOPICS),
        st.none() | st.text(max_size=8),
    ),
    st.text(max_size=12),
)


class ProtocolModel(RuleBasedStateMachine):
    """Random frames and server calls against a set of open topics."""

    @initialize()
    def start(self) -> None:
        self.protocol = ServerProtocol(REGISTERED.__contains__)
        self.open: set[str] = set()
        self.events = 0
        self.sent = 0

    @rule(text=frames)
    def receive(self, text: str) -> None:
        kind, _, rest = text.partition(",")
        topic, _, payload = rest.partition(",")
        event = self.protocol.receive(text)
        if event is not None:
            self.events += 1
        if kind == "sub" and topic in REGISTERED and topic not in self.open:
            assert event == ChannelOpened(topic)
            self.open.add(topic)
        elif kind == "sub" and topic and topic not in self.open:
            assert event == ChannelRefused(topic)
        elif kind == "msg" and topic in self.open:
            assert event == MessageReceived(topic, payload)
        elif kind == "uns" and topic in self.open:
            assert event == ChannelClosedEvent(topic, CloseReason.CLIENT_CLOSED)
            self.open.discard(topic)
        else:
            assert event is None

    @rule(topic=st.sampled_from(TOPICS), payload=st.text(max_size=8))
    def send(self, topic: str, payload: str) -> None:
        if topic in self.open:
            assert self.protocol.send(topic, payload) == f"msg,{topic},{payload}"
            self.sent += 1
        else:
            with pytest.raises(LocalProtocolError):
                self.protocol.send(topic, payload)

    @rule(topic=st.sampled_from(TOPICS))
    def close(self, topic: str) -> None:
        if topic in self.open:
            assert self.protocol.close(topic) == f"uns,{topic}"
            self.open.discard(topic)
            self.sent += 1
        else:
            with pytest.raises(LocalProtocolError):
                self.protocol.close(topic)

    @precondition(lambda self: bool(self.open))
    @rule()
    def connection_lost(self) -> None:
        closed = self.protocol.connection_lost()
        assert {event.topic for event in closed} == self.open
        self.open.clear()

    @invariant()
    def open_topics_match_the_model(self) -> None:
        assert self.protocol.open_topics == self.open
        assert self.open <= REGISTERED

    @invariant()
    def every_frame_is_counted_once(self) -> None:
        counters = self.protocol.counters
        assert counters.frames_received == (
            self.events + counters.invalid_frames + counters.ignored_frames
        )
        assert counters.refused_subscriptions <= self.events
        assert counters.frames_sent == self.sent


ProtocolModel.TestCase.settings = settings(max_examples=60, stateful_step_count=30)
TestProtocolModel = ProtocolModel.TestCase


@given(st.lists(st.text()))
def test_receive_never_raises(texts: list[str]) -> None:
    protocol = ServerProtocol(lambda topic: True)
    for text in texts:
        protocol.receive(text)
    assert protocol.counters.frames_received == len(texts)


# -- extension: instance topics and refusal notices, server side ---------------


@pytest.mark.parametrize(
    ("topic", "service"),
    [("news#1", "news"), ("news#a9Z", "news"), ("%u65E5#2", "%u65E5")],
)
def test_service_topic_of_instance_topics(topic: str, service: str) -> None:
    assert service_topic(topic) == service
    assert instance_topic(service, topic.partition("#")[2]) == topic


@pytest.mark.parametrize(
    "topic", ["news", "news#", "#1", "news#1#2", "news#-", "n#" + "1" * 17]
)
def test_topics_that_are_not_instance_topics(topic: str) -> None:
    assert service_topic(topic) is None


# -- client side ----------------------------------------------------------------


def test_client_opens_sends_and_closes() -> None:
    client = ClientProtocol()
    assert client.open("weird name,ü/%") == (
        "weird%20name%2C%FC/%25",
        "sub,weird%20name%2C%FC/%25",
    )
    assert (
        client.send("weird%20name%2C%FC/%25", "a,b") == "msg,weird%20name%2C%FC/%25,a,b"
    )
    assert client.receive("msg,weird%20name%2C%FC/%25,x,y") == MessageReceived(
        "weird%20name%2C%FC/%25", "x,y"
    )
    assert client.close("weird%20name%2C%FC/%25") == "uns,weird%20name%2C%FC/%25"
    with pytest.raises(LocalProtocolError):
        client.send("weird%20name%2C%FC/%25", "late")


def test_client_gives_further_channels_of_a_name_instance_topics() -> None:
    client = ClientProtocol()
    assert client.open("news")[0] == "news"
    assert client.open("news")[0] == "news#1"
    assert client.open("news")[0] == "news#2"
    client.close("news")
    assert client.open("news")[0] == "news"  # the plain topic is free again
    assert client.open_topics == {"news", "news#1", "news#2"}


def test_client_sees_server_close_and_refusal() -> None:
    client = ClientProtocol()
    client.open("carl")
    client.open("nobody")
    assert client.receive("uns,carl") == ChannelClosedEvent(
        "carl", CloseReason.SERVER_CLOSED
    )
    assert client.receive("err,nobody,404 no such service") is None
    assert client.receive("uns,nobody") == ChannelClosedEvent(
        "nobody", CloseReason.REFUSED, "404 no such service"
    )
    assert client.open_topics == frozenset()


@pytest.mark.parametrize(
    "text", ["", "foo", "msg,other,x", "uns,other", "err,other,x", "sub,ann", "msg"]
)
def test_client_ignores_what_is_not_for_an_open_channel(text: str) -> None:
    client = ClientProtocol()
    client.open("ann")
    assert client.receive(text) is None
    assert client.open_topics == {"ann"}


def test_client_resubscribes_or_loses_every_channel() -> None:
    client = ClientProtocol()
    client.open("b")
    client.open("a")
    assert client.resubscribe() == ["sub,a", "sub,b"]
    lost = client.connection_lost()
    assert sorted(lost, key=lambda event: event.topic) == [
        ChannelClosedEvent("a", CloseReason.CONNECTION_LOST),
        ChannelClosedEvent("b", CloseReason.CONNECTION_LOST),
    ]
    assert client.resubscribe() == []


def test_a_client_and_a_server_core_talk() -> None:
    server = ServerProtocol(lambda topic: (service_topic(topic) or topic) == "news")
    client = ClientProtocol()
    topics = [client.open("news") for _ in range(2)]
    for topic, sub in topics:
        assert server.receive(sub) == ChannelOpened(topic)
    assert server.open_topics == {"news", "news#1"}
    assert client.receive(server.send("news#1", "only #1")) == MessageReceived(
        "news#1", "only #1"
    )


def test_client_refuses_an_empty_name() -> None:
    with pytest.raises(LocalProtocolError):
        ClientProtocol().open("")
