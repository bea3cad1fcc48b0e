"""Kafka-specific behaviour on a real broker: the wire format, retry and dead-letter topics,
key order across retries, start offsets, foreign records, errors."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from eventbus_kafka import KafkaAdapter, KafkaSettings, dead_topic, retry_topic, topic_for

from eventbus import (
    BrokerUnavailable,
    ClosedError,
    Event,
    EventBus,
    Message,
    MessageTooLarge,
    RetryPolicy,
    encode,
)
from eventbus.testing import Collector, eventually

pytestmark = pytest.mark.kafka


def test_records_follow_the_cloudevents_kafka_binding(
    buses: Callable[..., EventBus],
    kafka_settings: KafkaSettings,
    word: str,
    read_topic: Callable[..., list[Any]],
) -> None:
    from cloudevents.core.bindings.kafka import KafkaMessage, from_binary
    from cloudevents.core.formats.json import JSONFormat

    bus = buses()
    sent = bus.publish(
        f"{word}.created",
        {"id": 7, "user": "Ana"},
        key="order-7",
        subject="orders/7",
        extensions={"tenant": "acme"},
    ).event
    (record,) = read_topic(topic_for(f"{word}.created", kafka_settings.prefix), 1)
    headers = dict(record.headers())
    assert headers["ce_id"] == sent.id.encode() and headers["ce_specversion"] == b"1.0"
    assert headers["content-type"] == b"application/json"
    assert headers["ce_tenant"] == b"acme" and headers["ce_subject"] == b"orders/7"
    assert record.key() == b"order-7"
    assert json.loads(record.value()) == {"id": 7, "user": "Ana"}
    # the CloudEvents SDK reads it as the same event
    ce = from_binary(KafkaMessage(headers, record.key(), record.value()), JSONFormat())
    assert (ce.get_id(), ce.get_type(), ce.get_source(), ce.get_extension("tenant")) == (
        sent.id,
        sent.type,
        sent.source,
        "acme",
    )
    assert ce.get_data() == {"id": 7, "user": "Ana"} and ce.get_time() == sent.time


def test_records_written_by_the_cloudevents_sdk_are_consumed(
    buses: Callable[..., EventBus], raw_producer: Callable[..., None], word: str
) -> None:
    from cloudevents.core.bindings.kafka import to_binary
    from cloudevents.core.formats.json import JSONFormat
    from cloudevents.core.v1.event import CloudEvent

    bus = buses()
    got = Collector()
    bus.subscribe(f"{word}.*", got, group=f"{word}-sdk")
    bus.declare()
    bus.start()
    ce = CloudEvent(
        {
            "type": f"{word}.made",
            "source": "/other",
            "id": "sdk-1",
            "specversion": "1.0",
            "datacontenttype": "application/json",
            "partitionkey": "p1",
        },
        {"n": 1},
    )
    msg = to_binary(ce, JSONFormat())
    key = msg.key.encode() if isinstance(msg.key, str) else msg.key
    raw_producer(f"{word}.made", msg.value, list(msg.headers.items()), key)
    (event,) = got.wait(1)
    assert (event.id, event.source, event.data, event.key) == ("sdk-1", "/other", {"n": 1}, "p1")
    assert event.time == ce.get_time()


def test_retries_go_through_the_retry_topic_with_growing_attempt(
    buses: Callable[..., EventBus],
    kafka_settings: KafkaSettings,
    word: str,
    read_topic: Callable[..., list[Any]],
) -> None:
    bus = buses(local_retries=0)  # every retry through the retry topic
    got = Collector(fail=lambda e: e.attempt < 3)
    group = f"{word}-retry"
    bus.subscribe(f"{word}.*", got, group=group)
    bus.declare()
    bus.start()
    ids = {r.id for r in bus.publish_many(bus.event(f"{word}.x", {"i": i}) for i in range(5))}
    got.wait_until(lambda evs: {e.id for e in evs if e.attempt == 3} >= ids)
    attempts: dict[str, list[int]] = {}
    for e in got.events:
        attempts.setdefault(e.id, []).append(e.attempt)
    assert all(attempts[i] == [1, 2, 3] for i in ids), attempts
    copies = read_topic(retry_topic(kafka_settings.prefix, group), 10)
    assert len(copies) == 10  # attempts 2 and 3 of five events
    h = dict(copies[0].headers())
    assert h["eventbus-topic"] == f"{word}.x".encode() and h["eventbus-attempt"] in (b"2", b"3")
    assert int(h["eventbus-due"]) > 0 and b"ce_id" in {k.encode() for k in h}


def test_dead_letter_topic_keeps_the_record_and_the_reason(
    buses: Callable[..., EventBus],
    kafka_settings: KafkaSettings,
    word: str,
    read_topic: Callable[..., list[Any]],
) -> None:
    bus = buses()
    group = f"{word}-dead"
    bus.subscribe(f"{word}.*", Collector(fail=lambda e: True), group=group)
    bus.declare()
    bus.start()
    sent = bus.publish(f"{word}.bad", b"\x00\x01payload", key="k1").event
    letters = eventually(lambda: bus.adapter.dead_letters(group), what="a dead letter")
    (delivery, reason), *rest = letters
    assert not rest
    assert "RuntimeError" in reason and "attempt 3 of 3" in reason
    assert delivery.attempt == 3 and delivery.message.topic == f"{word}.bad"
    assert delivery.message.headers["id"] == sent.id and delivery.message.key == "k1"
    (record,) = read_topic(dead_topic(kafka_settings.prefix, group), 1)
    assert record.value() == b"\x00\x01payload" and record.key() == b"k1"
    h = dict(record.headers())
    assert h["eventbus-group"] == group.encode() and b"RuntimeError" in h["eventbus-reason"]


def test_in_process_retry_keeps_the_key_in_order(buses: Callable[..., EventBus], word: str) -> None:
    bus = buses()
    got = Collector(fail=lambda e: e.data["n"] == 0 and e.attempt < 3)
    bus.subscribe(f"{word}.*", got, group=f"{word}-order")
    bus.declare()
    bus.start()
    bus.publish_many(bus.event(f"{word}.x", {"n": n}, key="same") for n in range(6))
    got.wait(8)
    assert [(e.data["n"], e.attempt) for e in got.events] == [
        (0, 1),
        (0, 2),
        (0, 3),
        (1, 1),
        (2, 1),
        (3, 1),
        (4, 1),
        (5, 1),
    ]


def test_a_poison_event_does_not_stall_its_key_for_ever(
    buses: Callable[..., EventBus], word: str
) -> None:
    # two in-process retries, then the retry topic: the key's later events go on
    slow = RetryPolicy(max_attempts=4, initial_delay=0.05, max_delay=2.0, multiplier=1, jitter=0)
    bus = buses(retry=slow, local_retries=1)
    got = Collector(fail=lambda e: e.data["n"] == 0)
    group = f"{word}-poison"
    bus.subscribe(f"{word}.*", got, group=group)
    bus.declare()
    bus.start()
    bus.publish_many(bus.event(f"{word}.x", {"n": n}, key="same") for n in range(5))
    got.wait_until(lambda evs: {e.data["n"] for e in evs} >= {1, 2, 3, 4})
    good = [e.data["n"] for e in got.events if e.data["n"]]
    assert good == [1, 2, 3, 4]  # in order, and not behind the poison's last attempts
    eventually(lambda: bus.adapter.dead_letters(group), what="the poison's dead letter")
    assert [e.attempt for e in got.events if e.data["n"] == 0] == [1, 2, 3, 4]


def test_foreign_records_are_dead_lettered_and_the_worker_goes_on(
    buses: Callable[..., EventBus], raw_producer: Callable[..., None], word: str
) -> None:
    bus = buses()
    got = Collector()
    group = f"{word}-foreign"
    bus.subscribe(f"{word}.*", got, group=group)
    bus.declare()
    bus.start()
    raw_producer(f"{word}.raw", b"")  # an empty record, no headers
    raw_producer(f"{word}.raw", b"{}", [("ce_id", b"\xff\xfe"), ("ce_type", None)], b"\xff")
    raw_producer(
        f"{word}.raw",
        b"not json",
        [
            ("ce_id", b"1"),
            ("ce_source", b"/x"),
            ("ce_type", f"{word}.raw".encode()),
            ("ce_specversion", b"1.0"),
            ("content-type", b"application/json"),
        ],
    )
    ok = bus.publish(f"{word}.ok", {"fine": True}).id
    got.wait_until(lambda evs: any(e.id == ok for e in evs))
    letters = eventually(lambda: len(bus.adapter.dead_letters(group)) >= 3 or None)
    assert letters
    reasons = [r for _, r in bus.adapter.dead_letters(group)]
    assert all(r.startswith("undecodable") for r in reasons), reasons
    assert [e.id for e in got.events] == [ok]


def test_a_new_group_starts_where_it_was_declared(
    buses: Callable[..., EventBus], kafka_settings: KafkaSettings, word: str
) -> None:
    publisher = buses()
    for i in range(3):  # one record per publish: Tansu reports wrong ends for bigger batches
        publisher.publish(f"{word}.x", {"old": i})
    declared, earliest = Collector(), Collector()
    a = buses()
    a.subscribe(f"{word}.x", declared, group=f"{word}-declared")
    b = buses(start="earliest")
    b.subscribe(f"{word}.x", earliest, group=f"{word}-earliest")
    a.declare()
    b.declare()
    new = publisher.publish(f"{word}.x", {"new": True}).id
    a.start()
    b.start()
    assert [e.id for e in declared.wait(1)] == [new]
    assert len(earliest.wait(4)) == 4
    # a second member of the group, declared later, does not move the group's offsets
    again = buses()
    again.subscribe(f"{word}.x", declared, group=f"{word}-declared")
    again.declare()
    publisher.publish(f"{word}.x", {"after": True})
    declared.wait(2)


def test_a_topic_created_elsewhere_is_found_by_a_running_wildcard(
    buses: Callable[..., EventBus], raw_producer: Callable[..., None], word: str
) -> None:
    bus = buses()
    got = Collector()
    bus.subscribe(f"{word}.#", got, group=f"{word}-late")
    bus.declare()
    bus.start()
    got_first = bus.publish(f"{word}.first", {}).id
    got.wait(1)
    # created with the plain SDK: the adapter learns of it by its metadata refresh
    headers = [
        ("ce_id", b"late-1"),
        ("ce_source", b"/other"),
        ("ce_specversion", b"1.0"),
        ("ce_type", f"{word}.later.topic".encode()),
        ("content-type", b"text/plain"),
    ]
    raw_producer(f"{word}.later.topic", b"hello", headers)
    events = got.wait(2)
    assert events[0].id == got_first
    late = events[1]
    assert (late.id, late.type, late.data) == ("late-1", f"{word}.later.topic", "hello")


def test_unusual_event_types_round_trip(buses: Callable[..., EventBus], word: str) -> None:
    bus = buses()
    got = Collector()
    bus.subscribe(f"{word}.*.créée", got, group=f"{word}-types")
    bus.declare()
    bus.start()
    types = [f"{word}.commande.créée", f"{word}.user_x.créée", f"{word}.a b.créée"]
    bus.publish_many(bus.event(t, {"t": t}) for t in types)
    assert sorted(e.type for e in got.wait(3)) == sorted(types)


def test_prefixes_keep_buses_apart(buses: Callable[..., EventBus], word: str) -> None:
    one, two = Collector(), Collector()
    a, b = buses(prefix=f"{word}a."), buses(prefix=f"{word}b.")
    a.subscribe("order.#", one, group="billing")
    b.subscribe("order.#", two, group="billing")
    a.declare()
    b.declare()
    a.start()
    b.start()
    ida = a.publish("order.created", {"bus": "a"}).id
    idb = b.publish("order.created", {"bus": "b"}).id
    assert [e.id for e in one.wait(1)] == [ida]
    assert [e.id for e in two.wait(1)] == [idb]


def test_publish_errors_are_ours(make_adapter: Callable[..., KafkaAdapter], word: str) -> None:
    message = encode(Event(type=f"{word}.x", data={}, source="/t"))
    dead = make_adapter(bootstrap_servers="127.0.0.1:9", publish_timeout=1.5)
    started = time.monotonic()
    with pytest.raises(BrokerUnavailable) as info:
        dead.publish([message])
    assert time.monotonic() - started < 10
    assert info.value.__cause__ is not None or "kafka" in str(info.value)
    small = make_adapter(max_message_size=1024)  # producer takes 1024 + 64 KiB at most
    big = Message(topic=f"{word}.x", body=b"x" * 200_000, headers=dict(message.headers))
    with pytest.raises(MessageTooLarge):
        small.publish([big])


def test_close_is_idempotent_and_final(
    make_adapter: Callable[..., KafkaAdapter], word: str
) -> None:
    a = make_adapter()
    c = a.consumer(f"{word}-close", [f"{word}.x"])
    assert c.receive(10, 0.1) == []
    c.close()
    c.close()
    with pytest.raises(ClosedError):
        c.receive(1, 0.1)
    a.close()
    a.close()
    with pytest.raises(ClosedError):
        a.publish([encode(Event(type=f"{word}.x", data={}, source="/t"))])


def test_topic_creation_policy(
    make_adapter: Callable[..., KafkaAdapter], kafka_settings: KafkaSettings, word: str
) -> None:
    a = make_adapter(create_topics=False)
    a.declare(f"{word}-policy", [f"{word}.exact"])
    topics = a.admin().list_topics(timeout=10).topics
    assert topic_for(f"{word}.exact", kafka_settings.prefix) not in topics
    assert retry_topic(kafka_settings.prefix, f"{word}-policy") in topics  # always ours
    assert dead_topic(kafka_settings.prefix, f"{word}-policy") in topics
    b = make_adapter(partitions=3)
    b.declare(f"{word}-policy2", [f"{word}.made"])
    meta = b.admin().list_topics(timeout=10).topics[topic_for(f"{word}.made", b.settings.prefix)]
    assert len(meta.partitions) == 3
