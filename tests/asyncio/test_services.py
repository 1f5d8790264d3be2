"""The registry of services: what may be registered, and how a topic finds
its service."""

from __future__ import annotations

import pytest

from websocket_multiplex import Channel, ChannelHandler, LocalProtocolError
from websocket_multiplex.asyncio.services import Services
from websocket_multiplex.exceptions import ServiceNotFound


async def handler(channel: Channel) -> None:
    pass


class TaskFree(ChannelHandler):
    def on_message(self, data: str) -> None:
        pass


class WithTask(ChannelHandler):
    async def on_message(self, data: str) -> None:
        pass


def test_an_async_function_is_served_in_a_task() -> None:
    service = Services().register("chat", handler)
    assert (service.name, service.topic, service.callbacks) == ("chat", "chat", None)


def test_a_handler_class_of_plain_methods_runs_without_a_task() -> None:
    services = Services()
    assert services.register("a", TaskFree).callbacks is TaskFree
    assert services.register("b", WithTask).callbacks is None


def test_names_travel_escaped() -> None:
    services = Services()
    assert services.register("a b", handler).topic == "a%20b"
    assert services.for_topic("a%20b") is not None
    assert services.names == ["a b"]


def test_an_instance_topic_finds_its_service() -> None:
    services = Services()
    service = services.register("chat", handler)
    assert services.for_topic("chat#2") is service
    assert services.is_registered("chat#2")
    assert not services.is_registered("other#2")


@pytest.mark.parametrize("name", ["", 3, None])
def test_a_service_needs_a_name(name: object) -> None:
    with pytest.raises(LocalProtocolError, match="non-empty string"):
        Services().register(name, handler)  # type: ignore[arg-type]


def test_a_handler_must_be_async_or_a_channel_handler() -> None:
    def plain(channel: Channel) -> None:
        pass

    with pytest.raises(LocalProtocolError, match="async function"):
        Services().register("x", plain)  # type: ignore[arg-type]


def test_a_name_is_registered_once() -> None:
    services = Services()
    services.register("x", handler)
    with pytest.raises(LocalProtocolError, match="unregister"):
        services.register("x", handler)
    services.unregister("x")
    services.register("x", handler)


def test_unregistering_an_unknown_name_says_so() -> None:
    with pytest.raises(ServiceNotFound, match="'nope'"):
        Services().unregister("nope")
