"""Dead-letter tooling and group removal: list, replay and purge dead letters, delete a group.

A group's dead letters are the records of its dead-letter topic
(``<prefix>__eventbus.dlt.<group>``). Kafka topics are append-only, and
DeleteRecords is not something every Kafka-protocol broker has (Tansu 0.6
drops the connection), so "gone" is a *cursor*: the committed offsets of a
companion consumer group, ``<group>.__eventbus-dlq``, on the dead-letter topic.
Listing starts at the cursor; replay and purge move it past what they handled.
The records themselves stay until the topic's retention removes them.

Replay copies a dead letter to the group's own retry topic with ``attempt``
1 and no due time, so only that group's members get it again (not every
group subscribed to the event type), through the path retries take
(:mod:`._consumer`). The cursor moves only after the broker acknowledged
the copies: a crash in between repeats letters on the next replay, never
loses one.
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple

from eventbus import BrokerError, BrokerUnavailable
from eventbus.adapter import Delivery, Message

from ._client import KafkaClients
from ._codec import H_ATTEMPT, H_REASON, H_TOPIC, OWN, in_headers, to_int
from ._errors import error, kafka_errors, log
from ._names import dead_topic, marks_group, retry_topic

__all__ = [
    "dead_letters",
    "delete_group",
    "dlq_group",
    "purge_dead_letters",
    "replay_dead_letters",
]

#: Dead letters read, copied and committed per round of a replay.
CHUNK = 500


def dlq_group(kafka_group: str) -> str:
    """The companion consumer group whose offsets on the dead-letter topic are the cursor."""
    return f"{kafka_group}.__eventbus-dlq"


class _Letter(NamedTuple):
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]


def _oldest_first(got: dict[int, list[_Letter]], n: int | None) -> list[_Letter]:
    """The first ``n`` letters of all partitions, by time; a prefix of each partition."""
    merged = heapq.merge(*got.values(), key=lambda letter: letter.timestamp)
    return list(merged) if n is None else list(itertools.islice(merged, n))


class _Cursor:
    """A group-less client of the cursor group, assigned to the dead-letter topic by hand."""

    def __init__(self, clients: KafkaClients, group: str) -> None:
        self.a, self.ck, s = clients, clients.ck, clients.settings
        self.group = group
        self.topic = dead_topic(s.prefix, group)
        self.c = clients.make(
            self.ck.Consumer,
            clients.config(
                **{
                    "group.id": dlq_group(s.prefix + group),
                    "enable.auto.commit": False,
                    "enable.partition.eof": True,
                    "auto.offset.reset": "earliest",  # the cursor is below what retention kept
                    "fetch.wait.max.ms": s.client.get(
                        "fetch.wait.max.ms", int(s.fetch_wait * 1000)
                    ),
                }
            ),
        )

    def starts(self) -> dict[int, int]:
        """Partition -> the offset the cursor is at (the beginning if never moved)."""
        ck, s = self.ck, self.a.settings
        meta = self.c.list_topics(self.topic, timeout=s.publish_timeout).topics.get(self.topic)
        if meta is None or meta.error is not None or not meta.partitions:
            return {}
        tps = [ck.TopicPartition(self.topic, p) for p in sorted(meta.partitions)]
        committed = self.c.committed(tps, timeout=s.publish_timeout)
        return {
            tp.partition: tp.offset if tp.offset >= 0 else ck.OFFSET_BEGINNING for tp in committed
        }

    def scan(
        self,
        starts: dict[int, int],
        cap: int | None = None,
        keep: bool = True,
        until: dict[int, int] | None = None,
    ) -> tuple[dict[int, list[_Letter]], dict[int, int], dict[int, int]]:
        """Read each partition from ``starts`` to its end (or to the offset in ``until``;
        a partition missing there: none), or ``cap`` letters of it.

        Returns the letters (if ``keep``), how many were read and one past the
        last offset read, per partition. Raises :class:`BrokerUnavailable` if the
        broker sends nothing for ``publish_timeout`` seconds.
        """
        ck, c, s = self.ck, self.c, self.a.settings
        got: dict[int, list[_Letter]] = {p: [] for p in starts}
        counts = dict.fromkeys(starts, 0)
        ends: dict[int, int] = {}
        if until is not None:
            starts = {p: o for p, o in starts.items() if p in until and o < until[p]}
        todo = set(starts) if cap != 0 else set()
        if not todo:
            return got, counts, ends
        tps = [ck.TopicPartition(self.topic, p, o) for p, o in starts.items()]
        c.assign(tps)
        deadline = time.monotonic() + s.publish_timeout
        try:
            while todo:
                msgs = c.consume(500, 0.2)
                if msgs:
                    deadline = time.monotonic() + s.publish_timeout
                elif time.monotonic() > deadline:
                    raise BrokerUnavailable(
                        f"kafka: reading the dead letters of {self.group!r}: no answer "
                        f"for {s.publish_timeout}s"
                    )
                for m in msgs:
                    p = m.partition()
                    if p not in todo:
                        continue
                    err = m.error()
                    if err is not None:
                        if err.code() == ck.KafkaError._PARTITION_EOF:
                            todo.discard(p)
                        elif err.fatal():
                            raise error(err, f"reading the dead letters of {self.group!r}")
                        else:
                            log.debug("kafka: reading dead letters: %s", err)
                        continue
                    if until is not None and m.offset() >= until[p]:
                        todo.discard(p)
                        c.pause([ck.TopicPartition(self.topic, p)])
                        continue
                    counts[p] += 1
                    ends[p] = m.offset() + 1
                    if keep:
                        ts = max(0, m.timestamp()[1])
                        got[p].append(
                            _Letter(
                                p,
                                m.offset(),
                                ts,
                                m.key(),
                                m.value() or b"",
                                list(m.headers() or ()),
                            )
                        )
                    if cap is not None and counts[p] >= cap:
                        todo.discard(p)
                        c.pause([ck.TopicPartition(self.topic, p)])
        finally:
            c.resume(tps)  # librdkafka keeps a partition's pause across assignments
            c.unassign()
        return got, counts, ends

    def commit(self, ends: dict[int, int]) -> None:
        """Move the cursor: partition -> the first offset not handled."""
        if ends:
            tp = self.ck.TopicPartition
            self.c.commit(
                offsets=[tp(self.topic, p, o) for p, o in ends.items()], asynchronous=False
            )

    def close(self) -> None:
        self.c.close()


@contextmanager
def _cursor(clients: KafkaClients, group: str, doing: str) -> Iterator[_Cursor]:
    """A cursor for ``group``, closed afterwards; librdkafka errors become ours."""
    cursor = _Cursor(clients, group)
    try:
        with kafka_errors(clients.ck, f"{doing} of {group!r}"):
            yield cursor
    finally:
        cursor.close()


def dead_letters(clients: KafkaClients, group: str, limit: int) -> list[tuple[Delivery, str]]:
    """Up to ``limit`` dead letters of ``group`` not yet replayed or purged, oldest first."""
    with _cursor(clients, group, "reading the dead letters") as cursor:
        got, _, _ = cursor.scan(cursor.starts(), cap=max(0, limit))
    out: list[tuple[Delivery, str]] = []
    for letter in _oldest_first(got, limit):
        attrs, own = in_headers(letter.headers)
        key = letter.key
        message = Message(
            topic=own.get(H_TOPIC) or attrs.get("type", ""),
            body=letter.value,
            headers=attrs,
            key=key.decode("utf-8", "replace") if key is not None else None,
        )
        out.append((Delivery(message, to_int(own.get(H_ATTEMPT), 1)), own.get(H_REASON, "")))
    return out


def replay_dead_letters(clients: KafkaClients, group: str, limit: int | None = None) -> int:
    """Copy up to ``limit`` (None: all there are now) dead letters to the group's retry
    topic, oldest first, with ``attempt`` 1; returns how many.

    The group's members get them at once (no due time), in that order per key;
    keyless letters all go to partition 0, so they keep that order too. Other
    groups subscribed to the event types don't see them. The cursor moves past
    each round of copies only after the broker acknowledged all of them: a crash
    or a failed copy mid-replay leaves those letters in place, so a later replay
    may deliver some twice (handlers are idempotent, or the inbox drops them),
    but none is lost. Two replays of one group at once may copy letters twice.
    """
    if limit is not None and limit <= 0:
        return 0
    ck, s = clients.ck, clients.settings
    retry = retry_topic(s.prefix, group)
    moved = 0
    with _cursor(clients, group, "replaying the dead letters") as cursor:
        starts = cursor.starts()
        if not starts:
            return 0
        # "All there are now": letters dead-lettered while we replay (a handler failing
        # again) are left for the next replay, so this never chases its own tail.
        until = cursor.scan(starts, keep=False)[2] if limit is None else None
        producer: Any = None
        try:
            while limit is None or moved < limit:
                want = CHUNK if limit is None else min(CHUNK, limit - moved)
                batch = _oldest_first(cursor.scan(starts, cap=want, until=until)[0], want)
                if not batch:
                    break
                if producer is None:
                    clients.ensure_topics([retry], create=clients.settings.create_internal_topics)
                    producer = clients.make(ck.Producer, clients.producer_config())
                _copy(clients, producer, retry, batch)
                ends = {x.partition: x.offset + 1 for x in batch}  # in offset order per partition
                cursor.commit(ends)
                starts.update(ends)
                moved += len(batch)
                if len(batch) < want:
                    break
        finally:
            if producer is not None:
                producer.flush(s.publish_timeout)
    log.info("kafka: replayed %d dead letter(s) of group %s", moved, group)
    return moved


def _copy(clients: KafkaClients, producer: Any, topic: str, batch: list[_Letter]) -> None:
    """Produce ``batch`` in order to ``topic`` as attempt-1 retries; raise unless all acked."""
    s = clients.settings
    failed: list[Any] = []

    def report(err: Any, _msg: Any) -> None:
        if err is not None:
            failed.append(err)

    for letter in batch:
        _, own = in_headers(letter.headers)
        event_type = own.get(H_TOPIC)
        headers = [(k, v) for k, v in letter.headers if not k.startswith(OWN)]
        if event_type:
            headers.append((H_TOPIC, event_type.encode()))
        headers.append((H_ATTEMPT, b"1"))
        where = {} if letter.key is not None else {"partition": 0}
        while True:
            try:
                producer.produce(
                    topic, letter.value, letter.key, headers=headers, on_delivery=report, **where
                )
                break
            except BufferError:
                producer.poll(0.05)  # the local queue is full: let it drain
    left = producer.flush(s.publish_timeout)
    if failed:
        raise error(failed[0], f"copying {len(failed)} dead letter(s) to {topic!r}")
    if left:
        raise BrokerUnavailable(
            f"kafka: {left} replayed dead letter(s) not acknowledged within {s.publish_timeout}s"
        )


def purge_dead_letters(clients: KafkaClients, group: str) -> int:
    """Move the cursor of ``group`` past every dead letter there is; returns how many.

    The records stay on the topic until its retention removes them, but no
    listing or replay sees them again.
    """
    with _cursor(clients, group, "purging the dead letters") as cursor:
        starts = cursor.starts()
        if not starts:
            return 0
        _, counts, ends = cursor.scan(starts, keep=False)
        cursor.commit(ends)
    purged = sum(counts.values())
    log.info("kafka: purged %d dead letter(s) of group %s", purged, group)
    return purged


def delete_group(clients: KafkaClients, group: str) -> None:
    """Delete the consumer group (and its marks and cursor groups), its retry and
    dead-letter topics. Idempotent.

    Raises :class:`BrokerError` while the group still has members. A group of
    that name declared afterwards is new: with ``start="declared"`` it reads only
    what is published from then on. Other processes that declared the group
    keep it declared in memory (close their adapters first).
    """
    ck, s = clients.ck, clients.settings
    admin = clients.admin()
    kafka_group = s.prefix + group
    groups = [kafka_group, marks_group(kafka_group), dlq_group(kafka_group)]
    topics = [retry_topic(s.prefix, group), dead_topic(s.prefix, group)]
    try:
        for name, future in admin.delete_consumer_groups(
            groups, request_timeout=s.publish_timeout
        ).items():
            try:
                future.result()
            except ck.KafkaException as exc:
                err = exc.args[0]
                if err.name() == "NON_EMPTY_GROUP":
                    raise BrokerError(
                        f"kafka: group {group!r} still has members; close its consumers first"
                    ) from exc
                if err.name() != "GROUP_ID_NOT_FOUND":
                    raise error(err, f"deleting consumer group {name!r}") from exc
        futures = admin.delete_topics(
            topics, operation_timeout=s.publish_timeout, request_timeout=s.publish_timeout
        )
        for name, future in futures.items():
            try:
                future.result()
            except ck.KafkaException as exc:
                err = exc.args[0]
                if err.name() != "UNKNOWN_TOPIC_OR_PART":
                    raise error(err, f"deleting topic {name!r}") from exc
        clients.forget_topics(topics)
        _wait_gone(clients, topics)
    except ck.KafkaException as exc:
        raise error(exc.args[0], f"deleting group {group!r}") from exc
    log.info("kafka: deleted group %s", group)


def _wait_gone(clients: KafkaClients, topics: list[str]) -> None:
    """Wait until the metadata no longer lists ``topics`` (Apache Kafka deletes them
    asynchronously; creating one again before that fails or is undone)."""
    s = clients.settings
    deadline = time.monotonic() + s.publish_timeout
    while True:
        listed = clients.admin().list_topics(timeout=s.publish_timeout).topics
        if not any(t in listed for t in topics):
            return
        if time.monotonic() > deadline:
            raise BrokerUnavailable(f"kafka: topics {topics} still listed after deletion")
        time.sleep(0.1)  # polling the metadata with a deadline
