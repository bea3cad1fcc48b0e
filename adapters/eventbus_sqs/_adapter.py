"""The SQS adapter: a queue per group, SNS (or the publisher) fanning events out.

Layout (``mode=sns``, the default): one SNS topic per bus; each group is an SQS
queue subscribed to it with raw delivery and a filter policy on the ``type``
attribute (exact values for direct patterns, ``prefix`` for the literal start
of wildcard patterns, none for patterns SNS can't narrow). The consumer checks
every message against the group's patterns with :class:`eventbus.Matcher` and
deletes, unseen, what SNS's coarser filter let through. ``mode=sqs`` has no
SNS: a group's queue carries its patterns in tags and the publisher sends each
event to every queue whose patterns match.

Each group's queue has a dead-letter queue (``<queue>-dlq``) and a redrive
policy to it. The worker decides when an event is dead (``dead_letter``: a copy
with the reason goes to the DLQ, then the original is deleted); the redrive
policy only catches events that crash their consumer again and again.

Threading: ``publish``, ``declare``, ``dead_letters`` and ``close`` are
thread-safe (boto3 clients are). A consumer is used by one thread; a heartbeat
thread per adapter extends the visibility of the deliveries consumers hold, so
a long handler keeps its events, and a consumer that disappears without
closing (its process killed) loses them to another member after ``lease``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import threading
import time
import weakref
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from eventbus import (
    Adapter,
    BrokerError,
    ClosedError,
    ConfigError,
    Delivery,
    Matcher,
    Message,
    MessageTooLarge,
    PublishError,
)

from ._codec import CE, DEAD_LETTER, TYPE, Wire, from_wire, to_wire
from ._consumer import GroupQueues, SqsConsumer, _sendable
from ._sdk import (
    BATCH,
    NO_QUEUE,
    BotoCoreError,
    ClientError,
    Config,
    NoRegionError,
    ProfileNotFound,
    boto3,
    chunks,
    error_code,
    fifo_id,
    sdk,
)
from ._settings import MAX_MESSAGE_SIZE, SqsSettings

__all__ = ["SqsAdapter", "SqsConsumer", "filter_policy"]

log = logging.getLogger("eventbus.sqs")

_PATTERN_TAG = "eventbus:patterns"
_TAG_CHUNK = 256


# -- routing -------------------------------------------------------------------------------
def filter_policy(patterns: Sequence[str]) -> dict[str, Any] | None:
    """The SNS filter policy on ``type`` that lets through at least what ``patterns`` match.

    Direct patterns become exact values; a wildcard pattern becomes a ``prefix``
    of its literal words (``order.*`` -> ``order.``; ``order.#`` -> ``order``, as
    ``#`` also matches zero words). A pattern starting with a wildcard can't be
    narrowed, so then there is no policy at all (every event reaches the queue
    and the consumer's exact check decides). ``None`` means "no policy".
    """
    values: list[Any] = []
    for pattern in dict.fromkeys(patterns):
        words = pattern.split(".")
        wild = next((i for i, w in enumerate(words) if w in ("*", "#")), None)
        if wild is None:
            values.append(pattern)
            continue
        if wild == 0:
            return None
        prefix = ".".join(words[:wild]) + ("." if words[wild] == "*" else "")
        values.append({"prefix": prefix})
    if not values or len(values) > 150:  # SNS: at most 150 values in one policy
        return None
    return {TYPE: values}


# -- the adapter ---------------------------------------------------------------------------
class SqsAdapter(Adapter):
    """SQS queues per group, with SNS fan-out (or publisher fan-out in ``mode=sqs``)."""

    def __init__(self, settings: SqsSettings | None = None, **options: Any) -> None:
        self.settings = s = settings if settings is not None else SqsSettings(**options)
        self.capabilities = s.capabilities
        try:
            session = boto3.session.Session(profile_name=s.profile, region_name=s.region)
        except ProfileNotFound as exc:
            raise ConfigError(f"sqs adapter: AWS profile {s.profile!r} not found") from exc
        if session.region_name is None:
            raise ConfigError(
                "sqs adapter: no AWS region; add region=... to the URL or set AWS_REGION"
            )
        config = Config(
            connect_timeout=s.connect_timeout,
            read_timeout=s.long_poll + 15,
            retries={"max_attempts": s.max_attempts, "mode": "standard"},
            max_pool_connections=50,
        )
        try:
            self._sqs: Any = session.client("sqs", endpoint_url=s.endpoint_url, config=config)
            self._sns: Any = (
                session.client("sns", endpoint_url=s.endpoint_url, config=config)
                if s.mode == "sns"
                else None
            )
        except (BotoCoreError, NoRegionError) as exc:
            raise ConfigError(f"sqs adapter: cannot make an AWS client: {exc}") from exc
        self._lock = threading.Lock()  # groups, topic, routes, consumers
        self._declare_lock = threading.Lock()
        self._groups: dict[str, GroupQueues] = {}
        self._topic_arn: str | None = s.topic_arn
        self._routes: dict[str, tuple[Matcher, str]] | None = None  # mode=sqs: url -> matcher
        self._routes_at = 0.0
        self._consumers: weakref.WeakSet[SqsConsumer] = weakref.WeakSet()
        self._heartbeat: threading.Thread | None = None
        self._stop = threading.Event()
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
        if self._sns is not None:
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
                result = self._sns.publish_batch(
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
                        result = self._sqs.send_message_batch(QueueUrl=url, Entries=entries)
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
                arn = str(self._sns.create_topic(Name=name, Attributes=attributes)["TopicArn"])
        else:
            arn = ""
            with sdk("listing SNS topics"):
                for page in self._sns.get_paginator("list_topics").paginate():
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
                    self._sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
                )
            except ClientError as exc:
                if error_code(exc) not in ("QueueAlreadyExists", "QueueNameExists"):
                    raise
            # it exists with other settings (another lease, another topic): update them
            url = str(self._sqs.get_queue_url(QueueName=name)["QueueUrl"])
            changeable = {k: v for k, v in attributes.items() if k != "FifoQueue"}
            if changeable:
                self._sqs.set_queue_attributes(QueueUrl=url, Attributes=changeable)
            return url

    def _create_group(self, group: str, patterns: tuple[str, ...]) -> GroupQueues:
        s = self.settings
        fifo = {"FifoQueue": "true"} if s.fifo else {}
        dlq_url = self._create_queue(
            s.dlq_name(group), {"MessageRetentionPeriod": "1209600", **fifo}
        )
        with sdk("reading the DLQ's ARN"):
            dlq_arn = str(
                self._sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])[
                    "Attributes"
                ]["QueueArn"]
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
        topic_arn = self._topic() if self._sns is not None else None
        if topic_arn is not None:
            attributes["Policy"] = json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Sid": "eventbus-sns",
                            "Effect": "Allow",
                            "Principal": {"Service": "sns.amazonaws.com"},
                            "Action": "sqs:SendMessage",
                            "Resource": arn,
                            "Condition": {"ArnEquals": {"aws:SourceArn": topic_arn}},
                        }
                    ],
                }
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
                sub = self._sns.subscribe(
                    TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn,
                    Attributes=attributes, ReturnSubscriptionArn=True,
                )["SubscriptionArn"]  # fmt: skip
            except ClientError as exc:
                if error_code(exc) != "InvalidParameter":
                    raise
                sub = self._find_subscription(topic_arn, queue_arn)
                if sub is None:
                    raise
            # Subscribe keeps an existing subscription's attributes: set the policy each time.
            self._sns.set_subscription_attributes(
                SubscriptionArn=sub, AttributeName="FilterPolicy", AttributeValue=text
            )

    def _find_subscription(self, topic_arn: str, queue_arn: str) -> str | None:
        paginator = self._sns.get_paginator("list_subscriptions_by_topic")
        for page in paginator.paginate(TopicArn=topic_arn):
            for sub in page.get("Subscriptions", []):
                if sub.get("Endpoint") == queue_arn and sub.get("Protocol") == "sqs":
                    return str(sub["SubscriptionArn"])
        return None

    def _tag_patterns(self, url: str, patterns: Sequence[str]) -> None:
        # Tag values take letters, digits and few symbols: base64url fits, in 256-char parts.
        text = base64.urlsafe_b64encode(json.dumps(list(patterns)).encode()).decode()
        parts = [text[i : i + _TAG_CHUNK] for i in range(0, len(text), _TAG_CHUNK)] or [""]
        if len(parts) > 40:
            raise ConfigError("sqs adapter: too many patterns for one group in mode=sqs")
        tags = {f"{_PATTERN_TAG}:{i}": p for i, p in enumerate(parts)}
        tags[_PATTERN_TAG] = str(len(parts))
        with sdk("tagging the queue with its patterns"):
            self._sqs.tag_queue(QueueUrl=url, Tags=tags)

    def _check_group(self, group: str, patterns: tuple[str, ...]) -> GroupQueues:
        """``create=false``: the queues (and subscription) must exist; nothing is changed."""
        s = self.settings
        name = s.queue_name(group)
        try:
            with sdk(f"looking up queue {name!r}"):
                url = str(self._sqs.get_queue_url(QueueName=name)["QueueUrl"])
                attrs = self._sqs.get_queue_attributes(
                    QueueUrl=url, AttributeNames=["QueueArn", "RedrivePolicy"]
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
            dlq_url = str(self._sqs.get_queue_url(QueueName=dlq_name)["QueueUrl"])
        arn = str(attrs["QueueArn"])
        if self._sns is not None:
            with sdk("listing the topic's subscriptions"):
                sub = self._find_subscription(self._topic(), arn)
            if sub is None:
                raise ConfigError(
                    f"sqs adapter: queue {name!r} is not subscribed to topic "
                    f"{s.topic_name!r} and create=false"
                )
        else:
            self._tag_patterns(url, patterns)  # the routing registration, not the layout
        return GroupQueues(group, patterns, url, arn, dlq_url)

    def _group(self, group: str) -> GroupQueues:
        """A group's queues, declared here or found by name (for tooling)."""
        with self._lock:
            known = self._groups.get(group)
        if known is not None:
            return known
        s = self.settings
        with sdk(f"looking up the queues of group {group!r}"):
            url = str(self._sqs.get_queue_url(QueueName=s.queue_name(group))["QueueUrl"])
            dlq_url = str(self._sqs.get_queue_url(QueueName=s.dlq_name(group))["QueueUrl"])
        return GroupQueues(group, (), url, "", dlq_url)

    def _route_table(self) -> dict[str, tuple[Matcher, str]]:
        """``mode=sqs``: every group queue under the prefix, with its patterns (cached)."""
        s = self.settings
        with self._lock:
            if self._routes is not None and time.monotonic() - self._routes_at < s.refresh:
                return dict(self._routes)
        routes: dict[str, tuple[Matcher, str]] = {}
        with sdk("listing the groups' queues", PublishError):
            urls: list[str] = []
            for page in self._sqs.get_paginator("list_queues").paginate(QueueNamePrefix=s.prefix):
                urls += page.get("QueueUrls", [])
            for url in urls:
                name = url.rsplit("/", 1)[-1]
                if s.is_dlq_name(name) or name.endswith(".fifo") != s.fifo:
                    continue
                try:
                    tags = self._sqs.list_queue_tags(QueueUrl=url).get("Tags", {})
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
        c = SqsConsumer(self, g, Matcher(patterns))
        with self._lock:
            self._consumers.add(c)
            if self._heartbeat is None:
                self._heartbeat = threading.Thread(
                    target=self._beat, name="eventbus-sqs-heartbeat", daemon=True
                )
                self._heartbeat.start()
        return c

    def _beat(self) -> None:
        """Extend the visibility of what live consumers hold, well before it runs out."""
        visibility = self.settings.visibility
        interval = max(0.5, visibility / 3)
        while not self._stop.wait(interval):
            with self._lock:
                consumers = list(self._consumers)
            for c in consumers:
                try:
                    c._extend(visibility, margin=2 * interval)
                except Exception as exc:  # a failed beat is retried on the next one
                    log.debug("heartbeat failed: %s", exc)

    def simulate_crash(self) -> None:
        """For tests: act like a killed process: heartbeats stop, held deliveries aren't returned.

        They come back to the group when their visibility (``lease``) runs out.
        """
        self._stop.set()
        with self._lock:
            consumers = list(self._consumers)
        for c in consumers:
            c._crash()

    def dead_letters(self, group: str, limit: int = 100) -> list[tuple[Delivery, str]]:
        """The group's dead letters (a peek: each is received then made visible again)."""
        g = self._group(group)
        seen: dict[str, tuple[Delivery, str]] = {}
        receipts: list[str] = []
        try:
            with sdk("reading the dead-letter queue"):
                while len(seen) < limit:
                    got = self._sqs.receive_message(
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
            self._release(g.dlq_url, receipts)
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
            got: list[Mapping[str, Any]] = self._sqs.receive_message(
                QueueUrl=g.dlq_url,
                MaxNumberOfMessages=max(1, min(BATCH, n)),
                VisibilityTimeout=30,
                WaitTimeSeconds=0,
                MessageAttributeNames=["All"],
                MessageSystemAttributeNames=["MessageGroupId"],
            ).get("Messages", [])
        return got

    def _delete_dead(self, g: GroupQueues, messages: Sequence[Mapping[str, Any]]) -> int:
        entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                   for i, m in enumerate(messages)]  # fmt: skip
        if not entries:
            return 0
        with sdk("deleting from the dead-letter queue"):
            result = self._sqs.delete_message_batch(QueueUrl=g.dlq_url, Entries=entries)
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
                attributes = _sendable(m.get("MessageAttributes") or {})
                attributes.pop(DEAD_LETTER, None)
                entry: dict[str, Any] = {"Id": str(i), "MessageBody": m.get("Body") or "-",
                                         "MessageAttributes": attributes}  # fmt: skip
                if self.settings.fifo:
                    gid = m.get("Attributes", {}).get("MessageGroupId") or m["MessageId"]
                    entry["MessageGroupId"] = fifo_id(gid)
                    entry["MessageDeduplicationId"] = fifo_id("replay-" + m["MessageId"])
                entries.append(entry)
            with sdk(f"replaying dead letters to {group!r}"):
                result = self._sqs.send_message_batch(QueueUrl=g.url, Entries=entries)
            sent = {e["Id"] for e in result.get("Successful", [])}
            moved += self._delete_dead(g, [m for i, m in enumerate(got) if str(i) in sent])
            failed = [m for i, m in enumerate(got) if str(i) not in sent]
            self._release(g.dlq_url, [m["ReceiptHandle"] for m in failed])
            if failed:
                raise BrokerError(f"SQS refused to replay {len(failed)} dead letter(s) of "
                                  f"{group!r}: {result.get('Failed')}")  # fmt: skip
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
        with self._lock:
            self._groups.pop(group, None)
            if self._routes is not None:
                queue = s.queue_name(group)
                self._routes = {u: r for u, r in self._routes.items()
                                if u.rsplit("/", 1)[-1] != queue}  # fmt: skip
        for name in (s.queue_name(group), s.dlq_name(group)):
            with sdk(f"deleting queue {name!r} of group {group!r}"):
                try:
                    url = str(self._sqs.get_queue_url(QueueName=name)["QueueUrl"])
                    if self._sns is not None and name == s.queue_name(group):
                        arn = self._sqs.get_queue_attributes(
                            QueueUrl=url, AttributeNames=["QueueArn"]
                        )["Attributes"]["QueueArn"]
                        sub = self._find_subscription(self._topic(), str(arn))
                        if sub is not None:
                            self._sns.unsubscribe(SubscriptionArn=sub)
                    self._sqs.delete_queue(QueueUrl=url)
                except ClientError as exc:
                    if error_code(exc) not in NO_QUEUE:
                        raise

    def _release(self, url: str, receipts: Sequence[str], after: int = 0) -> None:
        """Make received messages visible again (after ``after`` seconds); best effort."""
        for chunk in chunks(receipts):
            entries = [
                {"Id": str(i), "ReceiptHandle": r, "VisibilityTimeout": after}
                for i, r in enumerate(chunk)
            ]
            try:
                self._sqs.change_message_visibility_batch(QueueUrl=url, Entries=entries)
            except (ClientError, BotoCoreError) as exc:
                log.debug("could not return %d message(s): %s", len(entries), exc)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        beat = self._heartbeat
        if beat is not None and beat is not threading.current_thread():
            beat.join(5)
        for client in (self._sqs, self._sns):
            if client is not None:
                client.close()


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


def _dead_letter_entry(m: Mapping[str, Any], s: SqsSettings) -> tuple[Delivery, str]:
    attributes = dict(m.get("MessageAttributes") or {})
    note = attributes.pop(DEAD_LETTER, None)
    message, _ = from_wire(m.get("Body", ""), attributes)
    count = int(m.get("Attributes", {}).get("ApproximateReceiveCount", "1"))
    reason = (
        f"received {s.max_receive_count} times without being settled "
        "(moved by the queue's SQS redrive policy)"
    )
    attempt = count
    try:
        info = json.loads(note["StringValue"]) if note else None
        if isinstance(info, dict):
            reason = str(info.get("reason", reason))
            attempt = int(info.get("attempt", attempt))
    except (ValueError, TypeError, KeyError):
        pass
    return Delivery(message, attempt, None), reason
