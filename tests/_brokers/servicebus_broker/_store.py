"""The broker's state: queues, topics, subscriptions, messages, locks. No I/O here.

Everything runs on the broker's one event-loop thread, so nothing is locked.
Times are milliseconds since the epoch (what Service Bus puts on the wire).

Semantics follow Service Bus (and are checked through the real SDK by the
tests in ``tests/azure_servicebus``):

- a subscription gets a copy of each message sent to its topic after it was
  created, if one of its rules matches (rules are OR-ed);
- peek-lock: a delivered message is locked for the entity's lock duration;
  complete removes it; abandon or lock expiry puts it back with
  ``delivery count + 1``; at ``max delivery count`` it is dead-lettered with
  reason ``MaxDeliveryCountExceeded``; dead-letter moves it to the entity's
  ``$DeadLetterQueue`` with ``DeadLetterReason``/``DeadLetterErrorDescription``
  application properties; defer keeps it aside until received by sequence
  number; release (the SDK releases prefetched messages it won't hand out)
  puts it back without counting a delivery;
- ``x-opt-scheduled-enqueue-time`` holds a message back until that time;
- ``RequiresSession`` entities keep their messages in sessions (``_sessions``);
- a topic with ``RequiresDuplicateDetection`` drops (silently, after accepting
  it) a message whose ``message_id`` it accepted within
  ``DuplicateDetectionHistoryTimeWindow``, scheduled ones included;
- limits: a SQL filter of more than 1,024 characters is refused, and so is a
  batch over 1 MB whatever the entity's max message size (Premium's large
  messages go alone).
"""

from __future__ import annotations

import heapq
import itertools
import re
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from proton import symbol, timestamp, ubyte, uint

from . import _codec
from ._codec import Parsed
from ._filters import FilterError, compile_sql, correlation_matches, system_properties
from ._sessions import Session, SessionsMixin, Waiter, session_id_of

SCHEDULED_ENQUEUE = symbol("x-opt-scheduled-enqueue-time")
SEQUENCE_NUMBER = symbol("x-opt-sequence-number")
ENQUEUED_TIME = symbol("x-opt-enqueued-time")
LOCKED_UNTIL = symbol("x-opt-locked-until")
MESSAGE_STATE = symbol("x-opt-message-state")
DEAD_LETTER_SOURCE = symbol("x-opt-deadletter-source")

ACTIVE, DEFERRED, SCHEDULED = 0, 1, 2

LOCK_LOST = "com.microsoft:message-lock-lost"
NOT_FOUND = "amqp:not-found"
MESSAGE_NOT_FOUND = "com.microsoft:message-not-found"
ARGUMENT_ERROR = "com.microsoft:argument-error"
TOO_LARGE = "amqp:link:message-size-exceeded"
#: Service Bus's limits: characters of a SQL filter, bytes of a batch (every tier).
MAX_SQL = 1024
MAX_BATCH = 1024 * 1024


class BrokerFault(Exception):
    """An operation the broker refuses, with the AMQP error condition to send."""

    def __init__(self, condition: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.condition = condition
        self.description = description
        self.status = status


def now_ms() -> int:
    return int(time.time() * 1000)


_DURATION = re.compile(
    r"P(?:(?P<d>\d+(?:\.\d+)?)D)?(?:T(?:(?P<h>\d+(?:\.\d+)?)H)?(?:(?P<m>\d+(?:\.\d+)?)M)?"
    r"(?:(?P<s>\d+(?:\.\d+)?)S)?)?\Z"
)


def parse_duration(value: Any) -> float:
    """Seconds in an ISO 8601 duration (``PT1M``, ``PT0.5S``) or a plain number."""
    if isinstance(value, (int, float)):
        return float(value)
    m = _DURATION.match(str(value).strip().upper())
    if m is None or not any(m.groupdict().values()):
        raise ValueError(f"not an ISO 8601 duration: {value!r}")
    d, h, mi, s = (float(m.group(k) or 0) for k in "dhms")
    return d * 86400 + h * 3600 + mi * 60 + s


@dataclass
class Rule:
    name: str
    kind: str  # "sql" | "correlation" | "true" | "false"
    sql: str = ""
    correlation: dict[str, Any] = field(default_factory=dict)
    predicate: Callable[[Mapping[str, Any], Mapping[str, Any]], bool] | None = None

    @classmethod
    def from_config(cls, spec: Mapping[str, Any]) -> Rule:
        """A rule from the emulator's Config.json shape."""
        name = str(spec.get("Name") or "$Default")
        props = dict(spec.get("Properties") or {})
        kind = str(props.get("FilterType", "Sql")).lower()
        if kind in ("sql", "sqlfilter"):
            sql = str((props.get("SqlFilter") or {}).get("SqlExpression", "1=1"))
            if len(sql) > MAX_SQL:
                raise FilterError(
                    f"rule {name!r}: a SQL filter of {len(sql)} characters is over "
                    f"Service Bus's limit of {MAX_SQL}"
                )
            if (props.get("Action") or {}).get("SqlExpression"):
                raise FilterError(f"rule {name!r}: rule actions are not supported")
            return cls(name, "sql", sql=sql, predicate=compile_sql(sql))
        if kind in ("correlation", "correlationfilter"):
            raw = dict(props.get("CorrelationFilter") or {})
            corr: dict[str, Any] = {}
            for key, value in raw.items():
                snake = re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower()
                corr[snake] = value
            correlation_matches(corr, {}, {})  # validates the field names
            return cls(name, "correlation", correlation=corr)
        if kind in ("true", "truefilter"):
            return cls(name, "true")
        if kind in ("false", "falsefilter"):
            return cls(name, "false")
        raise FilterError(f"rule {name!r}: unknown FilterType {props.get('FilterType')!r}")

    def as_config(self) -> dict[str, Any]:
        if self.kind == "sql":
            return {
                "Name": self.name,
                "Properties": {"FilterType": "Sql", "SqlFilter": {"SqlExpression": self.sql}},
            }
        if self.kind == "correlation":
            camel = {
                "".join(w.capitalize() for w in k.split("_")): v
                for k, v in self.correlation.items()
            }
            return {
                "Name": self.name,
                "Properties": {"FilterType": "Correlation", "CorrelationFilter": camel},
            }
        return {"Name": self.name, "Properties": {"FilterType": self.kind.capitalize()}}

    def matches(self, system: Mapping[str, Any], user: Mapping[str, Any]) -> bool:
        if self.kind == "true":
            return True
        if self.kind == "false":
            return False
        if self.kind == "sql":
            assert self.predicate is not None
            return self.predicate(system, user)
        return correlation_matches(self.correlation, system, user)


DEFAULT_RULE = Rule("$Default", "true")


@dataclass
class Stored:
    seq: int
    parsed: Parsed
    enqueued_ms: int
    delivery_count: int = 0
    state: int = ACTIVE
    lock: uuid.UUID | None = None
    locked_until: int = 0
    extra_properties: dict[str, Any] = field(default_factory=dict)
    dead_letter_source: str | None = None
    scheduled_ms: int = 0


@dataclass
class Entity:
    """A queue, a subscription, or the dead-letter sub-queue of either."""

    path: str
    lock_duration: float = 60.0
    max_delivery_count: int = 10
    kind: str = "queue"  # queue | subscription | deadletter
    dead_letter: Entity | None = None
    rules: list[Rule] = field(default_factory=lambda: [DEFAULT_RULE])
    messages: dict[int, Stored] = field(default_factory=dict)
    ready: list[int] = field(default_factory=list)  # heap of sequence numbers
    scheduled: list[tuple[int, int]] = field(default_factory=list)  # heap (due ms, seq)
    lock_heap: list[tuple[int, uuid.UUID]] = field(default_factory=list)
    links: list[Any] = field(default_factory=list)  # the broker's sender links on this entity
    next_link: int = 0
    requires_session: bool = False
    sessions: dict[str, Session] = field(default_factory=dict)
    waiting: list[Waiter] = field(default_factory=list)  # next-available-session attaches
    rule_history: list[tuple[str, ...]] = field(default_factory=list)  # rule names, each change

    def properties(self) -> dict[str, Any]:
        return {
            "LockDuration": f"PT{self.lock_duration:g}S",
            "MaxDeliveryCount": self.max_delivery_count,
            "RequiresSession": self.requires_session,
        }

    def counts(self) -> dict[str, int]:
        states = [m.state for m in self.messages.values()]
        return {
            "ActiveMessageCount": sum(s == ACTIVE for s in states),
            "ScheduledMessageCount": sum(s == SCHEDULED for s in states),
            "DeferredMessageCount": sum(s == DEFERRED for s in states),
            "DeadLetterMessageCount": len(self.dead_letter.messages) if self.dead_letter else 0,
        }


@dataclass
class Topic:
    path: str
    subscriptions: dict[str, Entity] = field(default_factory=dict)  # by lower-case name
    scheduled: dict[int, tuple[int, Parsed]] = field(default_factory=dict)  # seq -> (due, msg)
    scheduled_heap: list[tuple[int, int]] = field(default_factory=list)
    duplicate_window: float = 0.0  # seconds; 0: no duplicate detection
    seen_ids: dict[str, int] = field(default_factory=dict)  # message id -> last accepted (ms)

    def duplicate(self, parsed: Parsed, now: int) -> bool:
        """Duplicate detection: a message id accepted within the window is dropped."""
        if self.duplicate_window <= 0:
            return False
        message_id = parsed.properties.get("message_id")
        if message_id is None:
            return False
        key = str(message_id)
        last = self.seen_ids.get(key)
        if last is not None and now - last < self.duplicate_window * 1000:
            return True
        self.seen_ids[key] = now
        return False


class Store(SessionsMixin):
    """All entities of one namespace, and the operations on their messages."""

    def __init__(self, *, max_message_size: int = 256 * 1024) -> None:
        self.queues: dict[str, Entity] = {}
        self.topics: dict[str, Topic] = {}
        self.max_message_size = max_message_size
        self._seq = itertools.count(1)
        self.locks: dict[uuid.UUID, tuple[Entity, int]] = {}
        #: called with an entity whenever it may have messages to hand out
        self.on_ready: Callable[[Entity], None] = lambda entity: None
        self.on_session_lost: Callable[[Any], None] = lambda link: None

    # -- entities ---------------------------------------------------------------
    def ensure_queue(self, name: str, props: Mapping[str, Any] | None = None) -> Entity:
        key = name.lower()
        q = self.queues.get(key)
        if q is None:
            if key in self.topics:
                raise BrokerFault("com.microsoft:entity-already-exists", f"{name} is a topic", 409)
            q = self._entity(name, "queue", props or {})
            self.queues[key] = q
        else:
            self._configure(q, props or {})
        return q

    def ensure_topic(self, name: str, props: Mapping[str, Any] | None = None) -> Topic:
        key = name.lower()
        if key in self.queues:
            raise BrokerFault("com.microsoft:entity-already-exists", f"{name} is a queue", 409)
        t = self.topics.get(key)
        if t is None:
            t = self.topics[key] = Topic(name)
        props = props or {}
        if "RequiresDuplicateDetection" in props:
            window = parse_duration(props.get("DuplicateDetectionHistoryTimeWindow", "PT10M"))
            t.duplicate_window = window if _flag(props["RequiresDuplicateDetection"]) else 0.0
        return t

    def ensure_subscription(
        self,
        topic: str,
        name: str,
        props: Mapping[str, Any] | None = None,
        rules: Iterable[Mapping[str, Any]] | None = None,
    ) -> Entity:
        t = self.topics.get(topic.lower())
        if t is None:
            raise BrokerFault(NOT_FOUND, f"topic {topic!r} does not exist", 404)
        key = name.lower()
        sub = t.subscriptions.get(key)
        if sub is None:
            sub = self._entity(f"{t.path}/Subscriptions/{name}", "subscription", props or {})
            t.subscriptions[key] = sub
        else:
            self._configure(sub, props or {})
        if rules is not None:
            compiled = [Rule.from_config(r) for r in rules]
            sub.rules = compiled
            sub.rule_history.append(tuple(r.name for r in compiled))
        return sub

    def delete_subscription(self, topic: str, name: str) -> bool:
        t = self.topics.get(topic.lower())
        if t is None:
            return False
        sub = t.subscriptions.pop(name.lower(), None)
        if sub is None:
            return False
        for e in (sub, sub.dead_letter):
            assert e is not None
            for m in e.messages.values():
                if m.lock is not None:
                    self.locks.pop(m.lock, None)
        return True

    def _entity(self, path: str, kind: str, props: Mapping[str, Any]) -> Entity:
        e = Entity(path, kind=kind, requires_session=_flag(props.get("RequiresSession")))
        e.dead_letter = Entity(f"{path}/$DeadLetterQueue", kind="deadletter")
        self._configure(e, props)
        return e

    @staticmethod
    def _configure(e: Entity, props: Mapping[str, Any]) -> None:
        if "RequiresSession" in props and _flag(props["RequiresSession"]) != e.requires_session:
            raise BrokerFault(
                ARGUMENT_ERROR,
                f"{e.path}: RequiresSession cannot be changed after the entity is created",
                400,
            )
        if "LockDuration" in props:
            e.lock_duration = parse_duration(props["LockDuration"])
        if "MaxDeliveryCount" in props:
            e.max_delivery_count = int(props["MaxDeliveryCount"])
        assert e.dead_letter is not None
        e.dead_letter.lock_duration = e.lock_duration
        e.dead_letter.max_delivery_count = 2**31 - 1  # a DLQ has no dead letter of its own

    def resolve(self, address: str) -> Entity | Topic:
        """The entity at ``address`` (a queue, topic, subscription, or dead-letter queue)."""
        path = normalize(address)
        parts = path.split("/")
        dlq = False
        if parts and parts[-1].lower() == "$deadletterqueue":
            dlq = True
            parts = parts[:-1]
        target: Entity | Topic | None
        if len(parts) == 1:
            key = parts[0].lower()
            target = self.queues.get(key) or self.topics.get(key)
        elif len(parts) == 3 and parts[1].lower() == "subscriptions":
            t = self.topics.get(parts[0].lower())
            target = t.subscriptions.get(parts[2].lower()) if t else None
        else:
            target = None
        if target is None or (dlq and not isinstance(target, Entity)):
            raise BrokerFault(NOT_FOUND, f"the messaging entity {path!r} could not be found", 404)
        if dlq:
            assert isinstance(target, Entity) and target.dead_letter is not None
            return target.dead_letter
        return target

    # -- sending ------------------------------------------------------------------
    def accept(self, address: str, raw: bytes) -> list[int]:
        """Take one transfer (a message or a batch) sent to ``address``."""
        target = self.resolve(address)
        if isinstance(target, Entity) and target.kind != "queue":
            raise BrokerFault("amqp:not-allowed", f"cannot send to {target.path}", 403)
        if len(raw) > self.max_message_size:
            raise BrokerFault(
                TOO_LARGE, f"message of {len(raw)} bytes is over {self.max_message_size}", 413
            )
        try:
            parsed = _codec.parse(raw)
        except _codec.CodecError as exc:
            raise BrokerFault("amqp:decode-error", str(exc)) from None
        parts = _codec.batch_parts(parsed)
        if parts is not None and len(raw) > MAX_BATCH:
            raise BrokerFault(
                TOO_LARGE,
                f"a batch of {len(raw)} bytes is over Service Bus's "
                f"batch limit of {MAX_BATCH} (large messages go alone)",
                413,
            )
        messages = [parsed] if parts is None else [_codec.parse(p) for p in parts]
        if isinstance(target, Entity) and target.requires_session:
            if any(m.properties.get("group_id") is None for m in messages):
                raise BrokerFault(
                    "amqp:not-allowed",
                    f"{target.path} requires sessions: a message sent to it must have a SessionId",
                    400,
                )
        return [self.enqueue(target, m) for m in messages]

    def enqueue(self, target: Entity | Topic, parsed: Parsed, due: int | None = None) -> int:
        seq = next(self._seq)
        now = now_ms()
        if due is None:
            raw_due = parsed.annotations.get(SCHEDULED_ENQUEUE)
            due = int(raw_due) if raw_due is not None else 0
        if isinstance(target, Topic) and target.duplicate(parsed, now):
            return seq  # accepted, and dropped: Service Bus says nothing either
        if due > now:
            if isinstance(target, Topic):
                target.scheduled[seq] = (due, parsed)
                heapq.heappush(target.scheduled_heap, (due, seq))
            else:
                m = Stored(seq, parsed, now, state=SCHEDULED, scheduled_ms=due)
                target.messages[seq] = m
                heapq.heappush(target.scheduled, (due, seq))
            return seq
        if isinstance(target, Topic):
            self._fan_out(target, parsed, seq, now)
        else:
            self._put(target, Stored(seq, parsed, now))
        return seq

    def _fan_out(self, topic: Topic, parsed: Parsed, seq: int, now: int) -> None:
        system = system_properties(parsed.properties)
        user = parsed.application_properties
        for sub in topic.subscriptions.values():
            if any(rule.matches(system, user) for rule in sub.rules):
                self._put(sub, Stored(seq, parsed, now))

    def _put(self, e: Entity, m: Stored) -> None:
        m.state = ACTIVE
        e.messages[m.seq] = m
        if e.requires_session:
            if not self._put_in_session(e, m):
                return
        else:
            heapq.heappush(e.ready, m.seq)
        self.on_ready(e)

    # -- time ------------------------------------------------------------------------
    def tick(self, now: int | None = None) -> None:
        """Expire locks and release scheduled messages that are due."""
        now = now_ms() if now is None else now
        for t in self.topics.values():
            while t.scheduled_heap and t.scheduled_heap[0][0] <= now:
                _, seq = heapq.heappop(t.scheduled_heap)
                item = t.scheduled.pop(seq, None)
                if item is not None:
                    self._fan_out(t, item[1], seq, now)
            for sub in t.subscriptions.values():
                self._tick_entity(sub, now)
                assert sub.dead_letter is not None
                self._tick_entity(sub.dead_letter, now)
        for q in self.queues.values():
            self._tick_entity(q, now)
            assert q.dead_letter is not None
            self._tick_entity(q.dead_letter, now)

    def _tick_entity(self, e: Entity, now: int) -> None:
        while e.scheduled and e.scheduled[0][0] <= now:
            _, seq = heapq.heappop(e.scheduled)
            m = e.messages.get(seq)
            if m is not None and m.state == SCHEDULED:
                m.enqueued_ms = now
                self._put(e, m)
        while e.lock_heap and e.lock_heap[0][0] <= now:
            _, token = heapq.heappop(e.lock_heap)
            held = self.locks.get(token)
            if held is None:
                continue
            m = e.messages.get(held[1])
            if m is None or m.lock != token:
                self.locks.pop(token, None)
                continue
            if m.locked_until > now:  # renewed: a later heap entry covers it
                continue
            self.locks.pop(token, None)
            m.lock = None
            self._failed_delivery(e, m, "lock expired")
        if e.requires_session:
            self._tick_sessions(e, now)

    def _failed_delivery(self, e: Entity, m: Stored, why: str) -> None:
        m.delivery_count += 1
        if m.delivery_count >= e.max_delivery_count and e.dead_letter is not None:
            self._dead_letter(
                e,
                m,
                "MaxDeliveryCountExceeded",
                f"Message could not be consumed after {e.max_delivery_count} delivery attempts.",
            )
            return
        self._put(e, m)

    # -- handing out ---------------------------------------------------------------
    def next_ready(self, e: Entity) -> Stored | None:
        while e.ready:
            seq = heapq.heappop(e.ready)
            m = e.messages.get(seq)
            if m is not None and m.state == ACTIVE and m.lock is None:
                return m
        return None

    def lock(self, e: Entity, m: Stored, until: int | None = None) -> uuid.UUID:
        """Lock ``m`` for the entity's lock duration, or ``until`` (its session's lock)."""
        token = uuid.uuid4()
        m.lock = token
        m.locked_until = until if until is not None else now_ms() + int(e.lock_duration * 1000)
        self.locks[token] = (e, m.seq)
        heapq.heappush(e.lock_heap, (m.locked_until, token))
        return token

    def remove(self, e: Entity, m: Stored) -> None:
        e.messages.pop(m.seq, None)

    def _held(self, token: uuid.UUID) -> tuple[Entity, Stored]:
        held = self.locks.get(token)
        if held is not None:
            e, seq = held
            m = e.messages.get(seq)
            if m is not None and m.lock == token and m.locked_until > now_ms():
                return e, m
        raise BrokerFault(
            LOCK_LOST,
            "The lock supplied is invalid. Either the lock expired, or the message has "
            "already been removed from the queue.",
            410,
        )

    def settle(
        self,
        token: uuid.UUID,
        outcome: str,
        *,
        reason: str | None = None,
        description: str | None = None,
        properties: Mapping[str, Any] | None = None,
    ) -> None:
        """Apply ``outcome`` (complete|abandon|deadletter|defer|release) to a locked message."""
        e, m = self._held(token)
        self.locks.pop(token, None)
        m.lock = None
        if properties:
            m.extra_properties.update({str(k): v for k, v in properties.items()})
        if outcome == "complete":
            self.remove(e, m)
        elif outcome == "release":
            self._put(e, m)
        elif outcome == "abandon":
            self._failed_delivery(e, m, "abandoned")
        elif outcome == "defer":
            m.state = DEFERRED
        elif outcome == "deadletter":
            self._dead_letter(e, m, reason, description)
        else:
            raise BrokerFault(ARGUMENT_ERROR, f"unknown disposition {outcome!r}")

    def _dead_letter(
        self, e: Entity, m: Stored, reason: str | None, description: str | None
    ) -> None:
        self.remove(e, m)
        dlq = e.dead_letter
        if dlq is None:
            return
        if reason is not None:
            m.extra_properties["DeadLetterReason"] = reason
        if description is not None:
            m.extra_properties["DeadLetterErrorDescription"] = description
        m.dead_letter_source = e.path
        m.delivery_count = 0
        m.lock = None
        self._put(dlq, m)

    def renew(self, token: uuid.UUID) -> int:
        e, m = self._held(token)
        m.locked_until = now_ms() + int(e.lock_duration * 1000)
        heapq.heappush(e.lock_heap, (m.locked_until, token))
        return m.locked_until

    # -- management operations --------------------------------------------------
    def peek(self, e: Entity, from_seq: int, count: int) -> list[Stored]:
        seqs = sorted(s for s in e.messages if s >= from_seq)[: max(0, count)]
        return [e.messages[s] for s in seqs]

    def schedule(self, target: Entity | Topic, raws: Iterable[bytes]) -> list[int]:
        out = []
        for raw in raws:
            parsed = _codec.parse(raw)
            due = parsed.annotations.get(SCHEDULED_ENQUEUE)
            if due is None:
                raise BrokerFault(
                    ARGUMENT_ERROR, "a scheduled message needs x-opt-scheduled-enqueue-time"
                )
            out.append(self.enqueue(target, parsed, int(due)))
        return out

    def cancel_scheduled(self, target: Entity | Topic, seqs: Iterable[int]) -> None:
        for seq in seqs:
            if isinstance(target, Topic):
                target.scheduled.pop(int(seq), None)
            else:
                m = target.messages.get(int(seq))
                if m is not None and m.state == SCHEDULED:
                    target.messages.pop(int(seq))

    def deferred(self, e: Entity, seqs: Iterable[int]) -> list[Stored]:
        out = []
        for seq in seqs:
            m = e.messages.get(int(seq))
            if m is None or m.state != DEFERRED:
                raise BrokerFault(
                    MESSAGE_NOT_FOUND, f"no deferred message with sequence number {seq}", 404
                )
            out.append(m)
        return out

    # -- wire form ------------------------------------------------------------------
    def wire(self, e: Entity, m: Stored, *, locked: bool, peek: bool = False) -> bytes:
        """The message as sent: header and annotations rebuilt, the rest as received."""
        old = list(m.parsed.header) + [None] * 5
        header = [
            old[0] if old[0] is not None else False,
            ubyte(old[1] if old[1] is not None else 4),
            uint(old[2]) if old[2] is not None else None,
            m.delivery_count == 0,
            uint(m.delivery_count),
        ]
        ann: dict[Any, Any] = dict(m.parsed.annotations)
        ann[SEQUENCE_NUMBER] = m.seq
        ann[ENQUEUED_TIME] = timestamp(m.enqueued_ms)
        if locked:
            ann[LOCKED_UNTIL] = timestamp(m.locked_until)
        if peek:
            ann[MESSAGE_STATE] = m.state
        if m.dead_letter_source:
            ann[DEAD_LETTER_SOURCE] = m.dead_letter_source
        if m.state == SCHEDULED and m.scheduled_ms:
            ann[SCHEDULED_ENQUEUE] = timestamp(m.scheduled_ms)
        out = [
            _codec.encode_section(_codec.HEADER, header),
            _codec.encode_section(_codec.MESSAGE_ANNOTATIONS, ann),
            m.parsed.raw_properties,
        ]
        if m.extra_properties:
            props = dict(m.parsed.application_properties)
            props.update(m.extra_properties)
            out.append(_codec.encode_section(_codec.APPLICATION_PROPERTIES, props))
        else:
            out.append(m.parsed.raw_application_properties)
        out.append(m.parsed.raw_rest)
        return b"".join(out)

    # -- configuration and admin ---------------------------------------------------
    def load_config(self, config: Mapping[str, Any]) -> None:
        """Create the entities of an emulator-style ``Config.json`` document."""
        user = config.get("UserConfig", config)
        for ns in user.get("Namespaces", []):
            for q in ns.get("Queues", []):
                self.ensure_queue(q["Name"], q.get("Properties") or {})
            for t in ns.get("Topics", []):
                self.ensure_topic(t["Name"])
                for s in t.get("Subscriptions", []):
                    rules = s.get("Rules")
                    self.ensure_subscription(
                        t["Name"], s["Name"], s.get("Properties") or {}, rules if rules else None
                    )

    def admin(self, operation: str, body: Mapping[str, Any]) -> Any:
        """The test broker's own entity administration (see ``TestBrokerEntities``)."""
        if operation == "ensure-queue":
            return self._describe(self.ensure_queue(body["Name"], body.get("Properties") or {}))
        if operation == "ensure-topic":
            self.ensure_topic(body["Name"], body.get("Properties"))
            return {"Name": body["Name"]}
        if operation == "ensure-subscription":
            sub = self.ensure_subscription(
                body["Topic"], body["Name"], body.get("Properties") or {}, body.get("Rules")
            )
            return self._describe(sub)
        if operation == "get-subscription":
            return self._describe(self.resolve(f"{body['Topic']}/Subscriptions/{body['Name']}"))
        if operation == "get-queue":
            return self._describe(self.resolve(body["Name"]))
        if operation == "delete-subscription":
            if not self.delete_subscription(body["Topic"], body["Name"]):
                raise BrokerFault(NOT_FOUND, "no such subscription", 404)
            return {}
        raise BrokerFault("com.microsoft:argument-error", f"unknown admin operation {operation!r}")

    @staticmethod
    def _describe(e: Entity | Topic) -> dict[str, Any]:
        if isinstance(e, Topic):
            return {
                "Name": e.path,
                "Subscriptions": sorted(s.path for s in e.subscriptions.values()),
            }
        return {
            "Name": e.path,
            "Properties": e.properties(),
            "Rules": [r.as_config() for r in e.rules],
            "Counts": e.counts(),
        }


def _flag(value: Any) -> bool:
    return value is True or str(value).strip().lower() == "true"


def normalize(address: str) -> str:
    """``amqps://host:port/a/b`` or ``/a/b`` -> ``a/b``."""
    if "://" in address:
        address = address.split("://", 1)[1]
        address = address.split("/", 1)[1] if "/" in address else ""
    return address.strip("/")


__all__ = [
    "ACTIVE",
    "DEFERRED",
    "SCHEDULED",
    "BrokerFault",
    "Entity",
    "Rule",
    "Session",
    "Store",
    "Stored",
    "Topic",
    "normalize",
    "parse_duration",
    "session_id_of",
]
