"""SockJS, sans I/O: framing, sessions and HTTP answers as pure state.

The server side of the SockJS protocol (sockjs-protocol 0.3, with
sockjs-node 0.3.24's behaviour as the reference), written to be driven:

* :mod:`.frames`: the frames both sides send, and how each transport
  carries them;
* :mod:`.session`: one session over the HTTP transports, a state machine;
* :mod:`.http`: what every request to an endpoint gets;
* :mod:`.options`: what an endpoint offers.

Nothing here touches a socket, a task or a clock: the asyncio layer
(:mod:`websocket_multiplex.asyncio.sockjs`) carries the decisions out, for
aiohttp and ASGI alike, and the tests and the fuzzer drive them directly.
"""

from .options import DEFAULT_SOCKJS_URL, SockJSOptions

__all__ = ["DEFAULT_SOCKJS_URL", "SockJSOptions"]
