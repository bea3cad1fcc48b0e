"""The adapter's ``entities="create"`` path through the SDK's ServiceBusAdministrationClient.

The client speaks HTTPS only (its generated code hard-codes ``https://``, even with
``UseDevelopmentEmulator=true``), so the test broker here runs with its ATOM endpoint
(``TestBroker(atom=True)``: TLS with a self-signed certificate, its own port) and
``AdministrationEntities`` trusts that certificate with ``connection_verify``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from eventbus_azure_servicebus import AdministrationEntities, ServiceBusAdapter

from eventbus import BrokerError, Event, encode

pytestmark = [pytest.mark.azure_servicebus]


@pytest.fixture(scope="module")
def broker() -> Iterator[Any]:
    from eventbus_test_brokers.servicebus_broker import TestBroker

    b = TestBroker(atom=True).start()
    yield b
    b.stop()


@pytest.fixture
def admin(broker: Any) -> Iterator[Any]:
    from azure.servicebus.management import ServiceBusAdministrationClient

    conn, ca = broker.admin_connection_string, broker.atom.ca_file
    with ServiceBusAdministrationClient.from_connection_string(conn, connection_verify=ca) as c:
        yield c


def _adapter(broker: Any, topic: str, **options: Any) -> ServiceBusAdapter:
    entities = AdministrationEntities(
        broker.admin_connection_string, connection_verify=broker.atom.ca_file
    )
    return ServiceBusAdapter(broker.connection_string, topic=topic, entities=entities, **options)


def _receive(consumer: Any, n: int) -> list[Any]:
    got: list[Any] = []
    deadline = time.monotonic() + 20
    while len(got) < n and time.monotonic() < deadline:
        got += consumer.receive(n - len(got), 0.5)
    return got


@pytest.mark.parametrize("sessions", [False, True])
def test_create_path_makes_topic_subscription_and_rules(
    broker: Any, admin: Any, sessions: bool
) -> None:
    topic, group = f"t-{uuid.uuid4().hex[:6]}", "billing"
    a = _adapter(broker, topic, lock_duration=7, max_delivery_count=4, sessions=sessions)
    try:
        c = a.consumer(group, ["order.*"])
        assert admin.get_topic(topic).name == topic
        sub = admin.get_subscription(topic, group)
        assert sub.lock_duration.total_seconds() == 7 and sub.max_delivery_count == 4
        assert sub.requires_session is sessions
        rules = {r.name: r.filter for r in admin.list_rules(topic, group)}
        (pattern_rule,) = set(rules) - {"eventbus-retry"}  # $Default removed
        assert pattern_rule.startswith("eventbus-")
        assert "sys.Label LIKE 'order%'" in rules[pattern_rule].sql_expression
        assert dict(rules["eventbus-retry"].properties) == {"eventbus_to": group}
        wanted = Event(type="order.created", data=1, source="/t", key="k")
        a.publish([encode(Event(type="user.created", data=1, source="/t")), encode(wanted)])
        got = _receive(c, 1)
        assert [d.message.headers["id"] for d in got] == [wanted.id]
        c.ack(got)
        c.close()
        a.declare(group, ["user.created"])  # new patterns replace the rule
        rules = {r.name: r.filter for r in admin.list_rules(topic, group)}
        assert [f.sql_expression for n, f in rules.items() if n != "eventbus-retry"] == [
            "eventbus_to IS NULL AND (sys.Label = 'user.created')"
        ]
        # the new rule came before the old one went: never only the retry rule (or none)
        sub = broker.store.topics[topic.lower()].subscriptions[group]
        assert sub.rule_history and all(
            set(names) - {"eventbus-retry"} for names in sub.rule_history
        ), sub.rule_history
        a.delete_group(group)
        a.delete_group(group)  # idempotent
        assert [s.name for s in admin.list_subscriptions(topic)] == []
    finally:
        a.close()


def test_sessions_setting_must_match_an_existing_subscription(broker: Any, admin: Any) -> None:
    topic = f"t-{uuid.uuid4().hex[:6]}"
    plain = _adapter(broker, topic)
    ordered = _adapter(broker, topic, sessions=True)
    try:
        plain.declare("shipping", ["ship.*"])
        with pytest.raises(BrokerError, match="requires_session"):
            ordered.declare("shipping", ["ship.*"])
        assert admin.get_subscription(topic, "shipping").requires_session is False
    finally:
        plain.close()
        ordered.close()
