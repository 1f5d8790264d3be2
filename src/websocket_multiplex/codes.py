"""The numbers both sides agree on, named once.

Two kinds (docs/PROTOCOL-EXTENSIONS.md):

- **Notices**: the text of an ``err,<topic>,<notice>`` frame, sent just
  before a server-side ``uns``. A notice is ``"<code> <sentence>"``; peers
  of the base protocol ignore the ``err`` frame. Our clients read the code
  with :func:`notice_code` and keep a channel closed with
  :attr:`NoticeCode.GOING_AWAY` to subscribe it again after a reconnect.
- **Close codes** of the carrier (WebSocket close codes, and SockJS's close
  frame): what a whole connection ended with.
"""

from __future__ import annotations

import enum
from typing import Final

__all__ = [
    "FORBIDDEN",
    "GOING_AWAY",
    "NO_SUCH_SERVICE",
    "OVERLOADED",
    "SERVICE_FAILED",
    "TOO_LARGE",
    "TOO_MANY_CHANNELS",
    "CloseCode",
    "NoticeCode",
    "RequestCode",
    "notice_code",
]


class NoticeCode(enum.IntEnum):
    """The code that starts a refusal notice."""

    FORBIDDEN = 403
    """The service refused this client (authorization)."""
    NOT_FOUND = 404
    """No service is registered under that name."""
    TOO_LARGE = 413
    """A message was longer than ``Limits.max_frame_size``."""
    TOO_MANY = 429
    """A limit was reached (too many channels)."""
    SERVICE_FAILED = 500
    """The service's handler failed."""
    OVERLOADED = 503
    """The service left too many of the channel's messages unread."""
    GOING_AWAY = 1001
    """The server is shutting down: a restart, not a refusal."""


FORBIDDEN: Final = f"{NoticeCode.FORBIDDEN:d} refused"
NO_SUCH_SERVICE: Final = f"{NoticeCode.NOT_FOUND:d} no such service"
TOO_LARGE: Final = f"{NoticeCode.TOO_LARGE:d} message too large"
TOO_MANY_CHANNELS: Final = f"{NoticeCode.TOO_MANY:d} too many channels"
SERVICE_FAILED: Final = f"{NoticeCode.SERVICE_FAILED:d} service failed"
OVERLOADED: Final = f"{NoticeCode.OVERLOADED:d} channel overloaded"
GOING_AWAY: Final = f"{NoticeCode.GOING_AWAY:d} server shutting down"


def notice_code(notice: str) -> int | None:
    """The code a notice starts with (``"404 no such service"``: 404), or
    ``None`` if it starts with none."""
    code, _, _ = notice.partition(" ")
    return int(code) if code.isascii() and code.isdigit() and len(code) <= 4 else None


class RequestCode(enum.IntEnum):
    """The code of a request that got no reply: the code of an
    ``rer,<topic>,<id>,<code> <text>`` frame (docs/PROTOCOL-EXTENSIONS.md,
    section 5), or one the requester's side gives itself (``LOST``,
    ``TIMEOUT``), carried by :class:`~websocket_multiplex.RequestFailed`."""

    REFUSED = 400
    """The answerer refused it (``request.fail(text)``'s default code)."""
    TOO_LARGE = 413
    """The request was longer than the answerer's ``Limits.max_frame_size``."""
    TOO_MANY = 429
    """More requests were outstanding on the channel than
    ``max_outstanding_requests`` allows (said locally, or by the answerer)."""
    FAILED = 500
    """The answerer's handler raised while answering it."""
    NO_ANSWERER = 501
    """Nothing on that channel answers requests."""
    LOST = 502
    """The connection was replaced without resuming the session: the
    request may or may not have been answered (never on the wire)."""
    TIMEOUT = 504
    """No reply within the timeout (never on the wire)."""


class CloseCode(enum.IntEnum):
    """Close codes of a carrier connection."""

    NORMAL = 1000
    GOING_AWAY = 1001
    """The server is shutting down."""
    PROTOCOL_ERROR = 1002
    """SockJS framing was broken."""
    MESSAGE_TOO_BIG = 1009
    """A SockJS message held more frames than ``Limits.max_message_frames``,
    or a WebSocket message was longer than ``Limits.max_message_size``."""
    APPLICATION = 3000
    """SockJS's stand-in for a code it does not carry (and for a plain
    SockJS handler that failed)."""
    SLOW_CLIENT = 4008
    """The client read too slowly: its output stayed above
    ``Limits.write_limit`` for ``slow_client_timeout``."""
    TOO_MANY_SUBSCRIPTIONS = 4029
    """The client subscribed faster than ``Limits.subscribe_rate``."""
