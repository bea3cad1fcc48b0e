"""Fixtures for the Kafka tests: adapters and a plain producer on the test broker.

The broker (``kafka_bootstrap``, ``kafka_settings``: Tansu for the session, or
``EVENTBUS_KAFKA_BOOTSTRAP``) comes from ``tests/_brokers/kafka.py``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from eventbus_kafka import KafkaAdapter, KafkaSettings, topic_for

from eventbus import BusConfig, EventBus, RetryPolicy


@pytest.fixture
def make_adapter(kafka_settings: KafkaSettings) -> Iterator[Callable[..., KafkaAdapter]]:
    """New adapters on the test broker (own clients each); closed after the test."""
    made: list[KafkaAdapter] = []

    def make(**changes: object) -> KafkaAdapter:
        a = KafkaAdapter(kafka_settings, **changes)
        made.append(a)
        return a

    yield make
    for a in reversed(made):
        a.close()


@pytest.fixture
def raw_producer(kafka_settings: KafkaSettings) -> Iterator[Callable[..., None]]:
    """Put a record on the broker with the plain SDK: ``(event type, value, headers, key)``."""
    import confluent_kafka
    from confluent_kafka.admin import AdminClient, NewTopic

    base = {"bootstrap.servers": kafka_settings.bootstrap_servers}
    producer = confluent_kafka.Producer(base)
    admin = AdminClient(base)

    def send(
        event_type: str, value: bytes, headers: object = None, key: bytes | None = None
    ) -> None:
        topic = topic_for(event_type, kafka_settings.prefix)
        futures = admin.create_topics(
            [NewTopic(topic, num_partitions=kafka_settings.partitions, replication_factor=-1)]
        )
        for f in futures.values():
            try:
                f.result()
            except confluent_kafka.KafkaException as exc:
                if exc.args[0].code() != confluent_kafka.KafkaError.TOPIC_ALREADY_EXISTS:
                    raise
        producer.produce(topic, value, key, headers=headers)
        assert producer.flush(15) == 0

    yield send
    producer.flush(5)


FAST = RetryPolicy(max_attempts=3, initial_delay=0.05, max_delay=0.3, jitter=0.0)


@pytest.fixture
def word() -> str:
    """A fresh word for the event types and groups of one test."""
    return "k" + uuid.uuid4().hex[:8]


@pytest.fixture
def buses(make_adapter: Callable[..., KafkaAdapter]) -> Iterator[Callable[..., EventBus]]:
    """New buses on new adapters (fast retries by default); closed after the test."""
    made: list[EventBus] = []

    def new(retry: RetryPolicy = FAST, **changes: Any) -> EventBus:
        config = BusConfig(prefetch=20, poll_interval=0.2, retry=retry)
        bus = EventBus(make_adapter(**changes), source="/tests/kafka", config=config)
        made.append(bus)
        return bus

    yield new
    for bus in made:
        bus.close()


@pytest.fixture
def read_topic(kafka_settings: KafkaSettings) -> Callable[..., list[Any]]:
    """``read_topic(topic, n, timeout=15)``: the first ``n`` records of ``topic``, read
    with the plain SDK (no group commits)."""
    import confluent_kafka
    from confluent_kafka import TopicPartition

    def read(topic: str, n: int, timeout: float = 15) -> list[Any]:
        c = confluent_kafka.Consumer(
            {
                "bootstrap.servers": kafka_settings.bootstrap_servers,
                "group.id": "reader-" + uuid.uuid4().hex,
                "enable.auto.commit": False,
            }
        )
        try:
            parts = c.list_topics(topic, timeout=10).topics[topic].partitions
            c.assign([TopicPartition(topic, p, confluent_kafka.OFFSET_BEGINNING) for p in parts])
            out: list[Any] = []
            deadline = time.monotonic() + timeout
            while len(out) < n and time.monotonic() < deadline:
                m = c.poll(0.2)
                if m is not None and m.error() is None:
                    out.append(m)
            return out
        finally:
            c.close()

    return read
