"""The Kafka adapter on confluent-kafka (librdkafka): publishing, groups, dead letters.

Mapping (the why is in ``docs/adapters/kafka.md``):

- one topic per event type (:mod:`._names`), CloudEvents attributes as ``ce_``
  headers (:mod:`._wire`), the event key as the record key, so one key stays
  in one partition; idempotent producer, ``acks=all``, one flush per publish;
- a group is a consumer group subscribed to its exact topics, one regex per
  wildcard pattern, and its retry topic (:mod:`._consumer` has the rest);
- declare creates the topics it can name and, on a group's first declare,
  commits the current end of the matching topics, so the group reads only
  what is published from then on.

Threading: ``publish``, ``declare`` and ``close`` are thread-safe (one shared
producer and admin client). Consumers belong to the thread that uses them.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Iterable, Sequence
from typing import Any

from eventbus import (
    BrokerUnavailable,
    ClosedError,
    Matcher,
    MessageTooLarge,
    PublishError,
)
from eventbus.adapter import Adapter, Delivery, Message

from . import _tooling
from ._client import KafkaClients
from ._codec import event_type_of, out_headers
from ._consumer import KafkaConsumer
from ._errors import TOO_LARGE, UNAVAILABLE, error, kafka_errors, log
from ._names import dead_topic, is_wild, retry_topic, topic_for
from ._settings import KafkaSettings

__all__ = ["KafkaAdapter"]


class KafkaAdapter(Adapter):
    """A connection to one Kafka cluster; see :class:`KafkaSettings` for the knobs.

    ``KafkaAdapter(KafkaSettings(...))`` or ``KafkaAdapter(bootstrap_servers=..., ...)``.
    Clients connect lazily: the producer on the first publish, an admin client
    on the first declare or topic creation, a consumer on its first receive.
    ``close`` closes the consumers (committing what was settled) and flushes
    the producer.
    """

    def __init__(self, settings: KafkaSettings | None = None, **changes: Any) -> None:
        s = settings or KafkaSettings()
        if changes:
            s = s.replace(**changes)
        self.settings = s
        self.capabilities = s.capabilities
        self.clients = clients = KafkaClients(s)
        self.ck: Any = clients.ck
        self._lock = threading.Lock()  # guards _declared and _consumers
        self._topic_names: dict[str, str] = {}
        self._declared: dict[str, tuple[str, ...]] = {}
        self._consumers: weakref.WeakSet[KafkaConsumer] = weakref.WeakSet()

    def __repr__(self) -> str:
        s = self.settings
        return f"<KafkaAdapter {s.bootstrap_servers} prefix={s.prefix!r}>"

    # -- clients (the work is in ._client) ------------------------------------------
    def client_config(self, **extra: Any) -> dict[str, Any]:
        """librdkafka properties shared by every client, plus ``extra``."""
        return self.clients.config(**extra)

    def admin(self) -> Any:
        """The shared admin client."""
        return self.clients.admin()

    def health(self) -> dict[str, Any]:
        """Whether the brokers answer this adapter's clients, as librdkafka reports it:
        ``{"up": bool, "down_since": epoch seconds or None, "error": last error or None}``.

        Set down by librdkafka's error callback (all brokers down, transport
        errors), up again by the next publish, fetch or metadata answer; a WARNING
        is logged at each change. The callbacks run while a client is polled, so a
        process that neither publishes nor consumes learns of an outage late.
        """
        h = self.clients.health
        return {"up": h.up, "down_since": h.down_since, "error": h.error if not h.up else None}

    def ensure_topics(self, names: Iterable[str]) -> None:
        """Create the topics in ``names`` that don't exist yet (policy from the settings)."""
        self.clients.ensure_topics(names)

    # -- publishing ---------------------------------------------------------------
    def publish(self, messages: Sequence[Message]) -> None:
        """Produce every message, flush once; raise if any was not acknowledged.

        The producer is idempotent with ``acks=all``; one ``publish`` of many
        messages is one pipelined flush.
        """
        if self.clients.closed:
            raise ClosedError("kafka adapter is closed")
        if not messages:
            return
        s = self.settings
        names = self._topic_names  # event type -> Kafka topic, worked out once per type
        topics = [names.get(m.topic) or self._topic_name(m.topic) for m in messages]
        if s.create_topics:
            known = self.clients.known
            missing = {t for t in topics if t not in known}
            if missing:
                self.ensure_topics(missing)
        p = self.clients.producer()
        failed: list[Any] = []

        def report(err: Any, _msg: Any) -> None:  # errors only (delivery.report.only.error)
            failed.append(err)

        produce = p.produce
        deadline = 0.0
        try:
            for m, topic in zip(messages, topics, strict=True):
                headers = out_headers(m.headers)
                while True:
                    try:
                        produce(topic, m.body, m.key, headers=headers, on_delivery=report)
                        break
                    except BufferError:  # the local queue is full: let it drain
                        now = time.monotonic()
                        deadline = deadline or now + s.publish_timeout
                        if now > deadline:
                            raise BrokerUnavailable(
                                f"kafka: the producer queue stayed full for {s.publish_timeout}s"
                            ) from None
                        p.poll(0.05)
            left = p.flush(s.publish_timeout)
        except self.ck.KafkaException as exc:
            self.clients.producer_failed(exc.args[0])
            raise self._publish_error(exc.args[0], len(messages)) from exc
        if failed:
            self.clients.producer_failed(failed[0])
            raise self._publish_error(failed[0], len(messages), len(failed))
        if left:
            raise BrokerUnavailable(
                f"kafka: {left} event(s) not acknowledged within {s.publish_timeout}s"
            )
        if not self.clients.health.up:
            self.clients.health.answered()

    def _topic_name(self, event_type: str) -> str:
        name = topic_for(event_type, self.settings.prefix)
        if len(self._topic_names) < 10_000:
            self._topic_names[event_type] = name
        return name

    @staticmethod
    def _publish_error(err: Any, total: int, failed: int = 0) -> Exception:
        name = err.name() if hasattr(err, "name") else ""
        what = f"{failed} of {total} event(s)" if failed else f"publishing {total} event(s)"
        text = f"kafka: {what} not accepted: {err.str() if hasattr(err, 'str') else err} ({name})"
        if name in TOO_LARGE:
            return MessageTooLarge(f"{text}; raise the broker's message.max.bytes first")
        if name in UNAVAILABLE:
            return BrokerUnavailable(text)
        return PublishError(text)

    # -- groups ---------------------------------------------------------------------
    def declare(self, group: str, patterns: Sequence[str]) -> None:
        """Create the group's topics and, the first time, its starting offsets.

        Exact patterns get their topic (``create_topics``); the retry and
        dead-letter topics are made, or with ``create_internal_topics=False``
        only checked (:class:`ConfigError` naming the missing ones). With
        ``start="declared"``, the first declare of a group commits the current
        end of every existing matching topic, so the group reads only what is
        published from then on; topics created later are read from their
        beginning. Later declares never move
        offsets (members may not have committed everything they must still read).
        """
        if self.clients.closed:
            raise ClosedError("kafka adapter is closed")
        if not group:
            raise ValueError("group name must not be empty")
        matcher = Matcher(patterns)
        if self._declared.get(group) == matcher.patterns:
            return
        s = self.settings
        internal = {retry_topic(s.prefix, group), dead_topic(s.prefix, group)}
        self.clients.ensure_topics(internal, create=s.create_internal_topics)
        if s.create_topics:
            self.ensure_topics(topic_for(p, s.prefix) for p in matcher.patterns if not is_wild(p))
        if s.start == "declared":
            self._commit_start(group, matcher)
        with self._lock:
            self._declared[group] = matcher.patterns

    def _commit_start(self, group: str, matcher: Matcher) -> None:
        """First declare only: commit the end of each matching partition.

        The group's committed offsets on its own retry topic say it was declared
        before; they are committed in the same request as the start offsets.
        """
        ck, s = self.ck, self.settings
        kafka_group, retry = s.prefix + group, retry_topic(s.prefix, group)
        with kafka_errors(ck, "listing topics"):
            topics = self.admin().list_topics(timeout=s.publish_timeout).topics
        if retry not in topics:
            return  # topic creation is not visible yet: members start from the beginning
        markers = [ck.TopicPartition(retry, p) for p in topics[retry].partitions]
        tps = [
            ck.TopicPartition(name, p)
            for name, meta in topics.items()
            if (event_type := self.event_type_of(name)) is not None and matcher(event_type)
            for p in meta.partitions
        ]
        c = self.clients.make(
            ck.Consumer,
            self.client_config(**{"group.id": kafka_group, "enable.auto.commit": False}),
        )
        try:
            committed = c.committed(markers + tps, timeout=s.publish_timeout)
            if any(tp.offset >= 0 for tp in committed[: len(markers)]):
                return  # declared before
            offsets = [ck.TopicPartition(retry, tp.partition, 0) for tp in markers]
            for tp in committed[len(markers) :]:
                if tp.offset < 0:
                    _, high = c.get_watermark_offsets(tp, timeout=s.publish_timeout, cached=False)
                    offsets.append(ck.TopicPartition(tp.topic, tp.partition, max(high, 0)))
            c.commit(offsets=offsets, asynchronous=False)
        except ck.KafkaException as exc:
            err = exc.args[0]
            if err.name() in ("UNKNOWN_MEMBER_ID", "ILLEGAL_GENERATION", "REBALANCE_IN_PROGRESS"):
                log.debug("kafka: group %s is active; its members keep their offsets", group)
            else:
                raise error(err, f"setting the start offsets of group {group!r}") from exc
        finally:
            c.close()

    def event_type_of(self, kafka_topic: str) -> str | None:
        """The event type a Kafka topic carries, or None if it is not an event topic of ours."""
        return event_type_of(self.settings.prefix, kafka_topic)

    def consumer(self, group: str, patterns: Sequence[str]) -> KafkaConsumer:
        self.declare(group, patterns)
        c = KafkaConsumer(self.clients, group, Matcher(patterns))
        with self._lock:
            if self.clients.closed:
                raise ClosedError("kafka adapter is closed")
            self._consumers.add(c)
        return c

    # -- closing ----------------------------------------------------------------------
    def close(self) -> None:
        """Close the consumers (commit what was settled), flush the producer. Idempotent."""
        with self._lock:
            if self.clients.closed:
                return
            consumers = list(self._consumers)
            producer = self.clients.take_producer()
        for c in consumers:
            c.close()
        if producer is not None:
            left = producer.flush(self.settings.publish_timeout)
            if left:
                log.warning("kafka: %d published event(s) not acknowledged at close", left)

    def simulate_crash(self) -> None:
        """Test hook: stop like a process that died.

        Consumers stop without settling or committing anything; their members
        leave the group (a dead process's session would expire instead), so the
        group hands their partitions to the others from the last commit.
        """
        with self._lock:
            consumers = list(self._consumers)
            self.clients.take_producer()
        for c in consumers:
            c.crash()

    # -- dead letters and group removal (the work is in ._tooling) -------------------
    def dead_letters(self, group: str, limit: int = 100) -> list[tuple[Delivery, str]]:
        """Up to ``limit`` dead letters of ``group`` not yet replayed or purged, oldest first."""
        return _tooling.dead_letters(self.clients, group, limit)

    def replay_dead_letters(self, group: str, limit: int | None = None) -> int:
        """Copy dead letters to the group's retry topic with ``attempt`` 1, oldest first.

        The copies are acknowledged before the letters count as replayed: a crash
        mid-replay may repeat letters, never lose one (see :mod:`._tooling`).
        """
        return _tooling.replay_dead_letters(self.clients, group, limit)

    def purge_dead_letters(self, group: str) -> int:
        return _tooling.purge_dead_letters(self.clients, group)

    def delete_group(self, group: str) -> None:
        """Delete the consumer group, its retry and dead-letter topics; idempotent.

        Close the group's consumers first (:class:`BrokerError` while it has members).
        """
        _tooling.delete_group(self.clients, group)
        with self._lock:
            self._declared.pop(group, None)
