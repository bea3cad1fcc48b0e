"""The publish path: retry with backoff and jitter → circuit breaker → local outbox.

One documented order (``docs/resilience.md`` has the diagram)::

    publish(event)
      └─ encode (EncodeError / MessageTooLarge: raised, nothing kept)
      └─ events already waiting in the outbox?  yes → outbox (keeps publish order)
      └─ try up to ``retry_attempts`` times within ``retry_timeout`` seconds:
           breaker open?            → stop trying
           adapter.publish(...)     → confirmed: outcome "sent"
           a refusal (login, vhost,
           access denied)           → raised at once, never kept (see ``refused``)
           another BrokerError      → breaker counts it; sleep backoff with jitter
      └─ not sent → local outbox (fsynced) : outcome "outbox"
                    (or, with ``outbox = false``, the BrokerError is raised)

The :class:`~eventbus.resilience.OutboxDrainer` sends outbox rows in order when the
broker is back, going through the same breaker.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import re
import sqlite3
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .._envelope import Message
from .._errors import BrokerError, BrokerUnavailable, ClosedError, ConfigError, PublishError
from ..adapter._contract import Adapter
from ._breaker import CircuitBreaker
from ._outbox import LocalOutbox, OutboxDrainer

__all__ = ["PUBLISH_KEYS", "PublishSettings", "Publisher"]

log = logging.getLogger("eventbus.publish")

SENT = "sent"
OUTBOX = "outbox"


@dataclass(frozen=True)
class PublishSettings:
    """The ``[publish]`` table of the config file.

    - ``retry_attempts``: tries of a direct send before the event goes to the outbox (1: no retry).
    - ``retry_initial_delay`` / ``retry_max_delay``: backoff before try ``n+1`` is
      ``min(max, initial * 2**(n-1))`` seconds, times a random factor in
      ``[1 - retry_jitter, 1]``.
    - ``retry_timeout``: total seconds one publish spends on direct tries (sends and sleeps).
    - ``breaker_failures``: failed sends in a row that open the circuit breaker.
    - ``breaker_reset``: seconds the breaker stays open before one trial send.
    - ``outbox``: keep events the broker can't take in the local outbox (else raise).
    - ``outbox_path``: the outbox's SQLite file.
    - ``drain_batch``: events per send when the outbox drains.
    - ``drain_interval``: seconds between the drainer's first tries after a failure.
    - ``close_timeout``: seconds ``close()`` waits for the outbox to drain; what is
      left stays in the file and is sent by the next bus that opens it.
    """

    retry_attempts: int = 3
    retry_initial_delay: float = 0.05
    retry_max_delay: float = 1.0
    retry_jitter: float = 0.5
    retry_timeout: float = 5.0
    breaker_failures: int = 5
    breaker_reset: float = 5.0
    outbox: bool = True
    outbox_path: str = ".eventbus/outbox.db"
    drain_batch: int = 500
    drain_interval: float = 0.5
    close_timeout: float = 5.0

    def __post_init__(self) -> None:
        for name in ("retry_attempts", "breaker_failures", "drain_batch"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        for name in (
            "retry_initial_delay",
            "retry_max_delay",
            "retry_timeout",
            "breaker_reset",
            "close_timeout",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0 seconds")
        if self.drain_interval <= 0:
            raise ValueError("drain_interval must be more than 0 seconds")
        if not 0 <= self.retry_jitter <= 1:
            raise ValueError("retry_jitter must be between 0 and 1")
        if not self.outbox_path:
            raise ValueError("outbox_path must not be empty")

    @classmethod
    def from_mapping(cls, table: Mapping[str, Any], where: str = "publish") -> PublishSettings:
        """Settings from a ``[publish]`` table; a wrong key or value is a :class:`ConfigError`."""
        for key, value in table.items():
            if key not in PUBLISH_KEYS:
                raise ConfigError(
                    f"{where}.{key} is not a publish setting; "
                    f"known: {', '.join(sorted(PUBLISH_KEYS))}"
                )
            want = PUBLISH_KEYS[key]
            if not isinstance(value, want) or (isinstance(value, bool) and want is not bool):
                raise ConfigError(f"{where}.{key} must be {_type_name(want)}, not {value!r}")
        values: dict[str, Any] = {
            k: float(v) if PUBLISH_KEYS[k] == (int, float) else v for k, v in table.items()
        }
        try:
            return cls(**values)
        except ValueError as exc:
            raise ConfigError(f"{where}: {exc}") from None


#: What a refused login or access looks like in an error or its SDK cause (class names
#: such as pika's ProbableAuthenticationError, azure's ServiceBusAuthenticationError,
#: messages such as RabbitMQ's ACCESS_REFUSED or AWS's AccessDenied).
_REFUSAL = re.compile(
    r"(?i)authenticat|authoriz|unauthori[sz]ed|access.?denied|access.?refused|not.?allowed|"
    r"forbidden|invalid.?client.?token|signature.?does.?not.?match|refused the login"
)


_EXPLICIT_REFUSAL = re.compile(r"ACCESS_REFUSED|NOT_ALLOWED|\(40[13]\)")


def refused(error: BrokerError) -> bool:
    """A permanent refusal: the broker answered, and said no to the login, vhost or access.

    Neither a retry nor the outbox can fix it, so it is raised at once. Told by the
    words of the error and of its causes (adapters have no error class for it yet);
    :class:`BrokerUnavailable` and :class:`PublishError` never are refusals.
    """
    if isinstance(error, (BrokerUnavailable, PublishError)):
        return False
    seen: set[int] = set()
    cause: BaseException | None = error
    while cause is not None and id(cause) not in seen:
        name, text = type(cause).__name__, str(cause)
        if name.startswith("Probable"):
            # pika's "probable" errors: the connection closed during the handshake. Only
            # the broker's own refusal code makes one a refusal; a connection cut mid-login
            # (an outage) is worth the outbox.
            if _EXPLICIT_REFUSAL.search(text):
                return True
        elif _REFUSAL.search(name) or _REFUSAL.search(text):
            return True
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return False


def _type_name(want: Any) -> str:
    return " or ".join(t.__name__ for t in (want if isinstance(want, tuple) else (want,)))


def _key_types() -> dict[str, Any]:
    kinds: dict[str, Any] = {}
    for f in dataclasses.fields(PublishSettings):
        kinds[f.name] = {"int": int, "float": (int, float), "bool": bool, "str": str}[str(f.type)]
    return kinds


#: Keys of the ``[publish]`` table and the TOML types they take.
PUBLISH_KEYS: dict[str, Any] = _key_types()


class Publisher:
    """Sends encoded messages for a bus: retry → breaker → outbox. Thread-safe."""

    def __init__(self, adapter: Adapter, settings: PublishSettings, destination: str) -> None:
        self.adapter = adapter
        self.settings = settings
        self.breaker = CircuitBreaker(settings.breaker_failures, settings.breaker_reset)
        self.outbox: LocalOutbox | None = None
        self._drainer: OutboxDrainer | None = None
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._closed = False
        if settings.outbox:
            self.outbox = LocalOutbox(settings.outbox_path, destination)
            if self.outbox.exists():
                try:
                    self.outbox.open()
                except sqlite3.Error as exc:
                    log.warning("outbox %s: cannot open: %s", settings.outbox_path, exc)
                else:
                    if self.outbox.pending:
                        log.info(
                            "outbox %s: events from an earlier run wait; draining",
                            settings.outbox_path,
                        )
                        self._start_drainer()

    # -- sending -----------------------------------------------------------------
    def send(self, messages: Sequence[Message]) -> str:
        """Publish ``messages`` (all or none); ``"sent"`` or ``"outbox"``, or raise."""
        if self._closed:
            raise ClosedError("the bus is closed")
        outbox = self.outbox
        if outbox is not None and outbox.pending:
            try:
                if outbox.add(messages, only_if_pending=True):  # queue behind waiting events
                    self._wake()
                    return OUTBOX
            except (sqlite3.Error, ClosedError) as exc:
                raise PublishError(
                    f"the outbox {outbox.path} cannot keep the event(s): {exc}"
                ) from exc
        error = self._try_broker(messages)
        if error is None:
            return SENT
        if outbox is None or refused(error):
            raise error
        try:
            outbox.add(messages)
        except (sqlite3.Error, ClosedError) as exc:
            raise PublishError(
                f"the broker did not take the event(s) ({error}) and the outbox "
                f"{outbox.path} cannot keep them: {exc}"
            ) from exc
        self._wake()
        return OUTBOX

    def _try_broker(self, messages: Sequence[Message]) -> BrokerError | None:
        """Direct tries with backoff; None once confirmed, else the error to report."""
        s = self.settings
        deadline = time.monotonic() + s.retry_timeout
        last: BrokerError | None = None
        for attempt in range(1, s.retry_attempts + 1):
            if not self.breaker.allow():
                return BrokerUnavailable(
                    f"circuit breaker open after {self.breaker.failure_threshold} failed sends "
                    f"(last: {last or 'earlier publishes'}); next try in "
                    f"{self.breaker.retry_after():.1f}s"
                )
            try:
                self.adapter.publish(messages)
            except BrokerError as exc:
                if refused(exc):  # the caller gets it raised; no retry, no breaker count
                    return exc
                self.breaker.failure()
                last = exc
                if attempt == s.retry_attempts or self._closing.is_set():
                    break
                pause = min(s.retry_max_delay, s.retry_initial_delay * 2 ** (attempt - 1))
                pause *= 1 - s.retry_jitter * random.random()
                if time.monotonic() + pause >= deadline:
                    break
                if self._closing.wait(pause):
                    break
                continue
            self.breaker.success()
            return None
        assert last is not None
        log.warning("publish of %d event(s) failed: %s", len(messages), last)
        return last

    def _wake(self) -> None:
        with self._lock:
            if self._drainer is None:
                self._start_drainer()
        assert self._drainer is not None
        self._drainer.wake()

    def _start_drainer(self) -> None:
        assert self.outbox is not None
        self._drainer = OutboxDrainer(
            self.outbox,
            self.adapter.publish,
            self.breaker,
            batch=self.settings.drain_batch,
            interval=self.settings.drain_interval,
        )
        if not self._closed:
            self._drainer.start()

    # -- state -----------------------------------------------------------------------
    def pending(self) -> int:
        """Events of this bus's broker waiting in the outbox (0 without one)."""
        return self.outbox.count() if self.outbox is not None else 0

    def flush(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the outbox to drain; True if it is empty."""
        drainer = self._drainer
        if drainer is None or self.outbox is None:
            return True
        return drainer.flush(timeout)

    def close(self) -> None:
        """Drain what the broker takes within ``close_timeout``, stop the drainer. Idempotent."""
        if self._closed:
            return
        drainer = self._drainer
        if drainer is not None and self.outbox is not None and self.outbox.pending:
            drainer.flush(self.settings.close_timeout)
        self._closed = True
        self._closing.set()
        if drainer is not None:
            drainer.stop(timeout=max(5.0, self.settings.close_timeout))
        if self.outbox is not None:
            self.outbox.close()
            left = self.outbox.count() if drainer is not None else 0
            if left:
                log.warning(
                    "outbox %s keeps %d event(s) the broker has not taken; the next bus "
                    "on this file sends them",
                    self.outbox.path,
                    left,
                )
