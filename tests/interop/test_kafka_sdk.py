"""CloudEvents interop on Kafka: eventbus <-> the official ``cloudevents`` SDK.

The SDK's Kafka binding (``cloudevents.core.bindings.kafka``) reads records that
eventbus published (binary mode: ``ce_`` headers, ``content-type``, the record
key; structured mode: one JSON document), and records the SDK made, put on the
broker with the plain confluent-kafka producer, are handled by an eventbus handler.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Any

import pytest
from cloudevents.core.bindings import kafka as ce_kafka
from cloudevents.core.v1.event import CloudEvent

from eventbus import Event, EventBus

from .conftest import wait_for

pytestmark = pytest.mark.kafka

confluent_kafka = pytest.importorskip("confluent_kafka")


def _read_one(settings: Any, event_type: str, timeout: float = 30.0) -> Any:
    """The first record on ``event_type``'s topic, read with the plain SDK."""
    from eventbus_kafka import topic_for

    consumer = confluent_kafka.Consumer(
        {
            "bootstrap.servers": settings.bootstrap_servers,
            "group.id": f"interop-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "session.timeout.ms": 6000,
        }
    )
    try:
        consumer.subscribe([topic_for(event_type, settings.prefix)])
        got: list[Any] = []

        def poll() -> bool:
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                got.append(msg)
            return bool(got)

        wait_for(poll, timeout, f"a record of {event_type}")
        return got[0]
    finally:
        consumer.close()


def _as_sdk_message(record: Any) -> Any:
    return ce_kafka.KafkaMessage(
        headers={k: v for k, v in (record.headers() or [])},
        key=record.key(),
        value=record.value(),
    )


@pytest.mark.parametrize("mode", ["binary", "structured"])
def test_an_eventbus_event_is_read_by_the_sdk(
    make_kafka: Any, kafka_settings: Any, mode: str
) -> None:
    event_type = f"interop.k{uuid.uuid4().hex[:6]}.created"
    data = {"id": 7, "user": "Ana", "total": 42.9, "note": "ação ✓"}
    with EventBus(make_kafka(), source="//shop/orders", content_mode=mode) as bus:
        result = bus.publish(
            event_type,
            data,
            key="order-7",
            subject="orders/7",
            correlationid="corr-1",
            extensions={"tenant": "acme"},
        )
    record = _read_one(kafka_settings, event_type)
    ce = ce_kafka.from_kafka_event(_as_sdk_message(record))
    assert ce.get_id() == result.id
    assert ce.get_type() == event_type
    assert ce.get_source() == "//shop/orders"
    assert ce.get_specversion() == "1.0"
    assert ce.get_subject() == "orders/7"
    assert ce.get_data() == data
    assert ce.get_time() == result.event.time
    assert ce.get_extension("correlationid") == "corr-1"
    assert ce.get_extension("tenant") == "acme"
    assert ce.get_extension("partitionkey") == "order-7"
    assert record.key() == b"order-7"
    headers = dict(record.headers() or [])
    if mode == "binary":
        assert headers["ce_id"] == result.id.encode()
        assert headers["content-type"] == b"application/json"
    else:
        assert headers == {"content-type": b"application/cloudevents+json; charset=utf-8"}


@pytest.mark.parametrize("mode", ["binary", "structured"])
def test_an_sdk_event_is_handled_by_eventbus(
    make_kafka: Any, kafka_settings: Any, mode: str
) -> None:
    from eventbus_kafka import topic_for

    event_type = f"interop.k{uuid.uuid4().hex[:6]}.paid"
    ce = CloudEvent(
        attributes={
            "type": event_type,
            "source": "https://example.com/payments",
            "subject": "invoice/9",
            "correlationid": "corr-9",
            "partitionkey": "customer-3",
            "time": datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=timezone.utc),
        },
        data={"invoice": 9, "amount": 12.5},
    )
    wire = ce_kafka.to_binary_event(ce) if mode == "binary" else ce_kafka.to_structured_event(ce)
    got: list[Event] = []
    bus = EventBus(make_kafka())
    bus.subscribe(event_type, got.append, group=f"interop-{uuid.uuid4().hex[:6]}")
    bus.start()  # declares the group: it gets what is produced from now on
    try:
        producer = confluent_kafka.Producer({"bootstrap.servers": kafka_settings.bootstrap_servers})
        producer.produce(
            topic_for(event_type, kafka_settings.prefix),
            wire.value,
            wire.key,
            headers=list(wire.headers.items()),
        )
        assert producer.flush(15) == 0
        wait_for(lambda: bool(got), 30, "the SDK's event")
    finally:
        bus.close()
    event = got[0]
    assert event.id == ce.get_id()
    assert event.type == event_type
    assert event.source == "https://example.com/payments"
    assert event.subject == "invoice/9"
    assert event.correlationid == "corr-9"
    assert event.key == "customer-3"
    assert event.time == ce.get_time()
    assert event.data == {"invoice": 9, "amount": 12.5}
    assert event.attempt == 1
