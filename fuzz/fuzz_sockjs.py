"""Coverage-guided fuzzing of the SockJS core (:mod:`websocket_multiplex.sockjs`).

One input is a script, one step per line, so that the seed corpus
(``fuzz/sockjs-corpus/``) reads like a conversation. Lines are decoded as
UTF-8 with ``surrogatepass`` (``surrogateescape`` where that fails), so
lone surrogates of both halves arrive. The first byte picks the target:

``s``: a :class:`Session`, driven step by step. The next two bytes are its
heartbeat and disconnect delays (``"0"`` is 1 s ... ``"9"`` is 10 s). Each
line is a step, its first character the call: a receiving request
attaches with ``p`` (xhr polling), ``j`` (jsonp polling), ``x``
(xhr-streaming), ``e`` (eventsource) or ``f`` (htmlfile), the digits of
the line its ``response_limit``; ``d`` detaches the holder, ``a`` aborts
it (its client went away), ``z`` detaches the last request that did not
hold the session; ``>`` sends messages (split on ``|``), ``-`` closes
(``code,reason``), ``?`` asks for output, ``[`` and ``]`` start and end
a sending request, ``+`` advances the clock by tenths of a second and
ticks; ``n`` starts a new session (as does an expiry: the driver forgets
an expired session).

``h``: :func:`route`. The rest of the first line sets the endpoint: ``n``
no WebSocket, ``j`` JSESSIONID, ``o`` only Origin ``http://ok``, ``X``
``S`` ``E`` ``H`` ``P`` ``W`` disable xhr, xhr_streaming, eventsource,
htmlfile, jsonp, websocket; its digits are ``max_session_id_length``.
Each further line is a request, ``METHOD path?query`` then, separated by
spaces, headers ``name:value``, ``upgrade`` for a WebSocket upgrade, and
``=body`` for the body of a sending request.

Anything else: the pure functions of :mod:`.frames`, on every line and on
the whole text (so that CR and LF occur).

Invariants, each checked against a model written again here (JSON by
``json.loads``, without NaN and Infinity as ``JSON.parse``; never by the
code under test):

* ``decode_client_message`` on any text, WebSocket or not, raises nothing
  but :class:`BrokenFraming` and returns a list of ``str``: exactly what
  ``json.loads`` and the documented rules give, on the fast path too;
* ``decode_client_message(encode_client_message(m)) == m``,
  ``parse_server_frame(messages_frame(m)).messages == tuple(m)`` and the
  close frame's code and reason come back, for any strings; every frame
  the server makes encodes as UTF-8; ``parse_server_frame`` on any text
  gives what ``json.loads`` says or raises :class:`BrokenFraming`;
* ``eventsource_chunk`` ends with the only ``"\\r\\n\\r\\n"``, holds no
  other CR, LF or NUL, and ``decodeURI``'s unescaping gives the frame back;
  ``htmlfile_chunk`` holds no ``<`` or ``>`` inside its ``p(...)`` and
  its JSON string is the frame; ``jsonp_chunk``'s argument is the frame;
* a :class:`Session` raises nothing but :class:`LocalProtocolError` from
  ``send`` when it is not open; its state, holder, queued size and expiry
  follow the model; one request at a time holds it (another gets 2010),
  and lets it go once it carried its last frame; it does not expire while
  a send is under way; ``tick`` says whether the application must be told
  of an expiry;
  ``h`` goes out exactly when a tick found it due and nothing else went;
  a polling request carries one frame, a streaming one stops past its
  limit, no request carries anything after a close frame; ``o`` is the
  first frame and the only one; messages go out once each, in order, all
  of them before the application's close frame; after a close each
  request ends with the close frame, unless it ended (polling, or its
  limit) on the last messages, and then the next one gets it;
* ``route`` on any request raises nothing and returns a :class:`Response`
  (403 exactly for a refused Origin, ``nosniff`` always) or the
  :class:`Route` the model expects, whose session id has no ``/`` or
  ``.`` and at most ``max_session_id_length`` characters; what a route
  leads to (``decode_send``, ``receiver_for``, ``receiving_response``)
  raises nothing but :class:`BrokenFraming`.

JSON's ``\\uXXXX`` escapes are UTF-16 code units, so a string holding a
lone high surrogate followed by a lone low one comes back joined into the
one astral character (as with ``json.dumps``; a JavaScript peer cannot
tell them apart): the round trips compare with that string, :func:`joined`.
::

    .venv/bin/python fuzz/fuzz_sockjs.py -max_total_time=60 fuzz/sockjs-corpus-copy
    .venv/bin/python fuzz/fuzz_sockjs.py fuzz/sockjs-corpus/session-close  # replay

(Fuzz a copy of the corpus: libFuzzer adds what it finds to the folder.)
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

import atheris

with atheris.instrument_imports(include=["websocket_multiplex"]):
    from websocket_multiplex.exceptions import BrokenFraming, LocalProtocolError
    from websocket_multiplex.limits import Limits
    from websocket_multiplex.request import Headers
    from websocket_multiplex.sockjs.frames import (
        ServerFrame,
        close_frame,
        decode_client_message,
        encode_client_message,
        eventsource_chunk,
        htmlfile_chunk,
        jsonp_chunk,
        messages_frame,
        parse_server_frame,
        xhr_chunk,
    )
    from websocket_multiplex.sockjs.http import (
        Kind,
        Request,
        Response,
        Route,
        decode_send,
        receiver_for,
        receiving_response,
        route,
        sent_response,
    )
    from websocket_multiplex.sockjs.options import SockJSOptions
    from websocket_multiplex.sockjs.session import (
        Attached,
        Expiry,
        Receiver,
        Session,
    )

CALLBACK = "cb.x-1_"
CALLBACK_CHARS = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_."
)
ANOTHER_CONNECTION = 'c[2010,"Another connection still open"]'
INTERRUPTED = (1002, "Connection interrupted")
CODE_REASON = re.compile(r"(-?[0-9]{1,12}),?(.*)", re.DOTALL)
PERCENT = re.compile("%([0-9A-Fa-f]{2})")
STRAY_PERCENT = re.compile("%(?![0-9A-Fa-f]{2})")


def text_of(raw: bytes) -> str:
    try:
        return raw.decode("utf-8", "surrogatepass")
    except UnicodeDecodeError:
        return raw.decode("utf-8", "surrogateescape")


def joined(text: str) -> str:
    """``text`` as JSON carries it: UTF-16 code units, so a high surrogate
    followed by a low one is one character."""
    return text.encode("utf-16-le", "surrogatepass").decode(
        "utf-16-le", "surrogatepass"
    )


def not_json(constant: str) -> object:
    raise ValueError(constant)


def loads(text: str) -> Any:
    """JSON as ``JSON.parse`` reads it: ``json.loads`` without NaN and
    Infinity."""
    return json.loads(text, parse_constant=not_json)


def raises_only_broken(call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call ``call``; ``None`` if it raised :class:`BrokenFraming`."""
    try:
        return call(*args, **kwargs)
    except BrokenFraming:
        return None


# -- the pure functions ------------------------------------------------------


def expected_messages(data: str, max_messages: int, websocket: bool) -> list | None:
    """What a client message holds, by json.loads and the documented rules
    (``None``: BrokenFraming)."""
    if websocket and not data:
        return []
    try:
        value = loads(data)
    except (ValueError, RecursionError):
        return None
    if isinstance(value, list):
        if len(value) > max_messages:
            return None
        return [item for item in value if isinstance(item, str)]
    if websocket:
        return [value] if isinstance(value, str) else []
    return None


def check_decode(data: str) -> None:
    for websocket in (False, True):
        for max_messages in (2, 65_536):
            got = raises_only_broken(
                decode_client_message,
                data,
                max_messages=max_messages,
                websocket=websocket,
            )
            assert got == expected_messages(data, max_messages, websocket), (
                data,
                websocket,
                max_messages,
                got,
            )
            assert got is None or all(type(item) is str for item in got)


def expected_server_frame(frame: str) -> ServerFrame | None:
    if frame in ("o", "h"):
        return ServerFrame(frame)
    if frame[:1] not in ("a", "c"):
        return None
    try:
        value = loads(frame[1:])
    except (ValueError, RecursionError):
        return None
    if not isinstance(value, list):
        return None
    if frame[0] == "a":
        return ServerFrame("a", tuple(item for item in value if isinstance(item, str)))
    if len(value) == 2 and type(value[0]) is int and isinstance(value[1], str):
        return ServerFrame("c", code=value[0], reason=value[1])
    return None


def check_server_frame(frame: str) -> None:
    got = raises_only_broken(parse_server_frame, frame)
    assert got == expected_server_frame(frame), (frame, got)


def check_messages(messages: list[str]) -> None:
    expected = [joined(message) for message in messages]
    encoded = encode_client_message(messages)
    assert decode_client_message(encoded, max_messages=len(messages) or 1) == expected
    if len(messages) >= 2:
        too_many = len(messages) - 1
        assert (
            raises_only_broken(decode_client_message, encoded, max_messages=too_many)
            is None
        ), encoded
    frame = messages_frame(messages)
    frame.encode("utf-8")  # no lone surrogate left raw
    assert json.loads(frame[1:]) == expected, frame
    assert parse_server_frame(frame).messages == tuple(expected), frame
    check_chunks(frame)


def check_close(line: str) -> None:
    match = CODE_REASON.fullmatch(line)
    code, reason = (int(match[1]), match[2]) if match else (3000, line)
    frame = close_frame(code, reason)
    frame.encode("utf-8")
    assert frame[0] == "c" and json.loads(frame[1:]) == [code, joined(reason)], frame
    assert parse_server_frame(frame) == ServerFrame(
        "c", code=code, reason=joined(reason)
    )
    check_chunks(frame)


def decode_uri(data: str) -> str:
    """sockjs-client's ``decodeURI``: it throws on a ``%`` not followed by two
    hex digits; here only ASCII is escaped."""
    assert not STRAY_PERCENT.search(data), data
    return PERCENT.sub(lambda match: chr(int(match[1], 16)), data)


def check_chunks(frame: str) -> None:
    assert xhr_chunk(frame) == frame + "\n"

    event = eventsource_chunk(frame)
    assert event.startswith("data: ") and event.endswith("\r\n\r\n"), event
    data = event[len("data: ") : -4]
    assert not {"\r", "\n", "\0"} & set(data), event
    assert decode_uri(data) == frame, event

    script = htmlfile_chunk(frame)
    prefix, suffix = "<script>\np(", ");\n</script>\r\n"
    assert script.startswith(prefix) and script.endswith(suffix), script
    argument = script[len(prefix) : -len(suffix)]
    assert "<" not in argument and ">" not in argument, script
    assert json.loads(argument) == joined(frame), script

    jsonp = jsonp_chunk(CALLBACK, frame)
    prefix, suffix = f"/**/{CALLBACK}(", ");\r\n"
    assert jsonp.startswith(prefix) and jsonp.endswith(suffix), jsonp
    assert json.loads(jsonp[len(prefix) : -len(suffix)]) == joined(frame), jsonp


def check_frames(text: str) -> None:
    check_decode(text)
    check_decode('["' + text + '"]')  # the fast path's shape
    check_server_frame(text)
    check_messages([text])
    check_messages(text.split("|"))
    check_close(text)
    check_chunks(text)


# -- the session ---------------------------------------------------------------

# A receiving request: (its chunk function, polling).
KINDS: dict[str, tuple[Callable[[str], str], bool]] = {
    "p": (xhr_chunk, True),
    "j": (lambda frame: jsonp_chunk(CALLBACK, frame), True),
    "x": (xhr_chunk, False),
    "e": (eventsource_chunk, False),
    "f": (htmlfile_chunk, False),
}


class Fetch:
    """One receiving request, recording the frames its receiver carries."""

    def __init__(self, chunk: Callable[[str], str], polling: bool, limit: int) -> None:
        self.chunk = chunk
        self.polling = polling
        self.limit = limit
        self.frames: list[str] = []
        self.refused = False
        self.receiver = Receiver(self.wrap, polling=polling, response_limit=limit)

    def wrap(self, frame: str) -> str:
        self.frames.append(frame)
        return self.chunk(frame)

    def written(self, frames: list[str]) -> int:
        return sum(len(self.chunk(frame)) for frame in frames)


def number(text: str, default: int) -> int:
    digits = "".join(filter(str.isdigit, text))[:6]
    return int(digits) if digits.isascii() and digits else default


def parse_close(frame: str) -> tuple[int, str] | None:
    if frame[:1] != "c":
        return None
    code, reason = json.loads(frame[1:])
    return code, reason


class SessionModel:
    def __init__(self, header: bytes) -> None:
        header = header.ljust(2, b"0")
        self.heartbeat = float(1 + (header[0] - 48) % 10)
        self.disconnect = float(1 + (header[1] - 48) % 10)
        self.tenths = 0
        self.reset()

    @property
    def now(self) -> float:
        return self.tenths / 10

    def reset(self) -> None:
        self.core = Session(
            heartbeat_delay=self.heartbeat,
            disconnect_delay=self.disconnect,
            now=self.now,
        )
        self.state = "new"
        self.holder: Fetch | None = None
        self.others: list[Fetch] = []
        self.sent: list[str] = []  # as JSON carries them (joined)
        self.queued = 0  # characters sent and not carried yet
        self.pending = 0  # messages sent and not carried yet
        self.delivered: list[str] = []
        self.frames: list[str] = []  # every frame carried, in order
        self.closed_with: tuple[int, str] | None = None
        self.app_closed = False
        self.close_carried = False
        self.expires_at: float | None = self.now + self.disconnect
        self.heartbeat_at: float | None = None
        self.beat_due = False
        self.sends = 0  # sending requests under way

    def step(self, op: str, arg: str) -> None:
        if op in KINDS:
            self.attach(op, arg)
        elif op in "da":
            self.detach(aborted=op == "a")
        elif op == "z":
            if self.others:
                fetch = self.others[-1]
                assert not self.core.detach(fetch.receiver, self.now, aborted=True)
        elif op == ">":
            self.send(arg.split("|") if arg else [])
        elif op == "-":
            self.close(arg)
        elif op == "?":
            self.output()
        elif op == "+":
            self.tick(number(arg, 0))
        elif op == "[":
            self.core.sending()
            self.sends += 1
        elif op == "]" and self.sends:
            self.core.sent(self.now)
            self.sends -= 1
            if self.holder is None and self.expires_at is not None:
                self.expires_at = max(self.expires_at, self.now + self.disconnect)
        elif op == "n":
            self.reset()
        self.check_state()

    def check_state(self) -> None:
        core = self.core
        assert core.state.value == self.state, (core, self.state)
        holder = None if self.holder is None else self.holder.receiver
        assert core.receiver is holder, (core.receiver, holder)
        assert core.accepts_messages == (self.state == "open")
        assert core.queued_size == self.queued, (core.queued_size, self.queued)
        assert core.close_delivered == self.close_carried
        deadline = self.expires_at if holder is None else self.heartbeat_at
        if holder is None and self.sends:
            deadline = None  # no expiry while a send is under way
        assert core.deadline() == deadline, (core.deadline(), self)

    def attach(self, op: str, arg: str) -> None:
        chunk, polling = KINDS[op]
        fetch = Fetch(chunk, polling, 1 + number(arg, 4095))
        attached, text = self.core.attach(fetch.receiver, self.now)
        if self.holder is not None:
            assert attached is Attached.REFUSED, attached
            fetch.refused = True
            self.others.append(fetch)
        elif self.state in ("closing", "closed"):
            assert attached is Attached.ENDED, attached
            self.expires_at = self.now + self.disconnect
            self.others.append(fetch)
        else:
            expected = Attached.OPENED if self.state == "new" else Attached.HOLDING
            assert attached is expected, attached
            self.state = "open"
            self.holder = fetch
            self.expires_at = None
            self.heartbeat_at = self.now + self.heartbeat
        self.carried(fetch, 0, text)
        self.let_go_if_done()
        if attached is Attached.OPENED:
            assert fetch.frames == ["o"], fetch.frames
        if attached is Attached.REFUSED:
            assert fetch.frames == [ANOTHER_CONNECTION], fetch.frames
        if attached in (Attached.REFUSED, Attached.ENDED):
            assert fetch.receiver.done, fetch.frames

    def detach(self, *, aborted: bool) -> None:
        fetch = self.holder
        if fetch is None:
            if self.others:
                other = self.others[-1].receiver
                assert not self.core.detach(other, self.now, aborted=aborted)
            return
        ended = self.core.detach(fetch.receiver, self.now, aborted=aborted)
        assert ended == (aborted and self.state == "open"), (ended, self.state)
        self.let_go()
        if ended:
            self.end()

    def let_go(self) -> None:
        """No request holds the session now: its countdown starts."""
        assert self.holder is not None
        self.others.append(self.holder)
        self.holder = None
        self.expires_at = self.now + self.disconnect
        self.heartbeat_at = None
        self.beat_due = False

    def let_go_if_done(self) -> None:
        """A request lets the session go once it carried its last frame."""
        if self.holder is not None and self.holder.receiver.done:
            self.let_go()

    def end(self) -> None:
        """Interrupted or expired: what is queued is dropped."""
        if not self.app_closed:
            self.closed_with = INTERRUPTED
        self.state = "closed"
        self.queued = self.pending = 0

    def send(self, messages: list[str]) -> None:
        try:
            self.core.send(messages)
        except LocalProtocolError:
            assert self.state != "open", "send raised on an open session"
            return
        assert self.state == "open", f"send on a {self.state} session"
        self.sent.extend(joined(message) for message in messages)
        self.queued += sum(len(message) for message in messages)
        self.pending += len(messages)

    def close(self, arg: str) -> None:
        match = CODE_REASON.fullmatch(arg)
        code, reason = (int(match[1]), match[2]) if match else (3000, arg)
        was_open = self.core.close(code, reason)
        assert was_open == (self.state == "open"), (was_open, self.state)
        if was_open:
            self.state = "closing"
            self.closed_with = (code, joined(reason))
            self.app_closed = True

    def output(self) -> None:
        fetch = self.holder
        idle = fetch is None or fetch.receiver.done
        before = 0 if fetch is None else len(fetch.frames)
        text = self.core.output(self.now)
        if fetch is None or idle:
            assert text == "", text
            return
        # A heartbeat when one fell due and nothing else goes out.
        beat = self.beat_due and not self.pending and self.state == "open"
        self.beat_due = False
        self.carried(fetch, before, text)
        assert ("h" in fetch.frames[before:]) == beat, (fetch.frames, beat)
        if text:
            self.heartbeat_at = self.now + self.heartbeat
        self.let_go_if_done()

    def tick(self, tenths: int) -> None:
        self.tenths += tenths
        expiry = self.core.tick(self.now)
        due_at = self.heartbeat_at
        if self.holder is not None and due_at is not None and self.now >= due_at:
            self.beat_due = True
            self.heartbeat_at = self.now + self.heartbeat
        due = self.expires_at is not None and self.now >= self.expires_at
        if self.holder is not None or self.sends or not due:
            assert expiry is Expiry.LIVE, (expiry, self)
            return
        # Expired; the application is told unless it knows (closed, or
        # told when the holder's client left).
        told = self.state in ("new", "open")
        assert expiry is (Expiry.TIMED_OUT if told else Expiry.GONE), (expiry, self)
        self.reset()  # as the driver does: it forgets the session

    def carried(self, fetch: Fetch, before: int, text: str) -> None:
        """Check what one call had ``fetch`` carry: ``text``, made of the
        frames its receiver took from index ``before`` on."""
        new = fetch.frames[before:]
        assert text == "".join(map(fetch.chunk, new)), (text, new)
        for frame in new:
            self.frame(fetch, frame)
        frames = fetch.frames
        if fetch.polling:
            assert len(frames) <= 1, frames
        else:  # a streaming request stops once it wrote its limit
            assert fetch.written(frames[:-1]) < fetch.limit, frames
        assert all(frame[0] != "c" for frame in frames[:-1]), frames
        if not new or fetch.refused or self.state not in ("closing", "closed"):
            return
        # After a close, a request ends with the close frame, unless it
        # ended on the last messages (the next request gets the close).
        assert fetch.receiver.done, frames
        last = frames[-1]
        if last[0] == "a":
            assert fetch.polling or fetch.written(frames) >= fetch.limit, frames
        else:
            assert parse_close(last) == self.closed_with, (frames, self.closed_with)

    def frame(self, fetch: Fetch, frame: str) -> None:
        """One frame carried by ``fetch``, against the model."""
        assert not self.close_carried or frame[0] == "c", (frame, self.frames)
        self.frames.append(frame)
        if frame == "o":
            assert self.frames == ["o"], self.frames
        elif frame == "h":
            assert fetch is self.holder and self.state == "open", frame
        elif frame[0] == "a":
            messages = json.loads(frame[1:])
            assert messages, frame  # no empty messages frame
            assert all(type(message) is str for message in messages), frame
            self.delivered.extend(messages)
            assert self.delivered == self.sent[: len(self.delivered)], (
                self.delivered,
                self.sent,
            )
            self.queued = self.pending = 0  # a frame takes the whole queue
        elif fetch.refused:
            assert frame == ANOTHER_CONNECTION, frame
        else:
            assert self.closed_with is not None, frame
            assert parse_close(frame) == self.closed_with, (frame, self.closed_with)
            if self.app_closed:
                assert self.delivered == self.sent, (self.delivered, self.sent)
                self.close_carried = True

    def __repr__(self) -> str:
        return (
            f"<model {self.state} now={self.now} expires_at={self.expires_at} "
            f"heartbeat_at={self.heartbeat_at}>"
        )


# -- routing -----------------------------------------------------------------

DISABLE_FLAGS = {
    "X": "xhr",
    "S": "xhr_streaming",
    "E": "eventsource",
    "H": "htmlfile",
    "P": "jsonp",
    "W": "websocket",
}
# The methods each session URL takes.
METHODS = {
    "xhr": {"POST"},
    "xhr_send": {"POST"},
    "xhr_streaming": {"POST"},
    "jsonp": {"GET"},
    "jsonp_send": {"POST"},
    "eventsource": {"GET"},
    "htmlfile": {"GET"},
    "websocket": {"GET"},
}
STATUSES = frozenset({200, 204, 304, 400, 403, 404, 405, 500})
NOSNIFF = ("X-Content-Type-Options", "nosniff")


class Endpoint:
    def __init__(self, flags: str) -> None:
        self.disabled = frozenset(DISABLE_FLAGS[f] for f in flags if f in DISABLE_FLAGS)
        self.websocket = "n" not in flags
        self.jsessionid = "j" in flags
        self.allowed = frozenset({"http://ok"}) if "o" in flags else None
        self.options = SockJSOptions(
            websocket=self.websocket,
            disabled_transports=self.disabled,
            jsessionid=self.jsessionid,
            allowed_origins=self.allowed,
        )
        self.max_id = 1 + number(flags, 63) % 100
        self.limits = Limits(max_session_id_length=self.max_id)

    def offered(self, transport: str) -> bool:
        if transport == "websocket":
            return self.websocket and "websocket" not in self.disabled
        receivers = {
            "xhr_send": {"xhr", "xhr_streaming", "eventsource", "htmlfile"},
            "jsonp_send": {"jsonp"},
        }.get(transport, {transport})
        return bool(receivers - self.disabled)

    def refuses(self, origin: str | None) -> bool:
        allowed = self.allowed
        return allowed is not None and origin is not None and origin not in allowed

    def expected(
        self, method: str, path: str, query: str, origin: str | None, upgrade: bool
    ) -> Route | None:
        """The route the rules of http.py's docstring give (``None``: a
        whole response)."""
        if self.refuses(origin):
            return None
        if path in ("/websocket", "/websocket/"):
            ok = method == "GET" and self.offered("websocket") and upgrade
            return Route(Kind.RAW_WEBSOCKET) if ok else None
        parts = path.split("/")
        if len(parts) == 5 and parts[4] == "":
            parts.pop()
        if len(parts) != 4 or parts[0] != "":
            return None
        _, server, session, transport = parts
        for part in (server, session):
            if not part or "." in part or len(part) > self.max_id:
                return None
        if method not in METHODS.get(transport, ()) or not self.offered(transport):
            return None
        if transport == "websocket":
            return Route(Kind.WEBSOCKET, session) if upgrade else None
        if transport in ("htmlfile", "jsonp"):
            fields = dict(parse_qsl(query, keep_blank_values=True))
            callback = fields.get("c", fields.get("callback"))
            if callback is None or not 1 <= len(callback) <= 32:
                return None
            if not set(callback) <= CALLBACK_CHARS:
                return None
            return Route(Kind(transport), session, callback)
        return Route(Kind(transport), session)

    def request(self, line: str) -> None:
        method, _, rest = line.partition(" ")
        target, *tokens = rest.split(" ")
        path, _, query = target.partition("?")
        pairs, upgrade, body = [], False, b""
        for token in tokens:
            if token == "upgrade":
                upgrade = True
            elif token.startswith("="):
                body = token[1:].encode("utf-8", "surrogatepass")
            else:
                name, _, value = token.partition(":")
                pairs.append((name, value))
        origins = [value for name, value in pairs if name.lower() == "origin"]
        origin = ", ".join(origins) if origins else None
        request = Request(method, path, query, Headers(pairs), upgrade)
        found = route(request, self.options, self.limits, lambda: 42, 1_800_000_000.0)
        expected = self.expected(method, path, query, origin, upgrade)
        if isinstance(found, Route):
            assert found == expected, (line, found, expected)
            self.follow(found, request, body)
            return
        assert isinstance(found, Response), found
        assert expected is None, (line, found, expected)
        assert (found.status == 403) == self.refuses(origin), found
        assert found.status in STATUSES, found
        assert NOSNIFF in found.headers, found
        assert all(type(n) is str and type(v) is str for n, v in found.headers)
        assert type(found.body) is bytes
        if found.status == 200 and path in ("/info", "/info/"):
            info = json.loads(found.body)
            assert info["entropy"] == 42, info
            assert info["websocket"] == self.offered("websocket"), info
            assert info["cookie_needed"] == self.jsessionid, info

    def follow(self, found: Route, request: Request, body: bytes) -> None:
        """What a route leads to raises nothing but BrokenFraming."""
        session_id = found.session_id
        if found.kind is Kind.RAW_WEBSOCKET:
            assert session_id == "", found
        else:
            assert 1 <= len(session_id) <= self.max_id, found
            assert "/" not in session_id and "." not in session_id, found
        if found.kind.sends:
            texts = raises_only_broken(decode_send, found, request, body, self.limits)
            assert texts is None or all(type(text) is str for text in texts)
            assert sent_response(found, request, self.options).status in (200, 204)
        elif found.kind.receives:
            status, headers, prelude = receiving_response(found, request, self.options)
            assert status == 200 and NOSNIFF in headers and type(prelude) is str
            receiver = receiver_for(found, self.options)
            assert receiver.carry(["o"]), found


# -----------------------------------------------------------------------------


def test_one_input(data: bytes) -> None:
    if not data:
        return
    target = data[:1]
    lines = data[1:].split(b"\n")[:200]
    if target == b"s":
        model = SessionModel(lines[0][:2])
        for raw in lines[1:]:
            line = text_of(raw)
            if line:
                model.step(line[0], line[1:])
    elif target == b"h":
        endpoint = Endpoint(text_of(lines[0]))
        for raw in lines[1:]:
            endpoint.request(text_of(raw))
    else:
        for raw in lines:
            check_frames(text_of(raw))
        check_frames(text_of(data[1:]))


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
