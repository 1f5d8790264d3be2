"""The multiplex frame grammar and JavaScript's ``escape()``, as pure functions.

A frame is ``type,topic[,payload]`` (see docs/PROTOCOL.md, "Frame"). The
reference splits on every comma and joins everything after the topic back
with commas, which is exactly ``str.split(",", 2)``. Topics are channel
names passed through JavaScript's ``escape()``, which works on UTF-16 code
units; :func:`escape` and :func:`unescape` reproduce it for any Python
string, astral characters and lone surrogates included.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from .exceptions import InvalidFrame

__all__ = [
    "ERR",
    "FRAME_TYPES",
    "MSG",
    "REP",
    "REQ",
    "REQUEST_FRAMES",
    "RER",
    "SUB",
    "UNS",
    "Frame",
    "escape",
    "format_frame",
    "instance_topic",
    "parse_frame",
    "service_topic",
    "unescape",
]

SUB: Final = "sub"
MSG: Final = "msg"
UNS: Final = "uns"
ERR: Final = "err"  # extension: refusal notice (docs/PROTOCOL-EXTENSIONS.md)
# extension: request/reply (docs/PROTOCOL-EXTENSIONS.md, section 5)
REQ: Final = "req"
REP: Final = "rep"
RER: Final = "rer"
REQUEST_FRAMES: Final = frozenset({REQ, REP, RER})
FRAME_TYPES: Final = frozenset({SUB, MSG, UNS, ERR}) | REQUEST_FRAMES


@dataclass(frozen=True, slots=True)
class Frame:
    """One parsed frame. ``payload`` is ``""`` when the frame has none."""

    type: str
    topic: str
    payload: str = ""


def parse_frame(text: str) -> Frame:
    """Parse one carrier message, or raise :class:`InvalidFrame`.

    Commas in the payload survive: ``msg,ann,a,b`` has payload ``a,b``.
    A frame without a topic, with an empty topic or with an unknown type is
    invalid; the caller decides to ignore it, as the protocol says.
    """
    parts = text.split(",", 2)
    if len(parts) < 2 or not parts[1]:
        raise InvalidFrame(f"frame has no topic: {text[:40]!r}")
    kind = parts[0]
    if kind not in FRAME_TYPES:
        raise InvalidFrame(f"unknown frame type {kind[:20]!r}")
    return Frame(kind, parts[1], parts[2] if len(parts) == 3 else "")


def format_frame(kind: str, topic: str, payload: str | None = None) -> str:
    """Build the text of one frame; ``payload`` is only written when given."""
    if payload is None:
        return f"{kind},{topic}"
    return f"{kind},{topic},{payload}"


# escape() leaves these 69 characters alone (ECMA-262, B.2.1.1).
_UNRESERVED: Final = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789@*_+-./"
)
_LATIN1: Final = tuple(
    chr(unit) if chr(unit) in _UNRESERVED else f"%{unit:02X}" for unit in range(256)
)
_NEEDS_ESCAPE: Final = re.compile(r"[^A-Za-z0-9@*_+\-./]")
_ESCAPE_SEQUENCE: Final = re.compile(r"%u([0-9A-Fa-f]{4})|%([0-9A-Fa-f]{2})")


def escape(name: str) -> str:
    """Return JavaScript's ``escape(name)``: the topic of a channel name.

    Code units below 256 become ``%XX``, others ``%uXXXX``; a character
    outside the BMP is written as its UTF-16 surrogate pair.
    """
    if _NEEDS_ESCAPE.search(name) is None:
        return name
    return "".join(map(_escape_char, name))


def _escape_char(char: str) -> str:
    unit = ord(char)
    if unit < 256:
        return _LATIN1[unit]
    if unit < 0x10000:
        return f"%u{unit:04X}"
    unit -= 0x10000
    return f"%u{0xD800 | unit >> 10:04X}%u{0xDC00 | unit & 0x3FF:04X}"


def unescape(topic: str) -> str:
    """Return JavaScript's ``unescape(topic)``, the inverse of :func:`escape`.

    Malformed ``%`` sequences are kept literally, as JavaScript does;
    surrogate pairs are joined into one character, lone ones are kept.
    """
    if "%" not in topic and topic.isascii():
        return topic
    units = _ESCAPE_SEQUENCE.sub(_decode_sequence, topic)
    return units.encode("utf-16-le", "surrogatepass").decode(
        "utf-16-le", "surrogatepass"
    )


def _decode_sequence(match: re.Match[str]) -> str:
    return chr(int(match.group(1) or match.group(2), 16))


# -- extension: several channels to one service (docs/PROTOCOL-EXTENSIONS.md) --

_INSTANCE: Final = re.compile(r"[A-Za-z0-9]{1,16}")


def instance_topic(topic: str, instance: str) -> str:
    """The topic of a further channel to the service whose topic is given.

    ``#`` never appears in :func:`escape` output, so it cannot collide.
    """
    return f"{topic}#{instance}"


def service_topic(topic: str) -> str | None:
    """The service topic an instance topic belongs to, or ``None``."""
    service, hash_sign, instance = topic.partition("#")
    if hash_sign and service and _INSTANCE.fullmatch(instance):
        return service
    return None
