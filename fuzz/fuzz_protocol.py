"""Coverage-guided fuzzing of the frame grammar and both protocol cores.

One input is a script, one step per line, so that the seed corpus
(``fuzz/corpus/``) reads like a conversation. The first byte picks the
target, ``s`` (:class:`ServerProtocol`), ``c`` (:class:`ClientProtocol`) or
anything else (the pure functions of :mod:`websocket_multiplex.wire`); for
the server the next five bytes pick its :class:`Limits`. Then each line is
a step: its first character names an API call and the rest is its argument
(decoded as UTF-8 with ``surrogateescape``, so lone surrogates arrive too);
a line that names no call is received as a frame.

Server steps: ``<`` receive with the clock, ``~`` receive without it,
``+`` advance the clock by tenths of a second, ``>`` send (``topic,data``),
``-`` close, ``!`` fail, ``?`` refuse, ``.`` connection lost. Client steps:
``@`` open (a name), ``>`` send, ``-`` close, ``<`` receive, ``^``
resubscribe, ``.`` connection lost. So ``sub,echo`` on a line of its own is
a frame received, with the clock, by either core.

A model of the open topics runs beside each core. Invariants: ``receive``
never raises; each event agrees with the frame, the model and the limits;
``open_topics`` equals the model after every step; ``send``, ``close`` and
``fail`` raise :class:`LocalProtocolError` exactly on topics that are not
open (``refuse`` exactly on open ones), and nothing else ever escapes; every
frame a core writes parses back to what was asked::

    .venv/bin/python fuzz/fuzz_protocol.py -max_total_time=60 fuzz/corpus
    .venv/bin/python fuzz/fuzz_protocol.py fuzz/corpus/server-rate  # replay one

``ClientProtocol.open("")`` must refuse: the empty topic's frames would be
invalid (it once opened it, and the channel looked open forever).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable

import atheris

with atheris.instrument_imports(include=["websocket_multiplex"]):
    from websocket_multiplex.events import (
        ChannelClosedEvent,
        ChannelOpened,
        ChannelRefused,
        CloseReason,
        Event,
        LimitExceeded,
        MessageReceived,
    )
    from websocket_multiplex.exceptions import InvalidFrame, LocalProtocolError
    from websocket_multiplex.limits import Limits
    from websocket_multiplex.protocol import ClientProtocol, ServerProtocol
    from websocket_multiplex.wire import (
        ERR,
        FRAME_TYPES,
        MSG,
        SUB,
        UNS,
        Frame,
        escape,
        format_frame,
        instance_topic,
        parse_frame,
        service_topic,
        unescape,
    )

SERVICES = frozenset({"ann", "echo", "weird%20name%2C%FC/%25", "%u65E5%u672C"})
ESCAPED = re.compile(r"(?:[A-Za-z0-9@*_+\-./]|%[0-9A-F]{2}|%u[0-9A-F]{4})*")


def is_registered(topic: str) -> bool:
    """Services and their instance topics, as MultiplexServer answers."""
    return topic in SERVICES or service_topic(topic) in SERVICES


def split(frame: str) -> Frame | None:
    """The grammar of PROTOCOL.md, written again independently of wire.py."""
    parts = frame.split(",")
    if len(parts) < 2 or not parts[1] or parts[0] not in FRAME_TYPES:
        return None
    return Frame(parts[0], parts[1], ",".join(parts[2:]))


def misuse(call: Callable[[], object], allowed: bool) -> object:
    """Run an API call that must raise LocalProtocolError unless ``allowed``."""
    try:
        result = call()
    except LocalProtocolError:
        assert not allowed, "LocalProtocolError on a call that is allowed"
        return None
    assert allowed, "a misuse did not raise LocalProtocolError"
    return result


def written(frame: object, expected: Frame) -> None:
    """A frame a core wrote must parse back to what was asked."""
    assert parse_frame(str(frame)) == expected, frame


def limits_from(header: bytes) -> Limits:
    header = header.ljust(5, b"\0")
    return Limits(
        max_frame_size=1 + header[0] % 64,
        max_topic_length=1 + header[1] % 16,
        max_channels=1 + header[2] % 4,
        subscribe_rate=0.5 + header[3] % 8,
        subscribe_burst=1 + header[4] % 6,
    )


class ServerModel:
    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.core = ServerProtocol(is_registered, limits)
        self.open: set[str] = set()
        self.now = 0.0
        self.tokens = float(limits.subscribe_burst)
        self.refilled_at: float | None = None

    def step(self, op: str, arg: str) -> None:
        core = self.core
        if op in "<~":
            self.receive(arg, self.now if op == "<" else None)
        elif op == "+":
            self.now += (
                int("0" + "".join(c for c in arg if c.isascii() and c.isdigit())[:6])
                / 10
            )
        elif op == ">":
            topic, _, payload = arg.partition(",")
            frame = misuse(lambda: core.send(topic, payload), topic in self.open)
            if frame is not None:
                written(frame, Frame(MSG, topic, payload))
        elif op == "-":
            frame = misuse(lambda: core.close(arg), arg in self.open)
            if frame is not None:
                written(frame, Frame(UNS, arg))
                self.open.discard(arg)
        elif op == "!":
            frames = misuse(lambda: core.fail(arg, "500 x"), arg in self.open)
            if isinstance(frames, list):
                err, uns = frames
                written(err, Frame(ERR, arg, "500 x"))
                written(uns, Frame(UNS, arg))
                self.open.discard(arg)
        elif op == "?":
            misuse(
                lambda: core.refuse(arg, "404 no such service"), arg not in self.open
            )
        elif op == ".":
            closed = core.connection_lost()
            assert {event.topic for event in closed} == self.open
            assert all(e.reason is CloseReason.CONNECTION_LOST for e in closed)
            self.open.clear()
        else:
            self.receive(op + arg, self.now)
        assert core.open_topics == self.open, (core.open_topics, self.open)
        assert all(core.is_open(topic) for topic in self.open)

    def receive(self, text: str, now: float | None) -> None:
        received = self.core.counters.frames_received
        event = self.core.receive(text, now)
        assert self.core.counters.frames_received == received + 1
        self.check(text, split(text), event, now)

    def check(
        self, text: str, frame: Frame | None, event: Event | None, now: float | None
    ) -> None:
        limits = self.limits
        if frame is None or len(text) > limits.max_frame_size:
            if frame is not None and frame.type == MSG and frame.topic in self.open:
                assert event == LimitExceeded(
                    "max_frame_size", frame.topic, "413 message too large"
                )
            else:
                assert event is None, event
            return
        topic = frame.topic
        if topic in self.open:
            if frame.type == MSG:
                assert event == MessageReceived(topic, frame.payload)
            elif frame.type == UNS:
                assert event == ChannelClosedEvent(topic, CloseReason.CLIENT_CLOSED)
                self.open.discard(topic)
            else:  # sub to an open topic, err from a client: ignored
                assert event is None, event
            return
        if frame.type != SUB:
            assert event is None, event
            return
        if now is not None and not self.take_token(now):
            assert event == LimitExceeded("subscribe_rate"), event
            return
        if len(topic) > limits.max_topic_length:
            assert event is None, event
        elif not is_registered(topic):
            assert event == ChannelRefused(topic), event
        elif len(self.open) >= limits.max_channels:
            assert event == ChannelRefused(topic, "429 too many channels"), event
        else:
            assert event == ChannelOpened(topic), event
            self.open.add(topic)

    def take_token(self, now: float) -> bool:
        """Limits.subscribe_rate per second, Limits.subscribe_burst at once."""
        if self.refilled_at is not None:
            earned = (now - self.refilled_at) * self.limits.subscribe_rate
            self.tokens = min(self.limits.subscribe_burst, self.tokens + earned)
        self.refilled_at = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


class ClientModel:
    def __init__(self) -> None:
        self.core = ClientProtocol()
        self.open: set[str] = set()
        self.notices: dict[str, str] = {}

    def step(self, op: str, arg: str) -> None:
        core = self.core
        if op == "@":
            self.open_channel(arg)
        elif op == ">":
            topic, _, payload = arg.partition(",")
            frame = misuse(lambda: core.send(topic, payload), topic in self.open)
            if frame is not None:
                written(frame, Frame(MSG, topic, payload))
        elif op == "-":
            frame = misuse(lambda: core.close(arg), arg in self.open)
            if frame is not None:
                written(frame, Frame(UNS, arg))
                self.open.discard(arg)
                self.notices.pop(arg, None)
        elif op == "^":
            frames = core.resubscribe()
            assert frames == [format_frame(SUB, topic) for topic in sorted(self.open)]
        elif op == ".":
            closed = core.connection_lost()
            assert {event.topic for event in closed} == self.open
            self.open.clear()
            self.notices.clear()
        else:
            text = arg if op == "<" else op + arg
            self.check(split(text), core.receive(text))
        assert core.open_topics == self.open, (core.open_topics, self.open)

    def open_channel(self, name: str) -> None:
        if not name:
            try:
                self.core.open(name)
            except LocalProtocolError:
                return
            raise AssertionError("open('') must raise LocalProtocolError")
        topic, frame = self.core.open(name)
        assert topic not in self.open
        base = escape(name)
        assert topic == base or service_topic(topic) == base, topic
        written(frame, Frame(SUB, topic))
        self.open.add(topic)

    def check(self, frame: Frame | None, event: Event | None) -> None:
        if frame is None or frame.topic not in self.open:
            assert event is None, event
            return
        topic = frame.topic
        if frame.type == MSG:
            assert event == MessageReceived(topic, frame.payload)
        elif frame.type == UNS:
            notice = self.notices.pop(topic, "")
            reason = CloseReason.REFUSED if notice else CloseReason.SERVER_CLOSED
            assert event == ChannelClosedEvent(topic, reason, notice), event
            self.open.discard(topic)
        else:
            if frame.type == ERR:
                self.notices[topic] = frame.payload
            assert event is None, event


def check_wire(line: str) -> None:
    """The pure functions, on any text at all."""
    try:
        frame = parse_frame(line)
    except InvalidFrame:
        assert split(line) is None
    else:
        assert frame == split(line)
        payload = frame.payload if line.count(",") >= 2 else None
        assert format_frame(frame.type, frame.topic, payload) == line
    topic = escape(line)
    assert ESCAPED.fullmatch(topic), topic
    assert unescape(topic) == line
    assert escape(unescape(line)) == escape(unescape(escape(unescape(line))))
    if topic and "#" not in topic:
        instance = "".join(filter(str.isalnum, line))[:16]
        if instance.isascii() and instance:
            assert service_topic(instance_topic(topic, instance)) == topic


def test_one_input(data: bytes) -> None:
    if not data:
        return
    target, body = data[:1], data[1:]
    model: ServerModel | ClientModel | None = None
    if target == b"s":
        model = ServerModel(limits_from(body[:5]))
        body = body[5:]
    elif target == b"c":
        model = ClientModel()
    for raw in body.split(b"\n")[:200]:
        line = raw.decode("utf-8", "surrogateescape")
        if model is None:
            check_wire(line)
        elif line:
            model.step(line[0], line[1:])


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
