"""Events the sans-I/O core hands back, as small values.

The server-side core (:mod:`websocket_multiplex.protocol`) turns each
incoming frame into at most one of these; the asyncio layer acts on them.
They print well, compare by value, and carry no behaviour. Treat them as
read-only: they are not frozen only because a frozen dataclass takes
twice as long to build, and one is built for every message received.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .codes import NO_SUCH_SERVICE

__all__ = [
    "ChannelClosedEvent",
    "ChannelOpened",
    "ChannelRefused",
    "CloseReason",
    "Event",
    "LeaveReason",
    "LimitExceeded",
    "MemberJoined",
    "MemberLeft",
    "MessagePublished",
    "MessageReceived",
    "PositionPresented",
    "PresenceChange",
    "PresenceEvent",
    "PresenceSnapshot",
    "ReplyReceived",
    "RequestDeclined",
    "RequestReceived",
    "StreamGap",
]


class CloseReason(enum.Enum):
    """Why a channel closed. The value is a sentence fit for a log line."""

    CLIENT_CLOSED = "the client unsubscribed"
    SERVER_CLOSED = "the service closed it"
    HANDLER_FAILED = "the service's handler raised an exception"
    CONNECTION_LOST = "the connection closed"
    SHUTDOWN = "the server is shutting down"
    REFUSED = "the server refused the channel"
    INBOX_FULL = "the application left too many messages unread"
    LIMIT_EXCEEDED = "the peer went past a limit"
    NOT_RESUMED = "the connection dropped and was not resumed in time"


@dataclass(slots=True)
class ChannelOpened:
    """The peer subscribed to a registered topic that was not open."""

    topic: str


@dataclass(slots=True)
class MessageReceived:
    """The peer sent ``payload`` on an open channel."""

    topic: str
    payload: str


@dataclass(slots=True)
class ChannelRefused:
    """A ``sub`` the server will not honour, and the notice that says why."""

    topic: str
    notice: str = NO_SUCH_SERVICE


@dataclass(slots=True)
class LimitExceeded:
    """The peer went past one of :class:`~websocket_multiplex.Limits`.

    With a ``topic``, only that channel is to be closed (with ``notice``);
    without, the whole connection.
    """

    limit: str
    topic: str | None = None
    notice: str = ""


@dataclass(slots=True)
class ChannelClosedEvent:
    """An open channel is now closed, and why.

    ``detail`` is the server's refusal notice (``"404 no such service"``)
    when it sent one (docs/PROTOCOL-EXTENSIONS.md), else ``""``.
    """

    topic: str
    reason: CloseReason
    detail: str = ""


@dataclass(slots=True)
class PositionPresented:
    """A client said where its channel ``topic`` stands in ``group``'s
    history (a ``pos`` frame, docs/PROTOCOL-EXTENSIONS.md, section 4)."""

    topic: str
    group: str
    epoch: str
    offset: str


@dataclass(slots=True)
class MessagePublished:
    """A group message for the client's channel ``topic``, with its place
    in the group's history (a ``pub`` frame)."""

    topic: str
    payload: str
    group: str
    epoch: str
    offset: str


@dataclass(slots=True)
class StreamGap:
    """The server could not replay all of ``group``'s messages that the
    client's channel ``topic`` missed (a ``gap`` frame)."""

    topic: str
    group: str


@dataclass(slots=True)
class RequestReceived:
    """The peer asks for a reply to ``payload`` on an open channel, under
    ``request_id`` (docs/PROTOCOL-EXTENSIONS.md, section 5)."""

    topic: str
    request_id: str
    payload: str


@dataclass(slots=True)
class ReplyReceived:
    """The peer answered our request ``request_id``: with ``payload``, or,
    when ``notice`` is not ``None``, with an error (``"501 ..."``)."""

    topic: str
    request_id: str
    payload: str
    notice: str | None = None


@dataclass(slots=True)
class RequestDeclined:
    """A request the core will not hand on (a bound): answer it with
    ``rer`` and ``notice`` at once."""

    topic: str
    request_id: str
    notice: str


Event = (
    ChannelOpened
    | MessageReceived
    | ChannelClosedEvent
    | ChannelRefused
    | LimitExceeded
    | PositionPresented
    | MessagePublished
    | StreamGap
    | RequestReceived
    | ReplyReceived
    | RequestDeclined
)


# -- presence (docs/PROTOCOL-EXTENSIONS.md, section 6) ---------------------------
# Frozen: one is built per join or leave, not per message.


class LeaveReason(enum.Enum):
    """Why a member left a group. The value is its name on the wire."""

    LEFT = "left"
    """It left the group, or its channel closed."""
    EXPIRED = "expired"
    """Its server process stopped refreshing its presence (it died, or lost
    Redis for longer than ``presence_ttl``): a live process noticed."""


@dataclass(frozen=True, slots=True)
class MemberJoined:
    """``member`` (a :attr:`Channel.member_id`) joined ``group``."""

    group: str
    member: str


@dataclass(frozen=True, slots=True)
class MemberLeft:
    """``member`` left ``group``, and why."""

    group: str
    member: str
    reason: LeaveReason = LeaveReason.LEFT


@dataclass(frozen=True, slots=True)
class PresenceSnapshot:
    """The members of ``group`` now: the first event of every watch, then
    again after a gap.

    ``gap`` is ``False`` for the first one. ``True`` means that changes were
    missed (the watcher fell ``Limits.presence_queue`` changes behind, or
    the broker lost its connection to the other processes): forget what
    came before and start again from these members; the changes that
    follow apply to them.
    """

    group: str
    members: frozenset[str]
    gap: bool = False


PresenceChange = MemberJoined | MemberLeft
"""What a broker reports as it happens."""

PresenceEvent = MemberJoined | MemberLeft | PresenceSnapshot
"""What a presence watcher reads."""
