"""Deciding, per subscription, whether a client may open a channel."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from ..request import RequestInfo

__all__ = ["Authorizer", "Subscription", "authorized"]


@dataclass(eq=False)
class Subscription:
    """One client's request to open a channel, as an authorizer sees it.

    The authorizer may set :attr:`identity` (a user, a token's claims...);
    the channel then carries it as ``channel.identity``.
    """

    request: RequestInfo
    """Headers, cookies, query, remote address and origin, from connect time."""
    name: str
    topic: str
    identity: object = None


Authorizer = Callable[[Subscription], "Awaitable[bool] | bool"]
"""Returns whether to accept; may be a plain function or a coroutine."""


async def authorized(subscription: Subscription, *checks: Authorizer | None) -> bool:
    """Run the checks in order (global first); every one must accept."""
    for check in checks:
        if check is None:
            continue
        verdict = check(subscription)
        if inspect.isawaitable(verdict):
            verdict = await verdict
        if verdict is not True:
            return False
    return True
