"""The adapter contract: what a broker plugin implements.

An adapter moves :class:`~eventbus.Message` objects; the core does everything
else (encoding, routing checks, retries, dead-letter decisions, handlers).

Threading: ``Adapter.publish``, ``declare`` and ``close`` may be called from any
thread and must be thread-safe. A :class:`Consumer` is confined to the one
thread that called ``Adapter.consumer``: the worker calls ``receive``, ``ack``,
``nack``, ``dead_letter`` and ``close`` from that thread only, so adapters on
non-thread-safe SDKs (pika) need no locks on the consuming side.

Errors: broker SDK exceptions never leave an adapter raw; raise
:class:`~eventbus.BrokerError` subclasses ``from`` them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

from ._capabilities import Capabilities
from ._envelope import Delivery, Message

__all__ = ["Adapter", "Consumer"]


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

    def dead_letters(self, group: str, limit: int = 100) -> list[tuple[Delivery, str]]:
        """Dead-lettered messages of ``group`` with their reasons (optional, for tooling)."""
        raise NotImplementedError(f"{type(self).__name__} cannot list dead letters")

    # Dead-letter tooling and group removal (optional; ``eventbus dlq`` and ``tail`` use them).
    def replay_dead_letters(self, group: str, limit: int | None = None) -> int:
        """Move up to ``limit`` (None: all) dead letters of ``group`` back to its queue,
        oldest first, ``attempt`` starting again at 1; returns how many moved."""
        raise NotImplementedError(f"{type(self).__name__} cannot replay dead letters")

    def purge_dead_letters(self, group: str) -> int:
        """Delete the dead letters of ``group``; returns how many."""
        raise NotImplementedError(f"{type(self).__name__} cannot purge dead letters")

    def delete_group(self, group: str) -> None:
        """Remove ``group`` (its queue, waiting events and dead letters) from the broker.

        Idempotent; events published afterwards are not kept for it. Close the
        group's consumers first.
        """
        raise NotImplementedError(f"{type(self).__name__} cannot delete groups")
