"""The circuit breaker's state machine, on a fake clock (pure logic, no broker)."""

from __future__ import annotations

import pytest

from eventbus import CircuitBreaker

pytestmark = pytest.mark.memory


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_opens_after_threshold_failures_in_a_row() -> None:
    clock = Clock()
    b = CircuitBreaker(3, 10.0, clock=clock)
    for _ in range(2):
        assert b.allow()
        b.failure()
    b.success()  # a success resets the count
    for _ in range(2):
        b.failure()
    assert b.state == "closed" and b.allow()
    b.failure()
    assert b.state == "open"
    assert not b.allow()
    assert b.retry_after() == pytest.approx(10.0)
    assert b.opened == 1


def test_half_open_lets_one_trial_through() -> None:
    clock = Clock()
    b = CircuitBreaker(1, 5.0, clock=clock)
    b.failure()
    clock.now += 4.9
    assert not b.allow()
    clock.now += 0.1
    assert b.state == "half-open"
    assert b.allow()  # the trial
    assert not b.allow()  # nobody else meanwhile
    b.success()
    assert b.state == "closed" and b.allow() and b.allow()


def test_failed_trial_reopens_for_another_period() -> None:
    clock = Clock()
    b = CircuitBreaker(2, 5.0, clock=clock)
    b.failure()
    b.failure()
    clock.now += 5
    assert b.allow()
    b.failure()
    assert b.state == "open" and not b.allow()
    assert b.opened == 2
    clock.now += 5
    assert b.allow()


def test_a_trial_that_never_reports_is_replaced() -> None:
    clock = Clock()
    b = CircuitBreaker(1, 2.0, clock=clock)
    b.failure()
    clock.now += 2
    assert b.allow()  # trial handed out, caller vanishes
    clock.now += 1
    assert not b.allow()
    clock.now += 1.5
    assert b.allow()


def test_rejects_nonsense_settings() -> None:
    with pytest.raises(ValueError):
        CircuitBreaker(0, 1.0)
    with pytest.raises(ValueError):
        CircuitBreaker(1, -1.0)
