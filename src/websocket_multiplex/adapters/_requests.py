"""What a service may know about an aiohttp request, as plain data."""

from __future__ import annotations

from aiohttp import web

from ..request import Headers, RequestInfo


def request_info(request: web.BaseRequest) -> RequestInfo:
    """Copy what a service may need from an aiohttp request."""
    return RequestInfo(
        path=request.path,
        query_string=request.rel_url.raw_query_string,  # as sent, like ASGI
        headers=Headers(request.headers.items()),
        remote_address=request.remote,
    )
