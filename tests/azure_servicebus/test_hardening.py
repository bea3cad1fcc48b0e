"""Service Bus hardening (issue #17): foreign events, bad attributes, duplicate detection,
large events, long filters, an unreachable namespace, Entra ID credentials."""

from __future__ import annotations

import json
import logging
import time
import uuid
from typing import Any

import pytest
from eventbus_azure_servicebus import ServiceBusAdapter, ServiceBusSettings, from_url

from eventbus import AdapterNotFound, EncodeError, Event, EventBus, decode, encode
from eventbus.adapter import make_message
from eventbus.testing import eventually

pytestmark = [pytest.mark.azure_servicebus]


def _group(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def _receive(consumer: Any, n: int, within: float = 20.0) -> list[Any]:
    got: list[Any] = []
    deadline = time.monotonic() + within
    while len(got) < n and time.monotonic() < deadline:
        got += consumer.receive(n - len(got), 0.5)
    return got


# -- #17.1: foreign structured-mode events, readable AMQP bodies -------------------------------
def test_a_foreign_structured_mode_event_is_decoded(servicebus: Any, make_adapter: Any) -> None:
    """Another CloudEvents producer in structured mode: no properties, the event in the body."""
    from azure.servicebus import ServiceBusMessage

    a = make_adapter()
    consumer = a.consumer(_group("structured"), ["structured.*"])
    doc = {
        "specversion": "1.0",
        "id": "s-1",
        "source": "/other",
        "type": "structured.created",
        "datacontenttype": "application/json",
        "data": {"a": 1},
    }
    with servicebus.client() as client, client.get_topic_sender(servicebus.topic) as sender:
        sender.send_messages(
            ServiceBusMessage(
                json.dumps(doc),
                subject="structured.created",
                content_type="application/cloudevents+json; charset=utf-8",
            )
        )
    (d,) = _receive(consumer, 1)
    event = decode(d.message, d.attempt)
    assert (event.id, event.source, event.type, event.data) == (
        "s-1",
        "/other",
        "structured.created",
        {"a": 1},
    )
    consumer.ack([d])
    consumer.close()


def test_dead_letters_show_amqp_value_and_sequence_bodies(
    servicebus: Any, make_adapter: Any
) -> None:
    from azure.servicebus.amqp import AmqpAnnotatedMessage

    topic = f"bodies-{uuid.uuid4().hex[:6]}"
    a = make_adapter(topic=topic)
    group = _group("bodies")
    consumer = a.consumer(group, ["#"])
    with servicebus.client() as client, client.get_topic_sender(topic) as sender:
        sender.send_messages(AmqpAnnotatedMessage(value_body={"not": "an event"}))
        sender.send_messages(AmqpAnnotatedMessage(sequence_body=[1, 2, "three"]))
    got = _receive(consumer, 2)
    assert len(got) == 2
    for d in got:
        consumer.dead_letter(d, "not an event")
    letters = eventually(lambda: (lambda d: len(d) >= 2 and d)(a.dead_letters(group)))
    bodies = sorted(d.message.body for d, _ in letters)
    assert bodies == sorted([b'{"not": "an event"}', b'[1, 2, "three"]'])
    consumer.close()


# -- #17.2: a lone surrogate is an EncodeError -------------------------------------------------
def test_a_lone_surrogate_in_an_attribute_is_an_encode_error(make_adapter: Any) -> None:
    a = make_adapter()
    consumer = a.consumer(_group("surrogate"), ["enc.*"])
    good = encode(Event(type="enc.bad", data=1, source="/t"))
    # what a core that let it through would hand the adapter (encode may refuse it first)
    bad = make_message("enc.bad", good.body, {**good.headers, "correlationid": "\udc80"})
    with pytest.raises(EncodeError):
        a.publish([bad])
    with pytest.raises(EncodeError):
        a.publish(
            [encode(Event(type="enc.bad", data=1, source="/t", extensions={"tenant": "\udc80"}))]
        )
    ok = encode(Event(type="enc.ok", data=1, source="/t"))
    a.publish([ok])  # the adapter goes on
    got = _receive(consumer, 1)
    assert [d.message.headers["id"] for d in got] == [ok.headers["id"]]
    consumer.ack(got)
    consumer.close()


# -- #17.6: retry and replay copies under duplicate detection ----------------------------------
def test_retry_and_replay_copies_pass_duplicate_detection(
    servicebus: Any, make_adapter: Any
) -> None:
    servicebus.require_test_broker()
    from eventbus_test_brokers.servicebus_broker import admin_request

    topic = f"dedup-{uuid.uuid4().hex[:6]}"
    admin_request(
        servicebus.connection_string,
        "ensure-topic",
        {
            "Name": topic,
            "Properties": {
                "RequiresDuplicateDetection": True,
                "DuplicateDetectionHistoryTimeWindow": "PT10M",
            },
        },
    )
    a = make_adapter(topic=topic)
    group = _group("dedup")
    consumer = a.consumer(group, ["dd.x"])
    event = encode(Event(type="dd.x", data=1, source="/t"))
    a.publish([event])
    a.publish([event])  # the same message id again: duplicate detection drops it
    (first,) = _receive(consumer, 1)
    consumer.nack(first, 0.2)  # a scheduled copy of the same event
    (retry,) = _receive(consumer, 1)
    assert retry.message.headers["id"] == event.headers["id"] and retry.attempt == 2
    consumer.dead_letter(retry, "to replay")
    eventually(lambda: a.dead_letters(group), what="the dead letter")
    assert a.replay_dead_letters(group) == 1
    (back,) = _receive(consumer, 1)
    assert back.message.headers["id"] == event.headers["id"]
    consumer.ack([back])
    assert consumer.receive(10, 0.5) == []
    consumer.close()


# -- #17.7: events over the 1 MB batch cap go alone (Premium) ----------------------------------
def test_events_over_the_batch_cap_are_sent_alone_on_premium() -> None:
    from eventbus_test_brokers.servicebus import start_test_broker
    from eventbus_test_brokers.servicebus_broker import TestBrokerEntities, connection_string

    premium = 4 * 1024 * 1024
    with start_test_broker(0, "--max-message-size", str(premium)) as (_, port):
        conn = connection_string("127.0.0.1", port)
        a = ServiceBusAdapter(
            conn, topic="premium", entities=TestBrokerEntities(conn), max_message_size=premium
        )
        try:
            consumer = a.consumer("big", ["big.*"])
            events = [
                encode(Event(type="big.small", data=1, source="/t")),
                encode(Event(type="big.large", data=b"x" * (1536 * 1024), source="/t")),
                encode(Event(type="big.small", data=2, source="/t")),
            ]
            a.publish(events)
            got = _receive(consumer, 3)
            assert sorted(d.message.headers["id"] for d in got) == sorted(
                m.headers["id"] for m in events
            )
            assert max(len(d.message.body) for d in got) == 1536 * 1024
            consumer.ack(got)
            consumer.close()
        finally:
            a.close()


# -- #17.5: long SQL filters split into rules --------------------------------------------------
def test_many_patterns_split_into_rules_of_at_most_1024_characters(make_adapter: Any) -> None:
    from eventbus_azure_servicebus import subscription_spec

    patterns = [f"many.patterns.number{i:03d}.created" for i in range(60)]
    spec = subscription_spec("t", "g", patterns, lock_duration=30, max_delivery_count=10)
    sql = [r.sql for r in spec.rules if r.sql is not None]
    assert len(sql) > 1 and all(len(s) <= 1024 for s in sql)
    a = make_adapter()
    consumer = a.consumer(_group("many"), patterns)  # the test broker refuses filters > 1,024
    first, last = (encode(Event(type=p, data=1, source="/t")) for p in (patterns[0], patterns[-1]))
    other = encode(Event(type="many.patterns.other.created", data=1, source="/t"))
    a.publish([first, other, last])
    got = _receive(consumer, 2)
    assert sorted(d.message.topic for d in got) == [patterns[0], patterns[-1]]
    consumer.ack(got)
    assert consumer.receive(10, 0.5) == []
    consumer.close()


# -- #17.4: Entra ID ---------------------------------------------------------------------------
class StaticToken:
    """A token credential (the azure-core protocol) handing out one made-up token."""

    def __init__(self) -> None:
        self.scopes: list[str] = []

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        from azure.core.credentials import AccessToken

        self.scopes += scopes
        return AccessToken("made-up-token", int(time.time()) + 3600)


def test_entra_id_settings_from_the_url() -> None:
    s = ServiceBusSettings.from_url("sb://ns.servicebus.windows.net/orders?credential=default")
    assert (s.fully_qualified_namespace, s.topic, s.credential) == (
        "ns.servicebus.windows.net",
        "orders",
        "default",
    )
    assert s.connection_string == ""  # no SAS: Entra-only namespaces forbid it
    try:
        import azure.identity  # noqa: F401
    except ImportError:
        with pytest.raises(AdapterNotFound, match=r"eventbus\[azure-identity\]"):
            from_url(
                "sb://ns.servicebus.windows.net/orders?credential=default&entities=existing", {}
            )
    with pytest.raises(Exception, match="'credential' must be"):
        ServiceBusSettings.from_url("sb://ns.servicebus.windows.net/orders?credential=sas")


def test_a_token_credential_object_reaches_the_namespace(servicebus: Any) -> None:
    servicebus.require_test_broker()
    host = servicebus.connection_string.split("sb://", 1)[1].split(";", 1)[0].strip("/")
    credential = StaticToken()
    a = ServiceBusAdapter(
        fully_qualified_namespace=host,
        credential=credential,
        UseDevelopmentEmulator=True,
        topic=servicebus.topic,
        entities=servicebus.entities(),
    )
    try:
        assert a.settings.connection_string == ""
        consumer = a.consumer(_group("entra"), ["entra.*"])
        event = encode(Event(type="entra.ok", data=1, source="/t"))
        a.publish([event])
        got = _receive(consumer, 1)
        assert [d.message.headers["id"] for d in got] == [event.headers["id"]]
        consumer.ack(got)
        consumer.close()
        assert credential.scopes and all("servicebus" in s for s in credential.scopes)
    finally:
        a.close()


# -- #17.3: stopping with the namespace unreachable --------------------------------------------
def test_a_worker_stops_in_bounded_time_with_the_namespace_down(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from eventbus_test_brokers.servicebus import start_test_broker
    from eventbus_test_brokers.servicebus_broker import TestBrokerEntities, connection_string

    from eventbus import BusConfig
    from eventbus.testing import Collector

    caplog.set_level(logging.WARNING, logger="eventbus.azure_servicebus")
    with start_test_broker() as (proc, port):
        conn = connection_string("127.0.0.1", port)
        bus = EventBus(
            ServiceBusAdapter(conn, topic="down", entities=TestBrokerEntities(conn)),
            config=BusConfig(poll_interval=0.2),
        )
        got = Collector(delay=2.0)  # deliveries in hand when the namespace goes
        bus.subscribe("down.*", got, group="down")
        bus.declare()
        bus.start()
        for i in range(5):
            bus.publish("down.before", i)
        got.wait_until(lambda evs: len(evs) >= 1)
        proc.terminate()
        proc.wait(10)
        time.sleep(1)
        started = time.monotonic()
        bus.close()
        took = time.monotonic() - started
    assert took < 10, f"close took {took:.1f} s with the namespace down"
    said = [r.getMessage() for r in caplog.records if r.name == "eventbus.azure_servicebus"]
    assert len([m for m in said if "unreachable" in m]) == 1, said
