"""Helpers shared by every test folder: network plumbing, not test logic.

- :mod:`.net`: :func:`~.net.free_port`, a port of 127.0.0.1 nobody listens on;
- :mod:`.proxy`: :class:`~.proxy.Proxy`, a TCP relay the test can reset,
  stall, cut or make refuse connections.

Helpers that belong to one folder stay there (``tests/servers.py``,
``tests/client/support.py``, ``tests/adapters/carriers.py``, ...).
"""
