"""The SQS consumer: one member of a group, confined to its thread.

It receives from the group's queue (long polls, or short polls with a back-off),
checks each message against the group's patterns, and settles by receipt handle:
ack = ``DeleteMessageBatch``, nack = ``ChangeMessageVisibility(delay)``, dead
letter = a copy with the reason to the DLQ, then delete. The adapter's heartbeat
thread reads what it holds (under a lock) to extend its visibility.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from eventbus import BrokerError, ClosedError, Consumer, Delivery, Matcher

from ._codec import DEAD_LETTER, from_wire, sqs_size, to_wire
from ._sdk import BATCH, GONE, ClientError, chunks, error_code, fifo_id, sdk
from ._settings import MAX_MESSAGE_SIZE, MAX_VISIBILITY

if TYPE_CHECKING:
    from ._adapter import SqsAdapter

__all__ = ["GroupQueues", "SqsConsumer"]

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
    message_id: str
    body: str
    attributes: dict[str, Any]
    group_id: str | None
    expires: float  # monotonic time its visibility runs out, as last set


def _sendable(attributes: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Received attributes in the form SendMessage takes."""
    out: dict[str, dict[str, Any]] = {}
    for name, attr in attributes.items():
        value = {k: attr[k] for k in ("DataType", "StringValue", "BinaryValue") if k in attr}
        if "DataType" in value and len(value) == 2:
            out[name] = value
    return out


# -- the consumer ---------------------------------------------------------------------------
class SqsConsumer(Consumer):
    """A member of a group: receives from its queue, settles by receipt handle.

    FIFO: SQS may hand out several messages of one message group (key) in one
    receive; this consumer passes on one per key at a time and keeps the rest
    (still in flight) until the one before is settled, so a retried event is
    never overtaken by the next of its key.
    """

    def __init__(self, adapter: SqsAdapter, group: GroupQueues, matcher: Matcher) -> None:
        self._a = adapter
        self._g = group
        self._matcher = matcher
        self._fifo = adapter.settings.fifo
        self._lock = threading.Lock()  # _inflight is read by the heartbeat thread
        self._inflight: dict[str, _Handle] = {}
        self._held: deque[tuple[_Handle, Delivery]] = deque()  # FIFO: waiting for their key
        self._busy: set[str] = set()  # FIFO: message groups with a delivery handed out
        self._idle = 0.0  # current back-off after empty answers
        self._next_poll = 0.0  # no receive call before this (monotonic)
        self._closed = False
        self._crashed = False

    def __repr__(self) -> str:
        return f"<SqsConsumer {self._g.name!r} holding {len(self._inflight)}>"

    # -- receive -------------------------------------------------------------------------
    def receive(self, max_messages: int, timeout: float) -> list[Delivery]:
        if self._closed or self._a._closed:
            raise ClosedError("sqs consumer is closed")
        out = self._release_held(max_messages)
        if out:
            return out
        s = self._a.settings
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
                got = self._a._sqs.receive_message(
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
        drop: list[str] = []
        with self._lock:
            for m in got:
                message, ours = from_wire(m.get("Body", ""), m.get("MessageAttributes"))
                receipt = m["ReceiptHandle"]
                if (ours or message.topic) and not self._matcher(message.topic):
                    drop.append(receipt)  # SNS's prefix filter let it through: not ours
                    continue
                system = m.get("Attributes") or {}
                attempt = int(system.get("ApproximateReceiveCount", "1"))
                if message.key is None and system.get("MessageGroupId") and not ours:
                    message.key = system["MessageGroupId"]
                h = _Handle(receipt, m["MessageId"], m.get("Body", ""),
                            dict(m.get("MessageAttributes") or {}),
                            system.get("MessageGroupId"), expires)  # fmt: skip
                self._inflight[receipt] = h
                d = Delivery(message, attempt, h)
                if self._fifo and h.group_id is not None:
                    if h.group_id in self._busy:
                        self._held.append((h, d))
                        continue
                    self._busy.add(h.group_id)
                out.append(d)
        if drop:
            self._delete(drop)
        return out

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
        with self._lock:
            self._inflight.pop(h.receipt, None)
            if h.group_id is not None:
                self._busy.discard(h.group_id)
        return h

    def _delete(self, receipts: Sequence[str]) -> None:
        for chunk in chunks(receipts):
            entries = [{"Id": str(i), "ReceiptHandle": r} for i, r in enumerate(chunk)]
            with sdk(f"deleting from {self._g.name!r}"):
                result = self._a._sqs.delete_message_batch(QueueUrl=self._g.url, Entries=entries)
            failed = [f for f in result.get("Failed") or [] if f.get("Code") not in GONE]
            if failed:
                raise BrokerError(
                    f"SQS refused to delete {len(failed)} message(s) of {self._g.name!r}: "
                    f"{failed[0].get('Code')}: {failed[0].get('Message')}; they will come back"
                )

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
                self._a._sqs.change_message_visibility(
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
        self._a._release(self._g.url, [h.receipt for h in back])

    def dead_letter(self, delivery: Delivery, reason: str) -> None:
        self._check_open()
        h = delivery.handle
        if not isinstance(h, _Handle):
            raise ValueError("not a delivery of this consumer")
        note = {"DataType": "String", "StringValue": json.dumps(
            {"reason": reason[:4000], "attempt": delivery.attempt, "group": self._g.name},
            ensure_ascii=True)}  # fmt: skip
        attributes = _sendable(h.attributes)
        attributes.pop(DEAD_LETTER, None)
        body = h.body or "-"
        if len(attributes) >= 10:  # a foreign message with every slot used: repack it
            wire = to_wire(delivery.message)
            body, attributes = wire.body, dict(wire.attributes)
        attributes[DEAD_LETTER] = note
        fields = {}
        if self._fifo:
            fields = {"MessageGroupId": fifo_id(h.group_id or h.message_id),
                      "MessageDeduplicationId": fifo_id(h.message_id)}  # fmt: skip
        if sqs_size(body, attributes) > MAX_MESSAGE_SIZE:
            log.warning("dead letter of %s is over 256 KiB with its reason", h.message_id)
        with sdk(f"dead-lettering a message of {self._g.name!r}"):
            self._a._sqs.send_message(
                QueueUrl=self._g.dlq_url, MessageBody=body, MessageAttributes=attributes, **fields
            )
        self._settled(delivery)
        self._delete([h.receipt])

    # -- heartbeat, close -------------------------------------------------------------------
    def _extend(self, visibility: int, margin: float) -> None:
        now = time.monotonic()
        with self._lock:
            due = [h for h in self._inflight.values() if h.expires - now < margin]
        if not due or self._crashed:
            return
        for chunk in chunks(due):
            entries = [
                {"Id": str(i), "ReceiptHandle": h.receipt, "VisibilityTimeout": visibility}
                for i, h in enumerate(chunk)
            ]
            result = self._a._sqs.change_message_visibility_batch(
                QueueUrl=self._g.url, Entries=entries
            )
            failed = {f["Id"] for f in result.get("Failed") or []}
            for i, h in enumerate(chunk):
                if str(i) not in failed:
                    h.expires = now + visibility

    def _crash(self) -> None:
        self._crashed = True
        self._closed = True
        with self._lock:
            self._inflight.clear()
            self._held.clear()

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
        if receipts and not self._a._closed:
            self._a._release(self._g.url, receipts)
        with self._a._lock:
            self._a._consumers.discard(self)
