"""What a service may know about the client: captured when it connects.

Transports differ in what they keep (SockJS forgets its HTTP request as
soon as a polling request ends), so every adapter copies the facts into a
:class:`RequestInfo` at connect time and channels expose that copy.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

__all__ = ["Headers", "RequestInfo"]


class Headers(Mapping[str, str]):
    """Read-only HTTP headers with case-insensitive names.

    Repeated headers are joined with ``", "`` as RFC 9110 allows, except
    ``Cookie``, which HTTP/2 splits into lines joined back with ``"; "``
    (RFC 9113, section 8.2.3).
    """

    __slots__ = ("_items",)

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        merged: dict[str, str] = {}
        for name, value in items:
            key = name.lower()
            if key in merged:
                separator = "; " if key == "cookie" else ", "
                value = f"{merged[key]}{separator}{value}"
            merged[key] = value
        self._items = merged

    def __getitem__(self, name: str) -> str:
        return self._items[name.lower()]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"


@dataclass(frozen=True, slots=True)
class RequestInfo:
    """The HTTP request that opened the connection, as plain data."""

    path: str = "/"
    query_string: str = ""
    headers: Headers = field(default_factory=Headers)
    remote_address: str | None = None

    @property
    def query(self) -> dict[str, str]:
        """Query parameters; the first value wins when a name repeats."""
        params: dict[str, str] = {}
        for name, value in parse_qsl(self.query_string, keep_blank_values=True):
            params.setdefault(name, value)
        return params

    @property
    def cookies(self) -> dict[str, str]:
        """Cookies sent with the request, read the way browsers write them.

        ``http.cookies`` parses Set-Cookie syntax and drops the whole jar on
        one odd cookie, so this follows RFC 6265 section 4.2 leniently:
        ``name=value`` pairs split on ``;``, the first of a name wins.
        """
        jar: dict[str, str] = {}
        for pair in self.headers.get("cookie", "").split(";"):
            name, equals, value = pair.partition("=")
            name, value = name.strip(), value.strip()
            if not equals or not name:
                continue
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            jar.setdefault(name, value)
        return jar

    @property
    def origin(self) -> str | None:
        return self.headers.get("origin")
