"""The in-memory adapter: a whole broker inside one process.

It is the test double for users (``EventBus("memory://")``) and passes the same
conformance suite as every broker. All state lives on the :class:`MemoryAdapter`
instance; two buses share a broker only by sharing that instance.

Semantics, as on the real brokers: a group gets only what was published after
it was declared; members of a group compete; each delivery is leased to its
consumer for ``lease`` seconds (URL ``memory://?lease=2``) and comes back with
``attempt + 1`` if not settled by then or when its consumer closes; events with
the same key are handed out one at a time, in order (like SQS FIFO message
groups), so ordering per key holds across competing members and retries.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from .._envelope import Delivery, Message
from .._errors import ClosedError, ConfigError
from .._routing import Matcher
from ..adapter._capabilities import Capabilities
from ..adapter._contract import Adapter, Consumer
from ..adapter._plugin import AdapterSpec, adapter_spec
from ..adapter._settings import Settings
from ..hookspecs import hookimpl

__all__ = ["MemoryAdapter", "MemorySettings"]

CAPABILITIES = Capabilities(
    ordering_per_key=True,
    consumer_groups=True,
    persistence=False,
    replay=False,
    redelivery=True,
    native_dead_letter=True,
    delayed_delivery=True,
    batching=True,
    lease_seconds=30.0,
    cross_process=False,
)


@dataclass(slots=True)
class _Entry:
    message: Message
    attempt: int = 1
    holds_key: bool = False  # this entry owns its key's lock (redelivery of a keyed event)


@dataclass
class _Group:
    matcher: Matcher
    ready: deque[_Entry] = field(default_factory=deque)
    delayed: list[tuple[float, int, _Entry]] = field(default_factory=list)
    inflight: dict[int, tuple[_Entry, float, int]] = field(default_factory=dict)
    leases: list[tuple[float, int]] = field(default_factory=list)
    locked_keys: set[str] = field(default_factory=set)
    dead: list[tuple[Message, int, str]] = field(default_factory=list)


class MemoryAdapter(Adapter):
    """An in-process broker. Thread-safe; share one instance to share a broker."""

    capabilities = CAPABILITIES

    def __init__(self, *, lease: float = 30.0, max_message_size: int | None = None) -> None:
        self.lease = lease
        self.capabilities = CAPABILITIES.replace(
            lease_seconds=lease, max_message_size=max_message_size
        )
        self._cond = threading.Condition(threading.Lock())
        self._groups: dict[str, _Group] = {}
        self._tokens = itertools.count(1)
        self._consumers = itertools.count(1)
        self._closed = False

    @classmethod
    def from_settings(cls, settings: MemorySettings) -> MemoryAdapter:
        return cls(lease=settings.lease, max_message_size=settings.max_message_size)

    def client(self) -> MemoryAdapter:
        """Another connection to this same broker; closing it leaves the broker running."""
        other = object.__new__(MemoryAdapter)
        other.__dict__.update(self.__dict__)
        other._closed = False
        return other

    # -- publishing -------------------------------------------------------
    def publish(self, messages: Sequence[Message]) -> None:
        with self._cond:
            if self._closed:
                raise ClosedError("memory adapter is closed")
            groups = self._groups.values()
            for message in messages:
                for g in groups:
                    if g.matcher(message.topic):
                        g.ready.append(_Entry(message))
            self._cond.notify_all()

    def declare(self, group: str, patterns: Sequence[str]) -> None:
        with self._cond:
            g = self._groups.get(group)
            if g is None:
                self._groups[group] = _Group(Matcher(patterns))
            elif tuple(patterns) != g.matcher.patterns:
                g.matcher = Matcher(patterns)

    def consumer(self, group: str, patterns: Sequence[str]) -> Consumer:
        self.declare(group, patterns)
        return _MemoryConsumer(self, group, next(self._consumers))

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def dead_letters(self, group: str, limit: int = 100) -> list[tuple[Delivery, str]]:
        with self._cond:
            g = self._groups.get(group)
            dead = list(g.dead[:limit]) if g else []
        return [(Delivery(m, attempt), reason) for m, attempt, reason in dead]

    def replay_dead_letters(self, group: str, limit: int | None = None) -> int:
        with self._cond:
            g = self._groups.get(group)
            if g is None:
                return 0
            n = len(g.dead) if limit is None else min(limit, len(g.dead))
            moved, g.dead = g.dead[:n], g.dead[n:]
            g.ready.extend(_Entry(m) for m, _, _ in moved)
            self._cond.notify_all()
        return n

    def purge_dead_letters(self, group: str) -> int:
        with self._cond:
            g = self._groups.get(group)
            n = len(g.dead) if g else 0
            if g:
                g.dead.clear()
        return n

    def delete_group(self, group: str) -> None:
        with self._cond:
            self._groups.pop(group, None)  # its members' next receive raises ClosedError
            self._cond.notify_all()

    def depth(self, group: str) -> int:
        """Events waiting for ``group`` (ready, delayed and in flight)."""
        with self._cond:
            g = self._groups.get(group)
            return len(g.ready) + len(g.delayed) + len(g.inflight) if g else 0

    # -- called by consumers, with self._cond held ---------------------------
    def _requeue_due(self, g: _Group, now: float) -> None:
        while g.leases and g.leases[0][0] <= now:
            _, token = heapq.heappop(g.leases)
            held = g.inflight.pop(token, None)
            if held is not None:
                self._return(g, held[0])
        while g.delayed and g.delayed[0][0] <= now:
            _, _, entry = heapq.heappop(g.delayed)
            g.ready.appendleft(entry)

    def _return(self, g: _Group, entry: _Entry) -> None:
        """A delivery comes back unsettled: first in line, one attempt more."""
        entry.attempt += 1
        entry.holds_key = entry.message.key is not None
        g.ready.appendleft(entry)

    def _take(self, g: _Group, owner: int, limit: int, now: float) -> list[Delivery]:
        out: list[Delivery] = []
        skipped: list[_Entry] = []
        ready = g.ready
        while ready and len(out) < limit:
            entry = ready.popleft()
            key = entry.message.key
            if key is not None and not entry.holds_key:
                if key in g.locked_keys:
                    skipped.append(entry)
                    continue
                g.locked_keys.add(key)
            entry.holds_key = False
            token = next(self._tokens)
            deadline = now + self.lease
            g.inflight[token] = (entry, deadline, owner)
            heapq.heappush(g.leases, (deadline, token))
            out.append(Delivery(entry.message, entry.attempt, token))
        ready.extendleft(reversed(skipped))
        return out

    def _settle(self, group: str, token: int) -> _Entry | None:
        g = self._groups.get(group)
        if g is None:
            return None  # the group was deleted
        held = g.inflight.pop(token, None)
        if held is None:
            return None  # lease ran out meanwhile: the event was already handed on
        entry = held[0]
        if entry.message.key is not None:
            g.locked_keys.discard(entry.message.key)
        return entry


class _MemoryConsumer(Consumer):
    def __init__(self, adapter: MemoryAdapter, group: str, ident: int) -> None:
        self._a = adapter
        self._group = group
        self._id = ident
        self._closed = False

    def receive(self, max_messages: int, timeout: float) -> list[Delivery]:
        a = self._a
        deadline = time.monotonic() + timeout
        with a._cond:
            while True:
                if self._closed or a._closed:
                    raise ClosedError("consumer is closed")
                g = a._groups.get(self._group)
                if g is None:
                    raise ClosedError(f"group {self._group!r} was deleted")
                now = time.monotonic()
                a._requeue_due(g, now)
                got = a._take(g, self._id, max_messages, now)
                if got:
                    if g.ready:
                        a._cond.notify()  # let a competing member take the rest
                    return got
                wait = deadline - now
                if g.delayed:
                    wait = min(wait, g.delayed[0][0] - now)
                if g.leases:
                    wait = min(wait, g.leases[0][0] - now)
                if deadline - now <= 0:
                    return []
                a._cond.wait(max(wait, 0.0005))

    def ack(self, deliveries: Sequence[Delivery]) -> None:
        a = self._a
        with a._cond:
            for d in deliveries:
                a._settle(self._group, d.handle)
            a._cond.notify_all()

    def nack(self, delivery: Delivery, delay: float) -> None:
        a = self._a
        with a._cond:
            entry = a._settle(self._group, delivery.handle)
            if entry is None:
                return
            g = a._groups[self._group]
            entry.attempt += 1
            if entry.message.key is not None:  # keep the key locked: order holds over retries
                g.locked_keys.add(entry.message.key)
                entry.holds_key = True
            if delay > 0:
                heapq.heappush(g.delayed, (time.monotonic() + delay, next(a._tokens), entry))
            else:
                g.ready.appendleft(entry)
            a._cond.notify_all()

    def dead_letter(self, delivery: Delivery, reason: str) -> None:
        a = self._a
        with a._cond:
            entry = a._settle(self._group, delivery.handle)
            if entry is not None:
                a._groups[self._group].dead.append((entry.message, entry.attempt, reason))
            a._cond.notify_all()

    def close(self) -> None:
        a = self._a
        with a._cond:
            if self._closed:
                return
            self._closed = True
            g = a._groups.get(self._group)
            if g is None:
                return
            mine = [t for t, (_, _, owner) in g.inflight.items() if owner == self._id]
            for token in reversed(mine):  # keyed entries keep their key's lock
                a._return(g, g.inflight.pop(token)[0])
            a._cond.notify_all()


@dataclass(frozen=True, repr=False)
class MemorySettings(Settings):
    """``memory://?lease=30&max_message_size=65536``: the lease and an optional size limit."""

    adapter: ClassVar[str] = "memory"

    lease: float = 30.0
    max_message_size: int | None = None

    def validate(self) -> None:
        if self.lease <= 0:
            raise ConfigError(f"memory: option 'lease' must be > 0 seconds, not {self.lease!r}")


SPEC = adapter_spec(
    name="memory",
    settings=MemorySettings,
    adapter=".memory:MemoryAdapter.from_settings",
    package="eventbus.brokers",
    schemes=("memory",),
    capabilities=CAPABILITIES,
    description="in-process broker; the test double",
    default_url="memory://",
)


@hookimpl
def eventbus_adapters() -> list[AdapterSpec]:
    return [SPEC]
