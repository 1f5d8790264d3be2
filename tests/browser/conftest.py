"""Real headless Chromium against our SockJS endpoints.

Two servers on 127.0.0.1, on different ports so the page is cross-origin
to the endpoint, as in most deployments:

* the *page server* serves the test pages, ``harness.js``, the pinned
  sockjs-client and the original ``multiplex_client.js`` straight from
  ``tests/node/node_modules`` (unmodified), and our client through
  :func:`add_client_routes`;
* the *multiplex server* is :func:`add_sockjs_endpoint` over
  :class:`Services`, with ``sockjs_url`` pointing at the page server so the
  iframe transports load sockjs-client without the internet. The same
  endpoint runs under the ASGI driver too (:func:`uvicorn_servers`): a
  :class:`SockJSASGI` served by uvicorn at a prefix of its own, and one
  mounted in Starlette (:func:`starlette_servers`); :func:`driver_servers`
  picks one by name.

One Chromium runs for the whole session; every test gets a fresh context.
Everything shares the session's event loop, so tests inspect the server's
channels directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from playwright.async_api import Browser, Page, async_playwright
from playwright.async_api import TimeoutError as PlaywrightTimeout
from starlette.applications import Starlette
from starlette.routing import Mount

from websocket_multiplex import Channel, CloseReason, Connection, MultiplexServer
from websocket_multiplex.adapters import uvicorn as uvicorn_adapter
from websocket_multiplex.adapters.aiohttp import add_client_routes, add_sockjs_endpoint
from websocket_multiplex.adapters.asgi import SockJSASGI

from ..servers import uvicorn_running
from ..support.chromium import launch

HERE = Path(__file__).parent
NODE = HERE.parent / "node"
PINNED = ("sockjs-client", "websocket-multiplex")


WEIRD = "weird name,ü/%😀"
"""A service name that needs escaping: comma, space, Latin-1, %, astral."""

NUMBERED = [f"n{i}" for i in range(50)]
"""Fifty more services, for fifty channels on one connection."""

ODD = ["__proto__", "toString", "constructor", "hasOwnProperty"]
"""Names that break clients keeping channels in a plain object."""


# -- the JavaScript fixtures ----------------------------------------------------


def installed_node_modules() -> Path:
    """Return tests/node/node_modules; fail (not skip) if it is not installed."""
    modules = NODE / "node_modules"
    wanted = json.loads((NODE / "package.json").read_text())["dependencies"]
    for package, version in wanted.items():
        manifest = modules / package / "package.json"
        found = (
            json.loads(manifest.read_text())["version"] if manifest.exists() else None
        )
        if found != version:
            pytest.fail(
                f"tests/node/node_modules has {package} {found or 'missing'}, "
                f"the tests need {version}: run `npm ci --prefix tests/node`",
                pytrace=False,
            )
    return modules


@pytest.fixture(scope="session")
def node_modules() -> Path:
    return installed_node_modules()


# -- the services under test ------------------------------------------------------


@dataclass(eq=False)
class Services:
    """The MultiplexServer behind the endpoint, recording every channel.

    Each page opens a ``tag`` channel and sends a token first, so a test
    finds its own connection among those of earlier tests.
    """

    server: MultiplexServer = field(default_factory=MultiplexServer)
    opened: list[Channel] = field(default_factory=list)
    received: dict[Channel, list[str]] = field(default_factory=dict)
    tags: dict[str, Connection] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._replying("ann", "Ann says hi!", "Ann nods: {}")
        self._replying("bob", "Bob doesn't agree.", "Bob says no to: {}")
        self._replying("echo", None, "{}")
        self._replying("queue", None, "{}")
        self._replying(WEIRD, WEIRD, "weird: {}")
        for name in NUMBERED + ODD:
            self._replying(name, f"{name} ready", name + ": {}")

        @self.server.channel("carl")
        async def carl(channel: Channel) -> None:
            self._record(channel)
            await channel.close("Carl says goodbye!")

        @self.server.channel("lobby")
        async def lobby(channel: Channel) -> None:
            # The first message names the group: a test's own, in a
            # session-wide server. Then it says whether presence is shared.
            self._record(channel)
            group = await channel.receive()
            await channel.join(group)
            await channel.send(f"shared {channel.share_presence(group)}")
            async for data in channel:
                self.received[channel].append(data)

        @self.server.channel("tag")
        async def tag(channel: Channel) -> None:
            self._record(channel)
            async for token in channel:
                self.received[channel].append(token)
                self.tags[token] = channel.connection

    def _replying(self, name: str, greeting: str | None, reply: str) -> None:
        async def handler(channel: Channel) -> None:
            self._record(channel)
            if greeting is not None:
                await channel.send(greeting)
            async for data in channel:
                self.received[channel].append(data)
                await channel.send(reply.format(data))

        self.server.register(name, handler)

    def _record(self, channel: Channel) -> None:
        self.opened.append(channel)
        self.received[channel] = []

    async def connection(self, token: str, timeout: float = 10.0) -> Connection:
        """The connection whose page sent ``token`` on its tag channel."""
        await wait_until(lambda: token in self.tags, timeout)
        return self.tags[token]

    def channels_of(self, connection: Connection) -> dict[str, Channel]:
        return {c.name: c for c in self.opened if c.connection is connection}


async def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll a server-side condition, bounded in time."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


async def wait_closed(channel: Channel, timeout: float = 15.0) -> CloseReason:
    async with asyncio.timeout(timeout):
        return await channel.wait_closed()


# -- servers and browser ------------------------------------------------------------


@dataclass(frozen=True)
class Servers:
    page_origin: str
    """Where the test pages come from (http://127.0.0.1:<port>)."""
    endpoint: str
    """The SockJS endpoint, on another port: http://127.0.0.1:<port>/multiplex."""

    @property
    def websocket(self) -> str:
        """The raw WebSocket endpoint of the same SockJS server."""
        return self.endpoint.replace("http://", "ws://", 1) + "/websocket"


PAGES = {
    "original": ["/sockjs.min.js", "/multiplex_client.js", "/harness.js"],
    "ours": [
        "/sockjs.min.js",
        "/websocket-multiplex/websocket-multiplex.js",
        "/harness.js",
    ],
}


ESM_PAGE = """<!doctype html>
<meta charset="utf-8">
<script type="module">
import DefaultExport, { MultiplexChannel, WebSocketMultiplex }
  from "/websocket-multiplex/websocket-multiplex.mjs";
const esm = window.esm = {
  same: DefaultExport === WebSocketMultiplex,
  channelClass: MultiplexChannel === WebSocketMultiplex.Channel,
  global: typeof window.WebSocketMultiplex,
  messages: [],
};
const url = new URLSearchParams(location.search).get("ws");
const ann = new WebSocketMultiplex(new WebSocket(url)).channel("ann");
ann.send("from a module");  // queued until the socket opens
ann.onmessage = (e) => esm.messages.push(e.data);
</script>
"""


def page_app(modules: Path) -> web.Application:
    app = web.Application()
    files = {
        "/sockjs.min.js": modules / "sockjs-client" / "dist" / "sockjs.min.js",
        "/multiplex_client.js": modules / "websocket-multiplex" / "multiplex_client.js",
        "/harness.js": HERE / "harness.js",
    }
    for path, file in files.items():
        body = file.read_bytes()

        async def serve(_: web.Request, body: bytes = body) -> web.Response:
            return web.Response(body=body, content_type="text/javascript")

        app.router.add_get(path, serve)
    for client, scripts in PAGES.items():
        html = "<!doctype html>\n<meta charset='utf-8'>\n" + "".join(
            f"<script src='{src}'></script>\n" for src in scripts
        )

        async def page(_: web.Request, html: str = html) -> web.Response:
            return web.Response(text=html, content_type="text/html")

        app.router.add_get(f"/{client}.html", page)

    async def blank(_: web.Request) -> web.Response:
        return web.Response(
            text="<!doctype html><title>blank</title>", content_type="text/html"
        )

    app.router.add_get("/blank.html", blank)

    async def esm(_: web.Request) -> web.Response:
        return web.Response(text=ESM_PAGE, content_type="text/html")

    app.router.add_get("/esm.html", esm)
    add_client_routes(app)
    return app


async def start(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


def sockjs_options(page_origin: str) -> dict[str, Any]:
    """What every driver's endpoint is given, whichever driver."""
    return {
        "sockjs_url": f"{page_origin}/sockjs.min.js",
        # A lost poller is noticed after at most a heartbeat and this delay
        # (jsonp-polling cannot abort its held request).
        "heartbeat_delay": 2.0,
        "disconnect_delay": 2.0,
    }


@contextlib.asynccontextmanager
async def uvicorn_serving(app: Any, timeout: float = 10.0) -> AsyncIterator[str]:
    """Serve ``app`` under uvicorn, configured by our adapter, in this event
    loop; yield its ``http://127.0.0.1:PORT``."""
    config = uvicorn_adapter.config(
        app,
        "127.0.0.1",
        0,
        lifespan="on",
        log_config=None,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=5,
    )
    async with uvicorn_running(config) as port:
        yield f"http://127.0.0.1:{port}"


@pytest_asyncio.fixture(loop_scope="session", scope="session")
async def services() -> Services:
    return Services()


@pytest_asyncio.fixture(loop_scope="session", scope="session")
async def page_origin(node_modules: Path) -> AsyncIterator[str]:
    pages, origin = await start(page_app(node_modules))
    try:
        yield origin
    finally:
        await pages.cleanup()


@pytest_asyncio.fixture(loop_scope="session", scope="session")
async def servers(page_origin: str, services: Services) -> AsyncIterator[Servers]:
    """The aiohttp driver: :func:`add_sockjs_endpoint` at ``/multiplex``."""
    app = web.Application()
    add_sockjs_endpoint(
        app, services.server, prefix="/multiplex", **sockjs_options(page_origin)
    )
    multiplex, origin = await start(app)
    try:
        yield Servers(page_origin, f"{origin}/multiplex")
    finally:
        await multiplex.cleanup()


@pytest_asyncio.fixture(loop_scope="session", scope="session")
async def uvicorn_servers(
    page_origin: str, services: Services
) -> AsyncIterator[Servers]:
    """The ASGI driver on its own: ``SockJSASGI(prefix="/multiplex")`` is
    the whole application uvicorn serves (and its lifespan)."""
    app = SockJSASGI(
        services.server, prefix="/multiplex", **sockjs_options(page_origin)
    )
    async with uvicorn_serving(app) as origin:
        yield Servers(page_origin, f"{origin}/multiplex")


@pytest_asyncio.fixture(loop_scope="session", scope="session")
async def starlette_servers(
    page_origin: str, services: Services
) -> AsyncIterator[Servers]:
    """The ASGI driver mounted in Starlette at ``/multiplex`` (the prefix is
    the mount's ``root_path``), Starlette running the lifespan."""
    sockjs = SockJSASGI(services.server, **sockjs_options(page_origin))
    app = Starlette(routes=[Mount("/multiplex", app=sockjs)], lifespan=sockjs.lifespan)
    async with uvicorn_serving(app) as origin:
        yield Servers(page_origin, f"{origin}/multiplex")


DRIVERS = {
    "aiohttp": "servers",
    "uvicorn": "uvicorn_servers",
    "starlette": "starlette_servers",
}
"""Each driver of the same SockJS endpoint, by the fixture that serves it;
a server starts with the first test that asks for it."""


@pytest.fixture
def driver_servers(request: pytest.FixtureRequest, driver: str) -> Servers:
    """The servers of the test's ``driver`` parameter (a key of :data:`DRIVERS`)."""
    servers: Servers = request.getfixturevalue(DRIVERS[driver])
    return servers


@pytest_asyncio.fixture(loop_scope="session", scope="session")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await launch(playwright)
        try:
            yield browser
        finally:
            await browser.close()


@dataclass
class PageProblems:
    """What the page said on its console and what it threw, for failures."""

    lines: list[str] = field(default_factory=list)


@pytest_asyncio.fixture(loop_scope="session")
async def page(browser: Browser) -> AsyncIterator[Page]:
    context = await browser.new_context()
    page = await context.new_page()
    problems = PageProblems()
    page.on("console", lambda m: problems.lines.append(f"console.{m.type}: {m.text}"))
    page.on("pageerror", lambda e: problems.lines.append(f"pageerror: {e}"))
    page.problems = problems  # type: ignore[attr-defined]
    try:
        yield page
    finally:
        await context.close()


async def wait_for(
    page: Page, predicate: str, arg: Any = None, what: str = "", timeout: float = 20.0
) -> None:
    """Wait for a JS predicate; on timeout fail with the page's whole record."""
    try:
        await page.wait_for_function(predicate, arg=arg, timeout=timeout * 1000)
    except PlaywrightTimeout:
        state = await page.evaluate(
            "() => typeof harness === 'undefined' ? null : "
            "({log: harness.log, socket: harness.socketEvents, errors: harness.errors})"
        )
        console = "\n".join(page.problems.lines)  # type: ignore[attr-defined]
        raise AssertionError(
            f"timed out after {timeout}s waiting for {what or predicate}\n"
            f"page state: {json.dumps(state, ensure_ascii=False)[:6000]}\n"
            f"console:\n{console}"
        ) from None
