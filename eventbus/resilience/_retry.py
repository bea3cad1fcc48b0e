"""Retry policy for handlers: how many attempts, how long between, which errors."""

from __future__ import annotations

import random
from dataclasses import dataclass

from .._errors import DecodeError

__all__ = ["RetryPolicy"]


@dataclass(frozen=True)
class RetryPolicy:
    """When a handler raises, the event is delivered again after a backoff.

    The ``n``-th retry waits ``min(max_delay, initial_delay * multiplier**(n-1))``
    seconds, scaled by a random factor in ``[1 - jitter, 1]`` ("equal jitter" so
    a herd of failing consumers spreads out). After ``max_attempts`` deliveries
    the event goes to the group's dead letter with the last error as reason.

    ``dead_letter_on`` are exception types that skip the remaining attempts
    (a malformed order will not get better by waiting); ``retry_on`` limits
    retries to these types (anything else goes straight to the dead letter).
    A :class:`~eventbus.DecodeError` (such as a typed contract's
    :class:`~eventbus.ValidationError`) is never retried.
    """

    max_attempts: int = 5
    initial_delay: float = 0.2
    multiplier: float = 2.0
    max_delay: float = 30.0
    jitter: float = 0.2
    retry_on: tuple[type[BaseException], ...] = (Exception,)
    dead_letter_on: tuple[type[BaseException], ...] = ()

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.initial_delay < 0 or self.max_delay < 0 or self.multiplier < 1:
            raise ValueError("delays must be >= 0 and multiplier >= 1")
        if not 0 <= self.jitter <= 1:
            raise ValueError("jitter must be between 0 and 1")

    def delay(self, attempt: int) -> float:
        """Seconds to wait before delivery ``attempt + 1`` (``attempt`` >= 1 just failed)."""
        base = min(self.max_delay, self.initial_delay * self.multiplier ** max(0, attempt - 1))
        return base * (1 - self.jitter * random.random())

    def should_retry(self, exc: BaseException, attempt: int) -> bool:
        """True if an event whose delivery ``attempt`` raised ``exc`` gets another one."""
        if attempt >= self.max_attempts or isinstance(exc, DecodeError):
            return False
        if self.dead_letter_on and isinstance(exc, self.dead_letter_on):
            return False
        return isinstance(exc, self.retry_on)
