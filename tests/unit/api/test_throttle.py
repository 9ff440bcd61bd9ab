"""The failed-authentication throttle: a sliding window per address, bounded memory, a moving clock."""

from __future__ import annotations

import logging

import pytest

from snapkeep.api.throttle import AuthThrottle
from snapkeep.clock import FrozenClock


def test_the_limit_th_failure_within_the_window_refuses_until_the_oldest_ages_out() -> None:
    clock = FrozenClock()
    throttle = AuthThrottle(clock, limit=3, window=60)
    for _ in range(2):
        throttle.failed("10.0.0.1", "unknown or wrong token")
        assert throttle.retry_after("10.0.0.1") is None
        clock.advance(10)
    throttle.failed("10.0.0.1", "unknown or wrong token")  # failures at 0, 10 and 20 s
    assert throttle.retry_after("10.0.0.1") == 40
    assert throttle.retry_after("10.0.0.2") is None, "other addresses are not affected"
    clock.advance(39.5)
    assert throttle.retry_after("10.0.0.1") == 1
    clock.advance(0.5)  # the failure at 0 s is 60 s old: two left in the window
    assert throttle.retry_after("10.0.0.1") is None
    throttle.failed("10.0.0.1", "unknown or wrong token")  # a steady guesser is refused again at once
    assert throttle.retry_after("10.0.0.1") == 10


def test_failures_spread_wider_than_the_window_never_refuse() -> None:
    clock = FrozenClock()
    throttle = AuthThrottle(clock, limit=3, window=60)
    for _ in range(20):
        throttle.failed("10.0.0.1", "unknown or wrong token")
        assert throttle.retry_after("10.0.0.1") is None
        clock.advance(31)
    assert throttle.tracked() == 1


def test_expired_addresses_are_forgotten_and_memory_is_capped() -> None:
    clock = FrozenClock()
    throttle = AuthThrottle(clock, limit=2, window=60, max_addresses=100)
    for number in range(1_000):
        throttle.failed(f"10.0.{number // 256}.{number % 256}", "malformed Authorization header")
    assert throttle.tracked() == 100, "only the most recently failed addresses are kept"
    throttle.failed("10.0.3.231", "unknown or wrong token")  # the last address, now at its limit
    assert throttle.retry_after("10.0.3.231") == 60
    assert throttle.retry_after("10.0.0.0") is None, "the oldest were evicted"
    clock.advance(60)
    for number in range(900, 1_000):
        assert throttle.retry_after(f"10.0.{number // 256}.{number % 256}") is None
    assert throttle.tracked() == 0


def test_failures_are_logged_with_address_and_reason_and_the_refusal_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    throttle = AuthThrottle(FrozenClock(), limit=2, window=60)
    with caplog.at_level(logging.WARNING, logger="snapkeep.api.throttle"):
        throttle.failed("192.0.2.7", "unknown or wrong token")
        throttle.failed("192.0.2.7", "unknown or wrong token")
    messages = [record.getMessage() for record in caplog.records]
    assert messages[0] == "authentication failed from 192.0.2.7: unknown or wrong token"
    assert sum("refused for up to 60 s" in message for message in messages) == 1, messages


def test_bad_limits_are_refused() -> None:
    with pytest.raises(ValueError, match="positive"):
        AuthThrottle(limit=0)
