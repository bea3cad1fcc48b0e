"""A circuit breaker: stop calling a broker that keeps failing, try again later.

    closed ──(failure_threshold failures in a row)──► open
      ▲                                                │ reset_timeout passes
      │ trial succeeds                                 ▼
      └──────────────────────────────────────────── half-open ──(trial fails)──► open

While **closed** every call goes through. While **open** :meth:`CircuitBreaker.allow`
says no without touching the broker (the publisher writes to the local outbox
instead). Once ``reset_timeout`` has passed the breaker is **half-open**: exactly
one caller gets ``True`` (the trial); its :meth:`~CircuitBreaker.success` closes
the breaker, its :meth:`~CircuitBreaker.failure` opens it for another
``reset_timeout``. A trial that never reports back is given up after
``reset_timeout`` so a lost caller cannot wedge the breaker half-open.

Thread-safe. The clock is injectable for tests.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

__all__ = ["CircuitBreaker"]

CLOSED = "closed"
OPEN = "open"
HALF_OPEN = "half-open"


class CircuitBreaker:
    """Closed / open / half-open state machine over consecutive failures."""

    def __init__(
        self,
        failure_threshold: int = 5,
        reset_timeout: float = 5.0,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        if reset_timeout < 0:
            raise ValueError("reset_timeout must be >= 0")
        self.failure_threshold = failure_threshold
        self.reset_timeout = reset_timeout
        self._clock = clock
        self._lock = threading.Lock()
        self._state = CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._trial_at: float | None = None  # when the half-open trial was handed out
        self.opened = 0  # how many times the breaker opened (for logs and tests)

    @property
    def state(self) -> str:
        """``"closed"``, ``"open"`` or ``"half-open"`` (open turns half-open once due)."""
        with self._lock:
            if self._state == OPEN and self._clock() - self._opened_at >= self.reset_timeout:
                return HALF_OPEN
            return self._state

    def allow(self) -> bool:
        """May the caller try the broker now? In half-open, True for one trial caller."""
        with self._lock:
            if self._state == CLOSED:
                return True
            now = self._clock()
            if self._state == OPEN:
                if now - self._opened_at < self.reset_timeout:
                    return False
                self._state = HALF_OPEN
                self._trial_at = now
                return True
            # half-open: one trial at a time; a trial that never reported is replaced
            if self._trial_at is None or now - self._trial_at >= max(self.reset_timeout, 1.0):
                self._trial_at = now
                return True
            return False

    def success(self) -> None:
        """The broker took the call: close the breaker and forget past failures."""
        with self._lock:
            self._state = CLOSED
            self._failures = 0
            self._trial_at = None

    def failure(self) -> None:
        """The broker failed the call: count it; open at the threshold or after a failed trial."""
        with self._lock:
            self._failures += 1
            if self._state == HALF_OPEN or (
                self._state == CLOSED and self._failures >= self.failure_threshold
            ):
                self._state = OPEN
                self._opened_at = self._clock()
                self._trial_at = None
                self.opened += 1

    def retry_after(self) -> float:
        """Seconds until an open breaker lets a trial through (0 if it would now)."""
        with self._lock:
            if self._state != OPEN:
                return 0.0
            return max(0.0, self.reset_timeout - (self._clock() - self._opened_at))

    def __repr__(self) -> str:
        return f"<CircuitBreaker {self.state} failures={self._failures}>"
