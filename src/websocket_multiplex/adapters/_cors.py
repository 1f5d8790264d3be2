"""CORS the way sockjs-node answers, which is what sockjs-client expects.

sockjs 0.13 sends no CORS headers and answers ``OPTIONS`` with 405, so a
page on another origin cannot even fetch ``/info``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Final

from aiohttp import hdrs, web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_YEAR: Final = 365 * 24 * 3600


class Cors:
    """CORS the way sockjs-node answers, which is what sockjs-client expects."""

    def __init__(self, allowed_origins: Iterable[str] | None) -> None:
        self.allowed = None if allowed_origins is None else frozenset(allowed_origins)
        self.resources: set[web.AbstractResource] = set()

    def origin_allowed(self, request: web.BaseRequest) -> bool:
        origin = request.headers.get(hdrs.ORIGIN)
        return self.allowed is None or origin is None or origin in self.allowed

    async def on_response_prepare(
        self, request: web.Request, response: web.StreamResponse
    ) -> None:
        route = request.match_info.route
        if route.resource not in self.resources or response.status == 101:
            return
        origin = request.headers.get(hdrs.ORIGIN)
        if origin is None:
            response.headers[hdrs.ACCESS_CONTROL_ALLOW_ORIGIN] = "*"
        else:
            response.headers[hdrs.ACCESS_CONTROL_ALLOW_ORIGIN] = origin
            response.headers[hdrs.ACCESS_CONTROL_ALLOW_CREDENTIALS] = "true"
            response.headers.add(hdrs.VARY, "Origin")
        asked = request.headers.get(hdrs.ACCESS_CONTROL_REQUEST_HEADERS)
        if asked:
            response.headers[hdrs.ACCESS_CONTROL_ALLOW_HEADERS] = asked

    def guard(self, handler: Handler) -> Handler:
        """Refuse requests from origins outside the allow-list with 403."""
        if self.allowed is None:
            return handler

        async def guarded(request: web.Request) -> web.StreamResponse:
            if not self.origin_allowed(request):
                raise web.HTTPForbidden(text="origin not allowed")
            return await handler(request)

        return guarded


def preflight(methods: str) -> Handler:
    async def answer(request: web.Request) -> web.StreamResponse:
        expires = datetime.now(UTC) + timedelta(seconds=_YEAR)
        return web.Response(
            status=204,
            headers={
                hdrs.ACCESS_CONTROL_ALLOW_METHODS: methods,
                hdrs.ACCESS_CONTROL_MAX_AGE: str(_YEAR),
                hdrs.CACHE_CONTROL: f"public, max-age={_YEAR}",
                hdrs.EXPIRES: expires.strftime("%a, %d %b %Y %H:%M:%S GMT"),
            },
        )

    return answer
