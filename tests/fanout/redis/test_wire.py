"""wire.py: the names in Redis, the message format, redacted URLs."""

from __future__ import annotations

import pytest

from websocket_multiplex.fanout import Delivery
from websocket_multiplex.fanout.redis.wire import Names, decode, encode, redact


@pytest.mark.parametrize(
    "delivery",
    [
        Delivery("g", "hello", None),
        Delivery("g", 'caf\u00e9 \U0001f600 \ud800 "quoted" \\', "p:1/2/chat"),
        Delivery("g", "", ""),
    ],
)
def test_the_wire_format_round_trips(delivery: Delivery) -> None:
    payload = encode(delivery)
    assert payload.isascii()
    assert decode("g", payload.encode()) == delivery


@pytest.mark.parametrize(
    "payload", [b"", b"[]", b'{"x": null}', b'{"m": 1}', b'{"m": "a", "x": 2}', b"\xff"]
)
def test_foreign_payloads_decode_to_none(payload: bytes) -> None:
    assert decode("g", payload) is None


def test_log_lines_never_show_a_password() -> None:
    assert redact("redis://user:secret@host:6379/0") == "redis://user:***@host:6379/0"
    assert redact("redis://:secret@host/0") == "redis://:***@host/0"
    assert redact("redis://host:6379/0") == "redis://host:6379/0"


def test_a_group_has_a_channel_and_a_presence_key_under_the_prefix() -> None:
    names = Names("websocket-multiplex:")
    assert names.channel("lobby") == "websocket-multiplex:group:lobby"
    assert names.key("lobby") == "websocket-multiplex:presence:lobby"


@pytest.mark.parametrize("group", ["lobby", "", "a:b", "caf\u00e9", "group:x"])
def test_the_group_of_a_channel_is_read_back_from_its_name(group: str) -> None:
    names = Names("app:")
    assert names.group(names.channel(group).encode()) == group


@pytest.mark.parametrize("group", ["lobby", "", "a:b", "caf\u00e9", "watch:x"])
def test_a_changes_channel_names_its_group_and_no_other_is_one(group: str) -> None:
    names = Names("app:")
    assert names.changes("lobby") == "app:watch:lobby"
    assert names.watched(names.changes(group).encode()) == group
    assert names.watched(names.channel(group).encode()) is None
