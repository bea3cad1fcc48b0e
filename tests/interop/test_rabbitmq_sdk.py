"""CloudEvents interop on RabbitMQ: eventbus <-> the official ``cloudevents`` SDK.

The SDK's AMQP binding (``cloudevents.core.bindings.amqp``: ``cloudEvents_`` /
``cloudEvents:`` application properties, ``content-type``) reads messages that
eventbus published, taken off the broker with plain pika, and messages the SDK
made, published with plain pika, are handled by an eventbus handler.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Any

import pika
import pytest
from cloudevents.core.bindings import amqp as ce_amqp
from cloudevents.core.v1.event import CloudEvent

from eventbus import Event, EventBus

from .conftest import wait_for

pytestmark = pytest.mark.rabbitmq


def _tap(channel: Any, exchange: str, routing_key: str) -> str:
    """A server-named, exclusive queue on ``exchange`` for ``routing_key`` (gone with us)."""
    q = channel.queue_declare("", exclusive=True, auto_delete=True).method.queue
    channel.queue_bind(q, exchange, routing_key=routing_key)
    return str(q)


def _get_one(channel: Any, queue: str) -> tuple[Any, Any, bytes]:
    got: list[tuple[Any, Any, bytes]] = []

    def poll() -> bool:
        method, props, body = channel.basic_get(queue, auto_ack=True)
        if method is not None:
            got.append((method, props, body))
        return bool(got)

    wait_for(poll, 20, f"a message on {queue}")
    return got[0]


@pytest.mark.parametrize("mode", ["binary", "structured"])
def test_an_eventbus_event_is_read_by_the_sdk(
    make_rabbitmq: Any, raw_channel: Any, exchange: str, mode: str
) -> None:
    event_type = f"interop.r{uuid.uuid4().hex[:6]}.created"
    data = {"id": 7, "user": "Ana", "total": 42.9, "note": "ação ✓"}
    adapter = make_rabbitmq()
    adapter.declare(f"interop-{uuid.uuid4().hex[:6]}", ["interop.nothing"])  # the exchange exists
    queue = _tap(raw_channel, exchange, event_type)
    with EventBus(adapter, source="//shop/orders", content_mode=mode) as bus:
        result = bus.publish(
            event_type,
            data,
            key="order-7",
            subject="orders/7",
            correlationid="corr-1",
            extensions={"tenant": "acme"},
        )
    method, props, body = _get_one(raw_channel, queue)
    message = ce_amqp.AMQPMessage(
        properties={"content-type": props.content_type},
        application_properties=dict(props.headers or {}),
        application_data=body,
    )
    ce = ce_amqp.from_amqp_event(message)
    assert ce.get_id() == result.id
    assert ce.get_type() == event_type
    assert ce.get_source() == "//shop/orders"
    assert ce.get_subject() == "orders/7"
    assert ce.get_data() == data
    assert ce.get_time() == result.event.time
    assert ce.get_extension("correlationid") == "corr-1"
    assert ce.get_extension("tenant") == "acme"
    assert ce.get_extension("partitionkey") == "order-7"
    assert method.routing_key == event_type
    if mode == "binary":
        assert props.headers["cloudEvents:id"] == result.id
        assert props.content_type == "application/json"
    else:
        assert props.content_type == "application/cloudevents+json; charset=utf-8"
        assert not [h for h in props.headers or {} if h.startswith("cloudEvents")]


@pytest.mark.parametrize("mode", ["binary", "structured"])
def test_an_sdk_event_is_handled_by_eventbus(
    make_rabbitmq: Any, raw_channel: Any, exchange: str, mode: str
) -> None:
    event_type = f"interop.r{uuid.uuid4().hex[:6]}.paid"
    ce = CloudEvent(
        attributes={
            "type": event_type,
            "source": "https://example.com/payments",
            "subject": "invoice/9",
            "correlationid": "corr-9",
            "time": datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=timezone.utc),
        },
        data={"invoice": 9, "amount": 12.5},
    )
    wire = ce_amqp.to_binary_event(ce) if mode == "binary" else ce_amqp.to_structured_event(ce)
    got: list[Event] = []
    bus = EventBus(make_rabbitmq())
    bus.subscribe(event_type, got.append, group=f"interop-{uuid.uuid4().hex[:6]}")
    bus.start()  # declares the group's queue before the SDK's message goes out
    try:
        raw_channel.basic_publish(
            exchange,
            event_type,
            wire.application_data,
            pika.BasicProperties(
                content_type=wire.properties.get("content-type"),
                headers=dict(wire.application_properties),
                delivery_mode=2,
            ),
        )
        wait_for(lambda: bool(got), 20, "the SDK's event")
    finally:
        bus.close()
    event = got[0]
    assert event.id == ce.get_id()
    assert event.type == event_type
    assert event.source == "https://example.com/payments"
    assert event.subject == "invoice/9"
    assert event.correlationid == "corr-9"
    assert event.time == ce.get_time()
    assert event.data == {"invoice": 9, "amount": 12.5}
