"""SockJS framing, both directions, as pure functions (sockjs-protocol 0.3).

A server sends four kinds of frame, whatever the transport:

* ``o``: the session is open (sent once, first);
* ``h``: a heartbeat, when nothing else went out for a while;
* ``a[...]``: a JSON array of messages;
* ``c[code,"reason"]``: the session is closed (sent last, and to every
  later request for the session).

A client sends JSON: an array of messages (every transport), or over a
WebSocket a single JSON string too. Each transport then wraps a frame its
own way (:func:`xhr_chunk`, :func:`eventsource_chunk`, :func:`htmlfile_chunk`,
:func:`jsonp_chunk`), with the escaping its client needs.

The same functions serve the server core, the Python client's SockJS
carrier and the tests' carriers, so there is one framing to get right.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from json.encoder import encode_basestring
from typing import Final

from ..exceptions import BrokenFraming

__all__ = [
    "HEARTBEAT",
    "OPEN",
    "ServerFrame",
    "close_frame",
    "decode_client_message",
    "encode_client_message",
    "eventsource_chunk",
    "htmlfile_chunk",
    "htmlfile_prelude",
    "jsonp_chunk",
    "messages_frame",
    "only_message",
    "parse_server_frame",
    "quote",
    "xhr_chunk",
]

OPEN: Final = "o"
HEARTBEAT: Final = "h"

# What JSON leaves raw but a client or a proxy may mangle, as sockjs-node
# escapes it: format characters, line and paragraph separators (which
# also end a JavaScript string literal before ES2019), specials, and lone
# surrogates (which UTF-8 cannot carry). JSON has escaped the C0 controls
# already. Astral characters are whole code points in Python: they go
# raw, as UTF-8, where node (UTF-16) escapes their two halves.
_ESCAPABLE: Final = re.compile(
    "[\ud800-\udfff\u200c-\u200f\u2028-\u202f\u2060-\u206f\ufff0-\uffff]"
)


def _escape_unit(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def quote(text: str) -> str:
    """``text`` as a JSON string, escaped as sockjs-node's ``quote`` does."""
    quoted: str = encode_basestring(text)
    if quoted.isascii():  # nearly always: nothing left to escape
        return quoted
    return _ESCAPABLE.sub(_escape_unit, quoted)


def messages_frame(messages: Iterable[str]) -> str:
    """The ``a[...]`` frame carrying ``messages``."""
    frame = "a[" + ",".join(map(encode_basestring, messages)) + "]"
    if frame.isascii():
        return frame
    return _ESCAPABLE.sub(_escape_unit, frame)


def close_frame(code: int, reason: str) -> str:
    """The ``c[code,"reason"]`` frame."""
    return f"c[{int(code)},{quote(reason)}]"


# -- what a client sends -----------------------------------------------------


def _not_json(constant: str) -> object:
    raise ValueError(f"{constant} is not JSON")


def _json(text: str) -> object:
    """``json.loads``, without the NaN and Infinity that JSON does not have
    (and ``JSON.parse`` refuses)."""
    return json.loads(text, parse_constant=_not_json)


def decode_client_message(
    data: str, *, max_messages: int, websocket: bool = False
) -> list[str]:
    """The messages of one SockJS message from a client.

    ``data`` is a JSON array of strings (an ``xhr_send``/``jsonp_send``
    body, a WebSocket message) or, over a WebSocket only, one JSON string,
    as sockjs-node accepts. Items that are not strings are skipped: no
    SockJS client sends them. Raises :class:`BrokenFraming` with
    sockjs-node's wording when ``data`` is not JSON ("Broken JSON
    encoding."), not an array where one is needed ("Payload expected."),
    or holds more than ``max_messages`` items. An empty ``data`` over a
    WebSocket holds no message.
    """
    if websocket and not data:
        return []
    text = only_message(data)
    if text is not None:
        return [text]
    if not data:
        raise BrokenFraming("Payload expected.")
    try:
        value = _json(data)
    except (ValueError, RecursionError):  # broken, or nested too deep
        raise BrokenFraming("Broken JSON encoding.") from None
    if isinstance(value, list):
        if len(value) > max_messages:
            raise BrokenFraming(
                f"Too many messages: {len(value)} in one, at most {max_messages}.",
                len(value),
            )
        return [item for item in value if isinstance(item, str)]
    if websocket:
        return [value] if isinstance(value, str) else []
    raise BrokenFraming("Payload expected.")


def only_message(data: str) -> str | None:
    """The message of ``data`` when it holds exactly one and nothing in it
    is escaped (``["text"]``, what a client sends most of the time), read
    without decoding; ``None`` for anything else: then
    :func:`decode_client_message` decodes it. What it returns is exactly
    what ``json.loads`` gives."""
    if data[:2] == '["' and data[-2:] == '"]' and len(data) > 3:
        text = data[2:-2]
        if text.isprintable() and '"' not in text and "\\" not in text:
            return text
    return None


def encode_client_message(messages: Sequence[str]) -> str:
    """What a client sends for ``messages``: a JSON array of strings."""
    return messages_frame(messages)[1:]


@dataclass(frozen=True, slots=True)
class ServerFrame:
    """One frame a server sent, as a client reads it.

    ``kind`` is ``"o"``, ``"h"``, ``"a"`` (``messages`` holds them) or
    ``"c"`` (``code`` and ``reason``).
    """

    kind: str
    messages: tuple[str, ...] = ()
    code: int = 0
    reason: str = ""


_OPENED: Final = ServerFrame(OPEN)
_BEAT: Final = ServerFrame(HEARTBEAT)


def parse_server_frame(frame: str) -> ServerFrame:
    """Read one frame a server sent; raise :class:`BrokenFraming` if it is
    not one of the four kinds."""
    if frame == OPEN:
        return _OPENED
    if frame == HEARTBEAT:
        return _BEAT
    kind, body = frame[:1], frame[1:]
    try:
        value = _json(body) if kind in ("a", "c") else None
    except (ValueError, RecursionError):
        value = None
    if kind == "a" and isinstance(value, list):
        return ServerFrame("a", tuple(m for m in value if isinstance(m, str)))
    if kind == "c" and isinstance(value, list) and len(value) == 2:
        code, reason = value
        if type(code) is int and isinstance(reason, str):  # not a bool
            return ServerFrame("c", code=code, reason=reason)
    raise BrokenFraming(f"not a SockJS frame: {frame[:40]!r}")


# -- how each transport carries a frame -----------------------------------------


def xhr_chunk(frame: str) -> str:
    """xhr-polling and xhr-streaming: one frame per line."""
    return frame + "\n"


_EVENTSOURCE_ESCAPES: Final = str.maketrans(
    {"%": "%25", "\r": "%0D", "\n": "%0A", "\0": "%00"}
)


def eventsource_chunk(frame: str) -> str:
    """An event: a line break would end it early, and sockjs-client runs
    ``decodeURI`` on the data, so ``%``, CR, LF and NUL are %-escaped, as
    sockjs-node does."""
    return f"data: {frame.translate(_EVENTSOURCE_ESCAPES)}\r\n\r\n"


def _script_string(text: str) -> str:
    # Inside <script>, "</script>" or "<!--" in a string would end or
    # bend the element: "<" and ">" never appear raw (sockjs-node lets
    # them through, and loses such messages).
    return quote(text).replace("<", "\\u003c").replace(">", "\\u003e")


def htmlfile_chunk(frame: str) -> str:
    """htmlfile: each frame a ``<script>`` calling the page's ``p``."""
    return f"<script>\np({_script_string(frame)});\n</script>\r\n"


def htmlfile_prelude(callback: str) -> str:
    """The start of an htmlfile response: the page whose ``p`` the frames
    call, padded to 1 KiB (Safari renders nothing before it has that
    much). ``callback`` must have passed the callback check."""
    page = (
        "<!doctype html>\n<html><head>\n"
        '  <meta http-equiv="X-UA-Compatible" content="IE=edge" />\n'
        '  <meta http-equiv="Content-Type" content="text/html; charset=UTF-8" />\n'
        "</head><body><h2>Don't panic!</h2>\n"
        "  <script>\n"
        "    document.domain = document.domain;\n"
        f"    var c = parent.{callback};\n"
        "    c.start();\n"
        "    function p(d) {c.message(d);};\n"
        "    window.onload = function() {c.stop();};\n"
        "  </script>"
    )
    return page + " " * max(0, 1024 - len(page) + 13) + "\r\n\r\n"


def jsonp_chunk(callback: str, frame: str) -> str:
    """jsonp-polling: a script calling ``callback`` with the frame. The
    leading comment defeats the Flash "Rosetta" JSONP exploit (SWF
    content sniffing), as in sockjs-node."""
    return f"/**/{callback}({quote(frame)});\r\n"
