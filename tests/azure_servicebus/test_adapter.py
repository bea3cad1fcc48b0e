"""The Service Bus adapter beyond the conformance suite: config, mapping details, lock renewal."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import uuid
from typing import Any

import pytest
from eventbus_azure_servicebus import ServiceBusAdapter, from_url

from eventbus import (
    BrokerError,
    BrokerUnavailable,
    BusConfig,
    ConfigError,
    Event,
    EventBus,
    MessageTooLarge,
    RetryPolicy,
    encode,
    find_spec,
)
from eventbus.testing import Collector, eventually

pytestmark = [pytest.mark.azure_servicebus]


def test_importing_the_plugin_does_not_import_the_sdk() -> None:
    code = "import sys, eventbus_azure_servicebus; print('azure.servicebus' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("name", ["azure_servicebus", "azure-servicebus", "sb", "servicebus"])
def test_the_plugin_is_found_by_name_and_scheme(name: str) -> None:
    spec = find_spec(name)
    assert spec.name == "azure_servicebus"
    assert spec.extra == "azure-servicebus" and spec.sdk == "azure.servicebus"
    assert spec.capabilities.native_dead_letter and spec.capabilities.delayed_delivery


def test_url_and_options_build_the_adapter() -> None:
    url = "sb://127.0.0.1:5999/orders?UseDevelopmentEmulator=true&entities=existing&lock_duration=7"
    a = from_url(url, {})
    try:
        assert a.settings.topic == "orders"
        assert a.settings.connection_string.startswith("Endpoint=sb://127.0.0.1:5999/;")
        assert "UseDevelopmentEmulator=true;" in a.settings.connection_string
        assert a.capabilities.lease_seconds == 7.0
        assert a.capabilities.max_message_size == 256 * 1024 - 4096
    finally:
        a.close()
    b = EventBus(
        "azure-servicebus://ignored",
        options={
            "connection_string": "Endpoint=sb://h:1/;UseDevelopmentEmulator=true;",
            "entities": "existing",
            "topic": "t",
            "max_message_size": 1024 * 1024,
        },
    )
    try:
        assert isinstance(b.adapter, ServiceBusAdapter)
        assert b.adapter.settings.connection_string.startswith("Endpoint=sb://h:1/")
        assert b.adapter.capabilities.max_message_size == 1024 * 1024 - 4096
    finally:
        b.close()
    with pytest.raises(ConfigError, match="unknown URL query parameter"):
        from_url("sb://h/t?colour=blue", {})
    with pytest.raises(ConfigError, match="connection string"):
        from_url("", {"entities": "existing"})
    with pytest.raises(ConfigError):
        from_url("sb://h/t?lock_duration=soon&entities=existing", {})


def test_unreachable_namespace_is_broker_unavailable() -> None:
    a = ServiceBusAdapter(
        "Endpoint=sb://127.0.0.1:9;SharedAccessKeyName=k;SharedAccessKey=v;UseDevelopmentEmulator=true",
        entities="existing",
        retry_total=0,
    )
    try:
        with pytest.raises(BrokerUnavailable) as info:
            a.publish([encode(Event(type="x", data=1, source="/t"))])
        assert info.value.__cause__ is not None  # the SDK's error, kept as the cause
    finally:
        a.close()


def test_long_handler_keeps_its_lock(make_adapter: Any) -> None:
    """A handler running past the lock duration is not redelivered: the lock is renewed."""
    group = f"long-{uuid.uuid4().hex[:6]}"
    got = Collector(delay=2.2)  # more than twice the 1 s lock
    worker = EventBus(make_adapter(lock_duration=1.0), config=BusConfig(poll_interval=0.2))
    worker.subscribe("work.long", got, group=group)
    worker.declare()
    worker.start()
    publisher = EventBus(make_adapter())
    event_id = publisher.publish("work.long", {"n": 1}).id
    sentinel = publisher.publish("work.long", {"n": 2}).id
    got.wait_until(lambda evs: any(e.id == sentinel for e in evs), idle=20)
    worker.close()
    publisher.close()
    assert [e.id for e in got.events] == [event_id, sentinel]
    assert all(e.attempt == 1 for e in got.events)


def test_event_past_the_size_limit_with_its_attributes_sends_nothing(make_adapter: Any) -> None:
    a = make_adapter()
    limit = a.capabilities.max_message_size
    # within the declared size as counted by the core, but 400 attributes add
    # more AMQP encoding than the margin: the SDK's batch refuses it, nothing is sent
    many = {f"x{i:03d}": "v" for i in range(400)}
    template = Event(type="big.attrs", data=b"", source="/t", extensions=many)
    overhead = encode(template).size
    big = encode(template.replace(data=b"x" * (limit - overhead)))
    assert big.size == limit
    group = f"big-{uuid.uuid4().hex[:6]}"
    consumer = a.consumer(group, ["big.*"])
    ok = encode(Event(type="big.ok", data=1, source="/t"))
    with pytest.raises(MessageTooLarge):
        a.publish([ok, big])
    a.publish([ok])
    got = eventually(lambda: consumer.receive(10, 0.5), what="the small event")
    assert [d.message.headers["id"] for d in got] == [ok.headers["id"]]
    consumer.ack(got)
    assert consumer.receive(10, 1.0) == []
    consumer.close()


def test_foreign_messages_of_any_body_kind_are_dead_lettered(
    servicebus: Any, make_adapter: Any
) -> None:
    from azure.servicebus import ServiceBusMessage
    from azure.servicebus.amqp import AmqpAnnotatedMessage

    topic = f"foreign-{uuid.uuid4().hex[:6]}"
    config = BusConfig(poll_interval=0.2, retry=RetryPolicy(max_attempts=1))
    bus = EventBus(make_adapter(topic=topic), config=config)
    got = Collector()
    group = "everything"
    bus.subscribe("#", got, group=group)
    bus.declare()
    bus.start()
    with servicebus.client() as client, client.get_topic_sender(topic) as sender:
        # no subject at all, an AMQP value body
        sender.send_messages(AmqpAnnotatedMessage(value_body={"not": "an event"}))
        sender.send_messages(AmqpAnnotatedMessage(sequence_body=[[1, 2], [3]]))
        sender.send_messages(
            ServiceBusMessage(b"{}", subject="x", application_properties={"cloudEvents_id": 7})
        )
    ok = EventBus(make_adapter(topic=topic)).publish("fine.event", {"ok": True}).id
    got.wait_until(lambda evs: any(e.id == ok for e in evs))
    letters = eventually(lambda: (lambda d: len(d) >= 3 and d)(bus.adapter.dead_letters(group)))
    assert len(letters) == 3 and all("undecodable" in reason for _, reason in letters)
    assert [e.id for e in got.events] == [ok]
    bus.close()


def test_existing_entities_from_the_config_file(servicebus: Any) -> None:
    servicebus.require_test_broker()
    # "broker-topic"/"everything" comes from entities.json with the $Default (match-all)
    # rule: nothing is created, the exact pattern check does the routing
    a = ServiceBusAdapter(servicebus.connection_string, topic="broker-topic", entities="existing")
    try:
        consumer = a.consumer("everything", ["order.*"])
        wanted = encode(Event(type="order.created", data=1, source="/t"))
        a.publish([encode(Event(type="user.created", data=1, source="/t")), wanted])
        got = eventually(lambda: consumer.receive(10, 0.5), what="the order event")
        assert [d.message.topic for d in got] == ["order.created"]
        consumer.ack(got)
        consumer.close()
    finally:
        a.close()
    quick = ServiceBusAdapter(
        servicebus.connection_string,
        topic="broker-topic",
        entities="existing",
        retry_total=0,  # the SDK would retry the attach a few times
    )
    try:
        with pytest.raises(BrokerError, match="does not exist"):
            quick.consumer("no-such-subscription", ["#"])
    finally:
        quick.close()


def test_consumer_close_returns_unsettled_deliveries(make_adapter: Any) -> None:
    a, b = make_adapter(), make_adapter()
    group = f"ret-{uuid.uuid4().hex[:6]}"
    first = a.consumer(group, ["ret.x"])
    a.publish([encode(Event(type="ret.x", data=i, source="/t")) for i in range(3)])
    held: list[Any] = []
    deadline = time.monotonic() + 10
    while len(held) < 3 and time.monotonic() < deadline:
        held += first.receive(3 - len(held), 0.5)
    assert len(held) == 3
    first.close()
    first.close()  # idempotent
    second = b.consumer(group, ["ret.x"])
    started = time.monotonic()
    back: list[Any] = []
    while len(back) < 3 and time.monotonic() - started < 10:
        back += second.receive(3, 0.5)
    assert time.monotonic() - started < 3.5, "came back only after the 4 s lock ran out"
    ids = sorted(d.message.headers["id"] for d in held)
    assert sorted(d.message.headers["id"] for d in back) == ids
    assert all(d.attempt == 2 for d in back)
    second.ack(back)
    second.close()


def test_publish_is_thread_safe(make_adapter: Any) -> None:
    a = make_adapter()
    group = f"mt-{uuid.uuid4().hex[:6]}"
    consumer = a.consumer(group, ["mt.*"])
    sent: list[str] = []
    lock = threading.Lock()

    def publish(k: int) -> None:
        msgs = [encode(Event(type=f"mt.p{k}", data=i, source="/t")) for i in range(20)]
        a.publish(msgs)
        with lock:
            sent.extend(m.headers["id"] for m in msgs)

    threads = [threading.Thread(target=publish, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    got: list[Any] = []
    deadline = time.monotonic() + 20
    while len(got) < 80 and time.monotonic() < deadline:
        batch = consumer.receive(50, 0.5)
        consumer.ack(batch)
        got += batch
    assert sorted(d.message.headers["id"] for d in got) == sorted(sent)
    consumer.close()


def test_events_with_the_amqp_binding_prefix_are_read(servicebus: Any, make_adapter: Any) -> None:
    """Another CloudEvents producer writing ``cloudEvents:`` properties (the AMQP binding)."""
    from azure.servicebus import ServiceBusMessage

    from eventbus import decode

    a = make_adapter()
    group = f"interop-{uuid.uuid4().hex[:6]}"
    consumer = a.consumer(group, ["interop.*"])
    props = {
        "cloudEvents:id": "abc-1",
        "cloudEvents:source": "/other/producer",
        "cloudEvents:type": "interop.created",
        "cloudEvents:specversion": "1.0",
        "cloudEvents:tenant": "acme",
    }
    with servicebus.client() as client, client.get_topic_sender(servicebus.topic) as sender:
        sender.send_messages(
            ServiceBusMessage(
                b'{"a": 1}',
                subject="interop.created",
                content_type="application/json",
                application_properties=props,
            )
        )
    (d,) = eventually(lambda: consumer.receive(10, 0.5), what="the interop event")
    event = decode(d.message, d.attempt)
    assert (event.id, event.source, event.type, event.data) == (
        "abc-1",
        "/other/producer",
        "interop.created",
        {"a": 1},
    )
    assert event.datacontenttype == "application/json" and event.extensions == {"tenant": "acme"}
    consumer.ack([d])
    consumer.close()


def test_delete_group_with_existing_entities_is_a_config_error(servicebus: Any) -> None:
    """The contract: an instance whose configuration forbids an operation says so."""
    from eventbus.adapter import GroupAdmin

    a = ServiceBusAdapter(servicebus.connection_string, topic="broker-topic", entities="existing")
    try:
        assert isinstance(a, GroupAdmin)
        with pytest.raises(ConfigError, match="entities='existing'"):
            a.delete_group("everything")
    finally:
        a.close()


def test_settings_repr_masks_secrets() -> None:
    from eventbus_azure_servicebus import ServiceBusSettings

    s = ServiceBusSettings.from_url(
        "sb://ns.example/t?SharedAccessKeyName=k&SharedAccessKey=s3cr3t"
    )
    assert "s3cr3t" not in repr(s)
    assert (
        s.connection_string
        == "Endpoint=sb://ns.example/;SharedAccessKeyName=k;SharedAccessKey=s3cr3t;"
    )
