"""What a SockJS endpoint answers (sockjs/http.py), with sessions driven as the
asyncio layer drives them, request by request, the way the protocol suite asks."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable

import pytest

from websocket_multiplex.exceptions import BrokenFraming
from websocket_multiplex.limits import Limits
from websocket_multiplex.request import Headers
from websocket_multiplex.sockjs.frames import (
    eventsource_chunk,
    htmlfile_chunk,
    jsonp_chunk,
    xhr_chunk,
)
from websocket_multiplex.sockjs.http import (
    Kind,
    Request,
    Response,
    Route,
    decode_send,
    error_response,
    not_found,
    receiver_for,
    receiving_response,
    route,
    sent_response,
)
from websocket_multiplex.sockjs.options import (
    DEFAULT_SOCKJS_URL,
    RECEIVING_TRANSPORTS,
    SockJSOptions,
)
from websocket_multiplex.sockjs.session import Attached, Receiver, Session, SessionState

HeaderList = tuple[tuple[str, str], ...]

# The suite's test server: streaming responses end after 4 KiB.
ECHO = SockJSOptions(response_limit=4096)
WS_OFF = SockJSOptions(response_limit=4096, websocket=False)
COOKIES = SockJSOptions(response_limit=4096, jsessionid=True)
LIMITS = Limits()
ENTROPY = 3_141_592_653
NOW = 1_800_000_000.0  # the wall clock the responses are made at
NO_CACHE = "no-store, no-cache, no-transform, must-revalidate, max-age=0"
FORM = (("Content-Type", "application/x-www-form-urlencoded"),)
GO_AWAY = 'c[3000,"Go away!"]'


def make_request(
    method: str,
    path: str,
    *,
    query: str = "",
    headers: Iterable[tuple[str, str]] = (),
    upgrade: bool = False,
) -> Request:
    return Request(method, path, query, Headers(headers), upgrade)


def answer(
    method: str,
    path: str,
    *,
    options: SockJSOptions = ECHO,
    limits: Limits = LIMITS,
    query: str = "",
    headers: Iterable[tuple[str, str]] = (),
    upgrade: bool = False,
) -> Route | Response:
    """What route() makes of a request below the prefix."""
    request = make_request(method, path, query=query, headers=headers, upgrade=upgrade)
    return route(request, options, limits, lambda: ENTROPY, NOW)


class Reply:
    """What one request got: status, headers and the text written so far. A
    receiving request still open reads on with :meth:`read`, or is aborted."""

    def __init__(
        self,
        status: int,
        headers: HeaderList,
        body: str,
        held: tuple[Endpoint, Session, Receiver] | None = None,
    ) -> None:
        self.status = status
        self.header_list = headers
        self.headers = Headers(headers)
        self.body = body
        self._held = held
        self.ended = held is None
        self._end_if_done()

    @classmethod
    def of(cls, response: Response) -> Reply:
        return cls(response.status, response.headers, response.body.decode())

    def read(self) -> str:
        """What the receiving request carries now ("" for nothing)."""
        assert self._held is not None
        assert not self.ended
        endpoint, session, _ = self._held
        text = session.output(endpoint.now)
        self.body += text
        self._end_if_done()
        return text

    def abort(self) -> None:
        """The client goes away before the response ended."""
        assert self._held is not None
        assert not self.ended
        endpoint, session, receiver = self._held
        self.ended = True
        session.detach(receiver, endpoint.now, aborted=True)

    def _end_if_done(self) -> None:
        if self._held is None or self.ended or not self._held[2].done:
            return
        endpoint, session, receiver = self._held
        self.ended = True
        session.detach(receiver, endpoint.now, aborted=False)


class Endpoint:
    """The core driven as asyncio/sockjs.py drives it, with no socket nor clock:
    an echo service, or (``closing``) one that closes each session it opens
    with 3000 "Go away!", as the suite's ``/echo`` and ``/close``."""

    def __init__(self, options: SockJSOptions = ECHO, *, closing: bool = False) -> None:
        self.options = options
        self.closing = closing
        self.sessions: dict[str, Session] = {}
        self.now = 0.0

    def __call__(
        self,
        method: str,
        path: str,
        *,
        body: bytes = b"",
        query: str = "",
        headers: Iterable[tuple[str, str]] = (),
    ) -> Reply:
        request = make_request(method, path, query=query, headers=headers)
        found = route(request, self.options, LIMITS, lambda: ENTROPY, NOW)
        if isinstance(found, Response):
            return Reply.of(found)
        assert not found.kind.websocket
        if found.kind.sends:
            return self._send(found, request, body)
        return self._receive(found, request)

    def _receive(self, found: Route, request: Request) -> Reply:
        session = self.sessions.get(found.session_id)
        if session is None:
            session = Session(
                heartbeat_delay=self.options.heartbeat_delay,
                disconnect_delay=self.options.disconnect_delay,
                now=self.now,
            )
            self.sessions[found.session_id] = session
        status, headers, prelude = receiving_response(found, request, self.options)
        receiver = receiver_for(found, self.options)
        attached, text = session.attach(receiver, self.now)
        if attached is Attached.OPENED and self.closing:
            session.close(3000, "Go away!")
            text += session.output(self.now)
        return Reply(status, headers, prelude + text, (self, session, receiver))

    def _send(self, found: Route, request: Request, body: bytes) -> Reply:
        session = self.sessions.get(found.session_id)
        if session is None or session.state is SessionState.CLOSED:
            return Reply.of(not_found())
        try:
            texts = decode_send(found, request, body, LIMITS)
        except BrokenFraming as exc:
            return Reply.of(error_response(500, str(exc)))
        if texts and session.accepts_messages:
            session.send(texts)  # the echo
        return Reply.of(sent_response(found, request, self.options))


def content_type(reply: Reply) -> str:
    return reply.headers.get("content-type", "").replace(" ", "")


def assert_not_cached(reply: Reply) -> None:
    assert reply.headers["cache-control"] == NO_CACHE
    assert "expires" not in reply.headers
    assert "last-modified" not in reply.headers


def assert_cacheable(reply: Reply) -> None:
    cache_control = reply.headers["cache-control"]
    assert "public" in cache_control
    assert re.search("max-age=[1-9][0-9]{6}", cache_control)
    assert re.fullmatch(
        r"[A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d GMT",
        reply.headers["expires"],
    )
    assert "last-modified" not in reply.headers


def assert_cors(reply: Reply, origin: str | None) -> None:
    if origin is None:
        assert reply.headers["access-control-allow-origin"] == "*"
        assert "access-control-allow-credentials" not in reply.headers
    else:
        assert reply.headers["access-control-allow-origin"] == origin
        assert reply.headers["access-control-allow-credentials"] == "true"


def assert_preflight(path: str, methods: str, options: SockJSOptions = ECHO) -> None:
    for origin in ("test", "null"):
        headers = [("Origin", origin), ("Access-Control-Request-Method", methods)]
        reply = Endpoint(options)("OPTIONS", path, headers=headers)
        assert reply.status == 204
        assert_cacheable(reply)
        assert int(reply.headers["access-control-max-age"]) > 1_000_000
        for method in methods.split(","):
            assert method.strip() in reply.headers["access-control-allow-methods"]
        assert reply.body == ""
        assert_cors(reply, origin)


def session_url(session_id: str = "s1") -> str:
    return f"/000/{session_id}"


# -- the greeting and 404 --------------------------------------------------------


def test_BaseUrlGreeting_greeting() -> None:
    """The base URL, with or without a slash, greets in plain text, no cookie."""
    for path in ("", "/"):
        reply = Endpoint(COOKIES)("GET", path)
        assert reply.status == 200
        assert content_type(reply) == "text/plain;charset=UTF-8"
        assert reply.body == "Welcome to SockJS!\n"
        assert "set-cookie" not in reply.headers


@pytest.mark.parametrize(
    "path", ["/a", "/a.html", "//", "///", "/a/a", "/a/a/", "/a/", "/a/b/c/d"]
)
def test_BaseUrlGreeting_notFound(path: str) -> None:
    """Other URLs are 404, worded as sockjs-node words it."""
    reply = Endpoint()("GET", path)
    assert reply.status == 404
    assert content_type(reply) == "text/plain;charset=UTF-8"
    assert reply.body == "404 Error: Page not found\n"


# -- iframe.html -------------------------------------------------------------------

IFRAME_PAGE = """<!DOCTYPE html>
<html>
<head>
  <meta http-equiv="X-UA-Compatible" content="IE=edge" />
  <meta http-equiv="Content-Type" content="text/html; charset=UTF-8" />
  <script src="%s"></script>
  <script>
    document.domain = document.domain;
    SockJS.bootstrap_iframe();
  </script>
</head>
<body>
  <h2>Don't panic!</h2>
  <p>This is a SockJS hidden iframe. It's used for cross domain magic.</p>
</body>
</html>"""


def assert_iframe(reply: Reply, sockjs_url: str = DEFAULT_SOCKJS_URL) -> None:
    assert reply.status == 200
    assert content_type(reply) == "text/html;charset=UTF-8"
    assert_cacheable(reply)
    assert reply.headers["etag"]
    assert reply.body.strip() == IFRAME_PAGE % sockjs_url
    assert sockjs_url.startswith(("/", "http"))
    assert "set-cookie" not in reply.headers


def test_IframePage_simpleUrl() -> None:
    """/iframe.html is the page loading sockjs-client, strongly cacheable."""
    assert_iframe(Endpoint(COOKIES)("GET", "/iframe.html"))


@pytest.mark.parametrize(
    "path",
    [
        "/iframe-a.html",
        "/iframe-.html",
        "/iframe-0.1.2.html",
        "/iframe-0.1.2abc-dirty.2144.html",
    ],
)
def test_IframePage_versionedUrl(path: str) -> None:
    """Versioned iframe URLs get the same page."""
    assert_iframe(Endpoint()("GET", path))


@pytest.mark.parametrize(
    ("path", "query"),
    [
        ("/iframe-a.html", "t=1234"),
        ("/iframe-0.1.2.html", "t=123414"),
        ("/iframe-0.1.2abc-dirty.2144.html", "t=qweqweq123"),
    ],
)
def test_IframePage_queriedUrl(path: str, query: str) -> None:
    """A query string does not change the page."""
    assert_iframe(Endpoint()("GET", path, query=query))


@pytest.mark.parametrize(
    "path",
    [
        "/iframe.htm",
        "/iframe",
        "/IFRAME.HTML",
        "/IFRAME",
        "/iframe.HTML",
        "/iframe.xml",
        "/iframe-/.html",
    ],
)
def test_IframePage_invalidUrl(path: str) -> None:
    """Malformed iframe URLs are 404."""
    assert Endpoint()("GET", path).status == 404


def test_IframePage_cacheability() -> None:
    """The ETag is stable, and If-None-Match with it gets 304, no type nor body."""
    endpoint = Endpoint()
    first, second = endpoint("GET", "/iframe.html"), endpoint("GET", "/iframe.html")
    etag = first.headers["etag"]
    assert etag
    assert second.headers["etag"] == etag
    again = endpoint("GET", "/iframe.html", headers=[("If-None-Match", etag)])
    assert again.status == 304
    assert "content-type" not in again.headers
    assert again.body == ""
    other = endpoint("GET", "/iframe.html", headers=[("If-None-Match", '"other"')])
    assert other.status == 200


def test_iframe_page_loads_the_configured_sockjs_url_html_escaped() -> None:
    """sockjs_url is the page's script, HTML-escaped, and its ETag follows it."""
    local = SockJSOptions(sockjs_url="/static/sockjs.min.js")
    reply = Endpoint(local)("GET", "/iframe.html")
    assert_iframe(reply, "/static/sockjs.min.js")
    assert reply.headers["etag"] != Endpoint()("GET", "/iframe.html").headers["etag"]
    hostile = SockJSOptions(sockjs_url='/x.js"></script><script>alert(1)//')
    body = Endpoint(hostile)("GET", "/iframe.html").body
    assert '"></script><script>' not in body
    assert "/x.js&quot;&gt;&lt;/script&gt;&lt;script&gt;alert(1)//" in body


# -- /info -------------------------------------------------------------------------


def test_InfoTest_basic() -> None:
    """/info says what the server offers, uncached, with CORS and no cookie."""
    reply = Endpoint(COOKIES)("GET", "/info", headers=[("Origin", "test")])
    assert reply.status == 200
    assert content_type(reply) == "application/json;charset=UTF-8"
    assert "set-cookie" not in reply.headers
    assert_not_cached(reply)
    assert_cors(reply, "test")
    assert json.loads(reply.body) == {
        "websocket": True,
        "cookie_needed": True,
        "origins": ["*:*"],
        "entropy": ENTROPY,
    }


def test_InfoTest_entropy() -> None:
    """Each /info carries a fresh entropy() number."""
    numbers = iter([0, 2**32 - 1])
    request = make_request("GET", "/info")
    entropies = []
    for _ in range(2):
        found = route(request, ECHO, LIMITS, lambda: next(numbers), NOW)
        assert isinstance(found, Response)
        entropies.append(json.loads(found.body)["entropy"])
    assert entropies == [0, 2**32 - 1]


def test_InfoTest_options() -> None:
    """/info answers CORS preflights, cacheable for a long time."""
    assert_preflight("/info", "OPTIONS, GET")


def test_InfoTest_options_null_origin() -> None:
    """A preflight from Origin "null" is answered "null"."""
    headers = [("Origin", "null"), ("Access-Control-Request-Method", "POST")]
    reply = Endpoint()("OPTIONS", "/info", headers=headers)
    assert reply.status == 204
    assert reply.body == ""
    assert reply.headers["access-control-allow-origin"] == "null"


@pytest.mark.parametrize(
    ("options", "websocket"),
    [
        (ECHO, True),
        (WS_OFF, False),
        (SockJSOptions(disabled_transports=frozenset({"websocket"})), False),
    ],
)
def test_InfoTest_disabled_websocket(options: SockJSOptions, websocket: bool) -> None:
    """/info says websocket: false when websockets are off."""
    reply = Endpoint(options)("GET", "/info")
    assert reply.status == 200
    assert json.loads(reply.body)["websocket"] is websocket


# -- session URLs ------------------------------------------------------------------


@pytest.mark.parametrize(
    "part", ["/a/a7", "/_/_7", "/1/7", "/abcdefgh_i-j /abcdefg_i-j 7"]
)
def test_SessionURLs_anyValue(part: str) -> None:
    """Any server and session id (but "/" and ".") opens a session."""
    reply = Endpoint()("POST", f"{part}/xhr")
    assert (reply.status, reply.body) == (200, "o\n")


@pytest.mark.parametrize("part", ["//", "/a./a", "/a/a.", "/./.", "/", "///"])
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_SessionURLs_invalidPaths(part: str, method: str) -> None:
    """Empty ids, ids with dots, and too few or many parts are 404."""
    assert Endpoint()(method, f"{part}/xhr").status == 404


def test_SessionURLs_ignoringServerId() -> None:
    """A session is its session id: the server id is the load balancer's."""
    endpoint = Endpoint()
    assert endpoint("POST", "/000/s1/xhr").body == "o\n"
    sent = endpoint("POST", "/000/s1/xhr_send", body=b'["a"]')
    assert (sent.status, sent.body) == (204, "")
    assert endpoint("POST", "/999/s1/xhr").body == 'a["a"]\n'


RECEIVING_URLS = [
    ("POST", "xhr", ""),
    ("POST", "xhr_streaming", ""),
    ("GET", "eventsource", ""),
    ("GET", "htmlfile", "c=cb"),
    ("GET", "jsonp", "c=cb"),
]
SESSION_URLS = [
    *RECEIVING_URLS,
    ("POST", "xhr_send", ""),
    ("POST", "jsonp_send", ""),
    ("GET", "websocket", ""),
]


@pytest.mark.parametrize(("method", "transport", "query"), SESSION_URLS)
def test_ids_longer_than_max_session_id_length_get_404(
    method: str, transport: str, query: str
) -> None:
    """A server or session id longer than max_session_id_length is 404."""
    for limits in (Limits(max_session_id_length=8), LIMITS):
        most = limits.max_session_id_length
        fits, too_long = "x" * most, "x" * (most + 1)
        for server_id, session_id, refused in (
            (fits, fits, False),
            (too_long, fits, True),
            (fits, too_long, True),
        ):
            path = f"/{server_id}/{session_id}/{transport}"
            found = answer(method, path, limits=limits, query=query, upgrade=True)
            if refused:
                assert isinstance(found, Response)
                assert found.status == 404
            else:
                assert isinstance(found, Route)


@pytest.mark.parametrize("transport", ["foo", "XHR", "xhr.js", "send", "info"])
def test_unknown_transport_gets_404(transport: str) -> None:
    """A session URL naming no transport is 404."""
    assert Endpoint()("POST", f"/a/b/{transport}").status == 404


@pytest.mark.parametrize(("method", "transport", "query"), SESSION_URLS)
def test_session_urls_route_to_their_kind(
    method: str, transport: str, query: str
) -> None:
    """Each transport's URL routes to its kind of request, for its session."""
    found = answer(method, f"/000/ab c/{transport}/", query=query, upgrade=True)
    assert found == Route(Kind(transport), "ab c", "cb" if query else "")


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("POST", "", "GET"),
        ("PUT", "/info", "OPTIONS, GET"),
        ("POST", "/iframe.html", "GET"),
        ("POST", "/websocket", "GET"),
        ("GET", "/a/b/xhr", "POST, OPTIONS"),
        ("GET", "/a/b/xhr_send", "POST, OPTIONS"),
        ("DELETE", "/a/b/xhr_streaming", "POST, OPTIONS"),
        ("POST", "/a/b/jsonp", "GET"),
        ("GET", "/a/b/jsonp_send", "POST"),
        ("OPTIONS", "/a/b/jsonp_send", "POST"),
        ("POST", "/a/b/eventsource", "GET"),
        ("OPTIONS", "/a/b/htmlfile", "GET"),
        ("POST", "/a/b/websocket", "GET"),
    ],
)
def test_405_carries_allow_and_no_content_type_nor_body(
    method: str, path: str, allow: str
) -> None:
    """A method a URL does not answer is 405 with Allow, and no type nor body."""
    reply = Endpoint()(method, path)
    assert reply.status == 405
    assert reply.headers["allow"] == allow
    assert "content-type" not in reply.headers
    assert reply.body == ""


# -- WebSocket URLs --------------------------------------------------------------


def test_WebsocketHttpErrors_httpMethod() -> None:
    """A plain GET of a WebSocket URL is 400."""
    found = answer("GET", "/0/0/websocket")
    assert isinstance(found, Response)
    assert found.status == 400


def test_WebsocketHttpErrors_invalidConnectionHeader() -> None:
    """Upgrade without "Connection: upgrade" is not a WebSocket request: 400."""
    headers = [("Upgrade", "WebSocket"), ("Connection", "close")]
    for path in ("/0/0/websocket", "/websocket"):
        found = answer("GET", path, headers=headers, upgrade=False)
        assert isinstance(found, Response)
        assert found.status == 400
        assert found.body == b"Not a valid websocket request"


def test_WebsocketHttpErrors_invalidMethod() -> None:
    """A WebSocket URL answers only GET: 405 otherwise, upgrade or not."""
    for upgrade in (True, False):
        found = answer("POST", "/0/0/websocket", upgrade=upgrade)
        assert isinstance(found, Response)
        assert found.status == 405
        assert dict(found.headers)["Allow"] == "GET"
        assert found.body == b""


def test_Websocket_transport() -> None:
    """An upgrade to <server>/<session>/websocket is a SockJS WebSocket."""
    found = answer("GET", "/000/abc/websocket", upgrade=True)
    assert found == Route(Kind.WEBSOCKET, "abc")
    assert found.kind.websocket


def test_RawWebsocket_transport() -> None:
    """An upgrade to /websocket is a WebSocket with no SockJS framing."""
    for path in ("/websocket", "/websocket/"):
        assert answer("GET", path, upgrade=True) == Route(Kind.RAW_WEBSOCKET)


@pytest.mark.parametrize("path", ["/websocket", "/0/0/websocket"])
def test_disabled_websocket_urls_get_404(path: str) -> None:
    """With websockets off their URLs are 404."""
    found = answer("GET", path, options=WS_OFF, upgrade=True)
    assert isinstance(found, Response)
    assert found.status == 404


# -- xhr-polling -------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["xhr", "xhr_send"])
def test_XhrPolling_options(transport: str) -> None:
    """xhr and xhr_send answer CORS preflights."""
    assert_preflight(f"/abc/abc/{transport}", "OPTIONS, POST")


def test_XhrPolling_transport() -> None:
    """xhr opens and polls, xhr_send sends: JavaScript and text, CORS, uncached."""
    endpoint, origin = Endpoint(), [("Origin", "test")]
    reply = endpoint("POST", "/000/s1/xhr", headers=origin)
    assert (reply.status, reply.body) == (200, "o\n")
    assert reply.ended
    assert content_type(reply) == "application/javascript;charset=UTF-8"
    assert_cors(reply, "test")
    assert_not_cached(reply)
    sent = endpoint("POST", "/000/s1/xhr_send", body=b'["x"]', headers=origin)
    assert (sent.status, sent.body) == (204, "")
    assert content_type(sent) == "text/plain;charset=UTF-8"
    assert_cors(sent, "test")
    assert_not_cached(sent)
    assert endpoint("POST", "/000/s1/xhr").body == 'a["x"]\n'


def test_XhrPolling_invalid_json() -> None:
    """xhr_send: broken JSON and no body are 500; the session goes on."""
    endpoint = Endpoint()
    endpoint("POST", "/000/s1/xhr")
    broken = endpoint("POST", "/000/s1/xhr_send", body=b'["x')
    assert (broken.status, broken.body) == (500, "Broken JSON encoding.")
    empty = endpoint("POST", "/000/s1/xhr_send", body=b"")
    assert (empty.status, empty.body) == (500, "Payload expected.")
    assert endpoint("POST", "/000/s1/xhr_send", body=b'["a"]').status == 204
    assert endpoint("POST", "/000/s1/xhr").body == 'a["a"]\n'


def test_XhrPolling_content_types() -> None:
    """xhr_send takes its body whatever the Content-Type says."""
    endpoint = Endpoint()
    endpoint("POST", "/000/s1/xhr")
    types = [
        "text/plain",
        "T",
        "application/json",
        "application/xml",
        "",
        "application/json; charset=utf-8",
        "text/xml; charset=utf-8",
        "text/xml",
    ]
    for name in types:
        headers = [("Content-Type", name)]
        sent = endpoint("POST", "/000/s1/xhr_send", body=b'["a"]', headers=headers)
        assert (sent.status, sent.body) == (204, "")
    assert endpoint("POST", "/000/s1/xhr").body == "a[" + ",".join(['"a"'] * 8) + "]\n"


def test_XhrPolling_request_headers_cors() -> None:
    """Access-Control-Request-Headers is echoed as Access-Control-Allow-Headers."""
    base = [("Origin", "test"), ("Access-Control-Request-Method", "POST")]
    asking = ("Access-Control-Request-Headers", "a, b, c")
    empty = ("Access-Control-Request-Headers", "")
    for headers, allowed in (
        ([*base, asking], "a, b, c"),
        ([*base, empty], None),
        (base, None),
    ):
        reply = Endpoint()("OPTIONS", "/000/s1/xhr", headers=headers)
        assert reply.status == 204
        assert_cors(reply, "test")
        assert reply.headers.get("access-control-allow-headers") == allowed


def test_XhrPolling_sending_empty_frame() -> None:
    """A client may send [] (no message)."""
    endpoint = Endpoint()
    endpoint("POST", "/000/s1/xhr")
    assert endpoint("POST", "/000/s1/xhr_send", body=b"[]").status == 204
    assert endpoint("POST", "/000/s1/xhr_send", body=b'["a"]').status == 204
    assert endpoint("POST", "/000/s1/xhr").body == 'a["a"]\n'


# -- xhr-streaming -----------------------------------------------------------------


def test_XhrStreaming_options() -> None:
    """xhr_streaming answers CORS preflights."""
    assert_preflight("/abc/abc/xhr_streaming", "OPTIONS, POST")


def test_XhrStreaming_transport() -> None:
    """xhr_streaming: 2 KiB of "h" first, then frames as they come."""
    endpoint = Endpoint()
    reply = endpoint("POST", "/000/s1/xhr_streaming", headers=[("Origin", "test")])
    assert reply.status == 200
    assert content_type(reply) == "application/javascript;charset=UTF-8"
    assert_cors(reply, "test")
    assert_not_cached(reply)
    assert reply.body == "h" * 2048 + "\n" + "o\n"
    sent = endpoint("POST", "/000/s1/xhr_send", body=b'["x"]')
    assert (sent.status, sent.body) == (204, "")
    assert reply.read() == 'a["x"]\n'
    assert not reply.ended


def test_XhrStreaming_response_limit() -> None:
    """A streaming response ends once response_limit characters, framing
    counted, went out: 31 messages of 130 characters with 4 KiB."""
    endpoint = Endpoint()
    reply = endpoint("POST", "/000/s1/xhr_streaming")
    message = '"' + "x" * 128 + '"'
    for count in range(1, 32):
        assert not reply.ended, count
        sent = endpoint("POST", "/000/s1/xhr_send", body=f"[{message}]".encode())
        assert sent.status == 204
        assert reply.read() == f"a[{message}]\n"
    assert reply.ended


def test_aborted_stream_interrupts_the_session_for_every_transport() -> None:
    """Once a streaming client went away, any receiving request gets 1002."""
    endpoint = Endpoint()
    reply = endpoint("POST", "/000/s1/xhr_streaming")
    reply.abort()
    interrupted = 'c[1002,"Connection interrupted"]'
    assert endpoint("POST", "/000/s1/xhr").body == xhr_chunk(interrupted)
    assert endpoint("GET", "/000/s1/eventsource").body.endswith(
        eventsource_chunk(interrupted)
    )
    assert endpoint("GET", "/000/s1/jsonp", query="c=cb").body == jsonp_chunk(
        "cb", interrupted
    )


# -- eventsource -------------------------------------------------------------------


def test_EventSource_transport() -> None:
    """eventsource: an empty line first, then each frame an event, uncached."""
    endpoint = Endpoint()
    reply = endpoint("GET", "/000/s1/eventsource")
    assert reply.status == 200
    assert content_type(reply) == "text/event-stream"
    assert_not_cached(reply)
    assert reply.body == "\r\n" + "data: o\r\n\r\n"
    sent = endpoint("POST", "/000/s1/xhr_send", body=b'["x"]')
    assert (sent.status, sent.body) == (204, "")
    assert reply.read() == 'data: a["x"]\r\n\r\n'
    endpoint("POST", "/000/s1/xhr_send", body=rb'["  \u0000\n\r "]')
    assert reply.read() == 'data: a["  \\u0000\\n\\r "]\r\n\r\n'


def test_EventSource_response_limit() -> None:
    """An eventsource response ends after response_limit characters."""
    endpoint = Endpoint()
    reply = endpoint("GET", "/000/s1/eventsource")
    message = '"' + "x" * 4096 + '"'
    endpoint("POST", "/000/s1/xhr_send", body=f"[{message}]".encode())
    assert reply.read() == f"data: a[{message}]\r\n\r\n"
    assert reply.ended


@pytest.mark.parametrize(
    ("origin", "allowed"), [(None, None), ("null", None), ("http://a", "http://a")]
)
def test_eventsource_cors(origin: str | None, allowed: str | None) -> None:
    """eventsource echoes the origin, but "null" (a file:// page) gets "*"."""
    headers = [] if origin is None else [("Origin", origin)]
    reply = Endpoint()("GET", "/000/s1/eventsource", headers=headers)
    assert_cors(reply, allowed)


# -- htmlfile ----------------------------------------------------------------------


def test_HtmlFile_transport() -> None:
    """htmlfile: a page calling the callback, then each frame a script, uncached."""
    endpoint = Endpoint()
    reply = endpoint("GET", "/000/s1/htmlfile", query="c=%63allback")
    assert reply.status == 200
    assert content_type(reply) == "text/html;charset=UTF-8"
    assert_not_cached(reply)
    opening = '<script>\np("o");\n</script>\r\n'
    assert reply.body.endswith(opening)
    prelude = reply.body[: -len(opening)]
    assert prelude.startswith("<!doctype html>\n")
    assert "    var c = parent.callback;\n" in prelude
    assert len(prelude) > 1024
    sent = endpoint("POST", "/000/s1/xhr_send", body=b'["x"]')
    assert (sent.status, sent.body) == (204, "")
    assert reply.read() == '<script>\np("a[\\"x\\"]");\n</script>\r\n'


@pytest.mark.parametrize("transport", ["htmlfile", "jsonp"])
def test_HtmlFile_no_callback(transport: str) -> None:
    """htmlfile and jsonp without a callback are 500."""
    reply = Endpoint()("GET", f"/a/a/{transport}")
    assert (reply.status, reply.body) == (500, '"callback" parameter required')


INVALID_CALLBACKS = ["c=%20", "c=*", "c=abc(", "c=abc%28", "c=", "c=a;b", "c=a%0A"]


@pytest.mark.parametrize("query", INVALID_CALLBACKS)
def test_HtmlFile_invalid_callback(query: str) -> None:
    """An htmlfile callback of anything but [a-zA-Z0-9-_.] is 500."""
    reply = Endpoint()("GET", "/a/a/htmlfile", query=query)
    assert (reply.status, reply.body) == (500, 'invalid "callback" parameter')


def test_HtmlFile_response_limit() -> None:
    """An htmlfile response ends after response_limit characters."""
    endpoint = Endpoint()
    reply = endpoint("GET", "/000/s1/htmlfile", query="c=callback")
    message = "x" * 4096
    endpoint("POST", "/000/s1/xhr_send", body=f'["{message}"]'.encode())
    assert reply.read() == f'<script>\np("a[\\"{message}\\"]");\n</script>\r\n'
    assert reply.ended


# -- jsonp-polling -----------------------------------------------------------------


def test_JsonPolling_transport() -> None:
    """jsonp polls with scripts calling the callback; jsonp_send answers "ok"."""
    endpoint = Endpoint()
    reply = endpoint("GET", "/000/s1/jsonp", query="c=%63allback")
    assert reply.status == 200
    assert content_type(reply) == "application/javascript;charset=UTF-8"
    assert_not_cached(reply)
    assert reply.body == '/**/callback("o");\r\n'
    sent = endpoint("POST", "/000/s1/jsonp_send", body=b"d=%5B%22x%22%5D", headers=FORM)
    assert (sent.status, sent.body) == (200, "ok")
    assert content_type(sent) == "text/plain;charset=UTF-8"
    assert_not_cached(sent)
    again = endpoint("GET", "/000/s1/jsonp", query="c=%63allback")
    assert (again.status, again.body) == (200, '/**/callback("a[\\"x\\"]");\r\n')


def test_JsonPolling_no_callback() -> None:
    """jsonp without a callback is 500."""
    reply = Endpoint()("GET", "/a/a/jsonp")
    assert (reply.status, reply.body) == (500, '"callback" parameter required')


@pytest.mark.parametrize("query", INVALID_CALLBACKS)
def test_JsonPolling_invalid_callback(query: str) -> None:
    """A jsonp callback of anything but [a-zA-Z0-9-_.] is 500."""
    reply = Endpoint()("GET", "/a/a/jsonp", query=query)
    assert (reply.status, reply.body) == (500, 'invalid "callback" parameter')


@pytest.mark.parametrize("transport", ["jsonp", "htmlfile"])
def test_callback_longer_than_32_characters_is_refused(transport: str) -> None:
    """A callback of 33 characters is 500; one of 32 is taken."""
    found = answer("GET", f"/a/a/{transport}", query="c=" + "x" * 32)
    assert found == Route(Kind(transport), "a", "x" * 32)
    refused = answer("GET", f"/a/a/{transport}", query="c=" + "x" * 33)
    assert isinstance(refused, Response)
    assert (refused.status, refused.body) == (500, b'invalid "callback" parameter')


def test_callback_is_c_else_callback() -> None:
    """The callback is the c parameter, else the callback one."""
    for query, callback in (("callback=b&c=a", "a"), ("callback=b", "b")):
        found = answer("GET", "/a/a/jsonp", query=query)
        assert found == Route(Kind.JSONP, "a", callback)


def test_JsonPolling_invalid_json() -> None:
    """jsonp_send: broken JSON, no body or no d field are 500; the session goes on."""
    endpoint = Endpoint()
    assert endpoint("GET", "/000/s1/jsonp", query="c=x").body == '/**/x("o");\r\n'
    broken = endpoint("POST", "/000/s1/jsonp_send", body=b"d=%5B%22x", headers=FORM)
    assert (broken.status, broken.body) == (500, "Broken JSON encoding.")
    for body in (b"", b"d=", b"p=p"):
        reply = endpoint("POST", "/000/s1/jsonp_send", body=body, headers=FORM)
        assert (reply.status, reply.body) == (500, "Payload expected.")
    good = endpoint("POST", "/000/s1/jsonp_send", body=b"d=%5B%22b%22%5D", headers=FORM)
    assert good.body == "ok"
    again = endpoint("GET", "/000/s1/jsonp", query="c=x")
    assert (again.status, again.body) == (200, '/**/x("a[\\"b\\"]");\r\n')


def test_JsonPolling_content_types() -> None:
    """jsonp_send takes a form's d field, or a text/plain body as is."""
    endpoint = Endpoint()
    endpoint("GET", "/000/s1/jsonp", query="c=x")
    body = b"d=%5B%22abc%22%5D"
    assert endpoint("POST", "/000/s1/jsonp_send", body=body, headers=FORM).body == "ok"
    plain = [("Content-Type", "text/plain")]
    text = endpoint("POST", "/000/s1/jsonp_send", body=b'["%61bc"]', headers=plain)
    assert text.body == "ok"
    again = endpoint("GET", "/000/s1/jsonp", query="c=x")
    assert again.body == '/**/x("a[\\"abc\\",\\"%61bc\\"]");\r\n'


def test_JsonPolling_close() -> None:
    """A closed session answers every jsonp poll with its close frame."""
    endpoint = Endpoint(closing=True)
    assert endpoint("GET", "/000/s1/jsonp", query="c=x").body == '/**/x("o");\r\n'
    for _ in range(2):
        reply = endpoint("GET", "/000/s1/jsonp", query="c=x")
        assert reply.body == '/**/x("c[3000,\\"Go away!\\"]");\r\n'


def test_JsonPolling_sending_empty_frame() -> None:
    """jsonp_send takes d=[] (no message)."""
    endpoint = Endpoint()
    endpoint("GET", "/000/s1/jsonp", query="c=x")
    empty = endpoint("POST", "/000/s1/jsonp_send", body=b"d=%5B%5D", headers=FORM)
    assert empty.body == "ok"
    sent = endpoint("POST", "/000/s1/jsonp_send", body=b"d=%5B%22x%22%5D", headers=FORM)
    assert sent.body == "ok"
    again = endpoint("GET", "/000/s1/jsonp", query="c=x")
    assert (again.status, again.body) == (200, '/**/x("a[\\"x\\"]");\r\n')


# -- JSESSIONID ------------------------------------------------------------------


def assert_cookie(reply: Reply, value: str = "dummy") -> None:
    assert reply.headers["set-cookie"] == f"JSESSIONID={value}; path=/"


def test_JsessionidCookie_basic() -> None:
    """With jsessionid, /info says cookie_needed and sets no cookie itself."""
    reply = Endpoint(COOKIES)("GET", "/info")
    assert reply.status == 200
    assert "set-cookie" not in reply.headers
    assert json.loads(reply.body)["cookie_needed"] is True


def test_JsessionidCookie_xhr() -> None:
    """xhr sets JSESSIONID=dummy, or echoes the client's."""
    reply = Endpoint(COOKIES)("POST", "/000/s1/xhr")
    assert (reply.status, reply.body) == (200, "o\n")
    assert_cookie(reply)
    cookie = [("Cookie", "JSESSIONID=abcdef")]
    echoed = Endpoint(COOKIES)("POST", "/000/s2/xhr", headers=cookie)
    assert (echoed.status, echoed.body) == (200, "o\n")
    assert_cookie(echoed, "abcdef")


def test_JsessionidCookie_xhr_streaming() -> None:
    """xhr_streaming sets the cookie."""
    reply = Endpoint(COOKIES)("POST", "/000/s1/xhr_streaming")
    assert reply.status == 200
    assert_cookie(reply)


def test_JsessionidCookie_eventsource() -> None:
    """eventsource sets the cookie."""
    reply = Endpoint(COOKIES)("GET", "/000/s1/eventsource")
    assert reply.status == 200
    assert_cookie(reply)


def test_JsessionidCookie_htmlfile() -> None:
    """htmlfile sets the cookie."""
    reply = Endpoint(COOKIES)("GET", "/000/s1/htmlfile", query="c=%63allback")
    assert reply.status == 200
    assert_cookie(reply)


def test_JsessionidCookie_jsonp() -> None:
    """jsonp and jsonp_send set the cookie."""
    endpoint = Endpoint(COOKIES)
    reply = endpoint("GET", "/000/s1/jsonp", query="c=%63allback")
    assert (reply.status, reply.body) == (200, '/**/callback("o");\r\n')
    assert_cookie(reply)
    sent = endpoint("POST", "/000/s1/jsonp_send", body=b"d=%5B%22x%22%5D", headers=FORM)
    assert (sent.status, sent.body) == (200, "ok")
    assert_cookie(sent)


def test_jsessionid_on_sends_and_preflights_only_when_asked() -> None:
    """The cookie goes on xhr_send and preflights with jsessionid, never without."""
    for options, cookie in ((COOKIES, True), (ECHO, False)):
        endpoint = Endpoint(options)
        replies = [
            endpoint("POST", "/000/s1/xhr"),
            endpoint("POST", "/000/s1/xhr_send", body=b'["a"]'),
            endpoint("OPTIONS", "/000/s1/xhr"),
        ]
        assert [("set-cookie" in reply.headers) for reply in replies] == [cookie] * 3


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("x=1; JSESSIONID=abc", "abc"),
        ("JSESSIONID=a,b", "dummy"),
        ('JSESSIONID=a"b', "dummy"),
        ("JSESSIONID=", "dummy"),
        ("JSESSIONID=" + "a" * 257, "dummy"),
        ("OTHER=abc", "dummy"),
    ],
)
def test_jsessionid_echoes_only_a_cookie_value(header: str, value: str) -> None:
    """Only a valid cookie value is echoed into Set-Cookie; otherwise dummy."""
    reply = Endpoint(COOKIES)("POST", "/000/s1/xhr", headers=[("Cookie", header)])
    assert_cookie(reply, value)


# -- origins, and headers on every response --------------------------------------

ANY_URL = [
    ("GET", "", "", False),
    ("GET", "/info", "", False),
    ("OPTIONS", "/info", "", False),
    ("GET", "/iframe.html", "", False),
    ("GET", "/nowhere", "", False),
    ("POST", "/0/0/xhr", "", False),
    ("OPTIONS", "/0/0/xhr", "", False),
    ("POST", "/0/0/xhr_send", "", False),
    ("GET", "/0/0/jsonp", "c=cb", False),
    ("GET", "/websocket", "", True),
    ("GET", "/0/0/websocket", "", True),
]


@pytest.mark.parametrize(("method", "path", "query", "upgrade"), ANY_URL)
def test_refused_origin_gets_403_without_cors(
    method: str, path: str, query: str, upgrade: bool
) -> None:
    """An Origin not allowed gets 403 on every URL, with no CORS header."""
    options = SockJSOptions.of(allowed_origins=["https://good.example"])
    for origin in ("https://evil.example", "null"):
        headers = [("Origin", origin)]
        found = answer(
            method, path, options=options, query=query, headers=headers, upgrade=upgrade
        )
        assert isinstance(found, Response)
        assert found.status == 403
        names = {name.lower() for name, _ in found.headers}
        assert not any(name.startswith("access-control-") for name in names)
        assert ("X-Content-Type-Options", "nosniff") in found.headers
    for headers in ([("Origin", "https://good.example")], []):
        found = answer(
            method, path, options=options, query=query, headers=headers, upgrade=upgrade
        )
        assert not isinstance(found, Response) or found.status != 403


def every_response() -> list[tuple[str, HeaderList]]:
    """Headers of every kind of answer the core makes."""
    etag = dict(Endpoint()("GET", "/iframe.html").header_list)["ETag"]
    requests = [
        *(make_request(m, p, query=q, upgrade=u) for m, p, q, u in ANY_URL),
        make_request("GET", "/iframe.html", headers=[("If-None-Match", etag)]),
        make_request("POST", ""),
        make_request("GET", "/0/0/websocket"),
        make_request("GET", "/0/0/htmlfile"),
        make_request("GET", "/0/0/jsonp", query="c=("),
        make_request("GET", "/0/0/nope"),
        make_request("GET", "/" + "x" * 65 + "/0/xhr"),
    ]
    headers: list[tuple[str, HeaderList]] = []
    for request in requests:
        for options in (ECHO, WS_OFF, SockJSOptions.of(allowed_origins=["x"])):
            request_with_origin = Request(
                request.method,
                request.path,
                request.query_string,
                Headers([*request.headers.items(), ("Origin", "y")]),
                request.upgrade,
            )
            for each in (request, request_with_origin):
                found = route(each, options, LIMITS, lambda: ENTROPY, NOW)
                if isinstance(found, Response):
                    label = f"{each.method} {each.path} -> {found.status}"
                    headers.append((label, found.headers))
    for method, transport, query in RECEIVING_URLS:
        request = make_request(method, f"/0/0/{transport}", query=query)
        found = route(request, COOKIES, LIMITS, lambda: ENTROPY, NOW)
        assert isinstance(found, Route)
        headers.append((transport, receiving_response(found, request, COOKIES)[1]))
    for kind in (Kind.XHR_SEND, Kind.JSONP_SEND):
        request = make_request("POST", "/0/0/x")
        sent = sent_response(Route(kind, "0"), request, COOKIES)
        headers.append((kind.value, sent.headers))
    headers.append(("not_found", not_found().headers))
    headers.append(("error_response", error_response(500, "x").headers))
    return headers


def test_every_response_says_nosniff() -> None:
    """Every response says X-Content-Type-Options: nosniff, once."""
    responses = every_response()
    statuses = {label.rsplit(" ", 1)[-1] for label, _ in responses}
    assert {"200", "204", "304", "400", "403", "404", "405", "500"} <= statuses
    missing = [
        label
        for label, headers in responses
        if [value for name, value in headers if name == "X-Content-Type-Options"]
        != ["nosniff"]
    ]
    assert missing == []


# -- disabled transports -----------------------------------------------------------


XHR_SENDING = frozenset({"xhr", "xhr_streaming", "eventsource", "htmlfile"})


@pytest.mark.parametrize(("method", "transport", "query"), RECEIVING_URLS)
def test_disabled_transport_gets_404(method: str, transport: str, query: str) -> None:
    """A disabled transport's URLs are 404 (preflights too); the others still work."""
    options = SockJSOptions(disabled_transports=frozenset({transport}))
    for each_method in (method, "OPTIONS"):
        found = answer(each_method, f"/0/0/{transport}", options=options, query=query)
        assert isinstance(found, Response)
        assert found.status == 404
    for other_method, other, other_query in RECEIVING_URLS:
        if other != transport:
            path = f"/0/0/{other}"
            found = answer(other_method, path, options=options, query=other_query)
            assert isinstance(found, Route)


def test_xhr_send_stays_while_another_xhr_sending_transport_is_offered() -> None:
    """xhr_send is there while xhr, xhr_streaming, eventsource or htmlfile is."""
    for kept in XHR_SENDING:
        disabled = {*XHR_SENDING, "jsonp"} - {kept}
        options = SockJSOptions(disabled_transports=frozenset(disabled))
        assert answer("POST", "/0/0/xhr_send", options=options) == Route(
            Kind.XHR_SEND, "0"
        )
        found = answer("POST", "/0/0/jsonp_send", options=options)
        assert isinstance(found, Response)
        assert found.status == 404
    none = SockJSOptions(disabled_transports=XHR_SENDING)
    found = answer("POST", "/0/0/xhr_send", options=none)
    assert isinstance(found, Response)
    assert found.status == 404
    found = answer("POST", "/0/0/jsonp_send", options=none)
    assert found == Route(Kind.JSONP_SEND, "0")


# -- what receiving requests get -------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "wrap", "polling"),
    [
        (Kind.XHR, xhr_chunk, True),
        (Kind.XHR_STREAMING, xhr_chunk, False),
        (Kind.EVENTSOURCE, eventsource_chunk, False),
        (Kind.HTMLFILE, htmlfile_chunk, False),
        (Kind.JSONP, lambda frame: jsonp_chunk("cb", frame), True),
    ],
)
def test_receiver_for_each_transport(
    kind: Kind, wrap: Callable[[str], str], polling: bool
) -> None:
    """Each receiving transport frames its way; xhr and jsonp poll, others stream."""
    options = SockJSOptions(response_limit=777)
    receiver = receiver_for(Route(kind, "s", "cb"), options)
    assert (receiver.polling, receiver.response_limit) == (polling, 777)
    assert receiver.wrap('a["x"]') == wrap('a["x"]')
    assert kind.receives
    assert not kind.sends


# -- what sending requests carry -------------------------------------------------


def send(
    body: bytes,
    kind: Kind = Kind.XHR_SEND,
    *,
    limits: Limits = LIMITS,
    headers: Iterable[tuple[str, str]] = (),
) -> list[str]:
    """The messages decode_send finds in a sending request's body."""
    request = make_request("POST", "/0/0/x", headers=headers)
    return decode_send(Route(kind, "0"), request, body, limits)


@pytest.mark.parametrize("body", [b'"a"', b"5", b"null", b"true", b'{"a": ["b"]}'])
def test_xhr_send_json_but_not_an_array_is_payload_expected(body: bytes) -> None:
    """An xhr_send body that is JSON but not an array is "Payload expected."."""
    with pytest.raises(BrokenFraming, match=r"^Payload expected\.$"):
        send(body)


def test_send_with_too_many_messages_is_refused() -> None:
    """More than max_message_frames messages in a body: "Too many messages"."""
    limits = Limits(max_message_frames=3)
    assert send(b'["a","b","c"]', limits=limits) == ["a", "b", "c"]
    with pytest.raises(BrokenFraming, match=r"^Too many messages"):
        send(b'["a","b","c","d"]', limits=limits)
    body = b"d=" + b"%5B%22a%22%2C%22b%22%2C%22c%22%2C%22d%22%5D"
    with pytest.raises(BrokenFraming, match=r"^Too many messages"):
        send(body, Kind.JSONP_SEND, limits=limits, headers=FORM)


def test_non_utf8_body_reads_with_replacement_characters() -> None:
    """Bytes that are not UTF-8 read as U+FFFD: in a string a message, else
    broken JSON."""
    assert send(b'["a\xffb\xe2\x82"]') == ["a\ufffdb\ufffd"]
    with pytest.raises(BrokenFraming, match="Broken JSON encoding"):
        send(b"\xff\xfe[]")
    form = b"d=%5B%22%FF%22%5D"
    assert send(form, Kind.JSONP_SEND, headers=FORM) == ["\ufffd"]


def test_jsonp_send_form_with_more_than_64_fields_is_payload_expected() -> None:
    """A jsonp_send form of more than 64 fields is "Payload expected."."""
    fields = b"&".join(b"f%d=" % number for number in range(63))
    assert send(b"d=%5B%22a%22%5D&" + fields, Kind.JSONP_SEND, headers=FORM) == ["a"]
    with pytest.raises(BrokenFraming, match=r"^Payload expected\.$"):
        send(b"d=%5B%22a%22%5D&" + fields + b"&f", Kind.JSONP_SEND, headers=FORM)
    with pytest.raises(BrokenFraming, match=r"^Payload expected\.$"):
        send(b"&" * 1_000_000, Kind.JSONP_SEND, headers=FORM)


def test_jsonp_send_form_with_a_charset_is_a_form() -> None:
    """A form's Content-Type may carry parameters."""
    headers = [("Content-Type", "application/x-www-form-urlencoded; charset=UTF-8")]
    assert send(b"d=%5B%22a+b%22%5D", Kind.JSONP_SEND, headers=headers) == ["a b"]


def test_sent_responses() -> None:
    """xhr_send is answered 204 with CORS, jsonp_send 200 "ok"."""
    request = make_request("POST", "/0/0/x", headers=[("Origin", "o")])
    xhr = Reply.of(sent_response(Route(Kind.XHR_SEND, "0"), request, ECHO))
    assert (xhr.status, xhr.body) == (204, "")
    assert_cors(xhr, "o")
    jsonp = Reply.of(sent_response(Route(Kind.JSONP_SEND, "0"), request, ECHO))
    assert (jsonp.status, jsonp.body) == (200, "ok")
    assert "access-control-allow-origin" not in jsonp.headers


# -- options -------------------------------------------------------------------------


def test_options_refuse_unknown_transports_and_bad_numbers() -> None:
    """SockJSOptions names its transports and wants positive numbers."""
    assert {"websocket", "xhr", "jsonp"} <= RECEIVING_TRANSPORTS
    with pytest.raises(ValueError, match="unknown transports"):
        SockJSOptions(disabled_transports=frozenset({"xhr_send"}))
    with pytest.raises(ValueError, match="response_limit must be positive"):
        SockJSOptions(response_limit=0)
    with pytest.raises(TypeError, match="heartbeat_delay must be a number"):
        SockJSOptions(heartbeat_delay=True)
    options = SockJSOptions.of(disabled_transports=["jsonp"], allowed_origins=("a",))
    assert options.allowed_origins == frozenset({"a"})
    assert not options.offers("jsonp")
    assert options.offers("xhr")


def test_expires_is_a_year_after_the_given_clock() -> None:
    """The core reads no clock: Expires comes from the ``now`` it is given."""
    found = route(Request("GET", "/iframe.html"), ECHO, LIMITS, lambda: ENTROPY, 0.0)
    assert isinstance(found, Response)
    assert dict(found.headers)["Expires"] == "Fri, 01 Jan 1971 00:00:00 GMT"
