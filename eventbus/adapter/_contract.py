"""The adapter contract: what a broker plugin implements.

An adapter moves :class:`~eventbus.Message` objects; the core does everything
else (encoding, routing checks, retries, dead-letter decisions, handlers).

Threading: ``Adapter.publish``, ``declare`` and ``close`` may be called from any
thread and must be thread-safe. A :class:`Consumer` is confined to the one
thread that called ``Adapter.consumer``: the worker calls ``receive``, ``ack``,
``nack``, ``dead_letter`` and ``close`` from that thread only, so adapters on
non-thread-safe SDKs (pika) need no locks on the consuming side.

Errors: broker SDK exceptions never leave an adapter raw; raise
:class:`~eventbus.BrokerError` subclasses ``from`` them
(:func:`eventbus.adapter.translate_errors` does it in one line).

Optional tooling is declared by implementing a Protocol, checked with
``isinstance``: :class:`DeadLetterTools` (``eventbus dlq``), :class:`GroupAdmin`
(``eventbus tail`` removes its group) and :class:`EventLog` (``eventbus log``).
An instance whose configuration forbids one of these operations (Service Bus on
entities it may not manage) raises :class:`~eventbus.ConfigError` saying so.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from .._envelope import Delivery, Message
from ._capabilities import Capabilities

__all__ = ["Adapter", "Consumer", "DeadLetterTools", "EventLog", "GroupAdmin", "LogEntry"]


class Consumer(ABC):
    """One member of a group: receives that group's messages and settles them."""

    @abstractmethod
    def receive(self, max_messages: int, timeout: float) -> list[Delivery]:
        """Up to ``max_messages`` deliveries; waits at most ``timeout`` seconds for the first.

        Returns ``[]`` on timeout. Each delivery is leased to this consumer until
        it is settled or its lease runs out (then another member may get it).
        Only messages whose topic matches one of the group's patterns are returned.
        """

    @abstractmethod
    def ack(self, deliveries: Sequence[Delivery]) -> None:
        """Done: the group never sees these messages again."""

    @abstractmethod
    def nack(self, delivery: Delivery, delay: float) -> None:
        """Deliver again to the group, not before ``delay`` seconds, with ``attempt + 1``."""

    @abstractmethod
    def dead_letter(self, delivery: Delivery, reason: str) -> None:
        """Move to the group's dead letter with ``reason``; the group won't see it again."""

    @abstractmethod
    def close(self) -> None:
        """Stop receiving; unsettled deliveries go back to the group. Idempotent."""


class Adapter(ABC):
    """A connection to one broker (one bus). Create consumers from it per group."""

    #: What this adapter can do; the conformance suite reads it.
    capabilities: Capabilities = Capabilities()

    @abstractmethod
    def publish(self, messages: Sequence[Message]) -> None:
        """Hand ``messages`` to the broker; returns once the broker has them all.

        Raises :class:`~eventbus.PublishError` (or ``BrokerUnavailable``) if it
        cannot confirm every message; then callers must assume none arrived.
        Many messages in one call are sent together (pipelined/batched).
        """

    @abstractmethod
    def declare(self, group: str, patterns: Sequence[str]) -> None:
        """Make sure ``group`` exists and receives events matching ``patterns``.

        Idempotent. Events published after this returns are kept for the
        group even while no member is running (where the broker persists).
        Patterns of an existing group are replaced by ``patterns``.
        """

    @abstractmethod
    def consumer(self, group: str, patterns: Sequence[str]) -> Consumer:
        """Declare ``group`` and return a new competing member of it."""

    @abstractmethod
    def close(self) -> None:
        """Flush what was published, release connections. Idempotent."""


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One published event as an :class:`EventLog` keeps it: its sequence number and time."""

    seq: int
    published_at: float
    message: Message


@runtime_checkable
class DeadLetterTools(Protocol):
    """Dead-letter tooling (``eventbus dlq``): list, replay and purge a group's letters."""

    def dead_letters(self, group: str, limit: int = 100) -> list[tuple[Delivery, str]]:
        """Up to ``limit`` dead letters of ``group``, oldest first, with their reasons."""

    def replay_dead_letters(self, group: str, limit: int | None = None) -> int:
        """Move up to ``limit`` (None: all) dead letters of ``group`` back to that group
        only, oldest first, ``attempt`` starting again at 1; returns how many moved."""

    def purge_dead_letters(self, group: str) -> int:
        """Delete the dead letters of ``group``; returns how many."""


@runtime_checkable
class GroupAdmin(Protocol):
    """Removing groups (``eventbus tail`` removes the group it made)."""

    def delete_group(self, group: str) -> None:
        """Remove ``group`` (its queue, waiting events and dead letters) from the broker.

        Idempotent; events published afterwards are not kept for it. Close the
        group's consumers first.
        """


@runtime_checkable
class EventLog(Protocol):
    """A broker that keeps every event and can be searched (``eventbus log``)."""

    def groups(self) -> Mapping[str, tuple[str, ...]]:
        """Every declared group with its patterns."""

    def log(
        self, *, limit: int = 100, after: int = 0, pattern: str | None = None
    ) -> list[LogEntry]:
        """Published events with ``seq > after``, oldest first, at most ``limit``;
        ``pattern`` keeps only the topics it matches. Page with the last ``seq``."""
