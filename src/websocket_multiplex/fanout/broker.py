"""The broker seam: how one server process hears what others publish."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from ..exceptions import BrokerUnavailable  # defined with the error tree
from .presence import MemoryPresence, PresenceListener

__all__ = ["Broker", "BrokerUnavailable", "Delivery", "InMemoryBroker"]


@dataclass(frozen=True, slots=True)
class Delivery:
    """One published message, as every subscribed process receives it.

    ``exclude`` is the member id (see :attr:`Channel.member_id`) of a
    channel that must not receive it, usually the sender's.
    """

    group: str
    message: str
    exclude: str | None = None


Deliver = Callable[[Delivery], None]


@runtime_checkable
class Broker(Protocol):
    """What a :class:`~websocket_multiplex.MultiplexServer` needs for fan-out.

    The server subscribes a group once, when its first local member joins,
    and unsubscribes when the last one leaves; ``deliver`` is called (on
    the event loop, never concurrently) for every message published to a
    subscribed group by any process, this one included, in publish order
    per publisher.
    """

    async def start(self, deliver: Deliver) -> None: ...

    async def subscribe(self, group: str) -> None: ...

    async def unsubscribe(self, group: str) -> None: ...

    async def publish(self, delivery: Delivery) -> None:
        """Raise :class:`BrokerUnavailable` if it cannot be published."""
        ...

    async def set_presence(self, group: str, member: str, present: bool) -> None:
        """Record that ``member`` is (or no longer is) in ``group``.

        Removing a member that is absent must do nothing: when a channel
        leaves while its join is writing its presence, the server removes
        it again once that write returned, since the two may run in either
        order.
        """
        ...

    async def members(self, group: str) -> list[str]:
        """Members of ``group`` in every live process."""
        ...

    async def close(self) -> None: ...


class InMemoryBroker:
    """Fan-out within one process: zero configuration, the default."""

    def __init__(self) -> None:
        self._deliver: Deliver | None = None
        self._groups: set[str] = set()
        self._presence: dict[str, set[str]] = {}
        self._changes = MemoryPresence()

    async def start(self, deliver: Deliver) -> None:
        self._deliver = deliver

    async def subscribe(self, group: str) -> None:
        self._groups.add(group)

    async def unsubscribe(self, group: str) -> None:
        self._groups.discard(group)

    async def publish(self, delivery: Delivery) -> None:
        if self._deliver is None:
            raise BrokerUnavailable("the broker is not started: mount the server first")
        if delivery.group in self._groups:
            self._deliver(delivery)

    async def set_presence(self, group: str, member: str, present: bool) -> None:
        members = self._presence.setdefault(group, set())
        changed = (member in members) != present
        if present:
            members.add(member)
        else:
            members.discard(member)
            if not members:
                del self._presence[group]
        if changed:
            self._changes.report(group, member, present)

    async def members(self, group: str) -> list[str]:
        return sorted(self._presence.get(group, ()))

    async def close(self) -> None:
        self._deliver = None

    # -- presence events (fanout/presence.py) --------------------------------------

    def listen_presence(self, listener: PresenceListener) -> None:
        self._changes.listen(listener)

    async def watch_presence(self, group: str) -> None:
        self._changes.watch(group)

    async def unwatch_presence(self, group: str) -> None:
        self._changes.unwatch(group)


def process_id() -> str:
    """A name for this server process, unique enough across machines."""
    return f"{socket.gethostname()}:{os.getpid()}:{int(time.time())}"
