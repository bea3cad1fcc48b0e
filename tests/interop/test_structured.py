"""CloudEvents structured content mode on the embedded brokers, checked with the SDK.

A bus with ``content_mode="structured"`` puts the whole event in the body as
``application/cloudevents+json``; the SDK's JSON event format reads it, and an
SDK-written structured event put on the broker raw is handled by a plain bus.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from eventbus import (
    Adapter,
    DecodeError,
    Event,
    EventBus,
    MemoryAdapter,
    Message,
    decode,
    encode,
    from_structured,
    to_structured,
)

from .conftest import wait_for

#: the content type of a structured-mode message (CloudEvents JSON format)
STRUCTURED = "application/cloudevents+json; charset=utf-8"


@pytest.fixture(
    params=[
        pytest.param("memory", marks=pytest.mark.memory),
        pytest.param("sqlite", marks=pytest.mark.sqlite),
    ]
)
def adapter(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Adapter]:
    from eventbus import SqliteAdapter

    a: Adapter = (
        MemoryAdapter() if request.param == "memory" else SqliteAdapter(tmp_path / "bus.db")
    )
    yield a
    a.close()


def _raw(adapter: Adapter, group: str) -> Message:
    consumer = adapter.consumer(group, ["#"])
    try:
        got: list[Any] = []
        wait_for(lambda: bool(got.extend(consumer.receive(1, 0.2)) or got), 10, "a message")
        consumer.ack(got)
        return got[0].message  # type: ignore[no-any-return]
    finally:
        consumer.close()


def test_a_structured_event_is_one_json_document_the_sdk_reads(adapter: Adapter) -> None:
    group = f"raw-{uuid.uuid4().hex[:6]}"
    adapter.declare(group, ["#"])
    bus = EventBus(adapter, source="//shop/orders", content_mode="structured")
    result = bus.publish(
        "order.created",
        {"id": 1, "total": 42.9},
        key="k1",
        correlationid="c1",
        extensions={"tenant": "acme"},
    )
    message = _raw(adapter, group)
    assert message.headers == {"datacontenttype": STRUCTURED}
    ce = JSONFormat().read(CloudEvent, message.body)
    assert ce.get_id() == result.id
    assert ce.get_type() == "order.created"
    assert ce.get_source() == "//shop/orders"
    assert ce.get_time() == result.event.time
    assert ce.get_data() == {"id": 1, "total": 42.9}
    assert ce.get_extension("correlationid") == "c1"
    assert ce.get_extension("partitionkey") == "k1"
    assert ce.get_extension("tenant") == "acme"
    assert decode(message) == decode(encode(result.event))


def test_an_sdk_structured_event_is_handled_by_a_plain_bus(adapter: Adapter) -> None:
    ce = CloudEvent(
        attributes={
            "type": "payment.received",
            "source": "https://pay.example",
            "subject": "p/1",
            "traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01",
        },
        data={"amount": 3},
    )
    got: list[Event] = []
    bus = EventBus(adapter)
    bus.subscribe("payment.*", got.append, group=f"g-{uuid.uuid4().hex[:6]}")
    bus.start()
    try:
        adapter.publish(
            [
                Message(
                    "payment.received",
                    JSONFormat().write(ce),
                    {"datacontenttype": JSONFormat().get_content_type()},
                )
            ]
        )
        wait_for(lambda: bool(got), 10, "the SDK's event")
    finally:
        bus.close()
    event = got[0]
    assert (event.id, event.type, event.source, event.subject) == (
        ce.get_id(),
        "payment.received",
        "https://pay.example",
        "p/1",
    )
    assert event.traceparent == ce.get_extension("traceparent")
    assert event.time == ce.get_time()
    assert event.data == {"amount": 3}


@pytest.mark.memory
@pytest.mark.parametrize(
    "data, content_type",
    [
        ({"a": [1, 2, {"b": None}]}, None),
        ("plain text ✓", None),
        (b"\x00\xffbinary", None),
        (b"not json", "application/json"),  # bytes the sender called JSON: kept byte-exact
        (None, None),
        ("<a/>", "application/xml"),
    ],
)
def test_structured_round_trip_is_exact(data: Any, content_type: str | None) -> None:
    binary = encode(
        Event(
            type="a.b",
            data=data,
            source="s",
            datacontenttype=content_type,
            key="k",
            extensions={"n": "1"},
        )
    )
    message = to_structured(binary)
    doc = json.loads(message.body)
    if isinstance(data, bytes):
        assert base64.b64decode(doc["data_base64"]) == data
    back = from_structured(message)
    assert (back.topic, back.body, back.headers, back.key) == (
        binary.topic,
        binary.body,
        binary.headers,
        binary.key,
    )


@pytest.mark.memory
@pytest.mark.parametrize(
    "body, why",
    [
        (b"[1, 2]", "not an object"),
        (b"{nope", "not valid JSON"),
        (b"\xff\xfe", "not UTF-8"),
        (b'{"id": "1", "source": "s", "type": "a", "specversion": "1.0", "x": 1.5}', "'x'"),
        (
            b'{"id": "1", "source": "s", "type": "a", "specversion": "1.0", "data_base64": "%%%"}',
            "base64",
        ),
        (b'{"source": "s", "type": "a", "specversion": "1.0"}', "'id'"),
    ],
)
def test_a_bad_structured_message_is_a_decode_error(body: bytes, why: str) -> None:
    message = Message("a", body, {"datacontenttype": "application/cloudevents+json"})
    with pytest.raises(DecodeError, match=why):
        decode(message)


@pytest.mark.memory
def test_typed_attributes_of_the_json_format_become_strings() -> None:
    body = (
        b'{"id": "1", "source": "s", "type": "a.b", "specversion": "1.0", '
        b'"flag": true, "count": 3, "gone": null}'
    )
    event = decode(Message("a.b", body, {"datacontenttype": "application/cloudevents+json"}))
    assert event.extensions == {"flag": "true", "count": "3"}
    assert event.data is None


@pytest.mark.memory
def test_content_mode_is_checked() -> None:
    from eventbus import ConfigError

    with pytest.raises(ConfigError, match="binary"):
        EventBus(MemoryAdapter(), content_mode="json")
