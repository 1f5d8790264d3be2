"""What the server has seen and holds, for dashboards and alerts."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, fields

__all__ = ["ConnectionStats", "ServerStats"]


@dataclass(slots=True)
class ConnectionStats:
    """Counters one connection keeps beside its protocol core's."""

    chars_received: int = 0
    chars_sent: int = 0
    authorization_refusals: int = 0
    handler_failures: int = 0
    slow_client_closes: int = 0


@dataclass
class ServerStats:
    """Gauges (what is open now) and counters (totals since start).

    :meth:`to_prometheus` renders them in the Prometheus text format.
    Sizes are in characters (``chars_*``), not bytes: the server holds text,
    and counting bytes would cost an encoding of every message. They equal
    bytes for ASCII; UTF-8 takes up to 4 bytes a character on the wire.
    """

    connections: int = 0
    channels: dict[str, int] = field(default_factory=dict)
    connections_accepted: int = 0
    frames_received: int = 0
    frames_sent: int = 0
    chars_received: int = 0
    chars_sent: int = 0
    invalid_frames: int = 0
    ignored_frames: int = 0
    refused_subscriptions: int = 0
    authorization_refusals: int = 0
    handler_failures: int = 0
    slow_client_closes: int = 0
    limits_hit: dict[str, int] = field(default_factory=dict)

    def add(self, *counters: object) -> None:
        """Add the same-named fields of protocol or connection counters."""
        for source in counters:
            for item in fields(source):  # type: ignore[arg-type]
                value = getattr(source, item.name)
                if item.name == "limits_hit":
                    self.limits_hit = dict(Counter(self.limits_hit) + Counter(value))
                elif item.name in _COUNTERS:
                    setattr(self, item.name, getattr(self, item.name) + value)

    def to_prometheus(self, prefix: str = "websocket_multiplex") -> str:
        lines: list[str] = []

        def metric(
            name: str, kind: str, help_text: str, samples: dict[str, int]
        ) -> None:
            lines.append(f"# HELP {prefix}_{name} {help_text}")
            lines.append(f"# TYPE {prefix}_{name} {kind}")
            for labels, value in samples.items():
                lines.append(f"{prefix}_{name}{labels} {value}")

        metric("connections", "gauge", "Open connections.", {"": self.connections})
        metric(
            "channels",
            "gauge",
            "Open channels per service.",
            {
                f'{{service="{_label(name)}"}}': n
                for name, n in sorted(self.channels.items())
            },
        )
        for name, help_text in _COUNTERS.items():
            metric(f"{name}_total", "counter", help_text, {"": getattr(self, name)})
        metric(
            "limits_hit_total",
            "counter",
            "Times a client reached a limit, by limit.",
            {f'{{limit="{k}"}}': v for k, v in sorted(self.limits_hit.items())},
        )
        return "\n".join(lines) + "\n"


_COUNTERS = {
    "connections_accepted": "Connections accepted.",
    "frames_received": "Frames received from clients.",
    "frames_sent": "Frames sent to clients.",
    "chars_received": "Characters of frames received.",
    "chars_sent": "Characters of frames sent.",
    "invalid_frames": "Received messages that are not frames.",
    "ignored_frames": "Valid frames the protocol ignores (topic not open...).",
    "refused_subscriptions": "Subscriptions refused: unknown service or a limit.",
    "authorization_refusals": "Subscriptions refused by an authorizer.",
    "handler_failures": "Channels closed because their handler raised.",
    "slow_client_closes": "Connections closed for not reading.",
}


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
