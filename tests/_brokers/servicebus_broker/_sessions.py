"""Message sessions in the test broker's store (``RequiresSession`` entities).

Semantics follow Service Bus, each checked through the real SDK by
``tests/azure_servicebus/test_testbroker_sessions.py``:

- a session-enabled queue takes only messages with a session id (AMQP
  ``group-id``); a topic's copy without one for a session-enabled
  subscription is dead-lettered there (reason ``SessionIdIsMissing``, a
  choice of this broker);
- a session is locked by one receiver link at a time, for the entity's lock
  duration; ``renew-session-lock`` extends it; the messages it hands out are
  locked as long as the session is (their lock tokens settle them);
- a receiver accepts a named session (refused with
  ``com.microsoft:session-cannot-be-locked`` while another holds it) or the
  next available one: a session with a message ready and no holder, the one
  whose first message is oldest; with none, the attach waits up to the link's
  ``com.microsoft:timeout`` and is then refused with ``com.microsoft:timeout``
  (the SDK's ``OperationTimeoutError``);
- a session's messages go out in sequence-number order; an abandoned one is
  next again (it keeps its sequence number);
- when the session lock ends (expiry, or the holder's link closes), every
  message still locked in it comes back with ``delivery count + 1``, and the
  session is free for any receiver; an expired holder's link is detached
  with ``com.microsoft:session-lock-lost``;
- ``get-session-state`` / ``set-session-state`` keep a binary state per session.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._store import Entity, Stored

SESSION_LOCK_LOST = "com.microsoft:session-lock-lost"
SESSION_CANNOT_BE_LOCKED = "com.microsoft:session-cannot-be-locked"
TIMEOUT = "com.microsoft:timeout"
#: Dead-letter reason of a topic's message without a session id, for a session subscription.
MISSING_SESSION_ID = "SessionIdIsMissing"
#: How long a next-available-session attach waits when the link names no timeout (ms).
DEFAULT_ACCEPT_WAIT = 60_000


@dataclass
class Session:
    """One session of a session-enabled entity."""

    id: str
    ready: list[int] = field(default_factory=list)  # heap of sequence numbers
    holder: Any = None  # the receiver link holding the lock, or None
    locked_until: int = 0  # ms since the epoch
    state: bytes | None = None

    def held(self, now: int) -> bool:
        return self.holder is not None and self.locked_until > now


@dataclass
class Waiter:
    """A receiver attach asking for the next available session, not yet answered."""

    link: Any
    deadline: int  # ms since the epoch


def session_id_of(m: Stored) -> str | None:
    raw = m.parsed.properties.get("group_id")
    if raw is None:
        return None
    if isinstance(raw, (bytes, bytearray, memoryview)):
        return bytes(raw).decode("utf-8", "replace")
    return str(raw)


class SessionsMixin:
    """The session operations of :class:`._store.Store` (kept apart for size)."""

    #: called with a link whose session lock was lost (the handler detaches it)
    on_session_lost: Callable[[Any], None]

    # provided by Store
    def _failed_delivery(self, e: Entity, m: Stored, why: str) -> None: ...
    def _dead_letter(
        self, e: Entity, m: Stored, reason: str | None, description: str | None
    ) -> None: ...

    def _session(self, e: Entity, sid: str) -> Session:
        s = e.sessions.get(sid)
        if s is None:
            s = e.sessions[sid] = Session(sid)
        return s

    def _put_in_session(self, e: Entity, m: Stored) -> bool:
        """Queue ``m`` in its session; False if it has none (it was dead-lettered)."""
        sid = session_id_of(m)
        if sid is None:
            why = "The message has no SessionId; the subscription requires sessions."
            self._dead_letter(e, m, MISSING_SESSION_ID, why)
            return False
        heapq.heappush(self._session(e, sid).ready, m.seq)
        return True

    def accept_session(self, e: Entity, link: Any, sid: str | None, now: int) -> Session | None:
        """Lock session ``sid`` (or the next available one) for ``link``; None: none free."""
        from ._store import BrokerFault

        if sid is not None:
            s = self._session(e, sid)
            if s.held(now) and s.holder is not link:
                why = f"the session {sid!r} is locked by another receiver"
                raise BrokerFault(SESSION_CANNOT_BE_LOCKED, why, 410)
        else:
            best: tuple[int, Session] | None = None
            for s in e.sessions.values():
                if s.held(now):
                    continue
                head = self._head(e, s)
                if head is not None and (best is None or head < best[0]):
                    best = (head, s)
            if best is None:
                return None
            s = best[1]
        if s.holder is not None and s.holder is not link:
            self.release_session(e, s, lost=True)
        s.holder = link
        s.locked_until = now + int(e.lock_duration * 1000)
        return s

    def _head(self, e: Entity, s: Session) -> int | None:
        from ._store import ACTIVE

        while s.ready:
            m = e.messages.get(s.ready[0])
            if m is not None and m.state == ACTIVE and m.lock is None:
                return s.ready[0]
            heapq.heappop(s.ready)
        return None

    def next_in_session(self, e: Entity, s: Session) -> Stored | None:
        seq = self._head(e, s)
        if seq is None:
            return None
        heapq.heappop(s.ready)
        return e.messages[seq]

    def release_session(self, e: Entity, s: Session, *, lost: bool = False) -> None:
        """End ``s``'s lock: its locked messages come back with delivery count + 1."""
        holder, s.holder = s.holder, None
        s.locked_until = 0
        for m in sorted(e.messages.values(), key=lambda m: m.seq):
            if m.lock is not None and session_id_of(m) == s.id:
                self.locks.pop(m.lock, None)  # type: ignore[attr-defined]
                m.lock = None
                self._failed_delivery(e, m, "session lock ended")
        if lost and holder is not None:
            self.on_session_lost(holder)

    def release_link(self, e: Entity, link: Any) -> None:
        """The holder's link closed: its session is free again."""
        for s in e.sessions.values():
            if s.holder is link:
                self.release_session(e, s)

    def renew_session(self, e: Entity, sid: str, now: int) -> int:
        from ._store import BrokerFault

        s = e.sessions.get(sid)
        if s is None or not s.held(now):
            raise BrokerFault(SESSION_LOCK_LOST, f"the lock on session {sid!r} was lost", 410)
        s.locked_until = now + int(e.lock_duration * 1000)
        for m in e.messages.values():  # the session's messages are locked as long as it is
            if m.lock is not None and session_id_of(m) == sid:
                m.locked_until = s.locked_until
        return s.locked_until

    def session_state(self, e: Entity, sid: str, now: int, state: Any = ..., /) -> bytes | None:
        from ._store import BrokerFault

        s = e.sessions.get(sid)
        if s is None or not s.held(now):
            raise BrokerFault(SESSION_LOCK_LOST, f"the lock on session {sid!r} was lost", 410)
        if state is not ...:
            s.state = None if state is None else bytes(state)
        return s.state

    def session_entities(self) -> list[Entity]:
        """Every entity that requires sessions."""
        out = [q for q in self.queues.values() if q.requires_session]  # type: ignore[attr-defined]
        for t in self.topics.values():  # type: ignore[attr-defined]
            out += [sub for sub in t.subscriptions.values() if sub.requires_session]
        return out

    def _tick_sessions(self, e: Entity, now: int) -> None:
        for s in e.sessions.values():
            if s.holder is not None and s.locked_until <= now:
                self.release_session(e, s, lost=True)
