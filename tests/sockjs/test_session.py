"""The HTTP-transport session state machine (sockjs/session.py), rule by rule."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from websocket_multiplex.exceptions import LocalProtocolError
from websocket_multiplex.sockjs.frames import eventsource_chunk, xhr_chunk
from websocket_multiplex.sockjs.session import (
    Attached,
    Expiry,
    Receiver,
    Session,
    SessionState,
)

HEARTBEAT_DELAY = 25.0
DISCONNECT_DELAY = 5.0
LIMIT = 128 * 1024
ANOTHER = 'c[2010,"Another connection still open"]\n'
INTERRUPTED = 'c[1002,"Connection interrupted"]\n'
GO_AWAY = 'c[3000,"Go away!"]\n'


def make_session(now: float = 0.0, batch_limit: int = 32 * 1024) -> Session:
    return Session(
        heartbeat_delay=HEARTBEAT_DELAY,
        disconnect_delay=DISCONNECT_DELAY,
        now=now,
        batch_limit=batch_limit,
    )


def poll() -> Receiver:
    """An xhr-polling request."""
    return Receiver(xhr_chunk, polling=True, response_limit=LIMIT)


def stream(limit: int = LIMIT) -> Receiver:
    """An xhr-streaming request."""
    return Receiver(xhr_chunk, polling=False, response_limit=limit)


def opened(now: float = 0.0) -> Session:
    """A session a first poll opened and left."""
    session = make_session(now)
    first = poll()
    assert session.attach(first, now) == (Attached.OPENED, "o\n")
    assert not session.detach(first, now, aborted=False)
    return session


def held(receiver: Receiver, now: float = 0.0) -> Session:
    """An open session ``receiver`` holds."""
    session = opened(now)
    assert session.attach(receiver, now) == (Attached.HOLDING, "")
    return session


# -- the suite's cases -----------------------------------------------------------


def test_Protocol_simpleSession() -> None:
    """A new session sends "o", echoes in the next poll, and refuses a second
    receiving request with 2010 while one waits."""
    session = make_session()
    first = poll()
    assert session.attach(first, 0.0) == (Attached.OPENED, "o\n")
    assert first.done
    session.detach(first, 0.0, aborted=False)
    session.send(["a"])
    second = poll()
    assert session.attach(second, 0.1) == (Attached.HOLDING, 'a["a"]\n')
    session.detach(second, 0.1, aborted=False)
    waiting, other = poll(), poll()
    assert session.attach(waiting, 0.2) == (Attached.HOLDING, "")
    assert session.attach(other, 0.2) == (Attached.REFUSED, ANOTHER)


def test_Protocol_closeSession() -> None:
    """A session the application closed serves its close frame to every request."""
    session = make_session()
    first = poll()
    session.attach(first, 0.0)
    assert session.close(3000, "Go away!")
    session.detach(first, 0.0, aborted=False)
    for now in (0.1, 0.2, 0.3):
        assert session.attach(poll(), now) == (Attached.ENDED, GO_AWAY)
    assert session.state is SessionState.CLOSING


def test_HandlingClose_close_frame() -> None:
    """A closing session lets its holder go after the close frame, and a later
    request gets the close frame too, not 2010."""
    session = make_session()
    first = stream()
    assert session.attach(first, 0.0) == (Attached.OPENED, "o\n")
    session.close(3000, "Go away!")
    assert session.output(0.0) == GO_AWAY
    assert first.done
    session.detach(first, 0.0, aborted=False)
    second = stream()
    assert session.attach(second, 0.1) == (Attached.ENDED, GO_AWAY)
    assert second.done


def test_HandlingClose_close_request() -> None:
    """A second streaming request gets 2010 and ends; the first keeps streaming."""
    session = make_session()
    first, second = stream(), stream()
    session.attach(first, 0.0)
    assert session.attach(second, 0.1) == (Attached.REFUSED, ANOTHER)
    assert second.done
    assert not first.done
    assert session.receiver is first


def test_HandlingClose_abort_xhr_streaming() -> None:
    """A streaming holder whose client went away ends the session: 1002 after."""
    session = make_session()
    first, second = stream(), stream()
    session.attach(first, 0.0)
    assert session.attach(second, 0.1) == (Attached.REFUSED, ANOTHER)
    assert not session.detach(second, 0.1, aborted=False)
    assert session.detach(first, 0.2, aborted=True)
    third = stream()
    assert session.attach(third, 0.3) == (Attached.ENDED, INTERRUPTED)
    assert third.done


def test_HandlingClose_abort_xhr_polling() -> None:
    """A polling holder whose client went away ends the session: 1002 after."""
    session = opened()
    first = poll()
    session.attach(first, 0.1)
    assert session.attach(poll(), 0.2) == (Attached.REFUSED, ANOTHER)
    assert session.detach(first, 0.3, aborted=True)
    assert session.attach(poll(), 0.4) == (Attached.ENDED, INTERRUPTED)


# -- receiving requests ----------------------------------------------------------


def test_first_receiver_opens_the_session() -> None:
    """The first receiving request gets "o" and opens the session."""
    session = make_session()
    assert repr(session) == "<Session new, not held, 0 queued>"
    assert not session.accepts_messages
    receiver = stream()
    assert session.attach(receiver, 0.0) == (Attached.OPENED, "o\n")
    assert session.state is SessionState.OPEN
    assert session.accepts_messages
    assert session.receiver is receiver
    assert not receiver.done


def test_second_receiver_gets_2010_and_the_first_keeps_the_session() -> None:
    """A second receiving request gets 2010, even aborted it leaves the session
    open, and the first still carries the messages."""
    first = stream()
    session = held(first)
    for aborted in (False, True):
        second = stream()
        assert session.attach(second, 1.0) == (Attached.REFUSED, ANOTHER)
        assert second.done
        assert not session.detach(second, 1.0, aborted=aborted)
    assert session.state is SessionState.OPEN
    assert session.receiver is first
    session.send(["a"])
    assert session.output(1.0) == 'a["a"]\n'


def test_polling_receiver_carries_one_frame() -> None:
    """A polling request carries one frame; what comes after waits for the next."""
    first = poll()
    session = held(first)
    session.send(["a"])
    session.send(["b", "c"])
    assert session.output(1.0) == 'a["a","b","c"]\n'
    assert first.done
    session.send(["d"])
    assert session.output(1.0) == ""
    session.detach(first, 1.0, aborted=False)
    assert session.attach(poll(), 2.0) == (Attached.HOLDING, 'a["d"]\n')


def test_streaming_receiver_carries_frames_until_its_limit() -> None:
    """A streaming request carries frame after frame."""
    receiver = stream()
    session = held(receiver)
    for text in ("a", "b", "c"):
        session.send([text])
        assert session.output(1.0) == f'a["{text}"]\n'
    assert not receiver.done
    assert session.output(1.0) == ""


def test_streaming_receiver_ends_at_response_limit_counting_framing() -> None:
    """A streaming request ends once response_limit characters went out, the
    transport's framing counted, as sockjs-node counts them."""
    session = make_session()
    receiver = Receiver(eventsource_chunk, polling=False, response_limit=30)
    assert session.attach(receiver, 0.0) == (Attached.OPENED, "data: o\r\n\r\n")
    session.send(["x"])
    assert session.output(0.0) == 'data: a["x"]\r\n\r\n'
    assert receiver.written == 11 + 16  # the frames alone: 1 + 6
    assert not receiver.done
    session.tick(HEARTBEAT_DELAY)
    assert session.output(HEARTBEAT_DELAY) == "data: h\r\n\r\n"
    assert receiver.done  # 38 >= 30; without the framing 8 would not be
    session.send(["y"])
    assert session.output(HEARTBEAT_DELAY) == ""


def test_streaming_receiver_reaching_its_limit_leaves_the_rest_queued() -> None:
    """What a streaming request may no longer carry goes to the next one."""
    receiver = stream(limit=4)
    session = held(receiver)
    session.send(["long enough"])
    session.close(3000, "Go away!")
    assert session.output(1.0) == 'a["long enough"]\n'
    assert receiver.done
    assert not session.close_delivered
    session.detach(receiver, 1.0, aborted=False)
    assert session.attach(stream(), 2.0) == (Attached.ENDED, GO_AWAY)
    assert session.close_delivered


def event_stream(limit: int = 30) -> Receiver:
    """An eventsource request: its client cannot tell its end from a cut."""
    return Receiver(
        eventsource_chunk, polling=False, response_limit=limit, ends_unseen=True
    )


def test_a_session_that_ends_rather_than_loses_keeps_eventsource_open() -> None:
    """Told so (a resumable session rides on it), the session no longer
    ends an eventsource response at response_limit, the one it holds now
    and later ones: they end only by a cut, which ends the session."""
    holding = event_stream()
    session = held(holding)
    session.end_rather_than_lose()
    for n in range(20):  # 20 x 16 characters, far past the limit of 30
        session.send([str(n % 10)])
        assert session.output(1.0) == f'data: a["{n % 10}"]\r\n\r\n'
    assert not holding.done
    assert session.detach(holding, 2.0, aborted=True)  # the cut ends it
    assert session.attach(event_stream(), 3.0) == (
        Attached.ENDED,
        "data: " + INTERRUPTED.replace("\n", "\r\n\r\n"),
    )


def test_ending_rather_than_losing_spares_the_other_transports() -> None:
    """A streaming XHR that ends early fails in the browser, which closes:
    its planned end stays (the page keeps every response it got)."""
    session = make_session()
    session.end_rather_than_lose()
    receiver = stream(limit=4)
    assert session.attach(receiver, 0.0) == (Attached.OPENED, "o\n")
    session.send(["long enough"])
    session.output(1.0)
    assert receiver.done
    later = event_stream(limit=4)  # an eventsource request that comes after
    assert not session.detach(receiver, 1.0, aborted=False)
    assert session.attach(later, 1.0)[0] is Attached.HOLDING
    session.send(["long enough"])
    session.output(1.0)
    assert not later.done


def test_without_it_eventsource_ends_at_response_limit() -> None:
    holding = event_stream()
    session = held(holding)
    session.send(["a long enough message"])
    session.output(1.0)
    assert holding.done  # sockjs-node's behaviour, for the base protocol


def mark(count: int) -> str:
    return f"seq,{count}"


def test_a_marking_session_tells_each_answer_but_the_first_what_went_before() -> None:
    """end_rather_than_lose(mark): an answer the browser lost without a cut
    (a request it sent again) shows as a count the client did not reach."""
    session = make_session()
    session.end_rather_than_lose(mark)
    session.attach(poll(), 0.0)  # "o"
    session.send(["hey", "a"])
    assert session.attach(poll(), 1.0) == (Attached.HOLDING, 'a["hey","a"]\n')
    session.send(["b"])
    assert session.attach(poll(), 2.0) == (Attached.HOLDING, 'a["seq,2","b"]\n')
    receiver = stream()
    assert session.attach(receiver, 3.0) == (Attached.HOLDING, "")
    session.send(["c", "d"])
    assert session.output(3.0) == 'a["seq,3","c","d"]\n'
    session.send(["e"])
    assert session.output(3.0) == 'a["e"]\n'  # one mark an answer: its first
    session.tick(3.0 + HEARTBEAT_DELAY)
    assert session.output(3.0 + HEARTBEAT_DELAY) == "h\n"  # marked already
    assert not session.detach(receiver, 4.0, aborted=False)  # say, a restart
    quiet = poll()
    assert session.attach(quiet, 4.0) == (Attached.HOLDING, "")
    session.tick(4.0 + HEARTBEAT_DELAY)  # nothing to send: the mark, not "h"
    assert session.output(4.0 + HEARTBEAT_DELAY) == 'a["seq,6"]\n'


def test_without_a_mark_nothing_is_added() -> None:
    session = make_session()
    session.end_rather_than_lose()
    session.attach(poll(), 0.0)
    session.send(["a"])
    session.attach(poll(), 1.0)
    session.send(["b"])
    assert session.attach(poll(), 2.0) == (Attached.HOLDING, 'a["b"]\n')


def test_receiver_carry_reports_what_it_took() -> None:
    """Receiver.carry takes frames up to its end and says how many."""
    receiver = Receiver(xhr_chunk, polling=False, response_limit=5)
    assert receiver.carry(["a", "bcd", "e"]) == "a\nbcd\n"
    assert (receiver.carried, receiver.written, receiver.done) == (2, 6, True)
    assert receiver.carry(["f"]) == ""
    assert receiver.carried == 0
    closing = Receiver(xhr_chunk, polling=False, response_limit=LIMIT)
    assert closing.carry(['c[1,"x"]', "a[]"]) == 'c[1,"x"]\n'
    assert closing.done


# -- time --------------------------------------------------------------------------


def test_heartbeat_only_after_heartbeat_delay_of_silence() -> None:
    """ "h" goes out when nothing went out for heartbeat_delay, not before."""
    receiver = stream()
    session = make_session()
    session.attach(receiver, 0.0)
    assert session.deadline() == HEARTBEAT_DELAY
    session.tick(HEARTBEAT_DELAY - 0.01)
    assert session.output(HEARTBEAT_DELAY - 0.01) == ""
    session.send(["a"])
    assert session.output(20.0) == 'a["a"]\n'  # silence broken at 20
    assert session.deadline() == 20.0 + HEARTBEAT_DELAY
    session.tick(HEARTBEAT_DELAY)
    assert session.output(HEARTBEAT_DELAY) == ""
    session.tick(45.0)
    assert session.output(45.0) == "h\n"
    assert session.deadline() == 45.0 + HEARTBEAT_DELAY
    assert session.output(45.0) == ""  # one heartbeat per silence


def test_messages_due_with_a_heartbeat_go_without_it() -> None:
    """Messages ready when a heartbeat falls due go instead of it."""
    receiver = stream()
    session = held(receiver)
    session.tick(HEARTBEAT_DELAY)
    session.send(["a"])
    assert session.output(HEARTBEAT_DELAY) == 'a["a"]\n'
    assert session.output(HEARTBEAT_DELAY) == ""


def test_polling_receiver_gets_a_heartbeat() -> None:
    """A poll that waited heartbeat_delay in silence is answered "h"."""
    receiver = poll()
    session = held(receiver, now=10.0)
    assert session.deadline() == 10.0 + HEARTBEAT_DELAY
    session.tick(10.0 + HEARTBEAT_DELAY)
    assert session.output(10.0 + HEARTBEAT_DELAY) == "h\n"
    assert receiver.done


def test_no_heartbeat_carried_over_to_the_next_receiver() -> None:
    """A heartbeat due when its request left is not sent to the next one."""
    first = stream()
    session = held(first)
    session.tick(HEARTBEAT_DELAY)
    session.detach(first, HEARTBEAT_DELAY, aborted=False)
    assert session.attach(stream(), 26.0) == (Attached.HOLDING, "")
    assert session.output(26.0) == ""


def test_new_session_expires_after_disconnect_delay() -> None:
    """A session no request holds expires after disconnect_delay."""
    session = make_session(now=100.0)
    assert session.deadline() == 100.0 + DISCONNECT_DELAY
    assert session.tick(100.0 + DISCONNECT_DELAY - 0.01) is Expiry.LIVE
    assert session.tick(100.0 + DISCONNECT_DELAY) is Expiry.TIMED_OUT
    assert session.state is SessionState.CLOSED
    assert session.deadline() is None
    assert session.tick(1000.0) is Expiry.LIVE


def test_expiry_is_counted_from_the_last_receiver() -> None:
    """disconnect_delay counts from when the last receiving request left."""
    session = opened()
    receiver = poll()
    session.attach(receiver, 4.0)
    session.detach(receiver, 4.5, aborted=False)
    assert session.deadline() == 4.5 + DISCONNECT_DELAY
    assert session.tick(DISCONNECT_DELAY) is Expiry.LIVE
    assert session.tick(4.5 + DISCONNECT_DELAY - 0.01) is Expiry.LIVE
    assert session.accepts_messages
    assert session.tick(4.5 + DISCONNECT_DELAY) is Expiry.TIMED_OUT
    assert session.state is SessionState.CLOSED


def test_session_does_not_expire_while_held() -> None:
    """A session a receiving request holds never expires."""
    receiver = stream()
    session = held(receiver)
    for now in (DISCONNECT_DELAY, 100.0, 10_000.0):
        assert session.tick(now) is Expiry.LIVE
        session.output(now)
    assert session.state is SessionState.OPEN


def test_closing_session_expires_and_keeps_its_close_frame() -> None:
    """A closed session's close frame is served until it expires, and after."""
    session = opened()
    session.close(3000, "Go away!")
    assert session.attach(poll(), 3.0) == (Attached.ENDED, GO_AWAY)
    assert session.deadline() == 3.0 + DISCONNECT_DELAY  # counted again
    assert session.tick(DISCONNECT_DELAY) is Expiry.LIVE
    assert session.tick(3.0 + DISCONNECT_DELAY) is Expiry.GONE
    assert session.state is SessionState.CLOSED
    assert session.attach(poll(), 9.0) == (Attached.ENDED, GO_AWAY)


def test_an_interrupted_session_expires_without_ending_twice() -> None:
    """detach() said the application must be told; its expiry does not again."""
    receiver = stream()
    session = held(receiver)
    assert session.detach(receiver, 2.0, aborted=True)
    assert session.tick(2.0 + DISCONNECT_DELAY) is Expiry.GONE


def test_a_done_holder_lets_the_session_go_at_once() -> None:
    """Once a request carried its last frame, the next one is not refused
    (2010) while the first one's response is still ending."""
    receiver = stream()
    session = held(receiver)
    session.close(3000, "Go away!")
    assert session.output(3.0).endswith('c[3000,"Go away!"]\n')
    assert receiver.done and session.receiver is None
    assert session.attach(poll(), 3.0) == (Attached.ENDED, GO_AWAY)
    assert not session.detach(receiver, 3.1, aborted=True)  # it let go already


def test_a_send_under_way_keeps_the_session_alive() -> None:
    """A paced xhr_send may outlast disconnect_delay: no expiry until it is
    done, then the countdown starts again from there."""
    session = opened()
    session.sending()
    assert session.deadline() is None
    assert session.tick(100.0) is Expiry.LIVE
    session.sent(100.0)
    assert session.deadline() == 100.0 + DISCONNECT_DELAY
    assert session.tick(100.0 + DISCONNECT_DELAY) is Expiry.TIMED_OUT


def test_deadline_values() -> None:
    """deadline() is the next heartbeat while held, else the expiry; None once over."""
    session = make_session(now=1.0)
    assert session.deadline() == 1.0 + DISCONNECT_DELAY
    receiver = stream()
    session.attach(receiver, 2.0)
    assert session.deadline() == 2.0 + HEARTBEAT_DELAY
    session.tick(30.0)
    assert session.deadline() == 30.0 + HEARTBEAT_DELAY
    session.output(31.0)
    assert session.deadline() == 31.0 + HEARTBEAT_DELAY
    session.detach(receiver, 40.0, aborted=False)
    assert session.deadline() == 40.0 + DISCONNECT_DELAY
    assert session.tick(50.0) is Expiry.TIMED_OUT
    assert session.deadline() is None


# -- the end ---------------------------------------------------------------------


def test_aborted_holder_ends_an_open_session() -> None:
    """A holder whose client went away ends the session, its queue dropped, and
    every later request gets c[1002,"Connection interrupted"]."""
    receiver = stream()
    session = held(receiver)
    session.send(["lost"])
    assert session.detach(receiver, 1.0, aborted=True)
    assert session.state is SessionState.CLOSED
    assert session.queued_size == 0
    assert not session.accepts_messages
    assert session.attach(poll(), 2.0) == (Attached.ENDED, INTERRUPTED)
    assert session.attach(stream(), 3.0) == (Attached.ENDED, INTERRUPTED)


def test_finished_holder_leaves_the_session_open() -> None:
    """A holder that ended as it should leaves the session open."""
    receiver = poll()
    session = held(receiver)
    session.send(["a"])
    session.output(1.0)
    assert not session.detach(receiver, 1.0, aborted=False)
    assert session.state is SessionState.OPEN


def test_aborted_holder_of_a_closing_session_keeps_its_close_frame() -> None:
    """A closing session whose holder's client left still serves its close frame."""
    receiver = stream(limit=1)
    session = held(receiver)
    session.send(["a"])
    session.close(3000, "Go away!")
    session.output(1.0)
    assert not session.detach(receiver, 1.0, aborted=True)
    assert session.state is SessionState.CLOSING
    assert session.attach(poll(), 2.0) == (Attached.ENDED, GO_AWAY)


def test_close_keeps_queued_messages_then_the_close_frame() -> None:
    """close() lets queued messages out first, then the close frame, at once on
    a streaming request."""
    receiver = stream()
    session = held(receiver)
    session.send(["a", "b"])
    assert session.close(3000, "Go away!")
    assert session.state is SessionState.CLOSING
    assert session.output(1.0) == 'a["a","b"]\n' + GO_AWAY
    assert receiver.done
    assert session.close_delivered


def test_close_on_polling_sends_messages_then_the_close_frame_next() -> None:
    """Polling after close(): the queued messages in one poll, the close frame in
    the next."""
    session = opened()
    session.send(["a"])
    session.close(3000, "Go away!")
    assert session.attach(poll(), 1.0) == (Attached.ENDED, 'a["a"]\n')
    assert not session.close_delivered
    assert session.attach(poll(), 2.0) == (Attached.ENDED, GO_AWAY)
    assert session.close_delivered


def test_close_with_a_polling_holder() -> None:
    """A poll waiting when close() comes carries the messages; the next the close."""
    receiver = poll()
    session = held(receiver)
    session.send(["a"])
    session.close(3000, "Go away!")
    assert session.output(1.0) == 'a["a"]\n'
    assert not session.close_delivered
    session.detach(receiver, 1.0, aborted=False)
    assert session.attach(poll(), 2.0) == (Attached.ENDED, GO_AWAY)
    assert session.close_delivered


def test_a_poll_carries_at_most_batch_limit_characters_of_messages() -> None:
    """What piled up goes out in frames of at most batch_limit characters
    of messages (a longer message alone), one per poll, in order."""
    session = make_session(batch_limit=6)
    session.attach(poll(), 0.0)  # "o", then it lets go
    session.send(["aaa", "bbb", "ccc", "dddddddddd", "e", "ff", "ggg"])
    assert session.attach(poll(), 1.0) == (Attached.HOLDING, 'a["aaa","bbb"]\n')
    assert session.queued_size == 19
    assert session.attach(poll(), 2.0) == (Attached.HOLDING, 'a["ccc"]\n')
    assert session.attach(poll(), 3.0) == (Attached.HOLDING, 'a["dddddddddd"]\n')
    assert session.attach(poll(), 4.0) == (Attached.HOLDING, 'a["e","ff","ggg"]\n')
    assert session.queued_size == 0


def test_a_stream_carries_a_long_queue_in_frames_of_batch_limit() -> None:
    receiver = stream()
    session = held(receiver)
    session.batch_limit = 4
    session.send(["aa", "bb", "cc"])
    assert session.output(1.0) == 'a["aa","bb"]\n'
    assert session.output(1.0) == 'a["cc"]\n'
    assert session.output(1.0) == ""


def test_closing_with_more_than_a_batch_queued_sends_the_close_frame_last() -> None:
    session = make_session(batch_limit=2)
    session.attach(poll(), 0.0)
    session.send(["aa", "bb"])
    session.close(3000, "Go away!")
    first = stream()
    assert session.attach(first, 1.0) == (Attached.ENDED, 'a["aa"]\n')
    assert first.done
    assert not session.close_delivered
    assert session.attach(stream(), 2.0) == (Attached.ENDED, 'a["bb"]\n' + GO_AWAY)
    assert session.close_delivered


def test_close_delivered_only_once_the_close_frame_was_carried() -> None:
    """close_delivered stays false until a request carried the close frame."""
    receiver = stream()
    session = held(receiver)
    assert not session.close_delivered
    session.close(3000, "Go away!")
    assert not session.close_delivered
    assert session.output(1.0) == GO_AWAY
    assert session.close_delivered


def test_interrupted_session_never_says_close_delivered() -> None:
    """An interrupted session's 1002 is not the application's close frame."""
    receiver = stream()
    session = held(receiver)
    session.detach(receiver, 1.0, aborted=True)
    assert session.attach(stream(), 2.0) == (Attached.ENDED, INTERRUPTED)
    assert not session.close_delivered


def test_close_returns_whether_it_was_open() -> None:
    """close() closes an open session only, once."""
    session = make_session()
    assert not session.close(3000, "Go away!")
    assert session.state is SessionState.NEW
    session = opened()
    assert session.close(3000, "Go away!")
    assert not session.close(1000, "again")
    assert session.attach(poll(), 1.0) == (Attached.ENDED, GO_AWAY)


def closing() -> Session:
    session = opened()
    session.close(3000, "Go away!")
    return session


def interrupted() -> Session:
    receiver = stream()
    session = held(receiver)
    session.detach(receiver, 1.0, aborted=True)
    return session


def expired() -> Session:
    session = opened()
    session.tick(100.0)
    return session


@pytest.mark.parametrize("make", [make_session, closing, interrupted, expired])
def test_send_unless_open_raises(make: Callable[[], Session]) -> None:
    """send() on a session that is not open raises LocalProtocolError."""
    session = make()
    assert session.state is not SessionState.OPEN
    with pytest.raises(LocalProtocolError, match="the SockJS session is"):
        session.send(["a"])


def test_queued_size_counts_waiting_characters() -> None:
    """queued_size is the characters waiting for a receiving request."""
    session = opened()
    session.send(["ab", "c"])
    session.send(["\U0001f600"])
    assert session.queued_size == 4
    receiver = poll()
    session.attach(receiver, 1.0)
    assert session.queued_size == 0


def test_repr_shows_the_state() -> None:
    """A session prints its state and whether a request holds it."""
    session = held(stream())
    assert repr(session) == "<Session open, held, 0 queued>"
    assert repr(make_session()) == "<Session new, not held, 0 queued>"


# -- any sequence of events --------------------------------------------------------

events = st.lists(
    st.one_of(
        st.just(("poll", 0)),
        st.tuples(st.just("stream"), st.integers(1, 40)),
        st.tuples(st.just("abort"), st.integers(0, 1)),
        st.tuples(st.just("send"), st.integers(1, 3)),
        st.just(("output", 0)),
        st.tuples(st.just("wait"), st.sampled_from([0.5, 3.0, 6.0, 30.0])),
        st.just(("close", 0)),
    ),
    max_size=40,
)


class Run:
    """A session driven as the asyncio layer drives it (a request that is done
    is detached at once, an expired session forgotten), with a record of every
    frame carried."""

    def __init__(self) -> None:
        self.session = make_session(batch_limit=5)  # a few messages per frame
        self.now = 0.0
        self.open: list[Receiver] = []
        self.sent: list[str] = []
        self.delivered: list[str] = []
        self.frames: list[str] = []
        self.closed_by_app = False
        self.app_close_carried_while_closing = False
        self.expired = False

    def carried(self, receiver: Receiver, text: str) -> None:
        frames = text.split("\n")
        assert frames.pop() == ""
        assert not receiver.polling or len(frames) <= 1
        for index, frame in enumerate(frames):
            assert frame[0] != "c" or index == len(frames) - 1  # nothing after c
            self.record(frame)
        if receiver.done and receiver in self.open:
            self.open.remove(receiver)
            self.session.detach(receiver, self.now, aborted=False)

    def record(self, frame: str) -> None:
        if frame == ANOTHER.strip():
            return  # to a refused request only (checked by attach)
        assert (frame == "o") == (not self.frames)  # "o" first, once
        if frame.startswith("a"):
            assert not any(f.startswith("c") for f in self.frames)
            self.delivered += json.loads(frame[1:])
            assert self.delivered == self.sent[: len(self.delivered)]
        elif frame == GO_AWAY.strip():
            assert self.closed_by_app
            assert self.delivered == self.sent  # nothing lost before the close
            if self.session.state is SessionState.CLOSING:
                self.app_close_carried_while_closing = True
        elif frame == INTERRUPTED.strip():
            assert self.session.state is SessionState.CLOSED
        else:
            assert frame in ("o", "h")
        self.frames.append(frame)

    def attach(self, receiver: Receiver) -> None:
        held = self.session.receiver is not None
        attached, text = self.session.attach(receiver, self.now)
        assert (attached is Attached.REFUSED) == held
        if attached is Attached.REFUSED:
            assert text == ANOTHER
        if attached in (Attached.OPENED, Attached.HOLDING):
            self.open.append(receiver)
        else:
            assert receiver.done
        self.carried(receiver, text)

    def step(self, kind: str, value: float) -> None:
        session = self.session
        if kind == "poll":
            self.attach(poll())
        elif kind == "stream":
            self.attach(stream(limit=int(value)))
        elif kind == "abort" and self.open:
            receiver = self.open.pop(0)
            ended = session.detach(receiver, self.now, aborted=bool(value))
            assert ended == (bool(value) and session.state is SessionState.CLOSED)
        elif kind == "send":
            texts = [f"m{len(self.sent) + i}" for i in range(int(value))]
            if session.state is SessionState.OPEN:
                session.send(texts)
                self.sent += texts
            else:
                with pytest.raises(LocalProtocolError):
                    session.send(texts)
        elif kind == "output" and session.receiver is not None:
            self.carried(session.receiver, session.output(self.now))
        elif kind == "wait":
            self.now += value
            self.expired = session.tick(self.now) is not Expiry.LIVE
            assert not self.expired or session.state is SessionState.CLOSED
        elif kind == "close":
            was_open = session.state is SessionState.OPEN
            assert session.close(3000, "Go away!") == was_open
            self.closed_by_app |= was_open

    def check(self) -> None:
        session = self.session
        assert session.receiver is None or session.receiver in self.open
        assert len(self.open) <= 1
        assert session.close_delivered == self.app_close_carried_while_closing
        assert (
            session.queued_size == sum(map(len, self.sent[len(self.delivered) :]))
            or session.state is not SessionState.OPEN
        )


@settings(max_examples=100, deadline=None)
@given(events)
def test_any_sequence_keeps_the_session_rules(steps: list[tuple[str, float]]) -> None:
    """Whatever happens: "o" first and once, messages in order and never twice,
    all of them before the application's close frame, nothing after a close
    frame, polls carry one frame, and close_delivered says the close frame went."""
    run = Run()
    for kind, value in steps:
        run.step(kind, value)
        run.check()
        if run.expired:
            break
