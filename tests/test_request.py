"""RequestInfo and Headers: what services learn about the client."""

from __future__ import annotations

import dataclasses

import pytest

from websocket_multiplex.request import Headers, RequestInfo


def test_headers_are_case_insensitive() -> None:
    headers = Headers([("Content-Type", "text/plain"), ("X-Thing", "1")])
    assert headers["content-type"] == "text/plain"
    assert headers["CONTENT-TYPE"] == "text/plain"
    assert "x-thing" in headers
    assert headers.get("missing") is None
    assert len(headers) == 2
    assert sorted(headers) == ["content-type", "x-thing"]


def test_repeated_headers_are_joined() -> None:
    headers = Headers([("Accept", "a"), ("accept", "b"), ("ACCEPT", "c")])
    assert headers["accept"] == "a, b, c"
    assert len(headers) == 1


def test_headers_are_read_only() -> None:
    headers = Headers([("a", "1")])
    with pytest.raises(TypeError):
        headers["a"] = "2"  # type: ignore[index]


def test_headers_repr() -> None:
    assert repr(Headers([("A", "1")])) == "Headers({'a': '1'})"


def test_defaults() -> None:
    request = RequestInfo()
    assert request.path == "/"
    assert request.query == {}
    assert request.cookies == {}
    assert request.origin is None
    assert request.remote_address is None


def test_request_info_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        RequestInfo().path = "/x"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("query_string", "query"),
    [
        ("", {}),
        ("a=1&b=2", {"a": "1", "b": "2"}),
        ("a=1&a=2", {"a": "1"}),  # the first value wins
        ("flag&empty=", {"flag": "", "empty": ""}),
        ("name=%C3%BC+x", {"name": "ü x"}),
    ],
)
def test_query(query_string: str, query: dict[str, str]) -> None:
    assert RequestInfo(query_string=query_string).query == query


@pytest.mark.parametrize(
    ("header", "cookies"),
    [
        ("session=abc; theme=dark", {"session": "abc", "theme": "dark"}),
        ('quoted="a b"', {"quoted": "a b"}),
        ("", {}),
    ],
)
def test_cookies(header: str, cookies: dict[str, str]) -> None:
    request = RequestInfo(headers=Headers([("Cookie", header)]))
    assert request.cookies == cookies


def test_cookies_without_a_header() -> None:
    assert RequestInfo(headers=Headers([("X", "y")])).cookies == {}


def test_origin() -> None:
    request = RequestInfo(headers=Headers([("Origin", "https://app.example")]))
    assert request.origin == "https://app.example"


@pytest.mark.parametrize(
    ("header", "cookies"),
    [
        ("session=abc; a b=1", {"session": "abc", "a b": "1"}),
        ("lang=ü; session=abc", {"lang": "ü", "session": "abc"}),
        ("session=abc; flag", {"session": "abc"}),
        ("session=abc; path=/x", {"session": "abc", "path": "/x"}),
        ('session=abc; prefs={"a":1}', {"session": "abc", "prefs": '{"a":1}'}),
    ],
)
def test_cookies_as_browsers_send_them(header: str, cookies: dict[str, str]) -> None:
    request = RequestInfo(headers=Headers([("Cookie", header)]))
    assert request.cookies.items() >= cookies.items()


def test_cookie_lines_split_by_http2_are_joined_as_one_cookie_header() -> None:
    headers = Headers(
        [("cookie", "a=1"), ("Cookie", "b=2"), ("Accept", "x"), ("accept", "y")]
    )
    assert headers["cookie"] == "a=1; b=2"
    assert headers["accept"] == "x, y"
    assert RequestInfo(headers=headers).cookies == {"a": "1", "b": "2"}
