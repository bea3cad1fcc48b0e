"""A group member on a subscription: peek-lock receive, settling, lock renewal.

``ack`` completes; ``nack(delay=0)`` abandons (the native delivery count makes
``attempt + 1``); ``nack(delay)`` schedules a copy addressed to this group's
subscription (``eventbus_to``) with ``eventbus_attempt = attempt + 1`` for
``now + delay`` and completes the original; ``dead_letter`` is the native dead
letter (``DeadLetterReason`` / ``DeadLetterErrorDescription``).

Locks of deliveries in hand are renewed by an
:class:`eventbus.adapter.LeaseRenewer` (one per consumer), up to
``lock_renewal`` seconds per delivery (0: never); at close, what is still in
hand is abandoned (back to the group now); a consumer that dies (its process
ends) stops renewing, so its deliveries come back after ``lock_duration``.

Threading: a consumer's SDK receiver is used by its caller's thread and, between
calls, by the renewer's; ``self._lock`` serialises the two.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from eventbus import BrokerUnavailable, ClosedError, Matcher
from eventbus.adapter import Consumer, Delivery, LeaseRenewer

from ._client import Clients
from ._codec import ATTEMPT, RETRY_TO, from_service_bus, to_service_bus
from ._errors import sdk_errors

__all__ = ["Member", "ServiceBusConsumer"]

log = logging.getLogger("eventbus.azure_servicebus")


class Member(Consumer):
    """What both kinds of consumer share: clients, settings, subscription, matcher, lock."""

    def __init__(self, clients: Clients, subscription: str, matcher: Matcher) -> None:
        self._clients = clients
        self._settings = clients.settings
        self._sb = clients.sb
        self._sub = subscription
        self._matcher = matcher
        self._reach = clients.reachability
        self._lock = threading.Lock()  # SDK calls: this consumer's thread and the renewer
        self._closed = False
        self._crashed = False
        # what this consumer has in hand, renewed while held (and given back at close)
        self._renewer = LeaseRenewer(
            self._renew_held,
            period=max(0.2, min(self._settings.lock_duration / 4, 5.0)),
            name=f"eventbus-sb-renewer-{subscription}",
        )

    def _renew_held(self, handles: Sequence[Any]) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def _check(self) -> None:
        if self._closed:
            raise ClosedError("consumer is closed")

    def _stop_renewing(self) -> list[Any]:
        """Stop renewing; what was held."""
        held = self._renewer.due()
        self._renewer.close()
        return held

    @staticmethod
    def _dead_letter_args(reason: str) -> dict[str, str]:
        """``DeadLetterReason`` (first line, 1 KiB) and ``DeadLetterErrorDescription`` (4 KiB)."""
        first_line = reason.splitlines()[0] if reason else "dead-lettered"
        return {"reason": first_line[:1024], "error_description": reason[:4096]}

    def crash(self) -> None:
        """Stop as a dying process would: no settling, no renewal (tests)."""
        raise NotImplementedError


class ServiceBusConsumer(Member):
    """A member of a group: one receiver on the group's subscription."""

    def __init__(self, clients: Clients, subscription: str, matcher: Matcher) -> None:
        super().__init__(clients, subscription, matcher)
        with sdk_errors(f"opening a receiver on subscription {subscription!r}", BrokerUnavailable):
            self._client = clients.client()
            self._receiver = self._client.get_subscription_receiver(
                self._settings.topic, subscription, prefetch_count=0
            )
            # open the link now: the SDK bounds link setup by a receive's wait time
            self._receiver.__enter__()
        self._sender: Any = None

    def receive(self, max_messages: int, timeout: float) -> list[Delivery]:
        if self._closed:
            raise ClosedError("consumer is closed")
        out: list[Delivery] = []
        deadline = time.monotonic() + max(timeout, 0.0)
        while True:
            wait = max(0.05, deadline - time.monotonic())
            with self._lock:
                if self._closed:
                    raise ClosedError("consumer is closed")
                try:
                    with sdk_errors(f"receiving from {self._sub!r}", BrokerUnavailable):
                        got = self._receiver.receive_messages(
                            max_message_count=max(1, max_messages), max_wait_time=wait
                        )
                except BrokerUnavailable as exc:
                    self._reach.lost(exc)
                    raise
                if self._reach.down:
                    self._reach.back()
                now = time.monotonic()
                foreign = []
                for msg in got:
                    d = from_service_bus(msg, msg)
                    if self._matcher(d.message.topic):
                        self._renewer.hold(id(msg), (msg, now))
                        out.append(d)
                    else:
                        foreign.append(msg)
                for msg in foreign:  # the coarse SQL rule let it in; the exact pattern does not
                    with sdk_errors("completing an event of another pattern"):
                        self._settle(msg, "complete")
            if out or time.monotonic() >= deadline or not got:
                return out

    # -- settling (the caller holds self._lock) ------------------------------------------
    def _settle(self, msg: Any, how: str, **kw: Any) -> None:
        sbx = self._sb.exceptions
        try:
            if how == "complete":
                self._receiver.complete_message(msg)
            elif how == "abandon":
                self._receiver.abandon_message(msg)
            else:
                self._receiver.dead_letter_message(msg, **kw)
        except (sbx.MessageLockLostError, sbx.MessageAlreadySettled) as exc:
            # the lock ran out: the broker gives the message to the group again
            log.warning(
                "could not %s a message of %r (%s); it will be redelivered", how, self._sub, exc
            )
        finally:
            self._renewer.release(id(msg))

    def ack(self, deliveries: Sequence[Delivery]) -> None:
        with self._lock:
            self._check()
            for d in deliveries:
                with sdk_errors(f"completing a message of {self._sub!r}"):
                    self._settle(d.handle, "complete")

    def nack(self, delivery: Delivery, delay: float) -> None:
        with self._lock:
            self._check()
            msg = delivery.handle
            if delay <= 0:
                with sdk_errors(f"abandoning a message of {self._sub!r}"):
                    self._settle(msg, "abandon")
                return
            copy = to_service_bus(self._sb, delivery.message, copy=True)
            copy.application_properties[RETRY_TO] = self._sub
            copy.application_properties[ATTEMPT] = delivery.attempt + 1
            when = datetime.now(timezone.utc) + timedelta(seconds=delay)
            with sdk_errors(f"scheduling a retry for {self._sub!r}"):
                if self._sender is None:
                    self._sender = self._client.get_topic_sender(self._settings.topic)
                self._sender.schedule_messages(copy, when)
                self._settle(msg, "complete")

    def dead_letter(self, delivery: Delivery, reason: str) -> None:
        with self._lock:
            self._check()
            with sdk_errors(f"dead-lettering a message of {self._sub!r}"):
                self._settle(delivery.handle, "dead_letter", **self._dead_letter_args(reason))

    # -- lock renewal (the renewer's thread) ------------------------------------------------
    def _renew_held(self, handles: Sequence[Any]) -> None:
        limit = self._settings.lock_renewal
        if limit <= 0 or self._closed or not self._lock.acquire(timeout=0.5):
            return
        try:
            half = timedelta(seconds=self._settings.lock_duration / 2)
            now_utc = datetime.now(timezone.utc)
            now = time.monotonic()
            for msg, received in handles:
                if self._closed:
                    return
                if now - received > limit:
                    continue  # a handler past lock_renewal: let the lock lapse
                until = msg.locked_until_utc
                if until is not None and until - now_utc > half:
                    continue
                try:
                    self._receiver.renew_message_lock(msg)
                except Exception as exc:  # lost already (or settled): the message will come back
                    log.debug("renewing a lock on %r failed: %s", self._sub, exc)
        finally:
            self._lock.release()

    # -- closing ----------------------------------------------------------------------------
    def close(self) -> None:
        held = self._stop_renewing()
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for msg, _ in held:  # unsettled deliveries go back to the group now
                if self._reach.down:
                    break  # no namespace to tell (each try would take the SDK's retries):
                try:  # the locks run out and the broker gives them back
                    self._settle(msg, "abandon")
                except Exception as exc:
                    self._reach.lost(exc)
            self._close_handles()

    def _close_handles(self) -> None:
        for handle in (self._sender, self._receiver, self._client):
            if handle is not None:
                with contextlib.suppress(Exception):
                    handle.close()
        self._sender = None

    def crash(self) -> None:
        self._crashed = True
        self._stop_renewing()
        with self._lock:
            self._closed = True
            self._close_handles()
