"""changes.py: what the changes channel of a group carries."""

from __future__ import annotations

import pytest

from websocket_multiplex import LeaveReason, MemberJoined, MemberLeft
from websocket_multiplex.fanout.redis.changes import decode_change


def test_each_mark_is_one_change() -> None:
    assert decode_change("g", b"+h:1:2/3/chat") == MemberJoined("g", "h:1:2/3/chat")
    assert decode_change("g", b"-m") == MemberLeft("g", "m", LeaveReason.LEFT)
    assert decode_change("g", b"~m") == MemberLeft("g", "m", LeaveReason.EXPIRED)


@pytest.mark.parametrize("payload", [b"", b"+", b"?m", b'{"m": "x"}'])
def test_foreign_payloads_are_no_change(payload: bytes) -> None:
    assert decode_change("g", payload) is None
