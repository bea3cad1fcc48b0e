"""The SQS adapter: a queue per group, SNS (or the publisher) fanning events out.

Layout (``mode=sns``, the default): one SNS topic per bus; each group is an SQS
queue subscribed to it with raw delivery and a filter policy on the ``type``
attribute (exact values for direct patterns, ``prefix`` for the literal start
of wildcard patterns, none for patterns SNS can't narrow). The consumer checks
every message against the group's patterns with :class:`eventbus.Matcher` and
dead-letters, with the reason, what SNS's coarser filter let through. ``mode=sqs`` has no
SNS: a group's queue carries its patterns in tags and the publisher sends each
event to every queue whose patterns match.

Each group's queue has a dead-letter queue (``<queue>-dlq``) and a redrive
policy to it. The worker decides when an event is dead (``dead_letter``: a copy
with the reason goes to the DLQ, then the original is deleted); the redrive
policy only catches events that crash their consumer again and again.

Threading: ``publish``, ``declare``, ``dead_letters`` and ``close`` are
thread-safe (boto3 clients are). A consumer is used by one thread; the lease
renewer's thread (one per adapter) extends the visibility of what consumers hold, so
a long handler keeps its events, and a consumer that disappears without
closing (its process killed) loses them to another member after ``lease``.
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import json
import logging
import threading
import time
import weakref
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from eventbus import BrokerError, ClosedError, ConfigError, Matcher, MessageTooLarge, PublishError
from eventbus.adapter import Adapter, Message

from ._client import BATCH, SqsClient
from ._codec import CE, Wire, fifo_id, filter_policy, to_wire
from ._consumer import GroupQueues, SqsConsumer, lease_renewer
from ._errors import NO_QUEUE, ClientError, error_code, sdk
from ._settings import MAX_MESSAGE_SIZE, SqsSettings
from ._tooling import SqsTooling

__all__ = ["SqsAdapter", "SqsConsumer"]

log = logging.getLogger("eventbus.sqs")

_PATTERN_TAG = "eventbus:patterns"
_TAG_CHUNK = 256


# -- the adapter ---------------------------------------------------------------------------
class SqsAdapter(SqsTooling, Adapter):
    """SQS queues per group, with SNS fan-out (or publisher fan-out in ``mode=sqs``)."""

    def __init__(self, settings: SqsSettings | None = None, **options: Any) -> None:
        self.settings = s = settings if settings is not None else SqsSettings(**options)
        self.capabilities = s.capabilities
        self._client = SqsClient(s)
        self._lock = threading.Lock()  # groups, topic, routes, consumers
        self._declare_lock = threading.Lock()
        self._groups: dict[str, GroupQueues] = {}
        self._topic_arn: str | None = s.topic_arn
        self._routes: dict[str, tuple[Matcher, str]] | None = None  # mode=sqs: url -> matcher
        self._routes_at = 0.0
        self._consumers: weakref.WeakSet[SqsConsumer] = weakref.WeakSet()  # simulate_crash
        self._renewer = lease_renewer(self._client, s)
        self._closed = False

    def __repr__(self) -> str:
        s = self.settings
        where = s.endpoint_url or s.region or "aws"
        return f"<SqsAdapter {s.mode} {where} prefix={s.prefix!r}{' fifo' if s.fifo else ''}>"

    # -- publishing --------------------------------------------------------------------
    def publish(self, messages: Sequence[Message]) -> None:
        if self._closed:
            raise ClosedError("sqs adapter is closed")
        if not messages:
            return
        wires = [self._wire(m) for m in messages]  # all checked before anything is sent
        if self._client.sns is not None:
            self._publish_sns(messages, wires)
        else:
            self._publish_sqs(messages, wires)

    def _wire(self, message: Message) -> Wire:
        wire = to_wire(message)  # EncodeError for what SQS can't carry
        if wire.size > MAX_MESSAGE_SIZE:
            how = "base64-encoded, as it is not text" if _is_base64(wire) else "as text"
            raise MessageTooLarge(
                f"event {message.headers.get('id', '?')} of type {message.topic!r} is "
                f"{wire.size} bytes as SQS counts it (payload {how}, plus attributes); "
                f"SQS and SNS take at most {MAX_MESSAGE_SIZE}. Send large payloads by "
                "reference (store them in S3 and publish the key)"
            )
        return wire

    def _fifo_fields(self, message: Message, dedup_id: str | None = None) -> dict[str, str]:
        if not self.settings.fifo:
            return {}
        ident = message.headers.get("id") or hashlib.sha256(message.body).hexdigest()
        return {
            "MessageGroupId": fifo_id(message.key if message.key is not None else ident),
            "MessageDeduplicationId": fifo_id(dedup_id or ident),
        }

    def _batches(
        self, items: Sequence[tuple[Message, Wire]]
    ) -> Iterator[list[tuple[Message, Wire]]]:
        """Up to 10 messages and 256 KiB per batch call."""
        batch: list[tuple[Message, Wire]] = []
        size = 0
        for message, wire in items:
            if batch and (len(batch) == BATCH or size + wire.size > MAX_MESSAGE_SIZE):
                yield batch
                batch, size = [], 0
            batch.append((message, wire))
            size += wire.size
        if batch:
            yield batch

    def _publish_sns(self, messages: Sequence[Message], wires: Sequence[Wire]) -> None:
        topic_arn = self._topic()
        for batch in self._batches(list(zip(messages, wires, strict=True))):
            entries = [
                {
                    "Id": str(i),
                    "Message": w.body,
                    "MessageAttributes": w.attributes,
                    **self._fifo_fields(m),
                }
                for i, (m, w) in enumerate(batch)
            ]
            with sdk("publishing to SNS", PublishError):
                result = self._client.sns.publish_batch(
                    TopicArn=topic_arn, PublishBatchRequestEntries=entries
                )
            _check_batch(result, len(entries), "SNS PublishBatch")

    def _publish_sqs(self, messages: Sequence[Message], wires: Sequence[Wire]) -> None:
        routes = self._route_table()
        by_queue: dict[str, list[tuple[Message, Wire]]] = {}
        for message, wire in zip(messages, wires, strict=True):
            for url, (matcher, _) in routes.items():
                if matcher(message.topic):
                    by_queue.setdefault(url, []).append((message, wire))
        for url, items in by_queue.items():
            for batch in self._batches(items):
                entries = [
                    {
                        "Id": str(i),
                        "MessageBody": w.body,
                        "MessageAttributes": w.attributes,
                        **self._fifo_fields(m),
                    }
                    for i, (m, w) in enumerate(batch)
                ]
                try:
                    with sdk("sending to SQS", PublishError):
                        result = self._client.sqs.send_message_batch(QueueUrl=url, Entries=entries)
                except PublishError as exc:
                    if error_code(exc.__cause__ or exc) in NO_QUEUE:  # the group was deleted
                        with self._lock:
                            self._routes_at = 0.0
                        continue
                    raise
                _check_batch(result, len(entries), "SQS SendMessageBatch")

    # -- the layout ----------------------------------------------------------------------
    def _topic(self) -> str:
        with self._lock:
            if self._topic_arn is not None:
                return self._topic_arn
        s = self.settings
        name = s.topic_name
        if s.create:
            attributes = {"FifoTopic": "true"} if s.fifo else {}
            with sdk(f"creating SNS topic {name!r}"):
                arn = str(
                    self._client.sns.create_topic(Name=name, Attributes=attributes)["TopicArn"]
                )
        else:
            arn = ""
            with sdk("listing SNS topics"):
                for page in self._client.sns.get_paginator("list_topics").paginate():
                    for topic in page.get("Topics", []):
                        if topic["TopicArn"].rsplit(":", 1)[-1] == name:
                            arn = topic["TopicArn"]
            if not arn:
                raise ConfigError(
                    f"sqs adapter: SNS topic {name!r} does not exist and create=false; "
                    "create it or give topic_arn=..."
                )
        with self._lock:
            self._topic_arn = arn
        return arn

    def declare(self, group: str, patterns: Sequence[str]) -> None:
        self._declare(group, patterns)

    def _declare(self, group: str, patterns: Sequence[str]) -> GroupQueues:
        if self._closed:
            raise ClosedError("sqs adapter is closed")
        wanted = Matcher(patterns).patterns
        with self._lock:
            known = self._groups.get(group)
        if known is not None and known.patterns == wanted:
            return known
        with self._declare_lock:
            if self.settings.create:
                g = self._create_group(group, wanted)
            else:
                g = self._check_group(group, wanted)
            with self._lock:
                self._groups[group] = g
                if self._routes is not None:
                    self._routes[g.url] = (Matcher(wanted), group)
        return g

    def _create_queue(self, name: str, attributes: dict[str, str]) -> str:
        with sdk(f"creating queue {name!r}"):
            try:
                return str(
                    self._client.sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
                )
            except ClientError as exc:
                if error_code(exc) not in ("QueueAlreadyExists", "QueueNameExists"):
                    raise
            # it exists with other settings (another lease, another topic): update them,
            # keeping what others put in its policies
            url = str(self._client.sqs.get_queue_url(QueueName=name)["QueueUrl"])
            changeable = {k: v for k, v in attributes.items() if k != "FifoQueue"}
            if "Policy" in changeable or "RedrivePolicy" in changeable:
                current = self._client.sqs.get_queue_attributes(
                    QueueUrl=url, AttributeNames=["Policy", "RedrivePolicy"]
                ).get("Attributes", {})
                _keep_theirs(name, changeable, current)
            if changeable:
                self._client.sqs.set_queue_attributes(QueueUrl=url, Attributes=changeable)
            return url

    def _create_group(self, group: str, patterns: tuple[str, ...]) -> GroupQueues:
        s = self.settings
        fifo = {"FifoQueue": "true"} if s.fifo else {}
        dlq_url = self._create_queue(
            s.dlq_name(group), {"MessageRetentionPeriod": "1209600", **fifo}
        )
        with sdk("reading the DLQ's ARN"):
            dlq_arn = str(
                self._client.sqs.get_queue_attributes(
                    QueueUrl=dlq_url, AttributeNames=["QueueArn"]
                )["Attributes"]["QueueArn"]
            )
        name = s.queue_name(group)
        arn = dlq_arn.rsplit(":", 1)[0] + ":" + name
        attributes = {
            "VisibilityTimeout": str(s.visibility),
            "RedrivePolicy": json.dumps(
                {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": s.max_receive_count}
            ),
            **fifo,
        }
        topic_arn = self._topic() if self._client.sns is not None else None
        if topic_arn is not None:
            attributes["Policy"] = json.dumps(
                {"Version": "2012-10-17", "Statement": [_sns_statement(arn, topic_arn)]}
            )
        url = self._create_queue(name, attributes)
        if topic_arn is not None:
            self._subscribe(topic_arn, arn, patterns)
        else:
            self._tag_patterns(url, patterns)
        return GroupQueues(group, patterns, url, arn, dlq_url)

    def _subscribe(self, topic_arn: str, queue_arn: str, patterns: Sequence[str]) -> None:
        policy = filter_policy(patterns)
        text = json.dumps(policy) if policy is not None else "{}"
        attributes = {"RawMessageDelivery": "true"}
        with sdk("subscribing the queue to SNS"):
            try:
                sub = self._client.sns.subscribe(
                    TopicArn=topic_arn,
                    Protocol="sqs",
                    Endpoint=queue_arn,
                    Attributes=attributes,
                    ReturnSubscriptionArn=True,
                )["SubscriptionArn"]
            except ClientError as exc:
                if error_code(exc) != "InvalidParameter":
                    raise
                found = self._client.find_subscription(topic_arn, queue_arn)
                if found is None:
                    raise
                sub = found["SubscriptionArn"]
            # Subscribe keeps an existing subscription's attributes: set the policy each time.
            self._client.sns.set_subscription_attributes(
                SubscriptionArn=sub, AttributeName="FilterPolicy", AttributeValue=text
            )

    def _tag_patterns(self, url: str, patterns: Sequence[str]) -> None:
        # Tag values take letters, digits and few symbols: base64url fits, in 256-char parts.
        text = base64.urlsafe_b64encode(json.dumps(list(patterns)).encode()).decode()
        parts = [text[i : i + _TAG_CHUNK] for i in range(0, len(text), _TAG_CHUNK)] or [""]
        if len(parts) > 40:
            raise ConfigError("sqs adapter: too many patterns for one group in mode=sqs")
        tags = {f"{_PATTERN_TAG}:{i}": p for i, p in enumerate(parts)}
        tags[_PATTERN_TAG] = str(len(parts))
        with sdk("tagging the queue with its patterns"):
            self._client.sqs.tag_queue(QueueUrl=url, Tags=tags)

    def _check_group(self, group: str, patterns: tuple[str, ...]) -> GroupQueues:
        """``create=false``: the queues (and subscription) must exist; nothing is changed."""
        s = self.settings
        name = s.queue_name(group)
        try:
            with sdk(f"looking up queue {name!r}"):
                url = str(self._client.sqs.get_queue_url(QueueName=name)["QueueUrl"])
                attrs = self._client.sqs.get_queue_attributes(
                    QueueUrl=url, AttributeNames=["QueueArn", "RedrivePolicy", "Policy"]
                )["Attributes"]
        except BrokerError as exc:
            if error_code(exc.__cause__ or exc) in NO_QUEUE:
                raise ConfigError(
                    f"sqs adapter: queue {name!r} of group {group!r} does not exist and "
                    "create=false"
                ) from exc
            raise
        redrive = attrs.get("RedrivePolicy")
        if not redrive:
            raise ConfigError(
                f"sqs adapter: queue {name!r} has no redrive policy; eventbus needs a "
                "dead-letter queue for each group"
            )
        dlq_name = str(json.loads(redrive)["deadLetterTargetArn"]).rsplit(":", 1)[-1]
        with sdk(f"looking up DLQ {dlq_name!r}"):
            dlq_url = str(self._client.sqs.get_queue_url(QueueName=dlq_name)["QueueUrl"])
        arn = str(attrs["QueueArn"])
        if self._client.sns is not None:
            topic_arn = self._topic()
            with sdk("listing the topic's subscriptions"):
                sub = self._client.find_subscription(topic_arn, arn)
            if sub is None:
                raise ConfigError(
                    f"sqs adapter: queue {name!r} is not subscribed to topic "
                    f"{s.topic_name!r} and create=false"
                )
            self._check_subscription(name, str(sub["SubscriptionArn"]))
            if not _allows_topic(attrs.get("Policy"), arn, topic_arn):
                statement = json.dumps(_sns_statement(arn, topic_arn))
                raise ConfigError(
                    f"sqs adapter: the policy of queue {name!r} does not let topic {topic_arn} "
                    f"send to it (sqs:SendMessage), so SNS drops every event; add to the "
                    f"queue policy (Terraform: aws_sqs_queue_policy): {statement}"
                )
        else:
            self._tag_patterns(url, patterns)  # the routing registration, not the layout
        return GroupQueues(group, patterns, url, arn, dlq_url)

    def _check_subscription(self, queue: str, sub: str) -> None:
        """``create=false``: a confirmed subscription with raw message delivery."""
        pending = (
            f"sqs adapter: the subscription of queue {queue!r} to topic "
            f"{self.settings.topic_name!r} is pending confirmation, so SNS sends it nothing; "
            "confirm it (sns:ConfirmSubscription with the token SNS sent to the queue), or "
            "subscribe from the queue's own account, which needs no confirmation"
        )
        if sub == "PendingConfirmation":
            raise ConfigError(pending)
        with sdk("reading the subscription's attributes"):
            attrs = self._client.sns.get_subscription_attributes(SubscriptionArn=sub)
        attrs = attrs.get("Attributes", {})
        if attrs.get("PendingConfirmation") == "true":
            raise ConfigError(pending)
        if attrs.get("RawMessageDelivery") != "true":
            raise ConfigError(
                f"sqs adapter: the subscription of queue {queue!r} ({sub}) does not use raw "
                "message delivery, so every event would arrive wrapped in SNS's JSON and "
                "without its attributes; set RawMessageDelivery=true on it (Terraform: "
                "raw_message_delivery = true)"
            )

    def _group(self, group: str) -> GroupQueues:
        """A group's queues, declared here or found by name (for tooling)."""
        with self._lock:
            known = self._groups.get(group)
        if known is not None:
            return known
        s = self.settings
        with sdk(f"looking up the queues of group {group!r}"):
            url = str(self._client.sqs.get_queue_url(QueueName=s.queue_name(group))["QueueUrl"])
            dlq_url = str(self._client.sqs.get_queue_url(QueueName=s.dlq_name(group))["QueueUrl"])
        return GroupQueues(group, (), url, "", dlq_url)

    def _forget(self, group: str) -> None:
        """A deleted group: not declared any more, not routed to."""
        queue = self.settings.queue_name(group)
        with self._lock:
            self._groups.pop(group, None)
            if self._routes is not None:
                self._routes = {
                    u: r for u, r in self._routes.items() if u.rsplit("/", 1)[-1] != queue
                }

    def _route_table(self) -> dict[str, tuple[Matcher, str]]:
        """``mode=sqs``: every group queue under the prefix, with its patterns (cached)."""
        s = self.settings
        with self._lock:
            if self._routes is not None and time.monotonic() - self._routes_at < s.refresh:
                return dict(self._routes)
        routes: dict[str, tuple[Matcher, str]] = {}
        with sdk("listing the groups' queues", PublishError):
            urls: list[str] = []
            for page in self._client.sqs.get_paginator("list_queues").paginate(
                QueueNamePrefix=s.prefix
            ):
                urls += page.get("QueueUrls", [])
            for url in urls:
                name = url.rsplit("/", 1)[-1]
                if s.is_dlq_name(name) or name.endswith(".fifo") != s.fifo:
                    continue
                try:
                    tags = self._client.sqs.list_queue_tags(QueueUrl=url).get("Tags", {})
                except ClientError as exc:
                    if error_code(exc) in NO_QUEUE:
                        continue
                    raise
                patterns = _patterns_from_tags(tags)
                if patterns is not None:
                    routes[url] = (Matcher(patterns), name)
        with self._lock:
            self._routes, self._routes_at = routes, time.monotonic()
        return dict(routes)

    # -- consuming ------------------------------------------------------------------------
    def consumer(self, group: str, patterns: Sequence[str]) -> SqsConsumer:
        g = self._declare(group, patterns)
        c = SqsConsumer(self._client, self.settings, g, Matcher(patterns), self._renewer)
        with self._lock:
            self._consumers.add(c)
        return c

    def simulate_crash(self) -> None:
        """For tests: act like a killed process: renewals stop, held deliveries aren't returned.

        They come back to the group when their visibility (``lease``) runs out.
        """
        self._renewer.close()
        with self._lock:
            consumers = list(self._consumers)
        for c in consumers:
            c.crash()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._renewer.close()
        self._client.close()


def _sns_statement(queue_arn: str, topic_arn: str) -> dict[str, Any]:
    """The queue policy statement that lets the topic deliver to the queue."""
    return {
        "Sid": "eventbus-sns",
        "Effect": "Allow",
        "Principal": {"Service": "sns.amazonaws.com"},
        "Action": "sqs:SendMessage",
        "Resource": queue_arn,
        "Condition": {"ArnEquals": {"aws:SourceArn": topic_arn}},
    }


def _keep_theirs(queue: str, changes: dict[str, str], current: Mapping[str, str]) -> None:
    """Updating an existing queue: merge our policy statement into its policy, and keep
    a redrive policy that sends somewhere else than eventbus's DLQ (saying so)."""
    if "Policy" in changes and current.get("Policy"):
        try:
            theirs = json.loads(current["Policy"])
            statements = theirs.get("Statement", [])
            statements = [statements] if isinstance(statements, dict) else list(statements)
        except (ValueError, AttributeError):
            log.warning("queue %s: its policy is not JSON eventbus can read; replaced", queue)
        else:
            ours = json.loads(changes["Policy"])["Statement"]
            sids = {st.get("Sid") for st in ours}
            theirs["Statement"] = [
                st for st in statements if not isinstance(st, dict) or st.get("Sid") not in sids
            ] + ours
            theirs.setdefault("Version", "2012-10-17")
            changes["Policy"] = json.dumps(theirs)
    if "RedrivePolicy" in changes and current.get("RedrivePolicy"):
        try:
            target = json.loads(current["RedrivePolicy"]).get("deadLetterTargetArn")
        except (ValueError, AttributeError):
            target = None
        ours = json.loads(changes["RedrivePolicy"])["deadLetterTargetArn"]
        if target and target != ours:
            log.warning(
                "queue %s: its redrive policy sends to %s, not to eventbus's DLQ %s; kept. "
                "Events the worker dead-letters still go to %s (where the dlq tools look); "
                "what SQS redrives after max_receive_count goes to yours",
                queue,
                target,
                ours,
                ours,
            )
            del changes["RedrivePolicy"]


def _allows_topic(policy: str | None, queue_arn: str, topic_arn: str) -> bool:
    """Whether a queue policy has an Allow of sqs:SendMessage to SNS from ``topic_arn``.

    Wildcards in actions, resources and source ARNs are understood; Deny statements
    and conditions other than ``aws:SourceArn`` are not judged.
    """
    try:
        doc = json.loads(policy or "{}")
        statements = doc.get("Statement", [])
    except (ValueError, AttributeError):
        return False
    if isinstance(statements, dict):
        statements = [statements]
    for st in statements:
        if not isinstance(st, dict) or st.get("Effect") != "Allow":
            continue
        if not _matches(st.get("Action"), "sqs:SendMessage", fold=True):
            continue
        principal = st.get("Principal")
        if isinstance(principal, dict):
            who = [*_as_list(principal.get("Service")), *_as_list(principal.get("AWS"))]
        else:
            who = _as_list(principal)
        if "*" not in who and "sns.amazonaws.com" not in who:
            continue
        if not _matches(st.get("Resource", "*"), queue_arn):
            continue
        sources = [
            value
            for op, test in (st.get("Condition") or {}).items()
            if isinstance(test, dict) and not op.startswith(("ArnNot", "StringNot"))
            for key, value in test.items()
            if key.lower() == "aws:sourcearn"
        ]
        if all(_matches(v, topic_arn) for v in sources):
            return True
    return False


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else [] if value is None else [value]


def _matches(patterns: Any, value: str, *, fold: bool = False) -> bool:
    if fold:
        value = value.lower()
    return any(
        isinstance(p, str) and fnmatch.fnmatchcase(value, p.lower() if fold else p)
        for p in _as_list(patterns)
    )


def _is_base64(wire: Wire) -> bool:
    value = wire.attributes.get(CE, {}).get("StringValue", "")
    return isinstance(value, str) and value.startswith("[1")


def _check_batch(result: Mapping[str, Any], n: int, call: str) -> None:
    failed = result.get("Failed") or []
    if failed:
        first = failed[0]
        raise PublishError(
            f"{call}: {len(failed)} of {n} message(s) refused "
            f"({first.get('Code')}: {first.get('Message')}); retry the batch"
        )


def _patterns_from_tags(tags: Mapping[str, str]) -> tuple[str, ...] | None:
    try:
        count = int(tags[_PATTERN_TAG])
        text = "".join(tags[f"{_PATTERN_TAG}:{i}"] for i in range(count))
        patterns = json.loads(base64.urlsafe_b64decode(text.encode()))
        return Matcher(patterns).patterns
    except Exception:  # not ours, or damaged: not a group to route to
        return None
