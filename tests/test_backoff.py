"""Backoff.delay: exponential growth, a cap, and full jitter below the curve.

The jitter is random by design, so these tests either pin ``random.uniform``
(to read the ceiling and the floor off it) or seed the module's generator.
"""

from __future__ import annotations

import random

import pytest

from websocket_multiplex import Backoff
from websocket_multiplex import backoff as backoff_module


@pytest.fixture
def top_of_range(monkeypatch: pytest.MonkeyPatch) -> list[tuple[float, float]]:
    """``random.uniform`` returns its upper bound; the calls are recorded."""
    calls: list[tuple[float, float]] = []

    def uniform(low: float, high: float) -> float:
        calls.append((low, high))
        return high

    monkeypatch.setattr(backoff_module.random, "uniform", uniform)
    return calls


def test_the_ceiling_doubles_from_initial_up_to_the_cap(
    top_of_range: list[tuple[float, float]],
) -> None:
    backoff = Backoff(initial=0.5, maximum=30.0)
    delays = [backoff.delay(n) for n in range(9)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
    assert all(low == 0 for low, _ in top_of_range)  # full jitter: from zero


def test_the_factor_is_the_base_of_the_exponent(
    top_of_range: list[tuple[float, float]],
) -> None:
    backoff = Backoff(initial=0.1, maximum=100.0, factor=3.0)
    assert [backoff.delay(n) for n in range(4)] == pytest.approx([0.1, 0.3, 0.9, 2.7])


def test_the_cap_holds_for_huge_attempt_numbers(
    top_of_range: list[tuple[float, float]],
) -> None:
    backoff = Backoff(initial=0.5, maximum=30.0)
    assert backoff.delay(10_000) == 30.0  # no OverflowError, no inf


def test_the_floor_is_zero(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backoff_module.random, "uniform", lambda low, high: low)
    assert Backoff().delay(5) == 0


def test_full_jitter_spreads_delays_over_the_whole_range(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(backoff_module, "random", random.Random(1234))
    backoff = Backoff(initial=0.5, maximum=4.0)
    for attempt in range(8):
        ceiling = min(4.0, 0.5 * 2**attempt)
        delays = [backoff.delay(attempt) for _ in range(200)]
        assert all(0 <= delay <= ceiling for delay in delays)
        assert len(set(delays)) == len(delays)  # they vary
        # Spread over the range, not bunched at one end: clients cut off
        # together come back at different instants.
        assert min(delays) < ceiling * 0.1
        assert max(delays) > ceiling * 0.9


def test_one_policy_whichever_way_it_is_imported() -> None:
    from websocket_multiplex.asyncio import Backoff as from_asyncio
    from websocket_multiplex.asyncio.client import Backoff as from_client

    assert Backoff is backoff_module.Backoff is from_asyncio is from_client


def test_a_backoff_is_a_value_safe_to_share_as_a_default() -> None:
    backoff = Backoff(initial=0.1, maximum=5.0)
    assert backoff == Backoff(initial=0.1, maximum=5.0)
    assert backoff.max_attempts is None  # never gives up unless told to
    with pytest.raises(AttributeError):
        backoff.initial = 1.0  # type: ignore[misc]
