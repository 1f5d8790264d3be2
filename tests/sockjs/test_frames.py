"""SockJS framing (sockjs/frames.py): both directions, and each transport's wrapping."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from websocket_multiplex.exceptions import BrokenFraming
from websocket_multiplex.sockjs.frames import (
    HEARTBEAT,
    OPEN,
    ServerFrame,
    close_frame,
    decode_client_message,
    encode_client_message,
    eventsource_chunk,
    htmlfile_chunk,
    htmlfile_prelude,
    jsonp_chunk,
    messages_frame,
    parse_server_frame,
    quote,
    xhr_chunk,
)

MANY = 1 << 20  # a max_messages no test reaches

# sockjs-node 0.3.24 utils.coffee: what quote() sends as \uXXXX after
# JSON.stringify (which has turned the C0 controls into escapes already).
NODE_ESCAPABLE = re.compile(
    "[\x00-\x1f\ud800-\udfff\u200c-\u200f\u2028-\u202f\u2060-\u206f\ufff0-\uffff]"
)
# JSON.stringify's short escapes.
SHORT_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\t": "\\t",
    "\n": "\\n",
    "\f": "\\f",
    "\r": "\\r",
}


def node_quote_unit(unit: str) -> str:
    """What sockjs-node's quote() gives for a string of one UTF-16 code unit."""
    if unit in SHORT_ESCAPES:
        return f'"{SHORT_ESCAPES[unit]}"'
    if NODE_ESCAPABLE.match(unit):
        return f'"\\u{ord(unit):04x}"'
    return f'"{unit}"'


# A high surrogate followed by a low one is one astral character to any
# JSON reader: such pairs are split so that surrogates stay lone.
_PAIR = re.compile("[\ud800-\udbff][\udc00-\udfff]")


def _unpair(text: str) -> str:
    return _PAIR.sub(lambda match: f"{match[0][0]}x{match[0][1]}", text)


_SPECIAL = '"\\/\n\r\t\x00\x1f\x7f\u2028\u2029\u200c\ufeff\ufff0\uffff\ud800\udfff<>%'
characters = st.one_of(
    st.characters(exclude_categories=()),  # every code point, surrogates too
    st.sampled_from(_SPECIAL),
)
texts = st.text(characters).map(_unpair)
message_lists = st.lists(texts, max_size=8)

# -- what a server sends ---------------------------------------------------------


def test_Protocol_frame_letters() -> None:
    """The open frame is "o" and the heartbeat frame "h"."""
    assert (OPEN, HEARTBEAT) == ("o", "h")


def test_Websocket_close() -> None:
    """A close frame is c[code,"reason"]."""
    assert close_frame(3000, "Go away!") == 'c[3000,"Go away!"]'
    assert close_frame(2010, 'say "hi"\n') == 'c[2010,"say \\"hi\\"\\n"]'


@pytest.mark.parametrize(
    ("messages", "frame"),
    [
        ([], "a[]"),
        (["a"], 'a["a"]'),
        (["a", "", "b,c"], 'a["a","","b,c"]'),
        (['"\\'], 'a["\\"\\\\"]'),
        (["  \x00\n\r "], 'a["  \\u0000\\n\\r "]'),
        (["\u00e9\u4e2d\U0001f600"], 'a["\u00e9\u4e2d\U0001f600"]'),
    ],
)
def test_messages_frame_vectors(messages: list[str], frame: str) -> None:
    """An a[...] frame is the JSON array of the messages; astral characters go raw."""
    assert messages_frame(messages) == frame


def test_messages_frame_escapes_lone_surrogates_and_line_separators() -> None:
    """Lone surrogates and U+2028/U+2029 are sent as \\uXXXX in a[...] frames."""
    frame = messages_frame(["\ud800", "x\u2028y\u2029", "\udfff\ud83d"])
    assert frame == 'a["\\ud800","x\\u2028y\\u2029","\\udfff\\ud83d"]'
    assert frame.isascii()


def test_quote_escapes_exactly_what_sockjs_node_escapes() -> None:
    """quote() of every BMP code unit is what sockjs-node's quote() sends."""
    wrong = [
        hex(code)
        for code in range(0x10000)
        if quote(chr(code)) != node_quote_unit(chr(code))
    ]
    assert wrong == []


@given(st.text(st.characters(max_codepoint=0xFFFF, exclude_categories=())))
def test_quote_of_a_string_is_its_units_quoted(text: str) -> None:
    """Within the BMP, quote() escapes each code unit on its own, as sockjs-node."""
    inner = "".join(node_quote_unit(unit)[1:-1] for unit in text)
    assert quote(text) == f'"{inner}"'


@given(texts)
def test_quote_round_trips_and_is_safe(text: str) -> None:
    """quote() is JSON that reads back as the text, with nothing left raw that
    sockjs-node escapes (so it is UTF-8 even for lone surrogates)."""
    quoted = quote(text)
    assert json.loads(quoted) == text
    assert NODE_ESCAPABLE.search(quoted) is None
    quoted.encode("utf-8")


@given(message_lists)
def test_parse_server_frame_reads_messages_frame(messages: list[str]) -> None:
    """A client reads back the messages of any a[...] frame, lone surrogates too."""
    frame = messages_frame(messages)
    assert parse_server_frame(frame).messages == tuple(messages)
    assert NODE_ESCAPABLE.search(frame) is None
    frame.encode("utf-8")


@pytest.mark.parametrize(
    ("frame", "parsed"),
    [
        ("o", ServerFrame("o")),
        ("h", ServerFrame("h")),
        ("a[]", ServerFrame("a")),
        ('a["x",1,"y"]', ServerFrame("a", ("x", "y"))),
        ('c[3000,"Go away!"]', ServerFrame("c", code=3000, reason="Go away!")),
    ],
)
def test_parse_server_frame_vectors(frame: str, parsed: ServerFrame) -> None:
    """The four kinds of frame a server sends, as a client reads them."""
    assert parse_server_frame(frame) == parsed


@pytest.mark.parametrize(
    "frame",
    ["", "x", "oo", "a", "a{}", 'a"x"', "a[", "c[3000]", 'c["a","b"]', "c[1,2]"],
)
def test_parse_server_frame_rejects(frame: str) -> None:
    """Anything else is not a SockJS frame."""
    with pytest.raises(BrokenFraming):
        parse_server_frame(frame)


# -- what a client sends ---------------------------------------------------------


def test_encode_client_message() -> None:
    """A client sends a JSON array of strings."""
    assert encode_client_message(["a", 'b"']) == '["a","b\\""]'
    assert encode_client_message([]) == "[]"


@given(message_lists)
def test_client_message_round_trips(messages: list[str]) -> None:
    """decode_client_message reads back what encode_client_message wrote."""
    data = encode_client_message(messages)
    most = max(len(messages), 1)
    assert decode_client_message(data, max_messages=most) == messages
    assert decode_client_message(data, max_messages=most, websocket=True) == messages


def _as_json_reads(data: str) -> list[str] | None:
    """The strings json.loads finds in ``data`` (an array), None if broken."""
    try:
        value = json.loads(data)
    except (ValueError, RecursionError):
        return None
    assert isinstance(value, list)
    return [item for item in value if isinstance(item, str)]


@given(
    st.one_of(
        texts.map(lambda text: f'["{text}"]'),
        st.text(st.characters(categories=["L", "N", "P", "S", "Zs"])).map(
            lambda text: f'["{text}"]'
        ),
        st.text(st.sampled_from('ab",[]\\ \n\ud800')).map(lambda t: f'["{t}"]'),
    )
)
def test_decode_client_message_fast_path_is_json(data: str) -> None:
    """A body shaped like one message gives what json.loads gives, or broken JSON."""
    expected = _as_json_reads(data)
    if expected is None:
        with pytest.raises(BrokenFraming, match="Broken JSON encoding"):
            decode_client_message(data, max_messages=MANY)
    else:
        assert decode_client_message(data, max_messages=MANY) == expected


@pytest.mark.parametrize(
    ("data", "messages"),
    [
        ("[]", []),
        ('["a"]', ["a"]),
        ('[""]', [""]),
        (' [ "a" , "b" ] ', ["a", "b"]),
        ('["\\u0041\\ud800"]', ["A\ud800"]),
        ('[1, "a", null, ["b"], {"c": "d"}, "e"]', ["a", "e"]),
    ],
)
def test_decode_client_message_vectors(data: str, messages: list[str]) -> None:
    """A client message is a JSON array; items that are not strings are skipped."""
    assert decode_client_message(data, max_messages=MANY) == messages


@pytest.mark.parametrize(
    "data", ['["x', "[", '["a",]', "['a']", "abc", '["a"] x', "\ufeff[]", "[" * 100_000]
)
def test_decode_client_message_broken_json(data: str) -> None:
    """What is not JSON (nested too deep included) is "Broken JSON encoding."."""
    with pytest.raises(BrokenFraming, match=r"^Broken JSON encoding\.$"):
        decode_client_message(data, max_messages=MANY)


@pytest.mark.parametrize("data", ["[NaN]", '["a", Infinity]', "[-Infinity]"])
def test_decode_client_message_refuses_what_json_parse_refuses(data: str) -> None:
    """NaN and Infinity are not JSON (sockjs-node's JSON.parse refuses them)."""
    with pytest.raises(BrokenFraming, match=r"^Broken JSON encoding\.$"):
        decode_client_message(data, max_messages=MANY)


@pytest.mark.parametrize("data", ["", '"a"', "5", "null", "true", '{"a": ["b"]}'])
def test_decode_client_message_payload_expected(data: str) -> None:
    """Nothing, or JSON that is not an array, is "Payload expected."."""
    with pytest.raises(BrokenFraming, match=r"^Payload expected\.$"):
        decode_client_message(data, max_messages=MANY)


def test_decode_client_message_too_many_messages() -> None:
    """More than max_messages items (strings or not) are refused, none delivered."""
    assert decode_client_message('["a","b","c"]', max_messages=3) == ["a", "b", "c"]
    for data in ('["a","b","c","d"]', '["a",1,2,3]'):
        with pytest.raises(BrokenFraming, match=r"^Too many messages: 4 in one"):
            decode_client_message(data, max_messages=3)


def test_Websocket_empty_frame() -> None:
    """Over a WebSocket an empty message and [] carry no message."""
    assert decode_client_message("", max_messages=MANY, websocket=True) == []
    assert decode_client_message("[]", max_messages=MANY, websocket=True) == []
    assert decode_client_message('["a"]', max_messages=MANY, websocket=True) == ["a"]


def test_Websocket_broken_json() -> None:
    """Broken JSON over a WebSocket is broken framing."""
    with pytest.raises(BrokenFraming, match="Broken JSON encoding"):
        decode_client_message('["a', max_messages=MANY, websocket=True)


def test_Websocket_single_json_string() -> None:
    """Over a WebSocket (only) one JSON string is one message; other values none."""
    assert decode_client_message('"a"', max_messages=MANY, websocket=True) == ["a"]
    assert decode_client_message("5", max_messages=MANY, websocket=True) == []
    with pytest.raises(BrokenFraming, match="Payload expected"):
        decode_client_message('"a"', max_messages=MANY)


def test_JSONEncoding_xhr_server_decodes() -> None:
    """Whatever code units a client escapes, the server reads them back and echoes
    them in a frame that decodes to the same string."""
    escaped = "".join(f"\\u{code:04x}" for code in range(0x10000))
    (message,) = decode_client_message(f'["{escaped}"]', max_messages=1)
    assert message == json.loads(f'"{escaped}"')
    assert json.loads(messages_frame([message])[1:]) == [message]


def test_JSONEncoding_xhr_server_encodes() -> None:
    """The server sends as \\uXXXX every character sockjs-node escapes."""
    # sockjs-protocol's list (above U+00FF): sockjs-node's, but no surrogate.
    wanted = re.compile("[\u200c-\u200f\u2028-\u202f\u2060-\u206f\ufff0-\uffff]")
    units = (chr(code) for code in range(255, 0x10000))
    killers = "".join(unit for unit in units if wanted.match(unit))
    assert len(killers) == 4 + 8 + 16 + 16
    body = xhr_chunk(messages_frame([killers]))
    escaped = "".join(f"\\u{ord(unit):04x}" for unit in killers)
    assert body.strip()[2:-1] == f'"{escaped}"'


# -- how each transport carries a frame ------------------------------------------


def test_xhr_chunk() -> None:
    """xhr-polling and xhr-streaming end each frame with a newline."""
    assert xhr_chunk("o") == "o\n"
    assert xhr_chunk('a["x"]') == 'a["x"]\n'


def test_eventsource_chunk_vectors() -> None:
    """An event is "data: " and the frame, ended by an empty line."""
    assert eventsource_chunk("o") == "data: o\r\n\r\n"
    frame = messages_frame(["  \x00\n\r "])
    assert eventsource_chunk(frame) == 'data: a["  \\u0000\\n\\r "]\r\n\r\n'


def test_eventsource_escapes_percent_cr_lf_nul() -> None:
    """eventsource %-escapes %, CR, LF and NUL (sockjs-client runs decodeURI)."""
    assert eventsource_chunk(messages_frame(["100%"])) == 'data: a["100%25"]\r\n\r\n'
    assert eventsource_chunk("%41\r\n\x00") == "data: %2541%0D%0A%00\r\n\r\n"


def _decode_uri(text: str) -> str:
    """decodeURI, for text whose only %-escapes are of ASCII characters."""
    return re.sub("%([0-9A-F]{2})", lambda match: chr(int(match[1], 16)), text)


@given(texts)
def test_eventsource_chunk_decodes_back(frame: str) -> None:
    """An event's data holds no line break nor NUL, and decodeURI gives the frame."""
    chunk = eventsource_chunk(frame)
    assert chunk.startswith("data: ")
    assert chunk.endswith("\r\n\r\n")
    data = chunk[len("data: ") : -len("\r\n\r\n")]
    assert not set(data) & {"\r", "\n", "\x00"}
    assert _decode_uri(data) == frame


HTMLFILE_START = "<script>\np("
HTMLFILE_END = ");\n</script>\r\n"


def test_htmlfile_chunk_vectors() -> None:
    """htmlfile wraps each frame in a script calling p() with it as a string."""
    assert htmlfile_chunk("o") == '<script>\np("o");\n</script>\r\n'
    assert htmlfile_chunk('a["x"]') == '<script>\np("a[\\"x\\"]");\n</script>\r\n'


@pytest.mark.parametrize(
    "message", ["</script>", "<!--", "<script>alert(1)</script>", "a > b < c"]
)
def test_htmlfile_message_with_script_tags_survives(message: str) -> None:
    """No raw "<" or ">" inside the script: a message with "</script>" survives."""
    chunk = htmlfile_chunk(messages_frame([message]))
    argument = chunk[len(HTMLFILE_START) : -len(HTMLFILE_END)]
    assert "<" not in argument
    assert ">" not in argument
    assert parse_server_frame(json.loads(argument)).messages == (message,)


@given(texts)
def test_htmlfile_chunk_carries_any_frame(frame: str) -> None:
    """The argument of p() is a JSON string of the frame, with no "<" nor ">"."""
    chunk = htmlfile_chunk(frame)
    assert chunk.startswith(HTMLFILE_START)
    assert chunk.endswith(HTMLFILE_END)
    argument = chunk[len(HTMLFILE_START) : -len(HTMLFILE_END)]
    assert not set(argument) & {"<", ">"}
    assert NODE_ESCAPABLE.search(argument) is None
    assert json.loads(argument) == frame


HTMLFILE_PAGE = """<!doctype html>
<html><head>
  <meta http-equiv="X-UA-Compatible" content="IE=edge" />
  <meta http-equiv="Content-Type" content="text/html; charset=UTF-8" />
</head><body><h2>Don't panic!</h2>
  <script>
    document.domain = document.domain;
    var c = parent.%s;
    c.start();
    function p(d) {c.message(d);};
    window.onload = function() {c.stop();};
  </script>"""


@pytest.mark.parametrize("callback", ["callback", "a", "x" * 32, "a.b-c_d"])
def test_htmlfile_prelude_is_the_page_padded_past_1_KiB(callback: str) -> None:
    """htmlfile starts with the page calling parent.<callback>, over 1 KiB long."""
    prelude = htmlfile_prelude(callback)
    assert prelude.strip() == HTMLFILE_PAGE % callback
    assert len(prelude) > 1024
    assert prelude.endswith(" \r\n\r\n")


def test_jsonp_chunk_vectors() -> None:
    """jsonp calls the callback with the frame as a string, after a comment."""
    assert jsonp_chunk("callback", "o") == '/**/callback("o");\r\n'
    assert jsonp_chunk("x", 'a["x"]') == '/**/x("a[\\"x\\"]");\r\n'


@given(texts)
def test_jsonp_chunk_carries_any_frame(frame: str) -> None:
    """The callback's argument is a JSON string of the frame."""
    chunk = jsonp_chunk("cb", frame)
    assert chunk.startswith("/**/cb(")
    assert chunk.endswith(");\r\n")
    argument = chunk[len("/**/cb(") : -len(");\r\n")]
    assert json.loads(argument) == frame
    assert NODE_ESCAPABLE.search(argument) is None
