"""The SQS consumer: one member of a group, confined to its thread.

It receives from the group's queue (long polls, or short polls with a back-off),
checks each message against the group's patterns, and settles by receipt handle:
ack = ``DeleteMessageBatch``, nack = ``ChangeMessageVisibility(delay)``, dead
letter = a copy with the reason to the DLQ, then delete. What it holds is
registered with the adapter's :class:`~eventbus.adapter.LeaseRenewer`, whose
thread extends its visibility (:func:`lease_renewer`) while handlers run.

A consumer gets everything it uses at construction: the adapter's
:class:`~eventbus_sqs._client.SqsClient`, the settings, the group's queues and the
renewer; it never touches the adapter itself.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from eventbus import ClosedError, Matcher, validate_topic
from eventbus.adapter import Consumer, Delivery, LeaseRenewer, make_delivery

from ._client import BATCH, SqsClient
from ._codec import (
    DEAD_LETTER,
    TYPE,
    dead_letter_note,
    fifo_id,
    filter_policy,
    from_wire,
    sqs_size,
    to_wire,
)
from ._errors import GONE, ClientError, error_code, sdk
from ._settings import MAX_MESSAGE_SIZE, MAX_VISIBILITY, SqsSettings

__all__ = ["GroupQueues", "SqsConsumer", "lease_renewer", "sendable"]

log = logging.getLogger("eventbus.sqs")


@dataclass
class GroupQueues:
    """A group's queues as this adapter knows them."""

    name: str
    patterns: tuple[str, ...]
    url: str
    arn: str
    dlq_url: str


@dataclass(eq=False)
class _Handle:
    """What a delivery needs to be settled: its receipt and the message as received."""

    receipt: str
    url: str  # the queue it came from
    message_id: str
    body: str
    attributes: dict[str, Any]
    group_id: str | None
    expires: float  # monotonic time its visibility runs out, as last set


def sendable(attributes: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Received attributes in the form SendMessage takes."""
    out: dict[str, dict[str, Any]] = {}
    for name, attr in attributes.items():
        value = {k: attr[k] for k in ("DataType", "StringValue", "BinaryValue") if k in attr}
        if "DataType" in value and len(value) == 2:
            out[name] = value
    return out


def lease_renewer(client: SqsClient, settings: SqsSettings) -> LeaseRenewer:
    """The adapter's renewer: every third of the lease, it extends the visibility of
    held deliveries whose visibility runs out within two periods."""
    visibility = settings.visibility
    period = max(0.5, visibility / 3)

    def renew(handles: Sequence[_Handle]) -> None:
        now = time.monotonic()
        due: dict[str, list[_Handle]] = {}
        for h in handles:
            if h.expires - now < 2 * period:
                due.setdefault(h.url, []).append(h)
        for url, items in due.items():
            try:
                refused = client.set_visibility(url, [h.receipt for h in items], visibility)
            except Exception as exc:  # retried on the next round; the lease may lapse
                log.debug("extending %d lease(s) failed: %s", len(items), exc)
                continue
            for i, h in enumerate(items):
                if i not in refused:
                    h.expires = now + visibility

    return LeaseRenewer(renew, period=period, name="eventbus-sqs-lease")


# -- the consumer ---------------------------------------------------------------------------
class SqsConsumer(Consumer):
    """A member of a group: receives from its queue, settles by receipt handle.

    FIFO: SQS may hand out several messages of one message group (key) in one
    receive; this consumer passes on one per key at a time and keeps the rest
    (still in flight) until the one before is settled, so a retried event is
    never overtaken by the next of its key.
    """

    def __init__(
        self,
        client: SqsClient,
        settings: SqsSettings,
        group: GroupQueues,
        matcher: Matcher,
        renewer: LeaseRenewer,
    ) -> None:
        self._client = client
        self._settings = settings
        self._g = group
        self._matcher = matcher
        self._renewer = renewer
        self._fifo = settings.fifo
        self._lock = threading.Lock()  # _inflight, _held, _busy (close, crash: other threads)
        self._inflight: dict[str, _Handle] = {}
        self._held: deque[tuple[_Handle, Delivery]] = deque()  # FIFO: waiting for their key
        self._busy: set[str] = set()  # FIFO: message groups with a delivery handed out
        self._idle = 0.0  # current back-off after empty answers
        self._next_poll = 0.0  # no receive call before this (monotonic)
        self._closed = False
        self._crashed = False
        # SNS filter policies only narrow by prefix: a valid event type they let through
        # that the exact patterns refuse was over-delivered by the mapping, not sent to
        # this group; it is deleted, not dead-lettered (RabbitMQ would not route it)
        self._policy = filter_policy(group.patterns) if settings.mode == "sns" else {}

    def __repr__(self) -> str:
        return f"<SqsConsumer {self._g.name!r} holding {len(self._inflight)}>"

    # -- receive -------------------------------------------------------------------------
    def receive(self, max_messages: int, timeout: float) -> list[Delivery]:
        if self._closed or self._client.closed:
            raise ClosedError("sqs consumer is closed")
        out = self._release_held(max_messages)
        if out:
            return out
        s = self._settings
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            now = time.monotonic()
            if now < self._next_poll:  # backing off after empty answers: no hot loop
                time.sleep(max(0.0, min(self._next_poll, deadline) - now))
                now = time.monotonic()
                if now >= deadline:
                    return []
            wait = min(s.long_poll, int(deadline - now + 0.01))  # whole seconds; 0: short
            with sdk(f"receiving from {self._g.name!r}"):
                got = self._client.poll.receive_message(
                    QueueUrl=self._g.url,
                    MaxNumberOfMessages=max(1, min(BATCH, max_messages)),
                    WaitTimeSeconds=wait,
                    VisibilityTimeout=s.visibility,
                    MessageAttributeNames=["All"],
                    MessageSystemAttributeNames=["ApproximateReceiveCount", "MessageGroupId"],
                ).get("Messages", [])
            out = self._accept(got, now + s.visibility) if got else []
            if out:
                self._idle, self._next_poll = 0.0, 0.0
                return out
            if not got and time.monotonic() - now < max(wait, 0.05):
                # empty before the wait was up (a short poll, or an emulator that
                # doesn't hold long polls): wait longer before the next call, up to 0.5 s
                self._idle = min(max(self._idle * 2, 0.02), 0.5)
                self._next_poll = time.monotonic() + self._idle
            if time.monotonic() >= deadline:
                return []
            # else: all dropped (not ours) or held back, or a long poll ran out early

    def _accept(self, got: Sequence[Mapping[str, Any]], expires: float) -> list[Delivery]:
        out: list[Delivery] = []
        unmatched: list[Delivery] = []
        with self._lock:
            for m in got:
                message, ours = from_wire(m.get("Body", ""), m.get("MessageAttributes"))
                receipt = m["ReceiptHandle"]
                system = m.get("Attributes") or {}
                attempt = int(system.get("ApproximateReceiveCount", "1"))
                if message.key is None and system.get("MessageGroupId") and not ours:
                    message.key = system["MessageGroupId"]
                h = _Handle(
                    receipt,
                    self._g.url,
                    m["MessageId"],
                    m.get("Body", ""),
                    dict(m.get("MessageAttributes") or {}),
                    system.get("MessageGroupId"),
                    expires,
                )
                if (ours or message.topic) and not self._matcher(message.topic):
                    # SNS's prefix filter let it through, or a foreign producer's odd type
                    unmatched.append(make_delivery(message, attempt, h))
                    continue
                self._inflight[receipt] = h
                self._renewer.hold(receipt, h)
                d = make_delivery(message, attempt, h)
                if self._fifo and h.group_id is not None:
                    if h.group_id in self._busy:
                        self._held.append((h, d))
                        continue
                    self._busy.add(h.group_id)
                out.append(d)
        if unmatched:
            foreign = [d for d in unmatched if not self._over_delivered(d.message.topic)]
            dropped = [d.handle.receipt for d in unmatched if d not in foreign]
            if dropped:
                log.debug("group %s: %d event(s) SNS's prefix filter let through that the "
                          "patterns refuse: deleted", self._g.name, len(dropped))  # fmt: skip
                self._delete(dropped)
            if foreign:
                self._dead_letter_unmatched(foreign)
        return out

    def _over_delivered(self, topic: str) -> bool:
        """Whether SNS's filter policy let ``topic`` through although the patterns refuse it:
        a valid event type, in SNS mode, passing the policy's prefixes."""
        if self._policy == {} or not topic:
            return False
        try:
            validate_topic(topic)
        except ValueError:
            return False  # a foreign producer's odd type: a dead letter with the reason
        if self._policy is None:
            return True  # no policy: every event reaches the queue
        for value in self._policy[TYPE]:
            if value == topic or (isinstance(value, dict) and topic.startswith(value["prefix"])):
                return True
        return False

    def _dead_letter_unmatched(self, deliveries: Sequence[Delivery]) -> None:
        """Events of a type none of the group's patterns match: to the DLQ, with why."""
        patterns = list(self._matcher.patterns)
        for d in deliveries:
            reason = (
                f"event type {d.message.topic!r} matches none of the patterns of group "
                f"{self._g.name!r}: {patterns}"
            )
            log.info("group %s: dead-lettering %s", self._g.name, reason)
            self._copy_to_dlq(d, reason)
        self._delete([d.handle.receipt for d in deliveries])

    def _release_held(self, limit: int) -> list[Delivery]:
        if not self._held:
            return []
        out: list[Delivery] = []
        keep: deque[tuple[_Handle, Delivery]] = deque()
        with self._lock:
            for h, d in self._held:
                if len(out) < limit and h.group_id not in self._busy:
                    self._busy.add(h.group_id or "")
                    out.append(d)
                else:
                    keep.append((h, d))
            self._held = keep
        return out

    # -- settle ---------------------------------------------------------------------------
    def _settled(self, d: Delivery) -> _Handle | None:
        h = d.handle
        if not isinstance(h, _Handle):
            raise ValueError("not a delivery of this consumer")
        self._renewer.release(h.receipt)
        with self._lock:
            self._inflight.pop(h.receipt, None)
            if h.group_id is not None:
                self._busy.discard(h.group_id)
        return h

    def _delete(self, receipts: Sequence[str]) -> None:
        self._client.delete(self._g.url, receipts, self._g.name)

    def ack(self, deliveries: Sequence[Delivery]) -> None:
        self._check_open()
        receipts = [h.receipt for d in deliveries if (h := self._settled(d)) is not None]
        self._delete(receipts)

    def nack(self, delivery: Delivery, delay: float) -> None:
        self._check_open()
        h = self._settled(delivery)
        assert h is not None
        after = min(MAX_VISIBILITY, math.ceil(delay)) if delay > 0 else 0
        with sdk(f"returning a message to {self._g.name!r}"):
            try:
                self._client.sqs.change_message_visibility(
                    QueueUrl=self._g.url, ReceiptHandle=h.receipt, VisibilityTimeout=after
                )
            except ClientError as exc:
                if error_code(exc) not in GONE:
                    raise
                log.debug("nack of %s: %s (it comes back when its lease ends)", h.message_id, exc)
        if self._fifo and h.group_id is not None:
            self._return_held(h.group_id)

    def _return_held(self, group_id: str) -> None:
        """FIFO: the key's later messages go back too, behind the retried one."""
        with self._lock:
            back = [h for h, _ in self._held if h.group_id == group_id]
            self._held = deque((h, d) for h, d in self._held if h.group_id != group_id)
            for h in back:
                self._inflight.pop(h.receipt, None)
                self._renewer.release(h.receipt)
        self._client.release(self._g.url, [h.receipt for h in back])

    def dead_letter(self, delivery: Delivery, reason: str) -> None:
        self._check_open()
        h = delivery.handle
        if not isinstance(h, _Handle):
            raise ValueError("not a delivery of this consumer")
        self._copy_to_dlq(delivery, reason)
        self._settled(delivery)
        self._delete([h.receipt])

    def _copy_to_dlq(self, delivery: Delivery, reason: str) -> None:
        h = delivery.handle
        failed_at = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
        note = dead_letter_note(reason, delivery.attempt, self._g.name, failed_at)
        attributes = sendable(h.attributes)
        for name in DEAD_LETTER:
            attributes.pop(name, None)
        body = h.body or "-"
        if len(attributes) + len(note) > 10:  # a foreign message with many attributes: repack
            wire = to_wire(delivery.message)
            body, attributes = wire.body, dict(wire.attributes)
        attributes.update(note)
        fields = {}
        if self._fifo:
            fields = {
                "MessageGroupId": fifo_id(h.group_id or h.message_id),
                "MessageDeduplicationId": fifo_id(h.message_id),
            }
        if sqs_size(body, attributes) > MAX_MESSAGE_SIZE:
            log.warning("dead letter of %s is over 256 KiB with its reason", h.message_id)
        with sdk(f"dead-lettering a message of {self._g.name!r}"):
            self._client.sqs.send_message(
                QueueUrl=self._g.dlq_url, MessageBody=body, MessageAttributes=attributes, **fields
            )

    # -- crash, close ------------------------------------------------------------------------
    def crash(self) -> None:
        """Act like a killed process: stop renewing, forget what is held, settle nothing."""
        self._crashed = True
        self._closed = True
        with self._lock:
            receipts = list(self._inflight)
            self._inflight.clear()
            self._held.clear()
        for receipt in receipts:
            self._renewer.release(receipt)

    def _check_open(self) -> None:
        if self._crashed:
            raise ClosedError("sqs consumer is closed")

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with self._lock:
            receipts = list(self._inflight)
            self._inflight.clear()
            self._held.clear()
            self._busy.clear()
        for receipt in receipts:
            self._renewer.release(receipt)
        if receipts and not self._client.closed:
            self._client.release(self._g.url, receipts)
