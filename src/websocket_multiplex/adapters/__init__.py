"""Carriers for :class:`~websocket_multiplex.MultiplexServer`, one module each.

Each adapter wraps one kind of client connection in a
:class:`~websocket_multiplex.Transport` and drives a
:class:`~websocket_multiplex.Connection` with it. Import the module you
need, e.g. ``websocket_multiplex.adapters.asgi``: this package imports
nothing itself, so no framework is loaded until you pick one.
"""
