"""A server process with one member in a group, to be killed by a test.

Usage: python member_process.py REDIS_URL GROUP PRESENCE_TTL. Prints the
member id once it has joined, then serves until killed.
"""

from __future__ import annotations

import asyncio
import sys

from websocket_multiplex import Channel, MultiplexServer
from websocket_multiplex.fanout.redis import RedisBroker
from websocket_multiplex.testing import connect_in_memory


async def main(url: str, group: str, presence_ttl: float) -> None:
    server = MultiplexServer(broker=RedisBroker(url, presence_ttl=presence_ttl))

    @server.channel("chat")
    async def chat(channel: Channel) -> None:
        await channel.join(group)
        print(channel.member_id, flush=True)
        async for _ in channel:
            pass

    client = await connect_in_memory(server)
    await client.send("sub,chat")
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3])))
