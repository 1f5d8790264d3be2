"""What a SockJS endpoint answers to each HTTP request, as data.

:func:`route` reads a request below the endpoint's prefix and returns
either a whole :class:`Response` (the greeting, ``/info``, ``iframe.html``,
CORS preflights, 404, 405, 403 for a refused origin) or a :class:`Route`
to a session: a receiving request, a sending one, or a WebSocket. The
driver then asks :func:`receiving_response` how to start a receiving
response, :func:`decode_send` what a sending request carries and
:func:`sent_response` how to answer it.

The URLs, methods, headers and bodies are sockjs-node 0.3.24's, which
sockjs-client expects and the sockjs-protocol suite checks; where
sockjs-node lets a client do harm, the answer is safer and says so. Every
response says ``X-Content-Type-Options: nosniff``.
"""

from __future__ import annotations

import enum
import hashlib
import html
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final
from urllib.parse import parse_qsl

from ..exceptions import BrokenFraming
from ..limits import Limits
from ..request import Headers
from .frames import (
    decode_client_message,
    eventsource_chunk,
    htmlfile_chunk,
    htmlfile_prelude,
    jsonp_chunk,
    xhr_chunk,
)
from .options import SockJSOptions
from .session import Receiver

__all__ = [
    "Kind",
    "Request",
    "Response",
    "Route",
    "decode_send",
    "error_response",
    "not_found",
    "origin_allowed",
    "receiver_for",
    "receiving_response",
    "route",
    "sent_response",
]

HeaderList = tuple[tuple[str, str], ...]
_YEAR: Final = 365 * 24 * 3600
_NO_CACHE: Final = "no-store, no-cache, no-transform, must-revalidate, max-age=0"
_TEXT: Final = "text/plain; charset=UTF-8"
_JAVASCRIPT: Final = "application/javascript; charset=UTF-8"
_NOSNIFF: Final = ("X-Content-Type-Options", "nosniff")


@dataclass(frozen=True, slots=True)
class Request:
    """An HTTP request below the endpoint's prefix, as the driver read it.

    ``path`` is what follows the prefix (``""``, ``"/info"``,
    ``"/000/abc/xhr"``), percent-decoded; ``upgrade`` whether it asks for
    a WebSocket (``Upgrade: websocket`` with ``Connection: upgrade``).
    """

    method: str
    path: str
    query_string: str = ""
    headers: Headers = field(default_factory=Headers)
    upgrade: bool = False

    @property
    def origin(self) -> str | None:
        return self.headers.get("origin")


@dataclass(frozen=True, slots=True)
class Response:
    """A whole HTTP response."""

    status: int
    headers: HeaderList = ()
    body: bytes = b""


class Kind(enum.Enum):
    """What a request to a session URL (or ``/websocket``) does."""

    XHR = "xhr"
    XHR_STREAMING = "xhr_streaming"
    EVENTSOURCE = "eventsource"
    HTMLFILE = "htmlfile"
    JSONP = "jsonp"
    XHR_SEND = "xhr_send"
    JSONP_SEND = "jsonp_send"
    WEBSOCKET = "websocket"
    """SockJS framing over a WebSocket: ``<prefix>/<server>/<session>/websocket``."""
    RAW_WEBSOCKET = "raw_websocket"
    """No framing at all: ``<prefix>/websocket``."""

    @property
    def receives(self) -> bool:
        """A receiving request: it holds the session and carries frames."""
        return self in _RECEIVING

    @property
    def sends(self) -> bool:
        return self in (Kind.XHR_SEND, Kind.JSONP_SEND)

    @property
    def websocket(self) -> bool:
        return self in (Kind.WEBSOCKET, Kind.RAW_WEBSOCKET)


_RECEIVING: Final = frozenset(
    {Kind.XHR, Kind.XHR_STREAMING, Kind.EVENTSOURCE, Kind.HTMLFILE, Kind.JSONP}
)


@dataclass(frozen=True, slots=True)
class Route:
    """A request for a session (or for the raw WebSocket)."""

    kind: Kind
    session_id: str = ""
    callback: str = ""
    """The page's function (htmlfile, jsonp), checked."""


# -- routing -----------------------------------------------------------------

# Server and session ids: anything but "/" and "."; our length bound on top.
_SESSION_PATH: Final = re.compile(r"/([^/.]+)/([^/.]+)/([a-z_]+)/?")
_IFRAME: Final = re.compile(r"/iframe[0-9\-.a-z_]*\.html/?")
_CALLBACK: Final = re.compile(r"[a-zA-Z0-9\-_.]{1,32}")

# Methods each URL answers, in sockjs-node's order (for Allow on a 405).
_SESSION_METHODS: Final = {
    "xhr": ("POST", "OPTIONS"),
    "xhr_send": ("POST", "OPTIONS"),
    "xhr_streaming": ("POST", "OPTIONS"),
    "jsonp": ("GET",),
    "jsonp_send": ("POST",),
    "eventsource": ("GET",),
    "htmlfile": ("GET",),
    "websocket": ("GET",),
}
# Which receiving transports use each sending URL.
_SENDERS: Final = {
    "xhr_send": ("xhr", "xhr_streaming", "eventsource", "htmlfile"),
    "jsonp_send": ("jsonp",),
}


def route(
    request: Request,
    options: SockJSOptions,
    limits: Limits,
    entropy: Callable[[], int],
    now: float,
) -> Route | Response:
    """Decide what ``request`` gets. ``entropy()`` is a random 32-bit
    number, for ``/info``; ``now`` the wall clock (seconds since the
    epoch), for the ``Expires`` of what is cached."""
    if not origin_allowed(request.origin, options.allowed_origins):
        return Response(403, (("Content-Type", _TEXT), _NOSNIFF), b"origin not allowed")
    path, method = request.path, request.method
    if path in ("", "/"):
        return _only(method, ("GET",)) or _greeting()
    if path in ("/info", "/info/"):
        if method == "OPTIONS":
            return _preflight(request, options, "OPTIONS, GET", now)
        return _only(method, ("OPTIONS", "GET")) or _info(request, options, entropy())
    if _IFRAME.fullmatch(path):
        return _only(method, ("GET",)) or _iframe(request, options, now)
    if path in ("/websocket", "/websocket/"):
        refused = _only(method, ("GET",))
        return refused or _websocket(request, options, Route(Kind.RAW_WEBSOCKET), now)
    match = _SESSION_PATH.fullmatch(path)
    if match is None:
        return not_found()
    server_id, session_id, transport = match.groups()
    methods = _SESSION_METHODS.get(transport)
    too_long = max(len(server_id), len(session_id)) > limits.max_session_id_length
    if methods is None or too_long or not _offered(transport, options):
        return not_found()
    if method == "OPTIONS" and "OPTIONS" in methods:
        return _preflight(request, options, "OPTIONS, POST", now)
    refused = _only(method, methods)
    if refused is not None:
        return refused
    if transport == "websocket":
        return _websocket(request, options, Route(Kind.WEBSOCKET, session_id), now)
    kind = Kind(transport)
    if kind in (Kind.HTMLFILE, Kind.JSONP):
        return _with_callback(request, kind, session_id)
    return Route(kind, session_id)


def origin_allowed(origin: str | None, allowed: frozenset[str] | None) -> bool:
    """Whether ``allowed_origins`` lets a request with ``origin`` in. One
    without ``Origin`` comes from no browser, and could forge any: it is
    let in (the check keeps foreign pages from using a browser's cookies)."""
    return allowed is None or origin is None or origin in allowed


def _offered(transport: str, options: SockJSOptions) -> bool:
    if transport == "websocket":
        return options.offers_websocket
    receivers = _SENDERS.get(transport, (transport,))
    return any(options.offers(name) for name in receivers)


def _only(method: str, methods: tuple[str, ...]) -> Response | None:
    """405 unless ``method`` is one of ``methods`` (no body, no type)."""
    if method in methods:
        return None
    return Response(405, (("Allow", ", ".join(methods)), _NOSNIFF))


def not_found(request: Request | None = None) -> Response:
    """404, as sockjs-node words it; with CORS given the ``request`` (an
    ``xhr_send`` to a session that ended: the page must see the 404)."""
    headers: HeaderList = (("Content-Type", _TEXT), _NOSNIFF)
    if request is not None:
        headers = (*headers, *_cors(request))
    return Response(404, headers, b"404 Error: Page not found\n")


def _websocket(
    request: Request, options: SockJSOptions, found: Route, now: float
) -> Route | Response:
    if not options.offers_websocket:
        return Response(404, (*_cache_for(now), _NOSNIFF))
    if not request.upgrade:
        return error_response(400, "Not a valid websocket request", request)
    return found


def _with_callback(request: Request, kind: Kind, session_id: str) -> Route | Response:
    query = dict(parse_qsl(request.query_string, keep_blank_values=True))
    callback = query.get("c", query.get("callback"))
    if callback is None:
        return error_response(500, '"callback" parameter required', request)
    if not _CALLBACK.fullmatch(callback):
        return error_response(500, 'invalid "callback" parameter', request)
    return Route(kind, session_id, callback)


def error_response(status: int, text: str, request: Request | None = None) -> Response:
    """An error with a one-line explanation (sockjs-node's wording).

    Given the ``request`` it answers, the error carries CORS headers too:
    without them a browser hides the status and the text from the page, and
    reports a CORS failure instead of, say, a 413."""
    headers: HeaderList = (("Content-Type", _TEXT), _NOSNIFF)
    if request is not None:
        headers = (*headers, *_cors(request))
    return Response(status, headers, text.encode())


# -- headers -----------------------------------------------------------------


def _cors(request: Request) -> HeaderList:
    """CORS as sockjs-node answers it, which sockjs-client needs: the
    origin echoed (``*`` without one), with credentials for cookies."""
    origin = request.origin
    headers: list[tuple[str, str]] = []
    if origin is None:
        headers.append(("Access-Control-Allow-Origin", "*"))
    else:
        headers.append(("Access-Control-Allow-Origin", origin))
        headers.append(("Access-Control-Allow-Credentials", "true"))
    headers.append(("Vary", "Origin"))
    asked = request.headers.get("access-control-request-headers")
    if asked:
        headers.append(("Access-Control-Allow-Headers", asked))
    return tuple(headers)


def _cache_for(now: float) -> HeaderList:
    expires = datetime.fromtimestamp(now, UTC) + timedelta(seconds=_YEAR)
    return (
        ("Cache-Control", f"public, max-age={_YEAR}"),
        ("Expires", expires.strftime("%a, %d %b %Y %H:%M:%S GMT")),
    )


def _jsessionid(request: Request, options: SockJSOptions) -> HeaderList:
    """The sticky-session cookie, set on every session request so that a
    load balancer can add its own (sockjs-node's ``jsessionid``)."""
    if not options.jsessionid:
        return ()
    value = _cookie(request.headers.get("cookie", ""), "JSESSIONID") or "dummy"
    return (("Set-Cookie", f"JSESSIONID={value}; path=/"),)


_COOKIE_VALUE: Final = re.compile(r"[!#-+\--:<-\[\]-~]{1,256}")


def _cookie(header: str, name: str) -> str | None:
    for pair in header.split(";"):
        key, _, value = pair.strip().partition("=")
        if key == name:
            value = value.strip()
            # Echoed into Set-Cookie: only what a cookie value may hold.
            return value if _COOKIE_VALUE.fullmatch(value) else None
    return None


def _session_headers(request: Request, options: SockJSOptions) -> HeaderList:
    return (*_jsessionid(request, options), ("Cache-Control", _NO_CACHE), _NOSNIFF)


# -- whole responses ---------------------------------------------------------


def _greeting() -> Response:
    return Response(200, (("Content-Type", _TEXT), _NOSNIFF), b"Welcome to SockJS!\n")


def _info(request: Request, options: SockJSOptions, entropy: int) -> Response:
    body = json.dumps(
        {
            "websocket": options.offers_websocket,
            "origins": ["*:*"],
            "cookie_needed": options.jsessionid,
            "entropy": entropy,
        }
    ).encode()
    headers = (
        ("Content-Type", "application/json; charset=UTF-8"),
        ("Cache-Control", _NO_CACHE),
        *_cors(request),
        _NOSNIFF,
    )
    return Response(200, headers, body)


def _preflight(
    request: Request, options: SockJSOptions, methods: str, now: float
) -> Response:
    headers = (
        *_jsessionid(request, options),
        *_cors(request),
        *_cache_for(now),
        ("Access-Control-Allow-Methods", methods),
        ("Access-Control-Max-Age", str(_YEAR)),
        _NOSNIFF,
    )
    return Response(204, headers)


def _iframe_page(sockjs_url: str) -> bytes:
    return (
        "<!DOCTYPE html>\n"
        "<html>\n"
        "<head>\n"
        '  <meta http-equiv="X-UA-Compatible" content="IE=edge" />\n'
        '  <meta http-equiv="Content-Type" content="text/html; charset=UTF-8" />\n'
        f'  <script src="{html.escape(sockjs_url)}"></script>\n'
        "  <script>\n"
        "    document.domain = document.domain;\n"
        "    SockJS.bootstrap_iframe();\n"
        "  </script>\n"
        "</head>\n"
        "<body>\n"
        "  <h2>Don't panic!</h2>\n"
        "  <p>This is a SockJS hidden iframe. It's used for cross domain magic.</p>\n"
        "</body>\n"
        "</html>\n"
    ).encode()


def _iframe(request: Request, options: SockJSOptions, now: float) -> Response:
    """The page the iframe transports load; strongly cacheable, by ETag."""
    page = _iframe_page(options.sockjs_url)
    etag = f'"{hashlib.md5(page, usedforsecurity=False).hexdigest()}"'
    if request.headers.get("if-none-match") == etag:
        return Response(304, (*_cache_for(now), ("ETag", etag), _NOSNIFF))
    headers = (
        ("Content-Type", "text/html; charset=UTF-8"),
        *_cache_for(now),
        ("ETag", etag),
        _NOSNIFF,
    )
    return Response(200, headers, page)


# -- receiving requests ------------------------------------------------------


def receiving_response(
    found: Route, request: Request, options: SockJSOptions
) -> tuple[int, HeaderList, str]:
    """Status, headers and prelude (written before any frame) of a
    receiving request's response."""
    kind = found.kind
    headers = _session_headers(request, options)
    if kind is Kind.XHR:
        return 200, (("Content-Type", _JAVASCRIPT), *headers, *_cors(request)), ""
    if kind is Kind.XHR_STREAMING:
        # 2 KiB first: Internet Explorer shows nothing of a streamed XHR
        # before it has that much.
        prelude = "h" * 2048 + "\n"
        return 200, (("Content-Type", _JAVASCRIPT), *headers, *_cors(request)), prelude
    if kind is Kind.EVENTSOURCE:
        cors = _cors(request)
        if request.origin == "null":  # a file:// page: "*" is what works
            cors = (("Access-Control-Allow-Origin", "*"), *cors[2:])
        # An empty line first: Opera once needed it.
        return 200, (("Content-Type", "text/event-stream"), *headers, *cors), "\r\n"
    if kind is Kind.HTMLFILE:
        prelude = htmlfile_prelude(found.callback)
        return 200, (("Content-Type", "text/html; charset=UTF-8"), *headers), prelude
    return 200, (("Content-Type", _JAVASCRIPT), *headers), ""  # jsonp


def receiver_for(found: Route, options: SockJSOptions) -> Receiver:
    """The session's view of a receiving request: its framing and when it ends."""
    kind, limit = found.kind, options.response_limit
    if kind is Kind.XHR:
        return Receiver(xhr_chunk, polling=True, response_limit=limit)
    if kind is Kind.XHR_STREAMING:
        return Receiver(xhr_chunk, polling=False, response_limit=limit)
    if kind is Kind.EVENTSOURCE:
        return Receiver(
            eventsource_chunk, polling=False, response_limit=limit, ends_unseen=True
        )
    if kind is Kind.HTMLFILE:
        return Receiver(htmlfile_chunk, polling=False, response_limit=limit)
    callback = found.callback

    def jsonp(frame: str) -> str:
        return jsonp_chunk(callback, frame)

    return Receiver(jsonp, polling=True, response_limit=limit)


# -- sending requests --------------------------------------------------------


def decode_send(
    found: Route, request: Request, body: bytes, limits: Limits
) -> list[str]:
    """The messages a sending request carries; raises
    :class:`~websocket_multiplex.exceptions.BrokenFraming` with the text
    to answer 500 with. A body that is not UTF-8 is read as sockjs-node
    reads it: invalid bytes become U+FFFD (outside a JSON string, that is
    broken JSON; inside one, part of the message)."""
    text = body.decode("utf-8", "replace")
    if found.kind is Kind.JSONP_SEND:
        content_type = request.headers.get("content-type", "").split(";")[0].strip()
        if content_type == "application/x-www-form-urlencoded":
            text = _form_field(text, "d")
    return decode_client_message(text, max_messages=limits.max_message_frames)


def _form_field(body: str, name: str) -> str:
    try:
        # A field cap, so that a body of a million "&" costs nothing.
        fields = parse_qsl(body, keep_blank_values=True, max_num_fields=64)
    except ValueError:
        raise BrokenFraming("Payload expected.") from None
    for key, value in fields:
        if key == name:
            return value
    return ""


def sent_response(found: Route, request: Request, options: SockJSOptions) -> Response:
    """The answer to a sending request whose messages were taken."""
    headers = (("Content-Type", _TEXT), *_session_headers(request, options))
    if found.kind is Kind.JSONP_SEND:
        # Not 204: Konqueror mishandles it.
        return Response(200, headers, b"ok")
    return Response(204, (*headers, *_cors(request)))
