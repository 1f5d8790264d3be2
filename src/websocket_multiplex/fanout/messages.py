"""What brokers carry: a published message, and what a history gives back."""

from __future__ import annotations

from dataclasses import dataclass

from ..streams import Position

__all__ = ["Delivery", "Replay"]


@dataclass(frozen=True, slots=True)
class Delivery:
    """One published message, as every subscribed process receives it.

    ``exclude`` is the member id (see :attr:`Channel.member_id`) of a
    channel that must not receive it, usually the sender's. ``position``
    is where it stands in the group's history, given by a broker that
    keeps one (docs/PROTOCOL-EXTENSIONS.md, section 4), else ``None``.
    """

    group: str
    message: str
    exclude: str | None = None
    position: Position | None = None


@dataclass(frozen=True, slots=True)
class Replay:
    """What a group's history holds after a position, in order.

    ``complete`` is false when some message after that position is no longer
    kept (trimmed, expired, or its epoch is gone): the member then has a
    gap, and ``deliveries`` holds only what is left of the same history.
    """

    deliveries: tuple[Delivery, ...]
    complete: bool
