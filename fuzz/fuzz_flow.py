"""Coverage-guided fuzzing of one connection's flow control (:mod:`.flow`).

A :class:`ServerProtocol`, a :class:`Ledger` and an :class:`Output` are
driven together the way the asyncio ``Connection`` and its ``Outbox``
drive them (``receive``, ``_overflowed``, ``close_channel``, ``send``,
``put``, ``_lose``), with the application's handlers and the writer played
by the script.

One input is a script, one step per line, so that the seed corpus
(``fuzz/flow-corpus/``) reads like a conversation. Lines are decoded as
UTF-8 with ``surrogateescape``. The first line sets the :class:`Limits`:
up to six numbers separated by spaces, ``max_queue max_queue_size
max_connection_queue_size write_limit slow_client_timeout max_frame_size``,
the timeout in tenths of a second; each is brought into ``1..cap``
(``1 + (n - 1) % cap``, caps 6, 40, 80, 40, 50 and 120), a missing one
takes a small default. Services ``a`` and ``b`` are registered (and their
instance topics, ``a#1``); any other ``sub`` is refused. Then each line is
a step, its first character the call, the rest its argument:

``<T`` the handler of ``T`` reads a message (from the oldest channel of
``T``, open or closed, that holds one), ``=T`` the handler of the newest
channel of ``T`` returns (it closes, what it left unread is dropped),
``>T,data`` it sends (and waits if told so: a waiting handler sends
nothing more until the writer takes the queue), ``*T,data`` a frame for
``T`` nobody waits for (fan-out), ``-T`` the server closes the channel,
``!T`` it fails it (``500``), ``+N`` the clock advances by ``N`` tenths of
a second (a waiting sender past the deadline finds the client too slow),
``^`` the writer takes the whole queue, ``$`` its batch is written, ``.``
the carrier is lost. Any other line is a frame received, with the clock: ``sub,a``,
``msg,a,hello``, ``uns,a``.

A model of every channel (its inbox, open or not) and of the queue runs
beside them. Invariants, after every step:

* the ledger's size is the sum of what every inbox holds, never negative,
  and each channel's share counts its inbox exactly;
* an open channel holds at most ``max_queue`` messages and at most
  ``max_queue_size`` characters unless it holds one message; the
  connection at most ``max_connection_queue_size`` characters unless one
  message holds them all (empty messages are not counted);
* a message is delivered exactly when the ledger says so; a channel is
  shed only when open, holds nothing afterwards, and its client gets
  ``err,T,503 channel overloaded`` then ``uns,T`` (unless those frames,
  or an earlier shed's, made it too slow: then it is gone); the message's
  own channel is shed only when it is the one at fault (``max_queue``,
  ``max_queue_size``) or, for ``max_connection_queue_size``, the fullest
  open one (every open one empty counts); other channels are shed only
  while the message does not fit, the fullest first, and only if they hold
  something;
* the output's size is what is queued since the writer last took it; the
  verdict of each frame is ROOM up to ``write_limit``, SLOW once the queue
  stayed above it longer than ``slow_client_timeout`` or, for a frame
  nobody waits for, went above ``SLOW_FACTOR`` times it, else FULL; a SLOW
  drops the client (every channel closes, nothing more is queued); until
  then the queue holds at most ``SLOW_FACTOR * write_limit`` plus the frames
  whose senders wait; ``deadline()``, ``too_slow()`` and ``idle`` agree;
* the core's open topics are the model's open channels; every frame
  queued parses; nothing raises but :class:`LocalProtocolError`, and that
  only from ``send`` on a topic that is not open::

    .venv/bin/python fuzz/fuzz_flow.py -max_total_time=60 fuzz/flow-corpus-copy
    .venv/bin/python fuzz/fuzz_flow.py fuzz/flow-corpus/shed-fullest  # replay

(Fuzz a copy of the corpus: libFuzzer adds what it finds to the folder.)
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

import atheris

with atheris.instrument_imports(include=["websocket_multiplex"]):
    from websocket_multiplex.codes import OVERLOADED, SERVICE_FAILED, TOO_LARGE
    from websocket_multiplex.events import (
        ChannelClosedEvent,
        ChannelOpened,
        ChannelRefused,
        LimitExceeded,
        MessageReceived,
    )
    from websocket_multiplex.exceptions import LocalProtocolError
    from websocket_multiplex.flow import (
        SLOW_FACTOR,
        Held,
        Ledger,
        Output,
        Overflow,
        Verdict,
    )
    from websocket_multiplex.limits import Limits
    from websocket_multiplex.protocol import ServerProtocol
    from websocket_multiplex.wire import ERR, MSG, UNS, parse_frame, service_topic

SERVICES = frozenset({"a", "b"})
CAPS = (6, 40, 80, 40, 50, 120)
DEFAULTS = (3, 12, 30, 16, 20, 60)


def is_registered(topic: str) -> bool:
    return topic in SERVICES or service_topic(topic) in SERVICES


def limits_from(line: str) -> Limits:
    words = line.split()
    numbers = [int(word[:6]) for word in words if word.isascii() and word.isdigit()]
    numbers = (numbers + list(DEFAULTS[len(numbers) :]))[: len(CAPS)]
    mq, mqs, mcqs, wl, timeout, mfs = (
        1 + (number - 1) % cap for number, cap in zip(numbers, CAPS, strict=True)
    )
    return Limits(
        max_queue=mq,
        max_queue_size=mqs,
        max_connection_queue_size=mcqs,
        write_limit=wl,
        slow_client_timeout=timeout / 10,
        max_frame_size=mfs,
    )


def tenths(arg: str) -> float:
    """The ASCII digits of ``arg`` (at most four), as tenths of a second."""
    digits = "".join(c for c in arg if c.isascii() and c.isdigit())[:4]
    return int("0" + digits) / 10


@dataclass
class Channel:
    """One channel as the model sees it; it lives on, closed, until its
    handler returns."""

    topic: str
    held: Held
    inbox: list[str] = field(default_factory=list)
    open: bool = True
    waiting: bool = False  # its handler waits for room to send

    @property
    def size(self) -> int:
        return sum(map(len, self.inbox))


class ConnectionModel:
    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.core = ServerProtocol(is_registered, limits)
        self.ledger = Ledger(limits)
        self.output = Output(limits)
        self.lost = False
        self.now = 0.0
        self.channels: dict[str, Channel] = {}  # the open ones
        self.handlers: list[Channel] = []  # every channel whose handler runs
        self.queue: list[str] = []  # what the writer will take
        self.writing = False
        self.above_since: float | None = None
        self.waited = 0  # characters of queued frames whose senders wait

    # -- the steps -------------------------------------------------------------

    def step(self, op: str, arg: str) -> None:
        if op == "<":
            self.read(arg)
        elif op == "=":
            self.returned(arg)
        elif op == ">":
            topic, _, data = arg.partition(",")
            self.send(topic, data)
        elif op == "*":
            topic, _, data = arg.partition(",")
            if topic in self.channels:  # Channel.offer: nothing on a closed one
                self.put(self.core.send(topic, data))
        elif op == "-":
            if arg in self.channels:
                self.close_channel(self.channels[arg], None)
        elif op == "!":
            if arg in self.channels:
                self.close_channel(self.channels[arg], SERVICE_FAILED)
        elif op == "+":
            self.advance(tenths(arg))
        elif op == "^":
            self.take()
        elif op == "$":
            self.writing = self.output.writing = False
        elif op == ".":
            self.lose()
        else:
            self.receive(op + arg)
        self.check()

    def read(self, topic: str) -> None:
        for channel in self.handlers:
            if channel.topic == topic and channel.inbox:
                payload = channel.inbox.pop(0)
                channel.held.took(len(payload))
                return

    def returned(self, topic: str) -> None:
        for channel in reversed(self.handlers):
            if channel.topic == topic:
                self.close_channel(channel, None)
                channel.inbox.clear()  # Connection._run_handler: drop_unread
                channel.held.drop()
                self.handlers.remove(channel)
                return

    def send(self, topic: str, data: str) -> None:
        channel = self.channels.get(topic)
        if channel is None:  # the core refuses; Channel.send raises before
            try:
                self.core.send(topic, data)
            except LocalProtocolError:
                return
            raise AssertionError(f"send on {topic!r}, not open, did not raise")
        if channel.waiting:  # its handler is still waiting: it sends nothing
            return
        frame = self.core.send(topic, data)
        verdict = self.queued(frame, waits=True)
        if verdict is Verdict.FULL:
            channel.waiting = True
            self.waited += len(frame)
        elif verdict is Verdict.SLOW:
            self.lose()

    def advance(self, seconds: float) -> None:
        """Outbox._wait_writable: a waiting sender wakes at the deadline and
        drops the client if it is too slow by then."""
        self.now += seconds
        if self.lost or not any(c.waiting for c in self.handlers):
            return
        deadline = self.output.deadline()
        if deadline is not None and self.now > deadline:
            assert self.output.too_slow(self.now)
            self.lose()

    def take(self) -> None:
        """The writer takes everything queued, and senders may go on."""
        if self.lost or not self.queue or self.writing:
            return
        self.output.taken()
        self.queue.clear()
        self.writing = self.output.writing = True
        self.above_since, self.waited = None, 0
        for channel in self.handlers:
            channel.waiting = False

    # -- what Connection does --------------------------------------------------

    def receive(self, text: str) -> None:
        if self.lost:
            return
        event = self.core.receive(text, self.now)
        if type(event) is MessageReceived:
            self.message(self.channels[event.topic], event.payload)
        elif type(event) is ChannelOpened:
            channel = Channel(event.topic, self.ledger.open(event.topic))
            self.channels[event.topic] = channel
            self.handlers.append(channel)
        elif type(event) is ChannelClosedEvent:
            self.closed(self.channels.pop(event.topic))
        elif type(event) is ChannelRefused:
            for frame in self.core.refuse(event.topic, event.notice):
                self.put(frame)
        elif type(event) is LimitExceeded:
            if event.topic is None:  # subscribe_rate: the client is dropped
                self.lose()
            else:
                assert event.notice == TOO_LARGE
                self.close_channel(self.channels[event.topic], event.notice)
        else:
            assert event is None, event

    def message(self, channel: Channel, payload: str) -> None:
        open_before = dict(self.channels)
        open_sizes = {topic: c.size for topic, c in self.channels.items()}
        total = sum(c.size for c in self.handlers)
        count, size = len(channel.inbox), len(payload)
        overflow = self.ledger.admit(channel.topic, channel.held, size)
        self.check_overflow(channel, count, size, open_sizes, total, overflow)
        if overflow is not None:
            for shed in overflow.shed:
                # Connection._overflowed: a client dropped as too slow by an
                # earlier shed's frames has no channel left to close.
                victim = open_before[shed.topic]
                assert (victim.held.count, victim.held.size) == (0, 0), shed
                victim.inbox.clear()
                assert victim.open != self.lost
                queued = len(self.queue)
                self.close_channel(victim, OVERLOADED)
                if not self.lost:  # else a SLOW dropped the client meanwhile
                    assert self.queue[queued:] == [
                        f"err,{shed.topic},{OVERLOADED}",
                        f"uns,{shed.topic}",
                    ]
            if not overflow.deliver:
                return
            if self.lost or not channel.open:  # counted, but goes nowhere
                channel.held.took(size)
                return
        channel.inbox.append(payload)  # admit counted it

    def close_channel(self, channel: Channel, notice: str | None) -> None:
        if not channel.open or self.lost:
            return
        if notice is None:
            frames = [self.core.close(channel.topic)]
        else:
            frames = self.core.fail(channel.topic, notice)
        del self.channels[channel.topic]
        for frame in frames:
            self.put(frame)
        self.closed(channel)

    def closed(self, channel: Channel) -> None:
        self.ledger.closed(channel.topic)
        channel.open = False

    def put(self, frame: str) -> None:
        if self.queued(frame, waits=False) is Verdict.SLOW:
            self.lose()

    def queued(self, frame: str, waits: bool) -> Verdict:
        """Outbox._queue, and the verdict the rules give."""
        if self.lost:  # the writer is stopped: nothing is counted
            return Verdict.ROOM
        assert parse_frame(frame).type in (MSG, ERR, UNS), frame
        self.queue.append(frame)
        verdict = self.output.queued(len(frame), self.now, waits)
        size, limit = self.output.size, self.limits.write_limit
        if size > limit and self.above_since is None:
            self.above_since = self.now
        if self.above_since is None:
            expected = Verdict.ROOM
        elif (self.now > self.above_since + self.limits.slow_client_timeout) or (
            not waits and size > SLOW_FACTOR * limit
        ):
            expected = Verdict.SLOW
        else:
            expected = Verdict.FULL
        assert verdict is expected, (verdict, size, self.now, self.above_since)
        return verdict

    def lose(self) -> None:
        """Connection._lose: every channel closes, the writer stops."""
        if self.lost:
            return
        self.lost = True
        for event in self.core.connection_lost():
            self.closed(self.channels.pop(event.topic))
        assert not self.channels
        self.output.taken()  # the writer's last act (Outbox._write_loop)
        self.queue.clear()
        self.writing = self.output.writing = False
        self.above_since, self.waited = None, 0

    # -- the invariants --------------------------------------------------------

    def check_overflow(
        self,
        channel: Channel,
        count: int,
        size: int,
        open_sizes: dict[str, int],
        total: int,
        overflow: Overflow | None,
    ) -> None:
        limits, topic = self.limits, channel.topic
        if count >= limits.max_queue:
            assert overflow is not None and [s.limit for s in overflow.shed] == [
                "max_queue"
            ]
        elif count and open_sizes[topic] + size > limits.max_queue_size:
            assert overflow is not None and [s.limit for s in overflow.shed] == [
                "max_queue_size"
            ]
        elif not total or total + size <= limits.max_connection_queue_size:
            assert overflow is None or overflow == Overflow((), True), overflow
            return
        assert overflow is not None
        remaining = total
        for index, shed in enumerate(overflow.shed):
            assert shed.topic in open_sizes, f"{shed} was not open"
            if shed.limit != "max_connection_queue_size":
                assert shed.topic == topic and not overflow.deliver
                continue
            assert remaining and remaining + size > limits.max_connection_queue_size
            assert open_sizes[shed.topic] == max(open_sizes.values()), shed
            if shed.topic == topic:
                assert index == len(overflow.shed) - 1 and not overflow.deliver
            else:  # shedding it frees something
                assert open_sizes[shed.topic] > 0, shed
            remaining -= open_sizes.pop(shed.topic)
        if overflow.deliver:
            assert not remaining or (
                remaining + size <= limits.max_connection_queue_size
            )
        else:
            assert overflow.shed[-1].topic == topic, overflow

    def check(self) -> None:
        limits, ledger, output = self.limits, self.ledger, self.output
        for channel in self.handlers:
            assert channel.held.count == len(channel.inbox)
            assert channel.held.size == channel.size
        assert ledger.size == sum(c.size for c in self.handlers) >= 0
        for channel in self.channels.values():
            assert channel.held.count <= limits.max_queue
            assert channel.held.size <= limits.max_queue_size or (
                channel.held.count == 1
            )
        if ledger.size > limits.max_connection_queue_size:
            held = [p for c in self.handlers for p in c.inbox if p]
            assert len(held) == 1, held
        assert self.core.open_topics == set(self.channels)
        assert all(c.open for c in self.channels.values())
        assert output.size == sum(map(len, self.queue))
        assert output.idle == (not self.queue and not self.writing)
        assert output.size <= SLOW_FACTOR * limits.write_limit + self.waited
        if self.above_since is None:
            assert output.deadline() is None and not output.too_slow(self.now)
        else:
            deadline = self.above_since + limits.slow_client_timeout
            assert output.deadline() == deadline
            assert output.too_slow(self.now) == (self.now > deadline)


def test_one_input(data: bytes) -> None:
    lines = data.split(b"\n")[:200]
    model = ConnectionModel(limits_from(lines[0].decode("ascii", "replace")))
    for raw in lines[1:]:
        line = raw.decode("utf-8", "surrogateescape")
        if line:
            model.step(line[0], line[1:])


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
