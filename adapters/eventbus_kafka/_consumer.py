"""A member of a consumer group: fetch, hand out by key, settle, commit, retry.

- ack settles offsets; offsets are committed every ``commit_interval``, and
  synchronously when partitions are revoked and on close, only up to the first
  event not yet settled, so a crash never loses one and a rebalance repeats none;
- a member holds at most one event per key at a time (in flight or waiting for
  an in-process retry); later events of that key wait in order, other keys go on;
- nack: a few in-process retries (the key waits, the partition doesn't), then
  a copy on the group's retry topic with the attempt and due time in headers;
  dead_letter: a copy on the group's dead-letter topic with the reason. The
  original offset is settled once the broker acknowledged the copy;
- how far each partition was handed out, plus ``marks_ahead`` offsets, is
  recorded in a companion consumer group (``<group>.__eventbus-marks``), so
  after a crash the next owner gives those events ``attempt`` 2: "may have been
  handed out before" (Tansu drops offset-commit metadata, which would
  otherwise hold this).

Threading: one thread uses a consumer; rebalance callbacks and the delivery
reports of its own producer run inside its calls, on that thread. The lock
only lets ``KafkaAdapter.close`` close it from another thread safely.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from typing import Any

from eventbus import BrokerError, BrokerUnavailable, ClosedError, Matcher
from eventbus.adapter import Consumer, Delivery, Message

from ._client import KafkaClients, TopicEpoch
from ._codec import (
    H_ATTEMPT,
    H_DUE,
    H_FAILED_AT,
    H_GROUP,
    H_REASON,
    H_SIZE,
    H_TOPIC,
    OWN,
    event_type_of,
    in_attributes,
    in_headers,
    to_int,
)
from ._errors import TOO_LARGE, error, log
from ._names import dead_topic, group_regex, is_wild, marks_group, retry_topic, topic_for

__all__ = ["KafkaConsumer"]

_UNKNOWN = object()
_MAX_REASON = 16_000
_OVERHEAD = 256  # bytes of a record's framing, besides its key, value and headers
# Where a dead letter whose body was cut came from (eventbus.adapter has no names for these).
H_SOURCE_TOPIC = "eventbus-source-topic"
H_SOURCE_PARTITION = "eventbus-source-partition"
H_SOURCE_OFFSET = "eventbus-source-offset"


class _Part:
    """What one consumer knows about one assigned partition: offsets not yet settled."""

    __slots__ = (
        "dirty",
        "done",
        "inherited",
        "live",
        "mark",
        "marked",
        "partition",
        "pending",
        "position",
        "retry",
        "topic",
    )

    def __init__(self, topic: str, partition: int, retry: bool) -> None:
        self.topic = topic
        self.partition = partition
        self.retry = retry  # the group's retry topic
        self.live = True  # still assigned to this consumer
        self.pending: deque[int] = deque()  # fetched, not yet settled, in offset order
        self.done: set[int] = set()  # settled out of order, still behind a pending one
        self.position = -1  # one past the last offset settled in order
        self.dirty = False  # position moved since the last commit
        self.mark = -1  # one past the highest offset handed out
        self.marked = -1  # the mark last written to the marks group
        self.inherited = -1  # offsets below were handed out by an earlier owner

    def commit_offset(self) -> int:
        return self.pending[0] if self.pending else self.position

    def settle(self, offset: int) -> None:
        pending = self.pending
        if not pending or offset < pending[0]:
            return  # already settled
        if offset == pending[0]:
            pending.popleft()
            self.position = offset + 1
            done = self.done
            while done and pending and pending[0] in done:
                o = pending.popleft()
                done.discard(o)
                self.position = o + 1
        else:
            self.done.add(offset)
        self.dirty = True


class _Record(Message):
    """A record's message that also knows where it came from: the delivery's handle.

    One object instead of a message and a handle per record: the offset and
    partition to settle it, the raw headers and key to copy it byte for byte.
    """

    __slots__ = ("offset", "part", "raw_headers", "raw_key")


_new = object.__new__


def _delivery(
    event_type: str,
    body: bytes,
    headers: dict[str, str],
    key: str | None,
    part: _Part,
    offset: int,
    raw_headers: Any,
    raw_key: bytes | None,
    attempt: int,
) -> Delivery:
    """A record's :class:`Delivery`, whose message and handle are one :class:`_Record`.

    Both objects are made empty and filled by plain slot stores: on CPython
    3.11 that is a third cheaper than calling the two classes, and this runs
    once per record.
    """
    rec: Any = _new(_Record)
    rec.topic = event_type
    rec.body = body
    rec.headers = headers
    rec.key = key
    rec.part = part
    rec.offset = offset
    rec.raw_headers = raw_headers
    rec.raw_key = raw_key
    d = _new(Delivery)
    d.message = rec
    d.attempt = attempt
    d.handle = rec
    return d


class KafkaConsumer(Consumer):
    """One member of a consumer group (see the module docstring for the mapping)."""

    def __init__(self, clients: KafkaClients, group: str, matcher: Matcher) -> None:
        self._clients = clients
        self._s = s = clients.settings
        self._ck = clients.ck
        self.group = group
        self.kafka_group = s.prefix + group
        self._matcher = matcher
        self._retry_topic = retry_topic(s.prefix, group)
        self._dead_topic = dead_topic(s.prefix, group)
        self._marks_group = marks_group(self.kafka_group)
        self._wild = any(is_wild(p) for p in matcher.patterns)
        self._lock = threading.Lock()
        self._c: Any = None
        self._producer: Any = None
        self._marks_c: Any = None
        self._closed = False
        self._crashed = False
        self._parts: dict[tuple[str, int], _Part] = {}
        self._types: dict[str, Any] = {}  # Kafka topic -> event type, None: not ours
        self._ready: deque[Delivery] = deque()
        self._waiting: dict[str, deque[Delivery]] = {}
        self._n_waiting = 0
        self._claims: dict[str, Delivery] = {}  # key -> the one delivery of it out or ready
        self._held: list[tuple[float, int, Delivery, bool]] = []  # (due, seq, delivery, local)
        self._seq = itertools.count()
        self._reports: deque[tuple[Delivery, Any, bool]] = deque()
        self._copies = 0  # retry/dead-letter copies not yet acknowledged
        self._last_commit = time.monotonic()
        self._epoch = TopicEpoch.value
        self._paused_main = False
        self._paused_retry = False
        self._next_probe = 0.0  # see _probe
        self._assigned = False  # False while joining or after a revoke, until the next assign

    def __repr__(self) -> str:
        return f"<KafkaConsumer group={self.group!r} patterns={list(self._matcher.patterns)}>"

    # -- the librdkafka consumer ------------------------------------------------------
    def _open(self) -> Any:
        s, cl = self._s, self._clients
        ms = int(s.session_timeout * 1000)
        c = cl.make(
            self._ck.Consumer,
            cl.config(
                **{
                    "group.id": self.kafka_group,
                    "enable.auto.commit": False,
                    "enable.auto.offset.store": False,
                    "auto.offset.reset": "earliest",
                    "session.timeout.ms": ms,
                    "heartbeat.interval.ms": max(100, ms // 5),
                    "max.poll.interval.ms": int(s.max_poll_interval * 1000),
                    "partition.assignment.strategy": s.assignment,
                    "topic.metadata.refresh.interval.ms": int(s.metadata_refresh * 1000),
                    "fetch.wait.max.ms": s.client.get(
                        "fetch.wait.max.ms", int(s.fetch_wait * 1000)
                    ),
                    "on_commit": self._on_commit,
                }
            ),
        )
        subscription = [
            group_regex(s.prefix, p) if is_wild(p) else topic_for(p, s.prefix)
            for p in self._matcher.patterns
        ]
        subscription.append(self._retry_topic)
        try:
            c.subscribe(
                subscription,
                on_assign=self._on_assign,
                on_revoke=self._on_revoke,
                on_lost=self._on_lost,
            )
        except self._ck.KafkaException as exc:
            c.close()
            raise error(exc.args[0], f"subscribing group {self.group!r}") from exc
        self._c = c
        return c

    def _check(self) -> None:
        if self._closed:
            raise ClosedError("kafka consumer is closed")

    # -- receiving --------------------------------------------------------------------
    def receive(self, max_messages: int, timeout: float) -> list[Delivery]:
        with self._lock:
            self._check()
            c = self._c or self._open()
            n = max(1, max_messages)
            health = self._clients.health
            deadline = time.monotonic() + max(0.0, timeout)
            try:
                while True:
                    now = time.monotonic()
                    self._service(c, now)
                    if len(self._ready) < n and not self._paused_main:
                        self._ingest(c.consume(n, 0))
                    out = self._take(n)
                    if out:
                        if not health.up:
                            health.answered()
                        self._write_marks()
                        self._maybe_commit(c, now)
                        return out
                    if not health.up:
                        self._probe(c, now)
                    wait = deadline - now
                    if wait <= 0:
                        self._maybe_commit(c, now)
                        return []
                    if self._held:
                        wait = min(wait, max(0.0, self._held[0][0] - now))
                    # consume(n, t) waits all of t unless n arrive: wait for one, then take the rest
                    m = c.poll(wait)
                    if m is not None:
                        self._ingest((m,))
                        if n > 1:
                            self._ingest(c.consume(n - 1, 0))
            except self._ck.KafkaException as exc:
                raise error(exc.args[0], f"receiving for group {self.group!r}") from exc
            except RuntimeError as exc:  # "Consumer closed"
                raise ClosedError(f"kafka consumer of {self.group!r} is closed") from exc

    def _service(self, c: Any, now: float) -> None:
        if self._producer is not None and (self._copies or self._reports):
            self._producer.poll(0)
            self._settle_reports()
        held = self._held
        while held and held[0][0] <= now:
            _, _, d, local = heapq.heappop(held)
            if not d.handle.part.live:
                continue
            if local:  # still holds its key's claim: first in line
                self._ready.appendleft(d)
            else:
                self._enqueue(d)
        if self._paused_retry and len(held) <= self._s.max_held // 2:
            self._pause(c, retry=True, on=False)
        if self._paused_main and self._n_waiting < self._backlog_limit // 2:
            self._pause(c, retry=False, on=False)
        if self._wild and self._epoch != TopicEpoch.value:
            self._epoch = TopicEpoch.value
            try:  # a full metadata request makes librdkafka re-match the regexes now
                c.list_topics(timeout=5)
            except self._ck.KafkaException as exc:
                log.debug("kafka: metadata refresh failed: %s", exc)

    _backlog_limit = 5000

    def _probe(self, c: Any, now: float) -> None:
        """While the brokers are down, ask for metadata every few seconds: an answer
        means they are back (an idle member fetches nothing that would say so)."""
        if now < self._next_probe:
            return
        self._next_probe = now + 2.0
        try:
            c.list_topics(self._retry_topic, timeout=1.0)
        except self._ck.KafkaException:
            return
        self._clients.health.answered()

    def _ingest(self, msgs: Iterable[Any]) -> None:
        parts = self._parts.get
        types = self._types
        ready = self._ready
        for m in msgs:
            err = m.error()
            if err is not None:
                self._on_message_error(err)
                continue
            topic = m.topic()
            part = parts((topic, m.partition()))
            if part is None:
                continue  # from a partition no longer assigned
            offset = m.offset()
            part.pending.append(offset)
            if part.retry:
                self._ingest_retry(m, part, offset)
                continue
            event_type = types.get(topic, _UNKNOWN)
            if event_type is _UNKNOWN:
                event_type = self._type_of(topic)
            if event_type is None:  # not for this group: skip it
                part.settle(offset)
                continue
            raw = m.headers()
            kb = m.key()
            key = None if kb is None else kb.decode("utf-8", "replace")
            d = _delivery(
                event_type,
                m.value() or b"",
                in_attributes(raw),
                key,
                part,
                offset,
                raw,
                kb,
                1 + (offset < part.inherited),
            )
            if key is None:
                ready.append(d)
            else:
                self._enqueue(d)

    def _type_of(self, topic: str) -> str | None:
        """The event type this group takes from ``topic``, or None (worked out once)."""
        found = event_type_of(self._s.prefix, topic)
        if found is not None and not self._matcher(found):
            found = None
        self._types[topic] = found
        return found

    def _ingest_retry(self, m: Any, part: _Part, offset: int) -> None:
        """A record of the group's retry topic: held until its due time, then handed out."""
        raw = m.headers()
        attrs, own = in_headers(raw)
        kb = m.key()
        key = None if kb is None else kb.decode("utf-8", "replace")
        event_type = own.get(H_TOPIC) or attrs.get("type", "")
        attempt = to_int(own.get(H_ATTEMPT), 2) + (offset < part.inherited)
        d = _delivery(event_type, m.value() or b"", attrs, key, part, offset, raw, kb, attempt)
        delay = to_int(own.get(H_DUE), 0) / 1000 - time.time()
        if delay > 0:
            due = time.monotonic() + delay
            heapq.heappush(self._held, (due, next(self._seq), d, False))
            if len(self._held) > self._s.max_held and not self._paused_retry:
                self._pause(self._c, retry=True, on=True)
        elif key is None:
            self._ready.append(d)
        else:
            self._enqueue(d)

    def _enqueue(self, d: Delivery, front: bool = False) -> None:
        key = d.message.key
        if key is not None:
            if key in self._claims:  # another of this key is out: wait in order
                q = self._waiting.get(key)
                if q is None:
                    q = self._waiting[key] = deque()
                q.appendleft(d) if front else q.append(d)
                self._n_waiting += 1
                if self._n_waiting > self._backlog_limit and not self._paused_main:
                    self._pause(self._c, retry=False, on=True)
                return
            self._claims[key] = d
        self._ready.appendleft(d) if front else self._ready.append(d)

    def _release(self, d: Delivery) -> None:
        """``d`` is settled or left this member: the next event of its key may go."""
        key = d.message.key
        if key is None or self._claims.get(key) is not d:
            return
        q = self._waiting.get(key)
        while q:
            nxt = q.popleft()
            self._n_waiting -= 1
            if nxt.handle.part.live:
                self._claims[key] = nxt
                self._ready.append(nxt)
                if not q:
                    del self._waiting[key]
                return
        self._waiting.pop(key, None)
        del self._claims[key]

    def _take(self, n: int) -> list[Delivery]:
        ready = self._ready
        pop = ready.popleft
        out: list[Delivery] = []
        while ready and len(out) < n:
            batch = [pop() for _ in range(min(n - len(out), len(ready)))]
            for d in batch:
                h = d.handle
                part = h.part
                if part.live:
                    out.append(d)
                    if h.offset >= part.mark:
                        part.mark = h.offset + 1
        return out

    def _pause(self, c: Any, retry: bool, on: bool) -> None:
        if c is None:
            return
        tps = [
            self._ck.TopicPartition(p.topic, p.partition)
            for p in self._parts.values()
            if p.retry == retry
        ]
        try:
            if tps:
                (c.pause if on else c.resume)(tps)
        except self._ck.KafkaException as exc:
            log.debug("kafka: pause/resume failed: %s", exc)
        if retry:
            self._paused_retry = on
        else:
            self._paused_main = on

    # -- settling -----------------------------------------------------------------------
    def ack(self, deliveries: Sequence[Delivery]) -> None:
        with self._lock:
            self._check()
            for d in deliveries:
                h = d.handle
                if h.part.live:
                    h.part.settle(h.offset)
                if d.message.key is not None:
                    self._release(d)
            if self._c is not None:
                self._maybe_commit(self._c, time.monotonic())

    def nack(self, delivery: Delivery, delay: float) -> None:
        with self._lock:
            self._check()
            h = delivery.handle
            if not h.part.live:
                return  # the partition moved on; its new owner delivers it again
            s = self._s
            if (
                not h.part.retry
                and delivery.attempt <= s.local_retries
                and delay <= s.local_retry_max_delay
            ):
                again = Delivery(delivery.message, delivery.attempt + 1, h)
                if delivery.message.key is not None:
                    self._claims[delivery.message.key] = again  # the key keeps waiting
                due = time.monotonic() + max(0.0, delay)
                heapq.heappush(self._held, (due, next(self._seq), again, True))
                return
            due_ms = int((time.time() + max(0.0, delay)) * 1000)
            self._copy(
                self._retry_topic,
                delivery,
                [
                    (H_TOPIC, delivery.message.topic),
                    (H_ATTEMPT, str(delivery.attempt + 1)),
                    (H_DUE, str(due_ms)),
                ],
            )
            self._release(delivery)

    def dead_letter(self, delivery: Delivery, reason: str) -> None:
        with self._lock:
            self._check()
            if not delivery.handle.part.live:
                return
            self._copy(self._dead_topic, delivery, self._dead_headers(delivery, reason))
            self._release(delivery)

    def _dead_headers(self, d: Delivery, reason: str) -> list[tuple[str, str]]:
        return [
            (H_TOPIC, d.message.topic),
            (H_ATTEMPT, str(d.attempt)),
            (H_REASON, reason[:_MAX_REASON]),
            (H_GROUP, self.group),
            (H_FAILED_AT, datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")),
        ]

    def _copy(self, topic: str, d: Delivery, own: list[tuple[str, str]], cut: bool = False) -> None:
        """Produce ``d`` byte for byte to ``topic`` with ``own`` headers; settle it when acked.

        A record too large to copy (a foreign producer may write records larger
        than ``max_message_size``) must still leave its partition: it goes to the
        dead-letter topic with its body cut to fit (:meth:`_cut`). ``cut``: the
        broker refused a copy as too large, so send the smallest copy there is.
        """
        p = self._producer
        if p is None:
            cl = self._clients
            p = self._producer = cl.make(self._ck.Producer, cl.producer_config())
        h = d.handle
        headers: list[tuple[str, Any]] = [
            (k, v) for k, v in (h.raw_headers or ()) if not k.startswith(OWN)
        ]
        body = d.message.body
        size = len(body) + len(h.raw_key or b"") + sum(len(k) + len(v or b"") for k, v in headers)
        if cut or size + _OVERHEAD > self._s.max_message_size:
            topic, body, headers, own = self._cut(topic, d, headers, own, size, cut)
        headers += own
        reports = self._reports

        def report(err: Any, _msg: Any) -> None:
            reports.append((d, err, cut))

        deadline = time.monotonic() + self._s.publish_timeout
        while True:
            try:
                p.produce(topic, body, h.raw_key, headers=headers, on_delivery=report)
                break
            except BufferError:
                if time.monotonic() > deadline:
                    raise BrokerUnavailable("kafka: the copy producer's queue is full") from None
                p.poll(0.05)
            except self._ck.KafkaException as exc:
                self._copy_failed(exc.args[0])
                raise error(exc.args[0], f"copying an event to {topic!r}") from exc
        self._copies += 1
        p.poll(0)
        self._settle_reports()

    def _cut(
        self,
        topic: str,
        d: Delivery,
        headers: list[tuple[str, Any]],
        own: list[tuple[str, str]],
        size: int,
        smallest: bool,
    ) -> tuple[str, bytes, list[tuple[str, Any]], list[tuple[str, str]]]:
        """A copy of ``d`` that fits: to the dead-letter topic (a retry of a cut body would
        be wrong), the body cut, the original size and place in headers."""
        h = d.handle
        where = f"{h.part.topic}/{h.part.partition}@{h.offset}"
        if topic == self._dead_topic:
            reason = dict(own).get(H_REASON, "")
        else:
            reason = f"could not be retried through {topic!r}"
        if smallest:
            headers = []  # the broker refused even a copy that fitted max_message_size
        own = self._dead_headers(d, reason)
        room = self._s.max_message_size - _OVERHEAD - 512 - len(h.raw_key or b"")
        room -= sum(len(k) + len(v or b"") for k, v in headers + own)
        if room < 0:  # the foreign headers alone are too large: drop them too
            headers, room = [], self._s.max_message_size // 2
        body = b"" if smallest else d.message.body[:room]
        n = len(d.message.body)
        note = (
            f"; the record ({size} bytes) is too large to copy whole: its body was cut "
            f"to {len(body)} of {n} bytes; the original is {where}"
        )
        own = [
            *self._dead_headers(d, reason[: _MAX_REASON - len(note)] + note),
            (H_SIZE, str(n)),
            (H_SOURCE_TOPIC, h.part.topic),
            (H_SOURCE_PARTITION, str(h.part.partition)),
            (H_SOURCE_OFFSET, str(h.offset)),
        ]
        log.warning(
            "kafka: group %s: the event at %s is too large to copy (%d bytes); "
            "dead-lettered with its body cut",
            self.group,
            where,
            size,
        )
        return self._dead_topic, body, headers, own

    def _settle_reports(self) -> None:
        reports = self._reports
        while reports:
            d, err, cut = reports.popleft()
            self._copies -= 1
            h = d.handle
            if err is None:
                if h.part.live:
                    h.part.settle(h.offset)
            elif h.part.live and not cut and err.name() in TOO_LARGE:
                why = f"the broker refused a copy as too large ({err.str()})"
                self._copy(self._dead_topic, d, self._dead_headers(d, why), cut=True)
            elif h.part.live:  # the copy failed: the event comes back to be handled again
                self._copy_failed(err)
                log.warning(
                    "kafka: group %s: copy failed (%s); the event comes back", self.group, err
                )
                self._enqueue(d, front=True)

    def _copy_failed(self, err: Any) -> None:
        """After a fatal producer error (idempotence state lost), copy with a new producer."""
        old = self._producer
        if err.fatal() and old is not None:
            log.warning(
                "kafka: group %s: the copy producer hit a fatal error; making a new one", self.group
            )
            self._producer = None
            old.flush(5.0)  # its other copies fail now too: their reports bring them back

    def _flush_copies(self) -> None:
        if self._producer is not None and self._copies:
            left = self._producer.flush(self._s.publish_timeout)
            if left:
                log.warning("kafka: %d retry/dead-letter copies not acknowledged", left)
            self._settle_reports()

    # -- committing ------------------------------------------------------------------------
    def _maybe_commit(self, c: Any, now: float) -> None:
        if now - self._last_commit >= self._s.commit_interval:
            self._commit(c, self._parts.values(), sync=False)

    def _commit(self, c: Any, parts: Iterable[_Part], sync: bool) -> None:
        tp = self._ck.TopicPartition
        offsets = []
        for p in parts:
            if p.dirty or sync:  # revoke and close commit everything: an async one may have failed
                p.dirty = False
                offset = p.commit_offset()
                if offset >= 0:
                    offsets.append(tp(p.topic, p.partition, offset))
        self._last_commit = time.monotonic()
        if not offsets:
            return
        try:
            c.commit(offsets=offsets, asynchronous=not sync)
        except self._ck.KafkaException as exc:
            err = exc.args[0]
            if err.code() != self._ck.KafkaError._NO_OFFSET:
                log.warning("kafka: group %s: commit failed: %s", self.group, err)

    def _marks(self) -> Any:
        """A group-less client of the marks group: it only commits and reads offsets."""
        if self._marks_c is None:
            cl = self._clients
            self._marks_c = cl.make(
                self._ck.Consumer,
                cl.config(**{"group.id": self._marks_group, "enable.auto.commit": False}),
            )
        return self._marks_c

    def _write_marks(self) -> None:
        """Record how far partitions were handed out, for the attempt after a crash.

        The mark written runs ``marks_ahead`` offsets past the last event handed
        out, so one asynchronous commit to the marks group covers that many
        events (the marks group never has members, so it always accepts). A
        commit per batch of 100 cost 6-8 % of consuming on Tansu: each one is a
        request the broker serves on the same machine.
        """
        changed = [p for p in self._parts.values() if p.mark > p.marked]
        if not changed:
            return
        tp = self._ck.TopicPartition
        ahead = self._s.marks_ahead
        for p in changed:
            p.marked = p.mark + ahead
        try:
            offsets = [tp(p.topic, p.partition, p.marked) for p in changed]
            self._marks().commit(offsets=offsets, asynchronous=True)
        except (self._ck.KafkaException, BrokerError) as exc:
            log.debug("kafka: writing delivery marks failed: %s", exc)

    def _read_marks(self, parts: list[_Part]) -> None:
        tp = self._ck.TopicPartition
        try:
            got = self._marks().committed([tp(p.topic, p.partition) for p in parts], timeout=10)
        except Exception as exc:  # marks only refine `attempt`; never fail an assignment on them
            log.debug("kafka: reading delivery marks failed: %s", exc)
            return
        by_tp = {(p.topic, p.partition): p for p in parts}
        for t in got:
            part = by_tp.get((t.topic, t.partition))
            if part is not None and t.offset >= 0:
                part.inherited = t.offset
                part.marked = t.offset

    # -- rebalance callbacks (run inside consume/poll/close, on the consumer's thread) -----
    def _on_assign(self, c: Any, partitions: list[Any]) -> None:
        new = []
        for tp in partitions:
            part = _Part(tp.topic, tp.partition, tp.topic == self._retry_topic)
            self._parts[(tp.topic, tp.partition)] = part
            new.append(part)
        # librdkafka keeps an application's pause on a partition across revoke and
        # assign, and a revoke may clear our flags with no partition left to resume:
        # resume what comes (back) now, then pause it again if its kind still is
        # (partitions kept through a cooperative rebalance keep flag and pause).
        try:
            c.resume(partitions)
            again = [
                tp
                for tp in partitions
                if (self._paused_retry if tp.topic == self._retry_topic else self._paused_main)
            ]
            if again:
                c.pause(again)
        except self._ck.KafkaException as exc:
            log.debug("kafka: resume on assign failed: %s", exc)
        self._assigned = True
        if new:
            self._read_marks(new)
        log.debug("kafka: group %s assigned %d partition(s)", self.group, len(partitions))

    def _on_revoke(self, c: Any, partitions: list[Any]) -> None:
        self._assigned = False
        if self._crashed:
            self._drop(list(self._parts.values()))
            return
        gone = [
            self._parts[k] for tp in partitions if (k := (tp.topic, tp.partition)) in self._parts
        ]
        self._flush_copies()
        self._write_marks()
        self._commit(c, gone, sync=True)
        self._drop(gone)

    def _on_lost(self, c: Any, partitions: list[Any]) -> None:
        self._assigned = False
        gone = [
            self._parts[k] for tp in partitions if (k := (tp.topic, tp.partition)) in self._parts
        ]
        self._drop(gone)

    def _drop(self, gone: list[_Part]) -> None:
        """Forget revoked partitions: their unsettled events go to the next owner."""
        if not gone:
            return
        for p in gone:
            p.live = False
            self._parts.pop((p.topic, p.partition), None)
        self._ready = deque(d for d in self._ready if d.handle.part.live)
        self._held = [e for e in self._held if e[2].handle.part.live]
        heapq.heapify(self._held)
        for key in list(self._waiting):
            q = deque(d for d in self._waiting[key] if d.handle.part.live)
            if q:
                self._waiting[key] = q
            else:
                del self._waiting[key]
        self._n_waiting = sum(len(q) for q in self._waiting.values())
        for d in list(self._claims.values()):
            if not d.handle.part.live:
                self._release(d)

    # -- errors -------------------------------------------------------------------------------
    def _on_message_error(self, err: Any) -> None:
        if err.fatal():
            raise BrokerError(f"kafka: fatal consumer error: {err.str()}")
        if err.code() in (self._ck.KafkaError._PARTITION_EOF,):
            return
        level = logging.DEBUG if err.name() == "UNKNOWN_TOPIC_OR_PART" else logging.WARNING
        log.log(level, "kafka: group %s: %s", self.group, err.str())

    def _on_commit(self, err: Any, partitions: list[Any]) -> None:
        if err is not None and err.code() != self._ck.KafkaError._NO_OFFSET:
            log.warning("kafka: group %s: async commit failed: %s", self.group, err)

    # -- closing ----------------------------------------------------------------------------
    def close(self) -> None:
        """Settle what is in flight to the retry/dead-letter topics, commit, leave the group.

        Events handed out and not settled go back to the group (the next member
        gets them with ``attempt`` + 1). Idempotent.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            c, self._c = self._c, None
            try:
                if c is not None:
                    self._before_leaving(c, self._s.leave_grace)
                    self._flush_copies()
                    self._write_marks()
                    self._commit(c, list(self._parts.values()), sync=True)
            finally:
                self._shut(c)

    def crash(self) -> None:
        """Test hook: stop without settling or committing (see ``KafkaAdapter.simulate_crash``)."""
        with self._lock:
            if self._closed:
                return
            self._closed = self._crashed = True
            c, self._c = self._c, None
            self._producer = None  # unacknowledged copies are lost with the "process"
            self._drop(list(self._parts.values()))
            if c is not None:  # see _before_leaving: a grace long enough to see a rebalance
                self._before_leaving(c, max(self._s.leave_grace, self._s.session_timeout / 3))
            self._shut(c)

    def _before_leaving(self, c: Any, grace: float) -> None:
        """Take part in a rebalance in progress before leaving the group.

        Leaving while a join is pending makes Apache Kafka rebalance once more;
        it wedges a Tansu 0.6 group for good. So a member finishes its own
        pending join, then keeps polling ``grace`` seconds in case another
        member's join started a rebalance it has not seen yet. What it fetches
        meanwhile is not handed out and stays with the group.
        """
        start = time.monotonic()
        join_deadline = start + self._s.session_timeout + 2.0
        try:
            while True:
                now = time.monotonic()
                if self._assigned:
                    if now - start >= grace:
                        return
                elif now > join_deadline:
                    return
                m = c.poll(0.1)
                if m is not None and not self._crashed:
                    self._ingest((m,))
        except (self._ck.KafkaException, RuntimeError) as exc:
            log.debug("kafka: group %s: polling before leaving: %s", self.group, exc)

    def _shut(self, c: Any) -> None:
        if c is not None:
            try:
                c.close()  # leaves the group; on_revoke commits again unless crashed
            except (self._ck.KafkaException, RuntimeError) as exc:
                log.debug("kafka: consumer close: %s", exc)
        if self._producer is not None:
            self._producer.flush(self._s.publish_timeout)
            self._producer = None
        marks, self._marks_c = self._marks_c, None
        if marks is not None:
            try:
                marks.close()  # waits for its commits in flight; it never joined, so no leave
            except (self._ck.KafkaException, RuntimeError) as exc:
                log.debug("kafka: marks client close: %s", exc)
        self._parts.clear()
        self._ready.clear()
        self._waiting.clear()
        self._claims.clear()
        self._held.clear()
