"""Resilience, in one documented order (see ``docs/resilience.md``).

publish: encode -> retry with backoff (:class:`RetryPolicy`) -> circuit breaker
(:class:`CircuitBreaker`) -> on an open breaker or spent retries, the local
outbox (a SQLite file) keeps the event and a drainer republishes it.
consume: decode -> idempotent inbox (:class:`Inbox`) -> handler under a timeout
-> ack, retry or dead letter. :class:`TransactionalOutbox` writes events in the
application's own database transaction; :class:`OutboxRelay` sends them.
"""

from __future__ import annotations

from ._breaker import CircuitBreaker
from ._inbox import Inbox, InboxError, PostgresInbox, RedisInbox, SqliteInbox, open_inbox
from ._outbox import LocalOutbox, OutboxDrainer
from ._publisher import PublishSettings
from ._retry import RetryPolicy
from ._txoutbox import OutboxRelay, TransactionalOutbox

__all__ = [
    "CircuitBreaker",
    "Inbox",
    "InboxError",
    "LocalOutbox",
    "OutboxDrainer",
    "OutboxRelay",
    "PostgresInbox",
    "PublishSettings",
    "RedisInbox",
    "RetryPolicy",
    "SqliteInbox",
    "TransactionalOutbox",
    "open_inbox",
]
