"""streams.py: positions and the frames of resumable group streams
(docs/PROTOCOL-EXTENSIONS.md, section 4)."""

from __future__ import annotations

import pytest

from websocket_multiplex.events import MessagePublished, PositionPresented, StreamGap
from websocket_multiplex.protocol import ClientProtocol, ServerProtocol
from websocket_multiplex.streams import (
    Position,
    gap_frame,
    parse_gap,
    parse_position,
    parse_publication,
    position_frame,
    publication_frame,
    publication_tail,
)

EPOCH = "pGJXikYw"


def test_the_documented_vectors() -> None:
    position = Position(EPOCH, "42")
    tail = publication_tail("room 1", position, "hi, all")
    assert publication_frame("chat", tail) == "pub,chat,room%201,pGJXikYw,42,hi, all"
    assert position_frame("chat", "room 1", position) == "pos,chat,room%201,pGJXikYw,42"
    assert gap_frame("chat", "room 1") == "gap,chat,room%201"


def test_frames_round_trip() -> None:
    position = Position(EPOCH, "1796241799021-3")
    frame = publication_frame("news#2", publication_tail("a,b", position, "x,y"))
    published = parse_publication(frame)
    assert published is not None
    assert (published.topic, published.group, published.payload) == (
        "news#2",
        "a,b",
        "x,y",
    )
    assert published.position == position
    assert parse_position(position_frame("t", "ü,", position)) == ("t", "ü,", position)
    assert parse_gap(gap_frame("t", "g%")) == ("t", "g%")


@pytest.mark.parametrize(
    "frame",
    [
        "pub,t,g,e",  # no payload field
        "pub,,g,e,1,x",
        "pub,t,g,e!,1,x",  # not base64url
        "pub,t,g,e,1a,x",
        "pub,t,g," + "e" * 33 + ",1,x",
        "pub,t,g,e," + "1" * 21 + ",x",
    ],
)
def test_malformed_publications_are_none(frame: str) -> None:
    assert parse_publication(frame) is None


@pytest.mark.parametrize(
    "frame",
    [
        "pos,t,g,e",
        "pos,t,g,e,1,2",
        "pos,,g,e,1",
        "pos,t,,e,1",
        "pos,t," + "g" * 257 + ",e,1",
    ],
)
def test_malformed_positions_are_none(frame: str) -> None:
    assert parse_position(frame) is None


def test_positions_order_within_an_epoch_only() -> None:
    assert Position("a", "10").follows(Position("a", "9"))
    assert Position("a", "5-1").follows(Position("a", "5-0"))
    assert not Position("a", "9").follows(Position("a", "9"))
    assert not Position("b", "10").follows(Position("a", "9"))


def test_the_server_takes_positions_only_on_the_extended_protocol() -> None:
    server = ServerProtocol(lambda topic: topic == "chat")
    frame = "pos,chat,room,e1,7"
    assert server.receive(frame) is None  # a base client: unknown type
    assert server.counters.invalid_frames == 1
    server.take_requests()  # what a session does: the extensions are on
    assert server.receive(frame) == PositionPresented("chat", "room", "e1", "7")
    assert server.receive("pos,chat,room,e1") is None
    assert server.counters.invalid_frames == 2


def test_the_server_sends_pub_and_gap_only_on_open_channels() -> None:
    server = ServerProtocol(lambda topic: topic == "chat")
    server.receive("sub,chat")
    tail = publication_tail("room", Position("e1", "3"), "hi")
    assert server.publish("chat", tail) == "pub,chat,room,e1,3,hi"
    assert server.gap("chat", "room") == "gap,chat,room"
    with pytest.raises(Exception, match="not open"):
        server.publish("news", tail)


def test_a_client_without_the_extensions_takes_pub_and_gap_for_noise() -> None:
    """A server that did not negotiate (the original) never sends them: as
    the original client does, ours acts on neither (fuzzing found it did)."""
    client = ClientProtocol()
    client.open("chat")
    assert client.receive("pub,chat,room,e1,3,hi") is None
    assert client.receive("gap,chat,room") is None
    assert client.counters.invalid_frames == 2


def test_the_client_reads_pub_and_gap_of_open_channels() -> None:
    client = ClientProtocol()
    client.take_requests()  # the server took part in the extensions
    topic, _ = client.open("chat")
    assert client.receive("pub,chat,room,e1,3,hi,there") == MessagePublished(
        "chat", "hi,there", "room", "e1", "3"
    )
    assert client.receive("gap,chat,room") == StreamGap("chat", "room")
    assert client.receive("pub,news,room,e1,3,hi") is None  # not open
    assert client.receive("pub,chat,room,e1,x,hi") is None  # malformed
    assert client.present(topic, "room", Position("e1", "3")) == "pos,chat,room,e1,3"
