"""Request/reply, sans I/O (docs/PROTOCOL-EXTENSIONS.md, section 5): the
frames, the book, and what each protocol core makes of them."""

from __future__ import annotations

import pytest

from websocket_multiplex.codes import RequestCode
from websocket_multiplex.events import (
    ChannelOpened,
    ReplyReceived,
    RequestDeclined,
    RequestReceived,
)
from websocket_multiplex.exceptions import AlreadyAnswered, RequestFailed
from websocket_multiplex.limits import Limits
from websocket_multiplex.protocol import ClientProtocol, ServerProtocol
from websocket_multiplex.reqrep import (
    RequestBook,
    format_notice,
    parse_id,
    split_notice,
)
from websocket_multiplex.wire import parse_frame


def server(limits: Limits | None = None, extended: bool = True) -> ServerProtocol:
    protocol = ServerProtocol(lambda topic: topic == "calc", limits or Limits())
    if extended:
        protocol.take_requests()
    assert protocol.receive("sub,calc") == ChannelOpened("calc")
    return protocol


@pytest.mark.parametrize(
    ("payload", "parsed"),
    [
        ("1,2+2", ("1", "2+2")),
        ("17,a,b,,c", ("17", "a,b,,c")),
        ("5", ("5", "")),
        ("5,", ("5", "")),
        ("0123456789012345,x", ("0123456789012345", "x")),
        ("01234567890123456,x", None),  # 17 digits
        (",x", None),
        ("1a,x", None),
        ("-1,x", None),
        ("٣,x", None),  # a digit, but not an ASCII one
        ("", None),
    ],
)
def test_ids_are_one_to_sixteen_ascii_digits(
    payload: str, parsed: tuple[str, str] | None
) -> None:
    assert parse_id(payload) == parsed


def test_the_vectors_of_the_spec() -> None:
    """The exchange of docs/PROTOCOL-EXTENSIONS.md, section 5, between a
    client core and a server core."""
    client = ClientProtocol()
    topic, _ = client.open("calc")
    asking = client.take_requests()
    assert asking is not None
    protocol = server()
    answering = protocol.requests
    assert answering is not None
    assert asking.ask(topic, "calc", "2+2") == ("1", "req,calc,1,2+2")
    assert asking.ask(topic, "calc", "3*3") == ("2", "req,calc,2,3*3")
    assert protocol.receive("req,calc,1,2+2") == RequestReceived("calc", "1", "2+2")
    assert protocol.receive("req,calc,2,3*3") == RequestReceived("calc", "2", "3*3")
    assert answering.reply("calc", "2", "9") == "rep,calc,2,9"
    assert client.receive("rep,calc,2,9") == ReplyReceived("calc", "2", "9")
    assert answering.fail("calc", "1", "422 no sums today") == (
        "rer,calc,1,422 no sums today"
    )
    assert client.receive("rer,calc,1,422 no sums today") == ReplyReceived(
        "calc", "1", "", "422 no sums today"
    )
    assert answering.ask("calc", "calc", "confirm?") == ("1", "req,calc,1,confirm?")
    assert client.receive("req,calc,1,confirm?") == RequestReceived(
        "calc", "1", "confirm?"
    )
    assert asking.reply(topic, "1", "yes") == "rep,calc,1,yes"
    assert protocol.receive("rep,calc,1,yes") == ReplyReceived("calc", "1", "yes")
    assert asking.ask(topic, "calc", "a,b") == ("3", "req,calc,3,a,b")
    assert protocol.receive("req,calc,3,a,b") == RequestReceived("calc", "3", "a,b")
    assert answering.reply("calc", "3", "") == "rep,calc,3,"
    assert client.receive("rep,calc,3,") == ReplyReceived("calc", "3", "")
    for ignored in (
        "req,calc,x,1",
        "req,nope,1,x",
        "rep,calc,9,late",
        "req,calc,12345678901234567,x",
    ):
        assert protocol.receive(ignored) is None


def test_the_bound_vector_of_the_spec() -> None:
    protocol = server()
    for n in range(1, 65):
        assert protocol.receive(f"req,calc,{n},x") is not None
    declined = protocol.receive("req,calc,65,x")
    assert isinstance(declined, RequestDeclined)
    assert RequestBook.decline("calc", "65", declined.notice) == (
        "rer,calc,65,429 too many requests"
    )


def test_replies_find_their_request_by_id_in_any_order() -> None:
    protocol = server()
    book = protocol.requests
    assert book is not None
    ids = [book.ask("calc", "calc", str(n))[0] for n in range(3)]
    assert ids == ["1", "2", "3"]
    assert protocol.receive("rep,calc,3,c") == ReplyReceived("calc", "3", "c")
    assert protocol.receive("rep,calc,1,a") == ReplyReceived("calc", "1", "a")
    assert protocol.receive("rep,calc,1,again") is None  # answered already
    assert protocol.receive("rep,calc,2,b") == ReplyReceived("calc", "2", "b")
    assert book.outstanding("calc") == 0


@pytest.mark.parametrize(
    "frame",
    [
        "rep,calc,9,never asked",
        "rer,calc,9,500 never asked",
        "req,calc,x,not an id",
        "req,calc,,no id",
        "rep,calc",
        "req,nope,1,a topic that is not open",
        "req,toString,1,x",
        "req,__proto__,1,x",
    ],
)
def test_frames_to_ignore_are_counted_and_ignored(frame: str) -> None:
    protocol = server()
    before = protocol.counters.ignored_frames
    assert protocol.receive(frame) is None
    assert protocol.counters.ignored_frames == before + 1


def test_without_the_extensions_the_new_frames_are_ignored() -> None:
    """A base client never sends them; if one did, nothing would answer."""
    protocol = server(extended=False)
    for frame in ("req,calc,1,x", "rep,calc,1,x", "rer,calc,1,500 x"):
        assert protocol.receive(frame) is None
    assert protocol.counters.ignored_frames == 3
    client = ClientProtocol()
    client.open("calc")
    assert client.receive("req,calc,1,x") is None


def test_a_repeated_id_is_ignored_while_owed() -> None:
    protocol = server()
    assert protocol.receive("req,calc,1,a") == RequestReceived("calc", "1", "a")
    assert protocol.receive("req,calc,1,b") is None
    assert protocol.requests is not None
    protocol.requests.reply("calc", "1", "done")
    assert protocol.receive("req,calc,1,c") == RequestReceived("calc", "1", "c")


def test_past_the_bound_the_peer_is_declined_and_we_raise() -> None:
    protocol = server(Limits(max_outstanding_requests=2))
    book = protocol.requests
    assert book is not None
    assert protocol.receive("req,calc,1,a") is not None
    assert protocol.receive("req,calc,2,b") is not None
    declined = protocol.receive("req,calc,3,c")
    assert declined == RequestDeclined("calc", "3", "429 too many requests")
    assert book.decline("calc", "3", declined.notice) == (
        "rer,calc,3,429 too many requests"
    )
    assert book.owed("calc") == 2  # the declined one is not owed
    book.ask("calc", "calc", "x")
    book.ask("calc", "calc", "y")
    with pytest.raises(RequestFailed) as failed:
        book.ask("calc", "calc", "z")
    assert failed.value.code == RequestCode.TOO_MANY
    book.abandon("calc", "1")  # timed out: its place is free
    assert protocol.receive("rep,calc,1,late") is None
    assert book.ask("calc", "calc", "z")[0] == "3"


def test_an_oversized_request_is_declined_413() -> None:
    protocol = server(Limits(max_frame_size=64))
    event = protocol.receive("req,calc,7," + "x" * 64)
    assert event == RequestDeclined("calc", "7", "413 request too large")
    assert protocol.receive("rep,calc,7," + "x" * 64) is None


def test_each_request_is_answered_once() -> None:
    protocol = server()
    book = protocol.requests
    assert book is not None
    protocol.receive("req,calc,1,a")
    book.reply("calc", "1", "x")
    with pytest.raises(AlreadyAnswered):
        book.fail("calc", "1", "500 again")


def test_a_closed_channel_forgets_its_requests() -> None:
    protocol = server()
    book = protocol.requests
    assert book is not None
    protocol.receive("req,calc,1,a")
    book.ask("calc", "calc", "q")
    protocol.receive("uns,calc")
    assert (book.owed("calc"), book.outstanding("calc")) == (0, 0)
    assert protocol.receive("sub,calc") == ChannelOpened("calc")
    assert protocol.receive("rep,calc,1,late") is None


def test_the_client_core_routes_the_same_frames() -> None:
    client = ClientProtocol(max_outstanding_requests=1)
    topic, _ = client.open("calc")
    book = client.take_requests()
    assert book is not None
    assert client.receive("req,calc,1,ok?") == RequestReceived(topic, "1", "ok?")
    assert client.receive("req,calc,2,and?") == RequestDeclined(
        topic, "2", "429 too many requests"
    )
    book.ask(topic, "calc", "x")
    assert client.receive("rep,calc,1,y") == ReplyReceived(topic, "1", "y")
    assert client.take_requests(False) is None  # the server no longer takes part
    assert client.receive("rep,calc,1,y") is None
    again = client.take_requests()  # a new session: ids go on from the old
    assert again is not None
    assert again.ask(topic, "calc", "z")[0] == "2"


def test_notices() -> None:
    assert format_notice(422, "no") == "422 no"
    assert split_notice("501 nothing here") == (501, "nothing here")
    assert split_notice("garbled") == (500, "garbled")
    for code in (99, 1000, True, "400"):
        with pytest.raises(ValueError, match="three digits"):
            format_notice(code, "x")  # type: ignore[arg-type]


def test_the_new_types_parse_as_frames() -> None:
    frame = parse_frame("req,calc,1,a,b")
    assert (frame.type, frame.topic, frame.payload) == ("req", "calc", "1,a,b")
    assert RequestBook(1).receive(frame) is not None
