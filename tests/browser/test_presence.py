"""Shared presence in Chromium: our browser client's ``presence`` event
(docs/PROTOCOL-EXTENSIONS.md, section 6), and nothing for clients without a
session, the original client included."""

from __future__ import annotations

import uuid

import pytest
from playwright.async_api import Page

from websocket_multiplex.testing import connect_in_memory

from ..asyncio.helpers import frame
from .conftest import Servers, Services, wait_for

pytestmark = pytest.mark.asyncio(loop_scope="session")

RECONNECT = {"reconnect": {"initialDelay": 50, "maxDelay": 200, "maxAttempts": 5}}


def presence_of(log: list[list[object]]) -> list[list[object]]:
    return [entry[1:] for entry in log if entry[0] == "presence"]


async def joined_member(services: Services, group: str) -> tuple[object, str]:
    """A member of ``group`` from another (in-memory) client, and its id."""
    client = await connect_in_memory(services.server)
    await client.send("sub,lobby")
    await client.send(f"msg,lobby,{group}")
    assert await frame(client) == "msg,lobby,shared False"  # no session
    (channel,) = client.connection.channels
    return client, channel.member_id


@pytest.mark.parametrize("transport", ["websocket", "native"])
async def test_a_channel_fires_presence_as_members_come_and_go(
    page: Page, servers: Servers, services: Services, transport: str
) -> None:
    await page.goto(f"{servers.page_origin}/ours.html")
    group = f"lobby {uuid.uuid4().hex}, with a comma"
    url = servers.websocket if transport == "native" else servers.endpoint
    await page.evaluate(
        """([transport, url, options, group]) => {
            harness.connectReconnecting(transport, url, options);
            const channel = harness.open("lobby", group);
            const log = harness.log.lobby;  // in the same task: no event missed
            channel.addEventListener("presence", function (e) {
                log.push(["presence", e.group, e.kind, e.member, e.reason, e.gap,
                          e.members]);
            });
        }""",
        [transport, url, RECONNECT, group],
    )
    await wait_for(
        page,
        "() => harness.log.lobby.some((e) => e[0] === 'presence')",
        what="the first snapshot",
    )
    (snapshot,) = presence_of(await page.evaluate("harness.log.lobby"))
    assert snapshot[:5] == [group, "snapshot", None, None, False]
    (own,) = snapshot[5]  # type: ignore[misc]
    assert await page.evaluate("harness.messages('lobby')") == ["shared True"]

    other, other_id = await joined_member(services, group)
    await wait_for(
        page,
        "() => harness.log.lobby.filter((e) => e[0] === 'presence').length >= 2",
        what="a join",
    )
    await other.close()  # type: ignore[attr-defined]
    await wait_for(
        page,
        "() => harness.log.lobby.filter((e) => e[0] === 'presence').length >= 3",
        what="a departure",
    )
    assert presence_of(await page.evaluate("harness.log.lobby")) == [
        snapshot,
        [group, "joined", other_id, None, False, sorted([own, other_id])],
        [group, "left", other_id, "left", False, [own]],
    ]


@pytest.mark.parametrize("client", ["original", "ours"])
async def test_a_client_without_a_session_gets_no_presence(
    page: Page, servers: Servers, services: Services, client: str
) -> None:
    await page.goto(f"{servers.page_origin}/{client}.html")
    group = f"lobby {uuid.uuid4().hex}"
    await page.evaluate(
        """([url, group]) => {
            harness.connect("websocket", url);  // no reconnect: no session
            harness.open("lobby", group);
            harness.open("echo", "after");
        }""",
        [servers.endpoint, group],
    )
    await wait_for(
        page,
        "() => harness.messages('lobby').length >= 1",
        what="the lobby's answer",
    )
    assert await page.evaluate("harness.messages('lobby')") == ["shared False"]
    other, _ = await joined_member(services, group)
    await page.evaluate("harness.send('echo', 'later')")
    await wait_for(
        page,
        "() => harness.messages('echo').length >= 2",
        what="an echo after the join",
    )
    assert [e[0] for e in await page.evaluate("harness.log.lobby")] == [
        "open",
        "message",
    ]
    assert await page.evaluate("harness.errors") == []
    await other.close()  # type: ignore[attr-defined]
