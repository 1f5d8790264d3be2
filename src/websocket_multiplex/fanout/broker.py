"""The broker seam: how one server process hears what others publish."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from typing import Protocol, runtime_checkable

from ..exceptions import BrokerUnavailable  # defined with the error tree
from ..streams import Position
from .history import History
from .messages import Delivery, Replay
from .presence import MemoryPresence, PresenceListener

__all__ = ["Broker", "BrokerUnavailable", "Delivery", "InMemoryBroker", "Replay"]


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

    async def history(self, group: str, since: Position) -> Replay:
        """What ``group``'s history holds after ``since``, for a member that
        comes back (``Replay((), complete=False)`` from a broker that keeps
        none). Raise :class:`BrokerUnavailable` if it cannot be read."""
        ...

    async def close(self) -> None: ...


class InMemoryBroker:
    """Fan-out within one process: zero configuration, the default.

    It keeps the last ``history_size`` messages of each group, none older
    than ``history_age`` seconds, so that a member that comes back (a
    client whose session could not be resumed) gets what it missed
    (docs/PROTOCOL-EXTENSIONS.md, section 4). ``history_size=0`` keeps
    nothing: messages then carry no position.
    """

    def __init__(self, *, history_size: int = 1000, history_age: float = 300.0) -> None:
        self._deliver: Deliver | None = None
        self._groups: set[str] = set()
        self._presence: dict[str, set[str]] = {}
        self._history = History(history_size, history_age) if history_size else None
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
        if self._history is not None:
            delivery = self._history.record(delivery, time.monotonic())
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

    async def history(self, group: str, since: Position) -> Replay:
        if self._history is None:
            return Replay((), complete=False)
        return self._history.since(group, since, time.monotonic())

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
