"""How one SockJS endpoint behaves: the options both drivers take.

Named as sockjs-node 0.3.24 names them where it has the notion, with its
defaults; :class:`~websocket_multiplex.Limits` holds the bounds.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

__all__ = ["DEFAULT_SOCKJS_URL", "RECEIVING_TRANSPORTS", "SockJSOptions"]

DEFAULT_SOCKJS_URL: Final = (
    "https://cdn.jsdelivr.net/npm/sockjs-client@1.6.1/dist/sockjs.min.js"
)
"""Where the iframe transports load sockjs-client from unless told otherwise."""

RECEIVING_TRANSPORTS: Final = frozenset(
    {"websocket", "xhr", "xhr_streaming", "eventsource", "htmlfile", "jsonp"}
)
"""The transports an endpoint offers, by the name of their URL."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SockJSOptions:
    """What a SockJS endpoint offers and how it times its sessions."""

    websocket: bool = True
    """Offer the websocket transports (``/info`` says so); ``False`` as
    sockjs-node's ``websocket: false``: their URLs answer 404."""

    disabled_transports: frozenset[str] = frozenset()
    """Receiving transports not to offer, by URL name (see
    :data:`RECEIVING_TRANSPORTS`); their URLs answer 404 and clients fall
    back to the next transport. ``"websocket"`` here is ``websocket=False``."""

    jsessionid: bool = False
    """Set a ``JSESSIONID`` cookie on session requests (echoing the
    client's, else ``dummy``) for load balancers that make sessions sticky
    by it; ``/info`` then says ``cookie_needed: true``."""

    response_limit: int = 128 * 1024
    """Characters one streaming response carries before it ends and the
    client opens the next, so that the browser can free what it received."""

    batch_limit: int = 32 * 1024
    """Characters of messages one frame carries at most (at least one
    message). A poll answer is one frame: kept small, it gets through a
    network that cuts long answers, and a client that resumes after a cut
    makes progress instead of fetching one huge catch-up again and again."""

    heartbeat_delay: float = 25.0
    """Seconds of silence after which ``h`` is sent: proxies drop idle
    connections, clients take silence for a dead server."""

    disconnect_delay: float = 5.0
    """Seconds a session with no receiving request lives on; a polling
    client that stopped polling is gone after that long."""

    sockjs_url: str = DEFAULT_SOCKJS_URL
    """The sockjs-client script ``iframe.html`` loads (the iframe
    transports): sockjs-client 1.x, a URL or a path on this server."""

    allowed_origins: frozenset[str] | None = None
    """``Origin`` values to accept (``None``: any, as sockjs-node); others
    get 403 on every URL. A request without ``Origin`` is accepted."""

    compress: bool = False
    """Accept permessage-deflate on the WebSockets when a client offers it."""

    _offered: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in ("websocket", "jsessionid", "compress"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(
                    f"SockJSOptions.{name} must be True or False, "
                    f"not {getattr(self, name)!r}"
                )
        if not isinstance(self.sockjs_url, str):
            raise TypeError(
                f"SockJSOptions.sockjs_url must be a str, not {self.sockjs_url!r}"
            )
        unknown = set(self.disabled_transports) - RECEIVING_TRANSPORTS
        if unknown:
            raise ValueError(
                f"unknown transports in disabled_transports: {sorted(unknown)}; "
                f"the names are {sorted(RECEIVING_TRANSPORTS)}"
            )
        for name in (
            "response_limit",
            "batch_limit",
            "heartbeat_delay",
            "disconnect_delay",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise TypeError(f"SockJSOptions.{name} must be a number, not {value!r}")
            if value <= 0:
                raise ValueError(f"SockJSOptions.{name} must be positive, not {value}")
        offered = RECEIVING_TRANSPORTS - set(self.disabled_transports)
        if not self.websocket:
            offered -= {"websocket"}
        object.__setattr__(self, "_offered", frozenset(offered))

    @classmethod
    def of(
        cls,
        *,
        allowed_origins: Iterable[str] | None = None,
        disabled_transports: Iterable[str] = (),
        **options: object,
    ) -> SockJSOptions:
        """Build from the keyword arguments the drivers take (any iterables)."""
        return cls(
            allowed_origins=None
            if allowed_origins is None
            else frozenset(allowed_origins),
            disabled_transports=frozenset(disabled_transports),
            **options,  # type: ignore[arg-type]
        )

    def offers(self, transport: str) -> bool:
        """Whether the receiving transport ``transport`` is offered."""
        return transport in self._offered

    @property
    def offers_websocket(self) -> bool:
        return "websocket" in self._offered
