"""Fixtures for the Kafka tests: adapters and a plain producer on the test broker.

The broker (``kafka_bootstrap``, ``kafka_settings``: Tansu for the session, or
``EVENTBUS_KAFKA_BOOTSTRAP``) comes from ``tests/_brokers/kafka.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from eventbus_kafka import KafkaAdapter, KafkaSettings, topic_for


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
        futures = admin.create_topics([NewTopic(topic, num_partitions=kafka_settings.partitions,
                                                replication_factor=-1)])  # fmt: skip
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
