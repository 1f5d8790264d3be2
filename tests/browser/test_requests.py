"""Request/reply between our browser client and our server, both ways, in
Chromium (docs/PROTOCOL-EXTENSIONS.md, section 5); and the fallbacks: a
plain socket, and the original node server, which take no requests."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest
from playwright.async_api import Page

from websocket_multiplex import (
    Channel,
    LocalProtocolError,
    Request,
    RequestFailed,
    RequestsNotSupported,
)

from ..support.proxy import Proxy
from .conftest import Servers, Services, wait_until
from .test_reference_server import ReferenceServer, reference  # noqa: F401

pytestmark = pytest.mark.asyncio(loop_scope="session")

TRANSPORTS = ["websocket", "native"]


def register_request_services(services: Services) -> None:
    """Services for these tests, on the session's server (once)."""

    async def calc(channel: Channel) -> None:
        batch: list[Request] = []
        async for request in channel.requests():
            if request.data.startswith("fail "):
                await request.fail(request.data[5:], 422)
            elif request.data.startswith("hold "):
                batch.append(request)
                if len(batch) == 3:  # the last first: replies out of order
                    for held in reversed(batch):
                        await held.reply(f"re {held.data}")
                    batch = []
            elif request.data == "close":
                await channel.close()
            elif request.data != "never":
                await request.reply(request.data.upper())

    async def asker(channel: Channel) -> None:
        async for data in channel:
            try:
                reply = await channel.ask(data, timeout=5)
            except (RequestFailed, RequestsNotSupported) as error:
                reply = f"{type(error).__name__} {getattr(error, 'code', '')}"
            await channel.send(reply)

    async def gate(channel: Channel) -> None:
        """Holds every request until the page sends ``go``."""
        held: list[Request] = []

        async def take() -> None:
            async for request in channel.requests():
                held.append(request)
                GATED.append(request.data)

        taking = asyncio.ensure_future(take())
        try:
            async for data in channel:
                if data == "go":
                    for request in held:
                        await request.reply(f"gated {request.data}")
        finally:
            taking.cancel()

    handlers = {"rq-calc": calc, "rq-asker": asker, "rq-gate": gate}
    for name, handler in handlers.items():
        # Registered already by an earlier test of this session, maybe.
        with contextlib.suppress(LocalProtocolError):
            services.server.register(name, handler)


GATED: list[str] = []
"""What the gate service holds, for the test to wait on."""

CONNECT = """([transport, url, reconnecting]) => {
    const make = function () {
        return transport === "native" ? new WebSocket(url)
            : new SockJS(url, null, {transports: [transport]});
    };
    window.mux = new WebSocketMultiplex(reconnecting ? make : make());
    window.failure = async function (promise) {
        try {
            return ["resolved", await promise];
        } catch (error) {
            return [error.name, error.code, error.text || error.message];
        }
    };
}"""


def url_of(servers: Servers, transport: str) -> str:
    return servers.websocket if transport == "native" else servers.endpoint


async def run(page: Page, script: str, *args: Any) -> Any:
    async with asyncio.timeout(20):
        return await page.evaluate(script, list(args))


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_the_page_asks_the_service(
    page: Page, servers: Servers, services: Services, transport: str
) -> None:
    register_request_services(services)
    await page.goto(f"{servers.page_origin}/ours.html")
    await run(page, CONNECT, transport, url_of(servers, transport), True)
    results = await run(
        page,
        """async () => {
            const calc = mux.channel("rq-calc");  // asked before the socket is open
            const out = {};
            out.first = await calc.request("a,b 😀");
            out.failed = await failure(calc.request("fail not today"));
            out.reversed = await Promise.all(
                ["1", "2", "3"].map((n) => calc.request("hold " + n)));
            out.timeout = await failure(calc.request("never", {timeout: 200}));
            out.after = await calc.request("still there");
            out.bad = await failure(calc.request("x", {timeout: -1}));
            const pending = failure(calc.request("never", {timeout: Infinity}));
            out.closed = await failure(calc.request("close"));
            out.pending = await pending;
            out.onClosed = await failure(calc.request("x"));
            return out;
        }""",
    )
    assert results["first"] == "A,B 😀"
    assert results["failed"] == ["RequestFailedError", 422, "not today"]
    assert results["reversed"] == ["re hold 1", "re hold 2", "re hold 3"]
    assert results["timeout"] == ["RequestTimeoutError", 504, "no reply within 200 ms"]
    assert results["after"] == "STILL THERE"
    assert results["bad"][0] == "TypeError"
    assert results["closed"] == ["ChannelClosedError", 1000, "closed by server"]
    assert results["pending"] == ["ChannelClosedError", 1000, "closed by server"]
    assert results["onClosed"][0] == "ChannelClosedError"


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_the_service_asks_the_page(
    page: Page, servers: Servers, services: Services, transport: str
) -> None:
    register_request_services(services)
    await page.goto(f"{servers.page_origin}/ours.html")
    await run(page, CONNECT, transport, url_of(servers, transport), True)
    results = await run(
        page,
        """async () => {
            const asker = mux.channel("rq-asker");
            const replies = [];
            const next = () => new Promise((resolve) => {
                asker.onmessage = (e) => resolve(e.data);
            });
            let reply = next();
            asker.send("nobody answers");  // no onrequest: 501 at once
            replies.push(await reply);
            asker.onrequest = (request) => {
                if (request.data === "no") {
                    request.fail("the page says no", 409);
                } else if (request.data === "later") {
                    return new Promise((done) => setTimeout(done, 10, "later on"));
                } else if (request.data === "throw") {
                    throw new Error("the page's handler broke (on purpose)");
                } else {
                    request.reply("page " + request.data);
                }
            };
            for (const question of ["yes", "no", "later", "throw"]) {
                reply = next();
                asker.send(question);
                replies.push(await reply);
            }
            return replies;
        }""",
    )
    assert results == [
        "RequestFailed 501",
        "page yes",
        "RequestFailed 409",
        "later on",
        "RequestFailed 500",
    ]


async def test_a_resumed_cut_loses_no_request(
    page: Page, servers: Servers, services: Services
) -> None:
    """Over a native WebSocket through a proxy that resets the connection
    while requests are in flight: the session resumes, the replies come."""
    register_request_services(services)
    GATED.clear()
    port = int(servers.endpoint.split(":")[2].split("/")[0])
    await page.goto(f"{servers.page_origin}/ours.html")
    async with Proxy(port) as proxy:
        url = f"ws://127.0.0.1:{proxy.port}/multiplex/websocket"
        await run(page, CONNECT, "native", url, True)
        await run(
            page,
            """() => {
                window.opens = [];
                mux.addEventListener("open", (e) => opens.push(e.resumed));
                const gate = window.gate = mux.channel("rq-gate");
                window.replies = Promise.all(["1", "2"].map(
                    (n) => failure(gate.request(n, {timeout: Infinity}))));
            }""",
        )
        await wait_until(lambda: len(GATED) == 2)
        proxy.abort()  # the requests are in, their replies not yet out
        results = await run(
            page,
            """async () => {
                gate.send("go");  // kept while the socket is down, resent
                return [await replies, opens];
            }""",
        )
    replies, opens = results
    assert replies == [["resolved", "gated 1"], ["resolved", "gated 2"]]
    assert opens[-1] is True  # resumed: nothing lost, nothing repeated


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_plain_socket_takes_no_requests_and_sends_none(
    page: Page, servers: Servers, services: Services, transport: str
) -> None:
    """Without a factory there is no session: nothing new goes on the wire,
    either way."""
    register_request_services(services)
    await page.goto(f"{servers.page_origin}/ours.html")
    await run(page, CONNECT, transport, url_of(servers, transport), False)
    results = await run(
        page,
        """async () => {
            const calc = mux.channel("rq-calc");
            const asker = mux.channel("rq-asker");
            asker.onrequest = (request) => request.reply("never asked");
            const refused = await failure(calc.request("x"));
            const reply = new Promise((resolve) => {
                asker.onmessage = (e) => resolve(e.data);
            });
            asker.send("anyone?");
            return [refused, await reply];
        }""",
    )
    refused, reply = results
    assert refused[:2] == ["RequestsNotSupportedError", 501]
    assert "{resume: false}" in refused[2]
    assert reply == "RequestsNotSupported "


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_the_original_server_takes_no_requests(
    page: Page,
    servers: Servers,
    reference: ReferenceServer,  # noqa: F811
    transport: str,
) -> None:
    await page.goto(f"{servers.page_origin}/ours.html")
    url = reference.ready["websocket" if transport == "native" else "url"]
    results = await run(
        page,
        CONNECT[:-1]
        + """
        return (async () => {
            const ann = mux.channel("ann");  // greets: the offer is answered no
            const refused = await failure(ann.request("x"));
            const reply = new Promise((resolve) => {
                ann.onmessage = (e) => resolve(e.data);
            });
            ann.send("after");
            return [refused, await reply];
        })();
    }""",
        transport,
        url,
        True,
    )
    refused, reply = results
    assert refused[:2] == ["RequestsNotSupportedError", 501]
    assert "base protocol" in refused[2]
    assert reply == "Ann nods: after"
