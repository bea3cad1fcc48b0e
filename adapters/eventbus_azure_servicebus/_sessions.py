"""A group member on a session-enabled subscription (``sessions=True``): per-key order.

Service Bus keeps FIFO only within a session, and hands a session to one
receiver at a time. Publishing puts each event in the session named by its
key (``session_for_key``; no key: ``DEFAULT_SESSION``). This consumer:

- holds up to ``max_sessions`` sessions, each a receiver accepted with
  ``NEXT_AVAILABLE_SESSION``; polls them in turn; releases (closes) one that
  stayed empty for ``SESSION_IDLE`` seconds with nothing in hand, so other
  sessions get a turn; when it holds none, it waits in the accept itself;
- hands out at most one event per key at a time, in sequence-number order;
  the key's next event waits in the consumer (still locked by the session)
  until that one is settled. Events without a key are handed out freely;
- ``nack`` abandons the message: it stays first in its session and comes back
  at once with ``delivery count + 1`` (attempt + 1). The consumer keeps the
  key blocked until that message is back and ``delay`` has passed, so a
  retried event is never overtaken by a later one of its key. (A scheduled
  copy, as without sessions, would land behind the key's later events.)
  The session, so the key, waits meanwhile; other sessions go on;
- renews each session's lock (``renew-session-lock``) while it holds
  anything of the session, up to ``lock_renewal`` seconds per delivery;
- on close, releases its sessions: what they held comes back to the group
  with ``delivery count + 1`` (Service Bus has no "release" for a session's
  messages); a crash leaves that to the session lock's expiry.

Its client has no SDK retries (``retry_total=0``): the SDK retries a failed
session accept for up to ~15 s otherwise, and a session receiver cannot be
reused after an error anyway; errors reach the worker as ``BrokerError``s
and it opens a new consumer.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from eventbus import BrokerUnavailable, Matcher
from eventbus.adapter import Delivery, make_delivery

from ._client import Clients
from ._codec import from_service_bus
from ._consumer import Member
from ._errors import sdk_errors

__all__ = ["SESSION_IDLE", "SessionConsumer"]

log = logging.getLogger("eventbus.azure_servicebus")

#: Seconds a held session may stay empty (nothing received, nothing in hand) before release.
SESSION_IDLE = 1.0
#: Seconds between accept attempts while the consumer already holds sessions and none was free.
ACCEPT_BACKOFF = 2.0
#: Longest wait of one poll of a session the consumer holds (seconds).
POLL_WAIT = 0.1


@dataclass(eq=False)
class _Session:
    receiver: Any
    id: str
    queue: dict[int, Delivery] = field(default_factory=dict)  # seq -> received, not handed out
    busy: set[str] = field(default_factory=set)  # keys with a delivery handed out
    handed: dict[int, float] = field(default_factory=dict)  # seq -> monotonic time handed out
    blocked: dict[str, int] = field(default_factory=dict)  # key -> seq of its abandoned event
    not_before: dict[int, float] = field(default_factory=dict)  # seq -> monotonic time
    last_message: float = field(default_factory=time.monotonic)
    dead: bool = False

    def empty(self) -> bool:
        return not (self.queue or self.handed or self.blocked)


@dataclass(eq=False)
class _Handle:
    msg: Any
    session: _Session
    seq: int
    key: str | None


class SessionConsumer(Member):
    """A member of a group on a session-enabled subscription."""

    def __init__(self, clients: Clients, subscription: str, matcher: Matcher) -> None:
        super().__init__(clients, subscription, matcher)
        self._sessions: list[_Session] = []
        self._next_accept = 0.0
        self._turn = 0
        with sdk_errors(f"opening a client for subscription {subscription!r}", BrokerUnavailable):
            self._client = clients.client(retry_total=0)

    # -- receive ---------------------------------------------------------------------------
    def receive(self, max_messages: int, timeout: float) -> list[Delivery]:
        deadline = time.monotonic() + max(timeout, 0.0)
        limit = max(1, max_messages)
        while True:
            with self._lock:
                self._check()
                self._renew(time.monotonic())
                out = self._hand_out(limit)
                if out:
                    return out
                self._poll(limit, deadline)
                out = self._hand_out(limit)
            if out or time.monotonic() >= deadline:
                return out

    def _hand_out(self, limit: int) -> list[Delivery]:
        out: list[Delivery] = []
        now = time.monotonic()
        for s in self._sessions:
            stop = set(s.busy)
            for seq in sorted(s.queue):
                if len(out) >= limit:
                    return out
                d = s.queue[seq]
                key = d.message.key
                if key is not None and key in stop:
                    continue
                waiting_for = s.blocked.get(key) if key is not None else None
                if (waiting_for is not None and waiting_for != seq) or s.not_before.get(
                    seq, 0.0
                ) > now:
                    if key is not None:
                        stop.add(key)
                    continue
                del s.queue[seq]
                s.not_before.pop(seq, None)
                s.handed[seq] = now
                if key is not None:
                    s.blocked.pop(key, None)
                    s.busy.add(key)
                    stop.add(key)
                out.append(d)
        return out

    def _poll(self, limit: int, deadline: float) -> None:
        """One round: accept a session if there is room, then receive from each held one."""
        now = time.monotonic()
        if len(self._sessions) < self._settings.max_sessions and now >= self._next_accept:
            # holding nothing: wait in the accept itself (up to the caller's timeout)
            wait = max(0.2, deadline - now) if not self._sessions else POLL_WAIT
            if self._accept(wait) is None and self._sessions:
                self._next_accept = time.monotonic() + ACCEPT_BACKOFF
        if not self._sessions:
            return
        start = self._turn % len(self._sessions)
        self._turn += 1
        for s in self._sessions[start:] + self._sessions[:start]:
            if s.dead:
                continue
            got = self._receive_from(s, limit)
            if not got and s.empty() and time.monotonic() - s.last_message >= SESSION_IDLE:
                self._release(s)
            if sum(len(x.queue) for x in self._sessions) >= limit:
                break
            if time.monotonic() >= deadline and any(x.queue for x in self._sessions):
                break
        self._sessions = [s for s in self._sessions if not s.dead]

    def _accept(self, wait: float) -> _Session | None:
        sbx = self._sb.exceptions
        receiver = self._client.get_subscription_receiver(
            self._settings.topic,
            self._sub,
            session_id=self._sb.NEXT_AVAILABLE_SESSION,
            max_wait_time=wait,
            prefetch_count=0,
        )
        try:
            receiver.__enter__()
        except (sbx.OperationTimeoutError, sbx.SessionCannotBeLockedError):
            with contextlib.suppress(Exception):
                receiver.close()
            return None  # no session free now
        except Exception as exc:
            with contextlib.suppress(Exception):
                receiver.close()
            with sdk_errors(f"accepting a session of {self._sub!r}", BrokerUnavailable):
                raise exc
        s = _Session(receiver, receiver.session.session_id)
        self._sessions.append(s)
        self._renewer.hold(id(s), s)
        log.debug("%s: holding session %r", self._sub, s.id)
        return s

    def _receive_from(self, s: _Session, limit: int) -> list[Any]:
        sbx = self._sb.exceptions
        try:
            got: list[Any] = s.receiver.receive_messages(
                max_message_count=limit, max_wait_time=POLL_WAIT
            )
        except (sbx.SessionLockLostError, sbx.ServiceBusError) as exc:
            log.warning("%s: lost session %r (%s); its events come back", self._sub, s.id, exc)
            self._drop(s)
            return []
        foreign = []
        for msg in got:
            d = from_service_bus(msg, None)
            seq = int(msg.sequence_number or 0)
            if not self._matcher(d.message.topic):
                foreign.append(msg)
                continue
            s.queue[seq] = make_delivery(d.message, d.attempt, _Handle(msg, s, seq, d.message.key))
        for msg in foreign:  # the coarse SQL rule let it in; the exact pattern does not
            with sdk_errors("completing an event of another pattern"):
                s.receiver.complete_message(msg)
        if got:
            s.last_message = time.monotonic()
        return got

    # -- settling ------------------------------------------------------------------------
    def _settle(self, d: Delivery, how: str, **kw: Any) -> _Handle:
        h = d.handle
        if not isinstance(h, _Handle):
            raise ValueError("not a delivery of this consumer")
        s = h.session
        s.handed.pop(h.seq, None)
        if h.key is not None:
            s.busy.discard(h.key)
        if s.dead:
            log.warning("%s: session %r was lost; its events come back", self._sub, s.id)
            return h
        sbx = self._sb.exceptions
        try:
            with sdk_errors(f"settling a message of {self._sub!r}"):
                try:
                    getattr(s.receiver, f"{how}_message")(h.msg, **kw)
                except (
                    sbx.SessionLockLostError,
                    sbx.MessageLockLostError,
                    sbx.MessageAlreadySettled,
                ) as exc:
                    log.warning(
                        "%s: could not %s a message of session %r (%s); it comes back",
                        self._sub,
                        how,
                        s.id,
                        exc,
                    )
                    self._drop(s)
        except Exception:
            self._drop(s)
            raise
        return h

    def ack(self, deliveries: Sequence[Delivery]) -> None:
        with self._lock:
            self._check()
            for d in deliveries:
                self._settle(d, "complete")

    def nack(self, delivery: Delivery, delay: float) -> None:
        with self._lock:
            self._check()
            h = self._settle(delivery, "abandon")
            s = h.session
            if s.dead:
                return
            if delay > 0:
                s.not_before[h.seq] = time.monotonic() + delay
            count = int(h.msg.delivery_count or 0) + 1
            if h.key is not None and count < self._settings.max_delivery_count:
                s.blocked[h.key] = h.seq  # the key waits for this event to come back
            # else: the broker dead-letters it (max delivery count); nothing to wait for

    def dead_letter(self, delivery: Delivery, reason: str) -> None:
        with self._lock:
            self._check()
            self._settle(delivery, "dead_letter", **self._dead_letter_args(reason))

    # -- session locks ---------------------------------------------------------------------
    def _renew_held(self, handles: Sequence[Any]) -> None:
        """Called by the renewer's thread (``handles``: the sessions held)."""
        if self._closed or not self._sessions or not self._lock.acquire(timeout=0.5):
            return
        try:
            if not self._closed:
                self._renew(time.monotonic())
        finally:
            self._lock.release()

    def _renew(self, now: float) -> None:
        limit = self._settings.lock_renewal
        if limit <= 0:
            return
        half = timedelta(seconds=self._settings.lock_duration / 2)
        now_utc = datetime.now(timezone.utc)
        for s in self._sessions:
            if s.dead:
                continue
            if s.handed and now - min(s.handed.values()) > limit:
                continue  # a handler past lock_renewal: let the lock lapse
            until = s.receiver.session.locked_until_utc
            if until is not None and until - now_utc > half:
                continue
            try:
                s.receiver.session.renew_lock()
            except Exception as exc:  # lost already: its events come back
                log.debug("renewing session %r of %r failed: %s", s.id, self._sub, exc)

    # -- releasing and closing ---------------------------------------------------------------
    def _release(self, s: _Session) -> None:
        log.debug("%s: releasing idle session %r", self._sub, s.id)
        self._drop(s)

    def _drop(self, s: _Session) -> None:
        self._renewer.release(id(s))
        s.dead = True
        s.queue.clear()
        s.blocked.clear()
        with contextlib.suppress(Exception):
            s.receiver.close()

    def close(self) -> None:
        self._stop_renewing()
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for s in self._sessions:
                self._drop(s)
            self._sessions = []
            with contextlib.suppress(Exception):
                self._client.close()

    def crash(self) -> None:
        self._crashed = True
        self._stop_renewing()
        with self._lock:
            self._closed = True
            for s in self._sessions:
                s.dead = True
            self._sessions = []
            with contextlib.suppress(Exception):
                self._client.close()
