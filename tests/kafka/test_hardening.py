"""Hardening (issue #17): what must never stop a partition, a worker or a deploy."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import confluent_kafka
import pytest
from eventbus_kafka import KafkaAdapter, KafkaSettings, dead_topic, retry_topic, topic_for

from eventbus import BusConfig, ConfigError, EncodeError, EventBus, RetryPolicy
from eventbus.adapter import H_REASON, H_SIZE
from eventbus.testing import Collector, eventually

pytestmark = pytest.mark.kafka


def foreign_producer(settings: KafkaSettings, topic: str) -> Any:
    """A producer of another application, allowed records of up to 8 MiB."""
    from confluent_kafka.admin import AdminClient, NewTopic

    base = {"bootstrap.servers": settings.bootstrap_servers}
    admin = AdminClient(base)
    for f in admin.create_topics([NewTopic(topic, 1, -1)]).values():
        f.result()
    return confluent_kafka.Producer({**base, "message.max.bytes": 8 << 20})


@pytest.mark.parametrize("local_retries", [3, 0])
def test_an_oversized_foreign_record_is_dead_lettered_cut_and_the_partition_goes_on(
    buses: Callable[..., EventBus],
    kafka_settings: KafkaSettings,
    word: str,
    local_retries: int,
    read_topic: Callable[..., list[Any]],
) -> None:
    # local_retries=0: the failed handler's retry goes to the retry topic first, where
    # the record cannot be copied either, so it is dead-lettered cut from there
    event_type = f"{word}.big"
    topic = topic_for(event_type, kafka_settings.prefix)
    producer = foreign_producer(kafka_settings, topic)
    bus = buses(local_retries=local_retries)
    got = Collector(fail=lambda e: e.id == "big-1")
    group = f"{word}-big"
    bus.subscribe(event_type, got, group=group)
    bus.declare()
    bus.start()
    big = b'{"big": true, "pad": "' + b"x" * (5 << 20) + b'"}'
    headers = [
        ("ce_id", b"big-1"),
        ("ce_source", b"/other"),
        ("ce_type", event_type.encode()),
        ("ce_specversion", b"1.0"),
        ("content-type", b"application/json"),
    ]
    producer.produce(topic, big, b"k", headers=headers)
    producer.produce(topic, b'{"n": 1}', b"k", headers=[*headers[1:], ("ce_id", b"small-1")])
    assert producer.flush(15) == 0
    eventually(
        lambda: any(e.id == "small-1" for e in got.events),
        timeout=30,
        what="the record after the oversized one",
    )
    (record,) = read_topic(dead_topic(kafka_settings.prefix, group), 1)
    h = dict(record.headers())
    assert int(h[H_SIZE]) == len(big)
    assert len(record.value()) < kafka_settings.max_message_size
    assert b"too large" in h[H_REASON]
    assert h["eventbus-source-topic"] == topic.encode()
    assert (h["eventbus-source-partition"], h["eventbus-source-offset"]) == (b"0", b"0")
    (delivery, reason), *_ = eventually(lambda: bus.adapter.dead_letters(group), what="a letter")
    assert delivery.message.headers["id"] == "big-1" and "too large" in reason


def test_a_paused_retry_topic_is_resumed_after_a_rebalance(
    buses: Callable[..., EventBus], word: str
) -> None:
    # max_held=2: the member pauses its retry topic while more than 2 retries wait for
    # their time; a second member joining then revokes and re-assigns every partition.
    # librdkafka keeps an application's pause across that, so a member that forgot it
    # had paused never read those retry partitions again.
    later = RetryPolicy(max_attempts=3, initial_delay=4.0, max_delay=4.0, jitter=0.0)
    first, second = (
        buses(retry=later, local_retries=0, max_held=2),
        buses(retry=later, local_retries=0, max_held=2),
    )
    got = Collector(fail=lambda e: e.attempt == 1)
    group = f"{word}-pause"
    first.subscribe(f"{word}.*", got, group=group)
    second.subscribe(f"{word}.*", got, group=group)
    first.declare()
    first.start()
    sent = {
        r.id
        for r in first.publish_many(
            first.event(f"{word}.x", {"n": n}, key=f"k{n}") for n in range(12)
        )
    }
    eventually(lambda: {e.id for e in got.events} >= sent, timeout=30, what="first attempts")
    time.sleep(1.0)  # the retry copies are read and held: the retry topic is paused
    second.start()
    got.wait_until(lambda evs: {e.id for e in evs if e.attempt == 2} >= sent, idle=30)


def test_an_attribute_that_is_not_utf8_is_an_encode_error_and_nothing_is_sent(
    buses: Callable[..., EventBus],
    kafka_settings: KafkaSettings,
    word: str,
    read_topic: Callable[..., list[Any]],
) -> None:
    bus = buses()
    event_type = f"{word}.x"
    with pytest.raises(EncodeError, match="correlationid"):
        bus.publish(event_type, {"n": 0}, key="k", correlationid="\udc80")  # a lone surrogate
    with pytest.raises(EncodeError):
        bad = bus.event(event_type, {"n": 2}, key="k", correlationid="\udc80")
        bus.publish_many([bus.event(event_type, {"n": 1}, key="k"), bad])
    bus.publish(event_type, {"n": 3}, key="k")  # one key, one partition: the first record
    (first,) = read_topic(topic_for(event_type, kafka_settings.prefix), 1)
    assert json.loads(first.value()) == {"n": 3}


def test_without_creating_internal_topics_declare_checks_and_names_the_missing(
    make_adapter: Callable[..., KafkaAdapter], kafka_settings: KafkaSettings, word: str
) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    group = f"{word}-acl"
    a = make_adapter(create_topics=False, create_internal_topics=False)
    retry, dead = retry_topic(a.settings.prefix, group), dead_topic(a.settings.prefix, group)
    with pytest.raises(ConfigError, match="create_internal_topics") as info:
        a.declare(group, [f"{word}.x"])
    assert retry in str(info.value) and dead in str(info.value)
    admin = AdminClient({"bootstrap.servers": kafka_settings.bootstrap_servers})
    for f in admin.create_topics([NewTopic(retry, 2, -1), NewTopic(dead, 1, -1)]).values():
        f.result()
    eventually(
        lambda: {retry, dead} <= set(admin.list_topics(timeout=10).topics), what="the topics listed"
    )
    a.declare(group, [f"{word}.x"])  # they exist: nothing is created, nothing refused
    topics = admin.list_topics(timeout=10).topics
    assert topic_for(f"{word}.x", a.settings.prefix) not in topics
    assert len(topics[retry].partitions) == 2


def test_client_properties_win_over_the_producer_defaults_but_not_idempotence(
    make_adapter: Callable[..., KafkaAdapter], word: str
) -> None:
    a = make_adapter(
        client={
            "linger.ms": 50,
            "message.timeout.ms": 20_000,
            "enable.idempotence": False,
            "acks": "1",
        }
    )
    config = a.clients.producer_config()
    assert (config["linger.ms"], config["message.timeout.ms"]) == (50, 20_000)
    assert (config["enable.idempotence"], config["acks"]) == (True, "all")
    bus = EventBus(a, source="/tests/kafka")
    bus.publish(f"{word}.x", {"n": 1})  # the producer accepts the mix


def test_a_vanished_broker_is_logged_once_and_observable_and_so_is_its_return(
    kafka_restartable: Any, caplog: pytest.LogCaptureFixture, word: str
) -> None:
    from eventbus_test_brokers.kafka import settings_for

    adapter = KafkaAdapter(settings_for(kafka_restartable.bootstrap))
    bus = EventBus(adapter, source="/tests/kafka", config=BusConfig(poll_interval=0.2))
    got = Collector()
    bus.subscribe(f"{word}.*", got, group=f"{word}-health")
    bus.declare()
    bus.start()
    bus.publish(f"{word}.x", {"n": 1})
    got.wait(1)
    assert adapter.health()["up"]
    caplog.set_level("WARNING", logger="eventbus.kafka")
    kafka_restartable.stop()
    eventually(lambda: not adapter.health()["up"], timeout=30, what="the outage noticed")
    state = adapter.health()
    assert state["down_since"] is not None and state["error"]
    time.sleep(3)  # librdkafka keeps reporting the outage: still one warning
    down = [r for r in caplog.records if "do not answer" in r.getMessage()]
    assert len(down) == 1 and down[0].levelname == "WARNING"
    kafka_restartable.start()
    eventually(lambda: adapter.health()["up"], timeout=30, what="the return noticed")
    assert any("answer again" in r.getMessage() for r in caplog.records)
    bus.close()
