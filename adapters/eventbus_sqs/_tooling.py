"""The SQS adapter's tooling: dead letters (list, replay, purge) and ``delete_group``.

A mixin of :class:`~eventbus_sqs.SqsAdapter`; it uses the adapter's client and
settings and two of its methods (declared here): ``_group`` (a group's queues,
declared or found by name) and ``_topic`` (the SNS topic's ARN), and tells it to
``_forget`` a deleted group.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from eventbus import BrokerError
from eventbus.adapter import Delivery, make_delivery

from ._client import BATCH, SqsClient
from ._codec import DEAD_LETTER, fifo_id, from_wire, read_dead_letter_note
from ._consumer import GroupQueues, sendable
from ._errors import NO_QUEUE, ClientError, error_code, sdk
from ._settings import SqsSettings

__all__ = ["SqsTooling"]


class SqsTooling:
    """``DeadLetterTools`` and ``GroupAdmin`` for :class:`~eventbus_sqs.SqsAdapter`."""

    settings: SqsSettings
    _client: SqsClient

    def _group(self, group: str) -> GroupQueues:
        raise NotImplementedError  # the adapter's

    def _topic(self) -> str:
        raise NotImplementedError  # the adapter's

    def _forget(self, group: str) -> None:
        raise NotImplementedError  # the adapter's

    def dead_letters(self, group: str, limit: int = 100) -> list[tuple[Delivery, str]]:
        """The group's dead letters (a peek: each is received then made visible again)."""
        g = self._group(group)
        seen: dict[str, tuple[Delivery, str]] = {}
        receipts: list[str] = []
        try:
            with sdk("reading the dead-letter queue"):
                while len(seen) < limit:
                    got = self._client.sqs.receive_message(
                        QueueUrl=g.dlq_url,
                        MaxNumberOfMessages=min(BATCH, limit - len(seen)),
                        VisibilityTimeout=30,
                        WaitTimeSeconds=0,
                        MessageAttributeNames=["All"],
                        MessageSystemAttributeNames=["ApproximateReceiveCount"],
                    ).get("Messages", [])
                    if not got:
                        break
                    for m in got:
                        receipts.append(m["ReceiptHandle"])
                        seen.setdefault(m["MessageId"], _dead_letter_entry(m, self.settings))
        finally:
            self._client.release(g.dlq_url, receipts)
        return list(seen.values())[:limit]

    # SQS's StartMessageMoveTask (redrive) is not in moto and moves whole queues only:
    # dead letters move here by receive, send (batch) and delete (batch).
    def _tool_group(self, group: str) -> GroupQueues | None:
        """The group's queues for tooling; None if it has none."""
        try:
            return self._group(group)
        except BrokerError as exc:
            if error_code(exc.__cause__ or exc) in NO_QUEUE:
                return None
            raise

    def _take_dead(self, g: GroupQueues, n: int) -> list[Mapping[str, Any]]:
        with sdk("reading the dead-letter queue"):
            got: list[Mapping[str, Any]] = self._client.sqs.receive_message(
                QueueUrl=g.dlq_url,
                MaxNumberOfMessages=max(1, min(BATCH, n)),
                VisibilityTimeout=30,
                WaitTimeSeconds=0,
                MessageAttributeNames=["All"],
                MessageSystemAttributeNames=["MessageGroupId"],
            ).get("Messages", [])
        return got

    def _delete_dead(self, g: GroupQueues, messages: Sequence[Mapping[str, Any]]) -> int:
        entries = [
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)
        ]
        if not entries:
            return 0
        with sdk("deleting from the dead-letter queue"):
            result = self._client.sqs.delete_message_batch(QueueUrl=g.dlq_url, Entries=entries)
        return len(result.get("Successful", []))

    def replay_dead_letters(self, group: str, limit: int | None = None) -> int:
        """Send dead letters back to the group's queue (a new message: attempt 1), then
        delete them from the DLQ; oldest first as far as SQS returns them in order."""
        g = self._tool_group(group)
        moved = 0
        while g is not None and (limit is None or moved < limit):
            got = self._take_dead(g, BATCH if limit is None else limit - moved)
            if not got:
                break
            entries = []
            for i, m in enumerate(got):
                attributes = sendable(m.get("MessageAttributes") or {})
                for name in DEAD_LETTER:
                    attributes.pop(name, None)
                entry: dict[str, Any] = {
                    "Id": str(i),
                    "MessageBody": m.get("Body") or "-",
                    "MessageAttributes": attributes,
                }
                if self.settings.fifo:
                    gid = m.get("Attributes", {}).get("MessageGroupId") or m["MessageId"]
                    entry["MessageGroupId"] = fifo_id(gid)
                    entry["MessageDeduplicationId"] = fifo_id("replay-" + m["MessageId"])
                entries.append(entry)
            with sdk(f"replaying dead letters to {group!r}"):
                result = self._client.sqs.send_message_batch(QueueUrl=g.url, Entries=entries)
            sent = {e["Id"] for e in result.get("Successful", [])}
            moved += self._delete_dead(g, [m for i, m in enumerate(got) if str(i) in sent])
            failed = [m for i, m in enumerate(got) if str(i) not in sent]
            self._client.release(g.dlq_url, [m["ReceiptHandle"] for m in failed])
            if failed:
                raise BrokerError(
                    f"SQS refused to replay {len(failed)} dead letter(s) of "
                    f"{group!r}: {result.get('Failed')}"
                )
        return moved

    def purge_dead_letters(self, group: str) -> int:
        """Delete the group's dead letters (receive + delete: PurgeQueue gives no count
        and runs once a minute); ones another client holds right now are missed."""
        g = self._tool_group(group)
        purged = 0
        while g is not None:
            got = self._take_dead(g, BATCH)
            if not got:
                break
            purged += self._delete_dead(g, got)
        return purged

    def delete_group(self, group: str) -> None:
        """Unsubscribe the group's queue from SNS, delete it and its DLQ. Idempotent.

        AWS refuses to create a queue of the same name for 60 s after deleting it.
        """
        s = self.settings
        self._forget(group)
        for name in (s.queue_name(group), s.dlq_name(group)):
            with sdk(f"deleting queue {name!r} of group {group!r}"):
                try:
                    url = str(self._client.sqs.get_queue_url(QueueName=name)["QueueUrl"])
                    if self._client.sns is not None and name == s.queue_name(group):
                        arn = self._client.sqs.get_queue_attributes(
                            QueueUrl=url, AttributeNames=["QueueArn"]
                        )["Attributes"]["QueueArn"]
                        sub = self._client.find_subscription(self._topic(), str(arn))
                        if sub is not None:
                            self._client.sns.unsubscribe(SubscriptionArn=sub["SubscriptionArn"])
                    self._client.sqs.delete_queue(QueueUrl=url)
                except ClientError as exc:
                    if error_code(exc) not in NO_QUEUE:
                        raise


def _dead_letter_entry(m: Mapping[str, Any], s: SqsSettings) -> tuple[Delivery, str]:
    attributes = m.get("MessageAttributes") or {}
    message, _ = from_wire(m.get("Body", ""), attributes)
    reason, attempt = read_dead_letter_note(attributes)
    if reason is None:  # no note: SQS's redrive policy moved it
        reason = (
            f"received {s.max_receive_count} times without being settled "
            "(moved by the queue's SQS redrive policy)"
        )
    if attempt is None:
        attempt = int(m.get("Attributes", {}).get("ApproximateReceiveCount", "1"))
    return make_delivery(message, attempt, None), reason
