"""Every limit the server enforces, with its default, in one place.

A public server cannot assume its clients cooperate (docs/PROTOCOL.md, "Known
limits of the reference"). Each limit below says what happens when a
client reaches it; docs/LIMITS.md explains the trade-offs.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEFAULT_LIMITS", "Limits"]


@dataclass(frozen=True, slots=True, kw_only=True)  # named: fields may be added
class Limits:
    """Bounds on what one client connection may make the server hold or do.

    Sizes are in characters of text, not bytes: ``len`` of a ``str``
    costs nothing, encoding each message to count its bytes would. Python
    holds 1, 2 or 4 bytes per character (the widest one in the text decides).
    """

    max_frame_size: int = 1 << 20
    """A ``msg`` frame longer than this closes its channel with
    ``err,T,413 message too large``; any other frame this long is ignored.
    1 MiB, as ``websockets`` takes by default: the original JavaScript
    client sends messages of any size and carries several hundred KiB."""

    max_topic_length: int = 256
    """A ``sub`` whose topic is longer is ignored and counted (no reply, so
    that junk cannot make the server write)."""

    max_channels: int = 256
    """Open channels per connection; a further ``sub`` is refused with
    ``err,T,429 too many channels``."""

    subscribe_rate: float = 50.0
    """``sub`` frames per second allowed on average per connection ..."""

    subscribe_burst: int = 500
    """... and at once. Going past it closes the connection with code 4029,
    reason ``too many subscriptions``."""

    max_queue: int = 1024
    """Unread messages per channel. When a handler falls that far behind,
    its channel (and only it) is closed with ``err,T,503 channel
    overloaded`` and its unread messages are dropped: the other channels
    and the connection go on."""

    max_queue_size: int = 1 << 20
    """Unread characters per channel: a message that would take its inbox
    above this sheds the channel as ``max_queue`` does. An empty inbox
    takes any message (at most ``max_frame_size``), so a handler that
    keeps up is never shed whatever the two are set to."""

    max_connection_queue_size: int = 4 << 20
    """Unread characters across the channels of one connection, including
    channels already closed whose handler has not read them yet (nor
    returned). A message
    that would go above it sheds the open channel with the most unread
    characters (503, as above) until it fits; if no open channel holds any,
    the message's own channel is shed."""

    write_limit: int = 1 << 20
    """Queued outgoing characters per connection (the high-water mark).
    Above it, ``send`` waits until the writer hands the whole queue to the
    carrier in one batch, which empties the queue at once: so the low-water
    mark is zero, and a connection holds at most twice this plus one
    message, and the carrier's buffer (docs/LIMITS.md)."""

    slow_client_timeout: float = 30.0
    """Seconds a connection may stay above ``write_limit`` before it is
    closed with code 4008, reason ``slow client``."""

    max_message_size: int = (1 << 20) + (1 << 16)
    """Bytes of one message from a client, before it is decoded: a
    WebSocket message, or the body of a SockJS ``xhr_send`` or
    ``jsonp_send``. A larger WebSocket message closes the connection with
    1009; a larger body is answered 413 (and sockjs-client then closes
    the session). 1 MiB and 64 KiB: a ``max_frame_size`` frame of plain
    text, JSON-quoted, fits; so does the CPU it takes to decode the
    worst such message (some 45 ms), which every other client waits for."""

    max_message_frames: int = 65_536
    """Frames in one SockJS message (the JSON array of an ``xhr_send`` or
    ``jsonp_send`` body, or of a WebSocket message), which bounds the work
    one request can make. More is answered 500 ``Too many messages`` (a
    WebSocket closes with 1009), and none of them is delivered. A page
    that queues a burst while its previous send is on its way sends it
    whole in the next: this leaves room for bursts of tens of thousands."""

    frame_rate: float = 200_000.0
    """Frames per second one connection may make the server handle, on
    average, with bursts of ``max_message_frames``. Beyond it the server
    stops reading that connection for as long as it takes (an HTTP
    ``xhr_send`` waits for its answer): the client is slowed, not
    dropped, and its frames cost at most this much CPU per second.
    Whatever the rate, frames are handled a few hundred per event-loop
    turn, so that a message packed with frames never stalls the others."""

    max_sessions: int = 10_000
    """SockJS sessions open at once on one endpoint, over every transport
    (the HTTP ones, whose session lives between requests, and the
    WebSockets, SockJS-framed or raw). A request or handshake that would
    open one more is answered 503 (``Retry-After``) until one ends;
    sessions a client stops polling end after ``disconnect_delay``."""

    max_session_id_length: int = 64
    """Characters of a SockJS server or session id in a URL (any but ``/``
    and ``.``, as sockjs-node takes; sockjs-client sends 3 and 8). A longer
    one gets 404."""

    resume_grace: float = 60.0
    """Seconds a resumable connection (docs/PROTOCOL-EXTENSIONS.md, section
    3) outlives its carrier: its channels and handlers go on, and a client
    that reconnects within it carries on with nothing lost. After it, every
    channel closes with ``CloseReason.NOT_RESUMED``. Socket.IO keeps its
    recovery state two minutes; a phone that changes networks takes
    seconds."""
    resume_buffer: int = 4 << 20
    """Characters sent to a client of a resumable connection and not yet
    acknowledged. While the client is connected, senders wait above it
    (as above ``write_limit``); while it is away, going past it ends the
    connection as ``resume_grace`` does."""
    max_detached_sessions: int = 10_000
    """Resumable connections waiting for their client, per server. One more
    ends the one that has waited longest."""
    detached_buffer: int = 256 << 20
    """Characters kept, in all, for the resumable connections waiting for
    their client (each keeps at most ``resume_buffer``). Past it, the one
    that keeps most ends (``CloseReason.NOT_RESUMED``): without it, clients
    that fill their buffer and drop could make a server keep
    ``max_detached_sessions`` times ``resume_buffer``, and by the size
    rather than the age a few such clients cannot push out the others."""

    max_stream_positions: int = 256
    """Group positions (``pos`` frames, docs/PROTOCOL-EXTENSIONS.md, section
    4) a client may present on one connection and not yet used by a join;
    further ones are ignored, and those groups replay nothing."""

    presence_queue: int = 1024
    """Presence changes (joins and departures) one watcher of a group has
    not read yet (docs/PROTOCOL-EXTENSIONS.md, section 6). One more drops
    them all: the watcher reads a snapshot of the members, marked as a gap,
    and goes on from there. Joins, leaves and other watchers never wait."""

    max_presence_shares: int = 64
    """Groups whose presence the channels of one connection share with
    their client (``Channel.share_presence``). One more raises
    :class:`~websocket_multiplex.LocalProtocolError` in the handler."""

    max_outstanding_requests: int = 64
    """Requests (docs/PROTOCOL-EXTENSIONS.md, section 5) in flight per
    channel and per direction. A handler's ``channel.request()`` past it
    raises :class:`~websocket_multiplex.RequestFailed` (429) at once; a
    client's request past it is answered ``rer,T,<id>,429 too many
    requests``. A request the service has not answered holds its place
    until it is answered or the channel closes; requests waiting to be
    read count in the inbox bounds above, as messages do."""

    def __post_init__(self) -> None:
        for name in self.__slots__:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise TypeError(
                    f"Limits.{name} must be a number, not {type(value).__name__} "
                    f"{value!r}"
                )
            if value <= 0:
                raise ValueError(f"Limits.{name} must be positive, not {value!r}")


DEFAULT_LIMITS = Limits()
