"""Small tools for tests on real brokers: unique names, collectors, idle-timeout waits."""

from __future__ import annotations

import itertools
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from eventbus import Event

__all__ = ["Collector", "Names", "eventually", "tier", "timeout_multiplier"]

TIERS = ("short", "full", "stress")


def tier() -> str:
    """The test tier from ``EVENTBUS_TIER`` (``short`` unless set)."""
    value = os.environ.get("EVENTBUS_TIER", "short").strip().lower() or "short"
    if value not in TIERS:
        raise ValueError(f"EVENTBUS_TIER={value!r}: use one of {', '.join(TIERS)}")
    return value


def timeout_multiplier() -> float:
    """``EVENTBUS_TIMEOUT_MULTIPLIER`` (default 1): scales every wait, for slow brokers."""
    return float(os.environ.get("EVENTBUS_TIMEOUT_MULTIPLIER", "1") or 1)


class Names:
    """Unique topic words and group names for one test, under a run-wide prefix.

    Topics look like ``<prefix>.order.created`` so patterns of one test never
    see another test's events on a shared broker; group names are short
    (Service Bus allows 50 characters) and use only ``[a-z0-9-]``.
    """

    _run = uuid.uuid4().hex[:6]
    _counter = itertools.count(1)

    def __init__(self) -> None:
        self.prefix = f"t{self._run}{next(self._counter):03d}"

    def topic(self, suffix: str) -> str:
        return f"{self.prefix}.{suffix}" if suffix else self.prefix

    def group(self, role: str) -> str:
        return f"{self.prefix}-{role}"


class Collector:
    """A thread-safe handler that records events and lets a test wait for counts.

    ``wait(n)`` waits until ``n`` events were recorded, failing only if no new
    event arrived for ``idle`` seconds (scaled by the timeout multiplier), so
    slow brokers get time while a stuck one fails fast.
    """

    def __init__(self, fail: Callable[[Event], bool] | None = None, delay: float = 0.0) -> None:
        self.events: list[Event] = []
        self.unique: set[str] = set()  # ids seen, kept as events arrive (cheap waits)
        self._cond = threading.Condition()
        self._fail = fail
        self._delay = delay
        self.calls = 0

    def __call__(self, event: Event) -> None:
        with self._cond:
            self.calls += 1
            self.events.append(event)
            self.unique.add(event.id)
            self._cond.notify_all()
        if self._delay:
            time.sleep(self._delay)  # simulated work, not a wait for delivery
        if self._fail is not None and self._fail(event):
            raise RuntimeError(f"handler refuses {event.id} (attempt {event.attempt})")

    def wait(self, n: int, idle: float = 15.0, what: str = "events") -> list[Event]:
        idle *= timeout_multiplier()
        with self._cond:
            last, seen = time.monotonic(), len(self.events)
            while len(self.events) < n:
                self._cond.wait(0.05)
                if len(self.events) != seen:
                    last, seen = time.monotonic(), len(self.events)
                elif time.monotonic() - last > idle:
                    raise AssertionError(
                        f"waited for {n} {what}, got {len(self.events)}; none new for {idle:.0f}s"
                    )
            return list(self.events)

    def wait_until(self, predicate: Callable[[list[Event]], bool], idle: float = 15.0) -> None:
        """Wait until ``predicate(events)`` holds; it is re-checked only when events arrive."""
        idle *= timeout_multiplier()
        with self._cond:
            last, seen = time.monotonic(), len(self.events)
            while not predicate(self.events):
                while len(self.events) == seen:
                    self._cond.wait(0.05)
                    if time.monotonic() - last > idle:
                        raise AssertionError(f"condition not met; {len(self.events)} events so far")
                last, seen = time.monotonic(), len(self.events)

    def wait_unique(self, n: int, idle: float = 15.0) -> None:
        """Wait until ``n`` distinct event ids were seen (redeliveries count once)."""
        self.wait_until(lambda _: len(self.unique) >= n, idle)

    def ids(self) -> list[str]:
        with self._cond:
            return [e.id for e in self.events]

    def count(self) -> int:
        with self._cond:
            return len(self.events)


def eventually(
    check: Callable[[], Any], timeout: float = 15.0, interval: float = 0.05, what: str = ""
) -> Any:
    """Call ``check`` until it returns a truthy value; fail after ``timeout`` (scaled)."""
    deadline = time.monotonic() + timeout * timeout_multiplier()
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}")
        time.sleep(interval)  # polling a condition with a deadline, not a fixed wait


def duplicates(ids: Iterable[str]) -> int:
    ids = list(ids)
    return len(ids) - len(set(ids))
