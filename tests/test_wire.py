"""Frame grammar and JavaScript escape()/unescape(): PROTOCOL.md vectors, fuzzing."""

from __future__ import annotations

import json
import random
import re
import shutil
import subprocess

import pytest
from hypothesis import given
from hypothesis import strategies as st

from websocket_multiplex.exceptions import InvalidFrame
from websocket_multiplex.wire import (
    FRAME_TYPES,
    Frame,
    escape,
    format_frame,
    parse_frame,
    unescape,
)

# -- PROTOCOL.md, "Frame" ------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "frame"),
    [
        ("msg,ann,hi", Frame("msg", "ann", "hi")),
        ("msg,ann,a,b,,c", Frame("msg", "ann", "a,b,,c")),
        ("msg,ann,", Frame("msg", "ann", "")),
        ("msg,ann", Frame("msg", "ann", "")),
        ("sub,ann", Frame("sub", "ann", "")),
        ("sub,ann,x", Frame("sub", "ann", "x")),
        ("uns,ann", Frame("uns", "ann", "")),
        ('msg,ann,{"a": "b,c"}\n😀', Frame("msg", "ann", '{"a": "b,c"}\n😀')),
    ],
)
def test_parse_frame_vectors(text: str, frame: Frame) -> None:
    assert parse_frame(text) == frame


@pytest.mark.parametrize(
    "text",
    [
        "foo",  # no topic
        "",  # nothing at all
        "msg",
        "msg,",  # empty topic
        "sub,",
        ",ann",  # empty type
        "foo,ann",  # unknown type
        "MSG,ann,x",  # types are case-sensitive
        " msg,ann,x",
    ],
)
def test_parse_frame_rejects(text: str) -> None:
    with pytest.raises(InvalidFrame):
        parse_frame(text)


def test_invalid_frame_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        parse_frame("foo")


@pytest.mark.parametrize(
    ("args", "text"),
    [
        (("sub", "ann"), "sub,ann"),
        (("uns", "ann"), "uns,ann"),
        (("msg", "ann", "hi"), "msg,ann,hi"),
        (("msg", "ann", ""), "msg,ann,"),
        (("msg", "ann", "a,b,,c"), "msg,ann,a,b,,c"),
    ],
)
def test_format_frame_vectors(args: tuple[str, ...], text: str) -> None:
    assert format_frame(*args) == text


# -- PROTOCOL.md, "Topics and names" -------------------------------------------

ESCAPE_VECTORS = [
    ("ann", "ann"),
    ("weird name,ü/%", "weird%20name%2C%FC/%25"),
    ("a@*_+-./b", "a@*_+-./b"),
    ("日本", "%u65E5%u672C"),
    ("😀", "%uD83D%uDE00"),
    ("~!#$&()=?", "%7E%21%23%24%26%28%29%3D%3F"),
    ("", ""),
    ("\x00\x7f\xff", "%00%7F%FF"),
    ("\u0100", "%u0100"),
]


@pytest.mark.parametrize(("name", "topic"), ESCAPE_VECTORS)
def test_escape_vectors(name: str, topic: str) -> None:
    assert escape(name) == topic


@pytest.mark.parametrize(("name", "topic"), ESCAPE_VECTORS)
def test_unescape_vectors(name: str, topic: str) -> None:
    assert unescape(topic) == name


@pytest.mark.parametrize(
    ("topic", "name"),
    [
        ("%", "%"),  # malformed sequences stay as they are, as in JavaScript
        ("%4", "%4"),
        ("%zz", "%zz"),
        ("%u12", "%u12"),
        ("%u12G4", "%u12G4"),
        ("%u00e9%e9", "éé"),  # lower-case hex is accepted
        ("%%41", "%A"),
        ("%uD83D", "\ud83d"),  # a lone surrogate is kept
        ("%uDE00%uD83D", "\ude00\ud83d"),  # a reversed pair stays two lone ones
        ("%uD83D%uDE00", "😀"),  # a pair joins into one character
        ("%uD83D\ude00", "😀"),  # also when half of it was not escaped
        ("a+b", "a+b"),  # unlike URL decoding, + is not a space
    ],
)
def test_unescape_edge_cases(topic: str, name: str) -> None:
    assert unescape(topic) == name


def test_escape_of_a_lone_surrogate() -> None:
    assert escape("\ud83d") == "%uD83D"
    assert escape("x\udfffy") == "x%uDFFFy"


# -- properties ----------------------------------------------------------------

# Every code point, lone surrogates included ("Cs"); st.text() leaves them out.
# Mixed with text made of the pieces that are easy to get wrong: surrogate
# halves (in and out of order), astral and Latin-1 characters, "%" and ",".
any_text = st.text(st.characters(codec=None, exclude_categories=())) | st.lists(
    st.sampled_from(["\ud83d", "\ude00", "😀", "ü", "%", "%u", ",", "a", "\x00"])
).map("".join)
SAFE_OUTPUT = re.compile(r"(?:[A-Za-z0-9@*_+\-./]|%[0-9A-F]{2}|%u[0-9A-F]{4})*")


def utf16(text: str) -> bytes:
    """The UTF-16 code units of ``text``: what a JavaScript string holds."""
    return text.encode("utf-16-le", "surrogatepass")


@given(any_text)
def test_unescape_inverts_escape(name: str) -> None:
    # Python may hold a surrogate pair as two code points where JavaScript
    # sees one character; the code units are what must survive.
    assert utf16(unescape(escape(name))) == utf16(name)


@given(st.text())  # st.text() leaves out lone surrogates
def test_unescape_inverts_escape_exactly_for_valid_text(name: str) -> None:
    assert unescape(escape(name)) == name


@given(any_text)
def test_escape_output_is_only_safe_characters_and_escapes(name: str) -> None:
    assert SAFE_OUTPUT.fullmatch(escape(name))


@given(any_text)
def test_escape_never_writes_a_comma(name: str) -> None:
    # The reason topics are escaped: a name cannot break a frame.
    assert "," not in escape(name)


@given(any_text, any_text)
def test_escaped_topic_frames_round_trip(name: str, payload: str) -> None:
    topic = escape(name)
    if not topic:
        return
    assert parse_frame(format_frame("msg", topic, payload)) == Frame(
        "msg", topic, payload
    )


@given(
    st.sampled_from(sorted(FRAME_TYPES)),
    st.text(min_size=1).filter(lambda t: "," not in t),
    any_text,
)
def test_format_parse_round_trip(kind: str, topic: str, payload: str) -> None:
    assert parse_frame(format_frame(kind, topic, payload)) == Frame(
        kind, topic, payload
    )


@given(any_text)
def test_parse_frame_returns_a_frame_or_raises_invalid_frame(text: str) -> None:
    try:
        frame = parse_frame(text)
    except InvalidFrame:
        return
    assert frame.type in FRAME_TYPES
    assert frame.topic
    assert "," not in frame.topic
    assert format_frame(frame.type, frame.topic, frame.payload) in (text, text + ",")


# -- against JavaScript itself -------------------------------------------------

NODE = shutil.which("node")

# Reads {"escape": [...], "unescape": [...]} and answers with the results of
# JavaScript's own functions. JSON carries lone surrogates both ways: Python
# writes them as \udxxx (ensure_ascii), JSON.stringify too (Node 12+).
JS_SCRIPT = """
let input = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (chunk) => { input += chunk; });
process.stdin.on("end", () => {
  const cases = JSON.parse(input);
  process.stdout.write(JSON.stringify({
    escape: cases.escape.map((s) => escape(s)),
    unescape: cases.unescape.map((s) => unescape(s)),
  }));
});
"""


def random_name(rng: random.Random) -> str:
    """Text mixing every range escape() treats differently, lone surrogates too."""
    ranges = [
        (0x20, 0x7E),  # ASCII: safe characters and %XX ones
        (0x00, 0xFF),  # Latin-1 and controls: %XX
        (0x100, 0xD7FF),  # BMP: %uXXXX
        (0xD800, 0xDFFF),  # lone surrogate halves
        (0xE000, 0xFFFF),
        (0x10000, 0x10FFFF),  # astral: a surrogate pair
    ]
    chars = []
    for _ in range(rng.randrange(12)):
        low, high = rng.choice(ranges)
        chars.append(chr(rng.randint(low, high)))
    return "".join(chars)


def random_topic(rng: random.Random) -> str:
    """Text full of %-sequences, well-formed or not, for unescape()."""
    hexdigits = "0123456789abcdefABCDEFgG"
    pieces = []
    for _ in range(rng.randrange(8)):
        kind = rng.randrange(5)
        if kind == 0:
            pieces.append("%" + "".join(rng.choices(hexdigits, k=rng.randrange(4))))
        elif kind == 1:
            pieces.append("%u" + "".join(rng.choices(hexdigits, k=rng.randrange(6))))
        elif kind == 2:
            pieces.append(f"%u{rng.choice([0xD83D, 0xDE00, 0xDBFF, 0xDC00]):04X}")
        elif kind == 3:
            pieces.append(escape(random_name(rng)))
        else:
            pieces.append(random_name(rng))
    return "".join(pieces)


def test_escape_and_unescape_match_javascript() -> None:
    rng = random.Random(20260601)
    names = [random_name(rng) for _ in range(5000)]
    topics = [random_topic(rng) for _ in range(5000)]
    cases = json.dumps({"escape": names, "unescape": topics}, ensure_ascii=True)
    assert NODE is not None, "node is required: the test script installs it"
    result = subprocess.run(
        [NODE, "-e", JS_SCRIPT],
        input=cases.encode("ascii"),
        capture_output=True,
        check=True,
        timeout=30,
    )
    expected = json.loads(result.stdout.decode("utf-8"))
    assert len(expected["escape"]) == len(names)
    escape_mismatches = [
        (name, escape(name), js)
        for name, js in zip(names, expected["escape"], strict=True)
        if escape(name) != js
    ]
    # Compared as UTF-16 code units, which is what a JavaScript string is:
    # Python may hold a surrogate pair as one code point or as two.
    unescape_mismatches = [
        (topic, unescape(topic), js)
        for topic, js in zip(topics, expected["unescape"], strict=True)
        if utf16(unescape(topic)) != utf16(js)
    ]
    assert escape_mismatches[:5] == []
    assert unescape_mismatches[:5] == []
