"""The aiohttp adapters over real sockets on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from websocket_multiplex import Channel, CloseReason, Limits, MultiplexServer
from websocket_multiplex.adapters.aiohttp import (
    add_client_routes,
    add_metrics_route,
    add_sockjs_endpoint,
    add_websocket_route,
    serve,
)
from websocket_multiplex.asyncio.sockjs import HTTPSession
from websocket_multiplex.testing import check_adapter_conformance, conformance_server

from .carriers import (
    RawWebSocketCarrier,
    SockJSWebSocketCarrier,
    SockJSXhrPollingCarrier,
    wait_until,
)


async def start(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{port}"


@pytest.fixture
async def sockjs_url() -> AsyncIterator[str]:
    app = web.Application()
    add_sockjs_endpoint(app, conformance_server(), prefix="/multiplex")
    runner, base = await start(app)
    yield f"{base}/multiplex"
    await runner.cleanup()


async def test_conformance_raw_sockjs_websocket(sockjs_url: str) -> None:
    ws_url = sockjs_url.replace("http", "ws") + "/websocket"
    await check_adapter_conformance(lambda: RawWebSocketCarrier.connect(ws_url))


async def test_conformance_sockjs_websocket_transport(sockjs_url: str) -> None:
    url = sockjs_url.replace("http", "ws")
    await check_adapter_conformance(lambda: SockJSWebSocketCarrier.connect(url))


async def test_conformance_sockjs_xhr_polling(sockjs_url: str) -> None:
    await check_adapter_conformance(lambda: SockJSXhrPollingCarrier.connect(sockjs_url))


async def test_conformance_plain_websocket_route() -> None:
    app = web.Application()
    add_websocket_route(app, conformance_server(), "/ws")
    runner, base = await start(app)
    try:
        url = base.replace("http", "ws") + "/ws"
        await check_adapter_conformance(lambda: RawWebSocketCarrier.connect(url))
    finally:
        await runner.cleanup()


# -- what aio-libs sockjs 0.13 got wrong, and this endpoint does not ---------


class Recorder:
    """A server whose 'rec' channels record how and why they closed."""

    def __init__(self) -> None:
        self.server = MultiplexServer()
        self.closed: list[CloseReason] = []
        self.requests: list[object] = []
        self.opened = 0
        self.server.register("rec", self.handler)

    async def handler(self, channel) -> None:  # type: ignore[no-untyped-def]
        self.opened += 1
        self.requests.append(channel.request)
        await channel.send("ready")
        async for data in channel:
            await channel.send(data)
        self.closed.append(channel.close_reason)


@pytest.fixture
async def recorder() -> AsyncIterator[tuple[Recorder, str]]:
    rec = Recorder()
    app = web.Application()
    add_sockjs_endpoint(
        app, rec.server, prefix="/mx", sockjs_url="http://127.0.0.1:1/local-sockjs.js"
    )
    runner, base = await start(app)
    yield rec, f"{base}/mx"
    await runner.cleanup()


ORIGIN = "http://page.example:8000"


@pytest.mark.parametrize(
    ("path", "methods"),
    [
        ("/info", "OPTIONS, GET"),
        ("/000/abcdefgh/xhr", "OPTIONS, POST"),
        ("/000/abcdefgh/xhr_send", "OPTIONS, POST"),
        ("/000/abcdefgh/xhr_streaming", "OPTIONS, POST"),
    ],
)
async def test_preflight_answers_like_sockjs_node(
    recorder: tuple[Recorder, str], path: str, methods: str
) -> None:
    _, url = recorder
    headers = {"Origin": ORIGIN, "Access-Control-Request-Headers": "content-type"}
    async with (
        aiohttp.ClientSession() as http,
        http.options(url + path, headers=headers) as response,
    ):
        assert response.status == 204
        assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
        assert response.headers["Access-Control-Allow-Credentials"] == "true"
        assert response.headers["Access-Control-Allow-Methods"] == methods
        assert response.headers["Access-Control-Allow-Headers"] == "content-type"
        assert response.headers["Access-Control-Max-Age"] == "31536000"
        assert "max-age=31536000" in response.headers["Cache-Control"]
        assert "Expires" in response.headers


async def test_info_and_streaming_responses_carry_cors(
    recorder: tuple[Recorder, str],
) -> None:
    _, url = recorder
    async with aiohttp.ClientSession() as http:
        async with http.get(url + "/info", headers={"Origin": ORIGIN}) as response:
            assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
            assert response.headers["Access-Control-Allow-Credentials"] == "true"
            info = await response.json()
            assert info["websocket"] is True
        async with http.get(url + "/info") as response:
            assert response.headers["Access-Control-Allow-Origin"] == "*"
            assert "Access-Control-Allow-Credentials" not in response.headers
        async with http.post(
            url + "/000/cors0001/xhr", headers={"Origin": ORIGIN}
        ) as response:
            assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
            assert await response.text() == "o\n"


async def test_error_answers_a_page_may_meet_carry_cors(
    recorder: tuple[Recorder, str],
) -> None:
    """An xhr_send to a session that ended (what a page resuming after a
    cut meets) and a GET of /websocket without the upgrade: without CORS,
    a browser shows the page a CORS failure instead of the status."""
    _, url = recorder
    origin = {"Origin": ORIGIN}
    async with aiohttp.ClientSession() as http:
        async with http.post(
            url + "/000/gone0001/xhr_send", data='["x"]', headers=origin
        ) as response:
            assert response.status == 404
            assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
        async with http.get(
            url + "/000/none0001/websocket", headers=origin
        ) as response:
            assert response.status == 400
            assert response.headers["Access-Control-Allow-Origin"] == ORIGIN


async def test_allowed_origins_refuses_others() -> None:
    app = web.Application()
    add_sockjs_endpoint(app, conformance_server(), allowed_origins=[ORIGIN])
    runner, base = await start(app)
    try:
        async with aiohttp.ClientSession() as http:
            ok = await http.get(base + "/multiplex/info", headers={"Origin": ORIGIN})
            assert ok.status == 200
            bad = {"Origin": "http://evil.example"}
            refused = await http.get(base + "/multiplex/info", headers=bad)
            assert refused.status == 403
            with pytest.raises(aiohttp.WSServerHandshakeError):
                await http.ws_connect(
                    base.replace("http", "ws") + "/multiplex/websocket", headers=bad
                )
    finally:
        await runner.cleanup()


async def test_iframe_loads_the_configured_sockjs_client(
    recorder: tuple[Recorder, str],
) -> None:
    _, url = recorder
    async with (
        aiohttp.ClientSession() as http,
        http.get(url + "/iframe.html") as response,
    ):
        assert 'src="http://127.0.0.1:1/local-sockjs.js"' in await response.text()


async def test_a_local_sockjs_client_is_served_for_the_iframe(tmp_path: Path) -> None:
    """Given as a Path, the iframe's sockjs-client is served by the endpoint:
    the iframe transports then work without the CDN."""
    script = tmp_path / "sockjs.min.js"
    script.write_text("/* sockjs-client stand-in */")
    app = web.Application()
    add_sockjs_endpoint(app, conformance_server(), prefix="/mx", sockjs_url=script)
    runner, base = await start(app)
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/mx/iframe.html") as response:
                assert 'src="/mx/sockjs.min.js"' in await response.text()
            async with http.get(f"{base}/mx/sockjs.min.js") as response:
                assert response.content_type == "text/javascript"
                assert await response.text() == "/* sockjs-client stand-in */"
    finally:
        await runner.cleanup()


def test_a_missing_local_sockjs_client_is_reported_at_once(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"dist/sockjs\.min\.js"):
        add_sockjs_endpoint(
            web.Application(), MultiplexServer(), sockjs_url=tmp_path / "missing.js"
        )


async def test_second_poll_gets_2010_and_the_first_keeps_the_session(
    recorder: tuple[Recorder, str],
) -> None:
    rec, url = recorder
    session_url = f"{url}/000/{uuid.uuid4().hex[:8]}"
    async with aiohttp.ClientSession() as http:
        assert await (await http.post(session_url + "/xhr")).text() == "o\n"
        await http.post(session_url + "/xhr_send", data='["sub,rec"]')
        assert (
            await (await http.post(session_url + "/xhr")).text()
            == 'a["msg,rec,ready"]\n'
        )

        (connection,) = rec.server.connections
        sockjs_session = connection.transport
        assert isinstance(sockjs_session, HTTPSession)
        holder = asyncio.ensure_future(http.post(session_url + "/xhr"))
        await wait_until(lambda: sockjs_session.held)
        second = await (await http.post(session_url + "/xhr")).text()
        assert second == 'c[2010,"Another connection still open"]\n'
        await http.post(session_url + "/xhr_send", data='["msg,rec,after"]')
        first = await asyncio.wait_for(holder, 5)
        assert await first.text() == 'a["msg,rec,after"]\n'
        assert rec.closed == []


async def test_abandoned_streaming_request_closes_the_session(
    recorder: tuple[Recorder, str],
) -> None:
    """Noticed without handler_cancellation and long before a heartbeat."""
    rec, url = recorder
    session_url = f"{url}/000/{uuid.uuid4().hex[:8]}"
    async with aiohttp.ClientSession() as http:
        response = await http.post(session_url + "/xhr_streaming")
        await response.content.readuntil(b"o\n")
        await http.post(session_url + "/xhr_send", data='["sub,rec"]')
        await wait_until(lambda: rec.opened == 1)
        response.close()  # drop the TCP connection mid-stream
    await wait_until(lambda: rec.closed == [CloseReason.CONNECTION_LOST], timeout=5)
    await wait_until(lambda: not rec.server.connections)


async def test_htmlfile_delivers_script_end_tags(
    recorder: tuple[Recorder, str],
) -> None:
    _, url = recorder
    session_url = f"{url}/000/{uuid.uuid4().hex[:8]}"
    payload = "a</script><script>alert(1)</script>"
    async with aiohttp.ClientSession() as http:
        response = await http.get(session_url + "/htmlfile?c=cb")
        await http.post(session_url + "/xhr_send", data=json.dumps(["sub,rec"]))
        await http.post(
            session_url + "/xhr_send", data=json.dumps([f"msg,rec,{payload}"])
        )
        body = b""
        async with asyncio.timeout(5):
            while b"alert" not in body:
                body += await response.content.readany()
        response.close()
    scripts = body.decode().split("<script>")
    last = scripts[-1]
    assert "</script>" not in last.split("\n</script>")[0]
    assert "\\u003c/script\\u003e" in last


async def test_request_data_reaches_the_channel(recorder: tuple[Recorder, str]) -> None:
    rec, url = recorder
    ws_url = url.replace("http", "ws") + "/websocket?user=ann&q=a%26b%20c"
    carrier = await RawWebSocketCarrier.connect(
        ws_url, headers={"Cookie": "token=s3cret", "X-Test": "yes"}
    )
    await carrier.send("sub,rec")
    assert await carrier.receive() == "msg,rec,ready"
    request = rec.requests[0]
    # The query string as sent: an encoded "&" stays inside its value.
    assert request.query_string == "user=ann&q=a%26b%20c"  # type: ignore[attr-defined]
    assert request.query == {"user": "ann", "q": "a&b c"}  # type: ignore[attr-defined]
    assert request.cookies == {"token": "s3cret"}  # type: ignore[attr-defined]
    assert request.headers["x-test"] == "yes"  # type: ignore[attr-defined]
    assert request.remote_address == "127.0.0.1"  # type: ignore[attr-defined]
    await carrier.close()


@pytest.mark.parametrize("carrier_kind", ["raw", "sockjs-websocket", "xhr-polling"])
async def test_connection_close_closes_every_channel(
    recorder: tuple[Recorder, str], carrier_kind: str
) -> None:
    rec, url = recorder
    extra = Recorder()  # a second service on the same connection
    rec.server.register("other", extra.handler)
    if carrier_kind == "raw":
        carrier = await RawWebSocketCarrier.connect(
            url.replace("http", "ws") + "/websocket"
        )
    elif carrier_kind == "sockjs-websocket":
        carrier = await SockJSWebSocketCarrier.connect(url.replace("http", "ws"))
    else:
        carrier = await SockJSXhrPollingCarrier.connect(url)
    await carrier.send("sub,rec")
    assert await carrier.receive() == "msg,rec,ready"
    await carrier.send("sub,other")
    assert await carrier.receive() == "msg,other,ready"
    await carrier.close()
    # xhr-polling has no close: the session times out after disconnect_delay.
    timeout = 15 if carrier_kind == "xhr-polling" else 5
    await wait_until(lambda: rec.closed and extra.closed, timeout=timeout)
    assert rec.closed == [CloseReason.CONNECTION_LOST]
    assert extra.closed == [CloseReason.CONNECTION_LOST]
    await wait_until(lambda: not rec.server.connections)


async def test_server_close_sends_uns_then_closes(
    recorder: tuple[Recorder, str],
) -> None:
    rec, url = recorder
    carrier = await SockJSWebSocketCarrier.connect(url.replace("http", "ws"))
    await carrier.send("sub,rec")
    assert await carrier.receive() == "msg,rec,ready"
    await rec.server.close()
    assert await carrier.receive() == "err,rec,1001 server shutting down"
    assert await carrier.receive() == "uns,rec"
    assert await carrier.receive() is None
    assert carrier.frames.close_frame is not None
    assert rec.closed == [CloseReason.SHUTDOWN]
    await carrier.close()


async def test_eventsource_escapes_what_decodeURI_and_sse_would_break(
    recorder: tuple[Recorder, str],
) -> None:
    _, url = recorder
    session_url = f"{url}/000/{uuid.uuid4().hex[:8]}"
    payload = "100% sure\r\nnext line"
    async with aiohttp.ClientSession() as http:
        response = await http.get(session_url + "/eventsource")
        await http.post(session_url + "/xhr_send", data=json.dumps(["sub,rec"]))
        await http.post(
            session_url + "/xhr_send", data=json.dumps([f"msg,rec,{payload}"])
        )
        events: list[str] = []
        async with asyncio.timeout(5):
            while len(events) < 3:  # o, ready, payload
                line = (await response.content.readline()).decode()
                if line.startswith("data: "):
                    events.append(line[len("data: ") : -2])
        response.close()
    # What sockjs-client does with each event: decodeURI, then SockJS framing.
    assert events[0] == "o"
    assert "%" not in events[2].replace("%25", "").replace("%0D", "").replace("%0A", "")
    decoded = events[2].replace("%0D", "\r").replace("%0A", "\n").replace("%25", "%")
    assert json.loads(decoded[1:]) == [f"msg,rec,{payload}"]


async def test_client_files_are_served_to_any_origin() -> None:
    app = web.Application()
    add_client_routes(app)
    runner, base = await start(app)
    try:
        async with aiohttp.ClientSession() as http:
            for name in ("js", "mjs", "d.ts", "d.mts"):
                url = f"{base}/websocket-multiplex/websocket-multiplex.{name}"
                async with http.get(url, headers={"Origin": ORIGIN}) as response:
                    assert response.status == 200
                    assert response.headers["Access-Control-Allow-Origin"] == "*"
                    assert "WebSocketMultiplex" in await response.text()
    finally:
        await runner.cleanup()


async def test_a_polling_client_that_stops_polling_cannot_grow_server_memory() -> None:
    """The session's queue is bounded: sending waits, then the client is dropped."""
    limits = Limits(write_limit=10_000, slow_client_timeout=0.5)
    server = MultiplexServer(limits=limits)
    outcome: asyncio.Queue[tuple[int, CloseReason | None]] = asyncio.Queue()
    largest = 0

    @server.channel("flood")
    async def flood(channel: Channel) -> None:
        nonlocal largest
        (connection,) = server.connections
        session = connection.transport
        assert isinstance(session, HTTPSession)
        sent = 0
        try:
            while sent < 20_000:  # 20 MB if nothing held it back
                await channel.send("x" * 1000)
                sent += 1
                largest = max(largest, session.queued_size)
        finally:
            outcome.put_nowait((sent, channel.close_reason))

    app = web.Application()
    add_sockjs_endpoint(app, server, prefix="/mx", disconnect_delay=60)
    runner, base = await start(app)
    session_url = f"{base}/mx/000/{uuid.uuid4().hex[:8]}"
    try:
        async with aiohttp.ClientSession() as http:
            assert await (await http.post(session_url + "/xhr")).text() == "o\n"
            await http.post(session_url + "/xhr_send", data='["sub,flood"]')
            # ... and never polls again.
            async with asyncio.timeout(10):
                sent, reason = await outcome.get()
        assert reason is CloseReason.LIMIT_EXCEEDED
        assert sent < 20_000
        # The session's queue stayed within the mark (plus the batch that
        # crossed it); the connection's outbox is bounded the same way.
        assert largest <= limits.write_limit + 1000
    finally:
        await runner.cleanup()


async def test_metrics_route_serves_prometheus_text() -> None:
    app = web.Application()
    server = conformance_server()
    add_sockjs_endpoint(app, server)
    add_metrics_route(app, server)
    runner, base = await start(app)
    try:
        carrier = await RawWebSocketCarrier.connect(
            base.replace("http", "ws") + "/multiplex/websocket"
        )
        await carrier.send("sub,echo")
        await carrier.send("msg,echo,x")
        assert await carrier.receive() == "msg,echo,x"
        async with (
            aiohttp.ClientSession() as http,
            http.get(base + "/metrics") as response,
        ):
            text = await response.text()
        assert response.content_type == "text/plain"
        assert 'websocket_multiplex_channels{service="echo"} 1' in text
        assert "websocket_multiplex_frames_received_total 2" in text
        await carrier.close()
    finally:
        await runner.cleanup()


async def test_serve_says_goodbye_to_polling_clients_while_still_listening() -> None:
    """On SIGTERM, ``serve`` closes the channels before aiohttp stops
    listening: a polling client between two requests still fetches its
    goodbyes (with ``web.run_app`` its next request would be refused)."""
    mux = MultiplexServer()

    @mux.channel("rec")
    async def rec(channel: Channel) -> None:
        await channel.send("ready")
        async for _ in channel:
            pass

    app = web.Application()
    add_sockjs_endpoint(app, mux, prefix="/multiplex")
    listening: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    serving = asyncio.create_task(
        serve(app, "127.0.0.1", 0, ready=listening.set_result)
    )
    base = await asyncio.wait_for(listening, 10)
    carrier = await SockJSXhrPollingCarrier.connect(f"{base}multiplex")
    try:
        await carrier.send("sub,rec")
        assert await carrier.receive() == "msg,rec,ready"
        signal.raise_signal(signal.SIGTERM)  # serve() handles it
        await wait_until(lambda: mux.closing)
        async with aiohttp.ClientSession() as session:
            new_session = f"{base}multiplex/000/{uuid.uuid4().hex[:8]}/xhr"
            async with session.post(new_session) as response:
                assert response.status == 503
        first = await carrier.receive()
        assert (first or "").startswith("err,rec,1001 ")
        assert await carrier.receive() == "uns,rec"
        assert await carrier.receive() is None  # then the session's close frame
        assert carrier.frames.close_frame is not None
        assert carrier.frames.close_frame[0] == 3000
    finally:
        await carrier.close()
    async with asyncio.timeout(15):
        await serving
    assert mux.connections == set()
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


async def test_run_app_serves_until_sigterm_in_a_subprocess(tmp_path: Path) -> None:
    """The blocking form, as a script's main would call it."""
    script = tmp_path / "server.py"
    script.write_text(
        "from aiohttp import web\n"
        "from websocket_multiplex import MultiplexServer\n"
        "from websocket_multiplex.adapters.aiohttp import (\n"
        "    add_websocket_route, run_app)\n"
        "mux = MultiplexServer()\n"
        "@mux.channel('echo')\n"
        "async def echo(channel):\n"
        "    async for data in channel:\n"
        "        await channel.send(data)\n"
        "app = web.Application()\n"
        "add_websocket_route(app, mux, '/ws')\n"
        "run_app(app, port=0, ready=lambda url: print(url, flush=True))\n"
        "print('stopped', flush=True)\n"
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(script), stdout=asyncio.subprocess.PIPE
    )
    assert process.stdout is not None
    try:
        async with asyncio.timeout(20):
            base = (await process.stdout.readline()).decode().strip()
        assert base.startswith("http://127.0.0.1:"), base
        carrier = await RawWebSocketCarrier.connect(base.replace("http", "ws") + "ws")
        await carrier.send("sub,echo")
        await carrier.send("msg,echo,a,b")
        assert await carrier.receive() == "msg,echo,a,b"
        process.send_signal(signal.SIGTERM)
        assert (await carrier.receive() or "").startswith("err,echo,1001 ")
        assert await carrier.receive() == "uns,echo"
        assert await carrier.receive() is None
        await carrier.close()
        async with asyncio.timeout(20):
            assert await process.stdout.read() == b"stopped\n"
            assert await process.wait() == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


@pytest.mark.parametrize("body", ["null", "1", '"sub,rec"', '{"sub": "rec"}'])
async def test_xhr_send_of_json_that_is_not_an_array_is_refused_quietly(
    recorder: tuple[Recorder, str], body: str, caplog: pytest.LogCaptureFixture
) -> None:
    """aio-libs sockjs 0.13 iterated over any JSON (a traceback per request
    for a number, characters as messages for a string); like sockjs-node,
    the endpoint answers "Payload expected." and the session goes on."""
    rec, url = recorder
    carrier = await SockJSXhrPollingCarrier.connect(url)
    try:
        async with carrier._session.post(f"{carrier.url}/xhr_send", data=body) as r:
            assert (r.status, await r.text()) == (500, "Payload expected.")
        await carrier.send("sub,rec")
        assert await carrier.receive() == "msg,rec,ready"
    finally:
        await carrier.close()
    assert not [r for r in caplog.records if r.exc_info]
    assert rec.server.stats().invalid_frames == 0  # no character became a frame
