"""Fixtures for the Redis broker tests.

``redis_server`` (from tests/fanout/conftest.py) is a redis-server of the
test's own, that the test may kill; ``shared`` is the Redis that already
runs on 127.0.0.1:6379 (``REDIS_URL``), which the parts' tests use under a
key prefix of their own (``names``) and never stop. Without the ``redis``
package, every test here is skipped (under CI: fails).
"""

from __future__ import annotations

import importlib.util
import uuid
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pytest

from ...support.proxy import Proxy
from ..redis_server import RedisServer, unavailable

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from websocket_multiplex.fanout.redis.wire import Names

    from .support import Node

if importlib.util.find_spec("redis") is None:  # pragma: no cover - the test extra
    unavailable("the redis package is not installed: pip install -e '.[test]'")


@pytest.fixture
async def nodes(redis_server: RedisServer) -> AsyncIterator[Callable[..., Node]]:
    """Make nodes on the test's Redis (or, with ``url=``, through a proxy)."""
    from .support import chat_node

    made: list[Node] = []

    def make(url: str = redis_server.url, **options: object) -> Node:
        made.append(chat_node(url, **options))
        return made[-1]

    yield make
    for node in made:
        await node.server.close()


@pytest.fixture
async def proxy(redis_server: RedisServer) -> AsyncIterator[Proxy]:
    """A relay to the test's Redis that the test can cut and restore."""
    async with Proxy(redis_server.port) as relay:
        yield relay


@pytest.fixture
async def observer(redis_server: RedisServer) -> AsyncIterator[Redis]:
    """A plain Redis client, to look at what the brokers left in Redis."""
    from redis.asyncio import Redis

    client = Redis.from_url(redis_server.url)
    yield client
    await client.aclose()


@pytest.fixture
async def shared() -> AsyncIterator[Redis]:
    """A plain client of the shared Redis (``REDIS_URL``)."""
    from redis.asyncio import Redis
    from redis.exceptions import ConnectionError as RedisConnectionError

    from .support import REDIS_URL

    client = Redis.from_url(REDIS_URL)
    try:
        await client.ping()
    except (RedisConnectionError, OSError):
        await client.aclose()
        unavailable(f"no Redis answers at {REDIS_URL}: start redis-server")
    yield client
    await client.aclose()


@pytest.fixture
async def names(shared: Redis) -> AsyncIterator[Names]:
    """Names under a prefix of the test's own; its keys are deleted after."""
    from websocket_multiplex.fanout.redis.wire import Names

    own = Names(f"websocket-multiplex-test:{uuid.uuid4().hex}:")
    yield own
    keys = [key async for key in shared.scan_iter(match=f"{own.prefix}*")]
    if keys:
        await shared.delete(*keys)


@pytest.fixture
async def shared_proxy(shared: Redis) -> AsyncIterator[Proxy]:
    """A relay to the shared Redis that the test can cut and restore."""
    from .support import REDIS_URL

    async with Proxy(urlsplit(REDIS_URL).port or 6379) as relay:
        yield relay


@pytest.fixture
async def client(shared: Redis) -> AsyncIterator[Redis]:
    """The command client, made as the broker makes it, on the shared Redis."""
    from websocket_multiplex.fanout.redis.link import command_client

    from .support import REDIS_URL

    made = command_client(REDIS_URL, 5.0)
    yield made
    await made.aclose()
