"""codes.py: the notice and close codes, as the documents define them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from websocket_multiplex import codes
from websocket_multiplex.codes import CloseCode, NoticeCode, notice_code

DOCS = Path(__file__).parent.parent / "docs"
NOTICES = [
    codes.FORBIDDEN,
    codes.NO_SUCH_SERVICE,
    codes.TOO_LARGE,
    codes.TOO_MANY_CHANNELS,
    codes.SERVICE_FAILED,
    codes.OVERLOADED,
    codes.GOING_AWAY,
]


def doc(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("notice", "code"),
    [
        ("404 no such service", 404),
        ("1001 server shutting down", 1001),
        ("503", 503),  # a code and no sentence
        ("429  two spaces", 429),
    ],
)
def test_notice_code_reads_the_leading_code(notice: str, code: int) -> None:
    assert notice_code(notice) == code


@pytest.mark.parametrize(
    "notice",
    [
        "",
        " 404 leading space",
        "refused",
        "404x no",
        "10010 five digits",
        "-1 no",
    ],
)
def test_notice_code_of_an_odd_notice_is_none(notice: str) -> None:
    assert notice_code(notice) is None


@pytest.mark.parametrize("notice", ["٤٠٤ Arabic-Indic digits", "² superscript"])
def test_notice_code_of_non_ascii_digits_is_none(notice: str) -> None:
    # A server's notice is remote input: it must not parse as a code, nor
    # raise (int("²") does), in the client's reader.
    assert notice_code(notice) is None


def test_every_notice_starts_with_its_code_and_a_sentence() -> None:
    assert len(NOTICES) == len(NoticeCode)
    assert {notice_code(notice) for notice in NOTICES} == set(NoticeCode)
    for notice in NOTICES:
        code, space, sentence = notice.partition(" ")
        assert space and sentence, notice
        assert code == str(notice_code(notice))


def test_the_notices_are_those_of_the_limits_document() -> None:
    documented = re.findall(r"^\| `(\d+ [^`]+)` \|", doc("LIMITS.md"), re.MULTILINE)
    assert sorted(documented) == sorted(NOTICES)


def test_the_notice_codes_of_the_extensions_document_are_named() -> None:
    section = doc("PROTOCOL-EXTENSIONS.md").split("## 2.", 1)[1].split("\n## ", 1)[0]
    documented = {int(code) for code in re.findall(r"^\| (\d+) +\|", section, re.M)}
    assert documented and documented <= set(NoticeCode)


def test_close_codes_match_the_limits_document() -> None:
    line = re.search(r"Connection close codes: (.*?)\. ", doc("LIMITS.md"), re.S)
    assert line is not None
    documented = {
        int(code): meaning
        for code, meaning in re.findall(r"`(\d+)` ([a-z ]+)", " ".join(line[1].split()))
    }
    assert documented == {
        CloseCode.GOING_AWAY: "server shutdown",
        CloseCode.SLOW_CLIENT: "slow client",
        CloseCode.TOO_MANY_SUBSCRIPTIONS: "too many subscriptions",
    }


def test_close_codes_are_the_websocket_and_sockjs_values() -> None:
    # RFC 6455 section 7.4.1 for 1000-1009; SockJS's own 3000; ours in 4000-4999.
    assert {code.name: code.value for code in CloseCode} == {
        "NORMAL": 1000,
        "GOING_AWAY": 1001,
        "PROTOCOL_ERROR": 1002,
        "MESSAGE_TOO_BIG": 1009,
        "APPLICATION": 3000,
        "SLOW_CLIENT": 4008,
        "TOO_MANY_SUBSCRIPTIONS": 4029,
    }


def test_going_away_is_one_number_for_notices_and_closes() -> None:
    assert NoticeCode.GOING_AWAY.value == CloseCode.GOING_AWAY.value == 1001
