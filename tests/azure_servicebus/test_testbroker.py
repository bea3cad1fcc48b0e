"""The test broker's behaviours, each checked through the real azure-servicebus SDK.

These are the Service Bus behaviours the adapter relies on; with
``EVENTBUS_SERVICEBUS_CONNECTION_STRING`` set, the tests that don't need the
test broker's own admin node run against the emulator or a namespace instead.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from azure.servicebus import ServiceBusMessage, ServiceBusSubQueue
from azure.servicebus.exceptions import MessageLockLostError, MessageSizeExceededError

pytestmark = [pytest.mark.azure_servicebus]


@pytest.fixture
def queue(servicebus: Any) -> Iterator[str]:
    """A fresh queue with a 1 s lock and max delivery count 3, deleted afterwards."""
    name = f"q-{uuid.uuid4().hex[:8]}"
    if servicebus.is_test_broker:
        from eventbus_test_brokers.servicebus_broker import admin_request

        body = {"Name": name, "Properties": {"LockDuration": "PT1S", "MaxDeliveryCount": 3}}
        admin_request(servicebus.connection_string, "ensure-queue", body)
        yield name
        return
    if servicebus.entities_mode != "create":
        pytest.skip("needs a queue created on the fly (EVENTBUS_SERVICEBUS_ENTITIES=create)")
    from azure.servicebus.management import ServiceBusAdministrationClient

    conn = servicebus.connection_string
    with ServiceBusAdministrationClient.from_connection_string(conn) as admin:
        admin.create_queue(name, lock_duration=timedelta(seconds=1), max_delivery_count=3)
        try:
            yield name
        finally:
            admin.delete_queue(name)


@pytest.fixture
def client(servicebus: Any) -> Iterator[Any]:
    with servicebus.client() as c:
        yield c


def _receive(receiver: Any, n: int, timeout: float = 10.0) -> list[Any]:
    got: list[Any] = []
    deadline = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        got += receiver.receive_messages(max_message_count=n - len(got), max_wait_time=1)
    return got


def _body(msg: Any) -> bytes:
    return b"".join(msg.body)


def test_batch_arrives_as_separate_messages_in_order(client: Any, queue: str) -> None:
    with client.get_queue_sender(queue) as sender:
        batch = sender.create_message_batch()
        for i in range(5):
            msg = ServiceBusMessage(f"m{i}".encode(), subject="s", application_properties={"i": i})
            batch.add_message(msg)
        sender.send_messages(batch)
        sender.send_messages(ServiceBusMessage(b"single"))
    with client.get_queue_receiver(queue) as receiver:
        got = _receive(receiver, 6)
        assert [_body(m) for m in got] == [b"m0", b"m1", b"m2", b"m3", b"m4", b"single"]
        assert [m.application_properties.get(b"i") for m in got[:5]] == [0, 1, 2, 3, 4]
        seqs = [m.sequence_number for m in got]
        assert seqs == sorted(seqs) and len(set(seqs)) == 6
        assert all(m.delivery_count == 0 and m.lock_token is not None for m in got)
        assert all(m.enqueued_time_utc is not None and m.locked_until_utc is not None for m in got)
        for m in got:
            receiver.complete_message(m)
        assert receiver.receive_messages(max_message_count=1, max_wait_time=0.5) == []


def test_lock_expiry_redelivers_with_delivery_count_plus_one(client: Any, queue: str) -> None:
    with client.get_queue_sender(queue) as sender:
        sender.send_messages(ServiceBusMessage(b"x"))
    with client.get_queue_receiver(queue) as receiver:
        (first,) = _receive(receiver, 1)
        assert first.delivery_count == 0
        held_at = time.monotonic()
        (again,) = _receive(receiver, 1)  # the 1 s lock runs out, nobody settled it
        assert time.monotonic() - held_at >= 0.8
        assert again.sequence_number == first.sequence_number
        assert again.delivery_count == 1
        assert again.lock_token != first.lock_token
        with pytest.raises(MessageLockLostError):
            receiver.renew_message_lock(first)  # the broker answers 410 message-lock-lost
        receiver.complete_message(again)


def test_abandon_counts_and_max_delivery_count_dead_letters(client: Any, queue: str) -> None:
    with client.get_queue_sender(queue) as sender:
        sender.send_messages(ServiceBusMessage(b"poison"))
    with client.get_queue_receiver(queue) as receiver:
        counts = []
        for _ in range(3):
            (m,) = _receive(receiver, 1)
            counts.append(m.delivery_count)
            receiver.abandon_message(m)
        assert counts == [0, 1, 2]
        assert receiver.receive_messages(max_message_count=1, max_wait_time=0.5) == []
    with client.get_queue_receiver(queue, sub_queue=ServiceBusSubQueue.DEAD_LETTER) as dlq:
        (dead,) = _receive(dlq, 1)
        assert _body(dead) == b"poison"
        assert dead.dead_letter_reason == "MaxDeliveryCountExceeded"
        assert dead.dead_letter_source == queue
        dlq.complete_message(dead)


def test_dead_letter_keeps_reason_and_description(client: Any, queue: str) -> None:
    with client.get_queue_sender(queue) as sender:
        sender.send_messages(ServiceBusMessage(b"bad", application_properties={"keep": "me"}))
    with client.get_queue_receiver(queue) as receiver:
        (m,) = _receive(receiver, 1)
        description = "line 1\nline 2 ✓"
        receiver.dead_letter_message(m, reason="ValueError: no", error_description=description)
    with client.get_queue_receiver(queue, sub_queue=ServiceBusSubQueue.DEAD_LETTER) as dlq:
        (peeked,) = dlq.peek_messages(10)
        assert peeked.dead_letter_reason == "ValueError: no"
        assert peeked.dead_letter_error_description == "line 1\nline 2 ✓"
        assert peeked.application_properties[b"keep"] == b"me"
        (dead,) = _receive(dlq, 1)
        assert _body(dead) == b"bad"
        dlq.complete_message(dead)


def test_scheduled_message_waits_and_can_be_cancelled(client: Any, queue: str) -> None:
    when = datetime.now(timezone.utc) + timedelta(seconds=3)
    with client.get_queue_sender(queue) as sender:
        (seq,) = sender.schedule_messages(ServiceBusMessage(b"later"), when)
        (cancelled,) = sender.schedule_messages(ServiceBusMessage(b"never"), when)
        sender.cancel_scheduled_messages(cancelled)
        assert seq != cancelled
    with client.get_queue_receiver(queue) as receiver:
        (peeked,) = receiver.peek_messages(10, sequence_number=1)
        assert peeked.sequence_number == seq and peeked.state == 2  # SCHEDULED
        (m,) = _receive(receiver, 1)
        assert _body(m) == b"later"
        assert datetime.now(timezone.utc) >= when - timedelta(seconds=0.1)
        receiver.complete_message(m)
        assert receiver.receive_messages(max_message_count=1, max_wait_time=1) == []


def test_renew_lock_keeps_the_message(client: Any, queue: str) -> None:
    with client.get_queue_sender(queue) as sender:
        sender.send_messages(ServiceBusMessage(b"long"))
    with client.get_queue_receiver(queue) as receiver:
        (m,) = _receive(receiver, 1)
        first_until = m.locked_until_utc
        deadline = time.monotonic() + 2.5  # well past the 1 s lock
        while time.monotonic() < deadline:
            receiver.renew_message_lock(m)
            assert receiver.receive_messages(max_message_count=1, max_wait_time=0.4) == []
        assert m.locked_until_utc > first_until
        receiver.complete_message(m)


def test_defer_then_receive_by_sequence_number(client: Any, queue: str) -> None:
    with client.get_queue_sender(queue) as sender:
        sender.send_messages(ServiceBusMessage(b"later please"))
    with client.get_queue_receiver(queue) as receiver:
        (m,) = _receive(receiver, 1)
        seq = m.sequence_number
        receiver.defer_message(m)
        assert receiver.receive_messages(max_message_count=1, max_wait_time=0.5) == []
        (deferred,) = receiver.receive_deferred_messages([seq])
        assert _body(deferred) == b"later please"
        assert deferred.sequence_number == seq and deferred.lock_token is not None
        receiver.complete_message(deferred)
        assert receiver.peek_messages(10, sequence_number=1) == []


def test_peek_does_not_lock(client: Any, queue: str) -> None:
    with client.get_queue_sender(queue) as sender:
        sender.send_messages([ServiceBusMessage(b"a"), ServiceBusMessage(b"b")])
    with client.get_queue_receiver(queue) as receiver:
        peeked = receiver.peek_messages(10, sequence_number=1)
        assert [_body(m) for m in peeked] == [b"a", b"b"]
        got = _receive(receiver, 2)
        assert [_body(m) for m in got] == [b"a", b"b"]
        for m in got:
            receiver.complete_message(m)


def test_oversized_message_is_refused_by_the_link_limit(client: Any, queue: str) -> None:
    with client.get_queue_sender(queue) as sender:
        with pytest.raises(MessageSizeExceededError):
            sender.send_messages(ServiceBusMessage(b"x" * (256 * 1024 + 1)))


def test_config_file_topic_rules_route_by_sql_and_correlation(servicebus: Any, client: Any) -> None:
    servicebus.require_test_broker()  # the entities come from tests/azure_servicebus/entities.json
    tag = uuid.uuid4().hex[:8]
    sent = [
        ("order.created", {"tenant": "acme", "region": "us"}),
        ("order.created", {"tenant": "other", "region": "eu"}),
        ("order.shipped", {"tenant": "acme"}),  # region missing: NULL <> 'eu' is unknown
        ("user.created", {"tenant": "acme", "region": "us"}),
    ]
    with client.get_topic_sender("broker-topic") as sender:
        batch = [
            ServiceBusMessage(f"{tag}:{i}".encode(), subject=s, application_properties=p)
            for i, (s, p) in enumerate(sent)
        ]
        sender.send_messages(batch)
    expected = {"everything": {0, 1, 2, 3}, "orders-sql": {0}, "tenant-correlation": {0}}
    for sub, want in expected.items():
        with client.get_subscription_receiver("broker-topic", sub) as receiver:
            got: set[int] = set()
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                wait = 0.5 if got >= want else 1.0
                batch = receiver.receive_messages(max_message_count=10, max_wait_time=wait)
                if not batch and got >= want:
                    break
                for m in batch:
                    t, i = _body(m).decode().split(":")
                    if t == tag:
                        got.add(int(i))
                    receiver.complete_message(m)
            assert got == want, sub


def test_subscription_gets_only_messages_sent_after_it_exists(servicebus: Any, client: Any) -> None:
    servicebus.require_test_broker()
    from eventbus_test_brokers.servicebus_broker import admin_request

    topic = f"t-{uuid.uuid4().hex[:8]}"
    conn = servicebus.connection_string
    admin_request(conn, "ensure-topic", {"Name": topic})
    admin_request(conn, "ensure-subscription", {"Topic": topic, "Name": "early"})
    with client.get_topic_sender(topic) as sender:
        sender.send_messages(ServiceBusMessage(b"before"))
        admin_request(conn, "ensure-subscription", {"Topic": topic, "Name": "late"})
        sender.send_messages(ServiceBusMessage(b"after"))
    with client.get_subscription_receiver(topic, "early") as early:
        assert [_body(m) for m in _receive(early, 2)] == [b"before", b"after"]
    with client.get_subscription_receiver(topic, "late") as late:
        got = _receive(late, 2, timeout=2)
        assert [_body(m) for m in got] == [b"after"]
    info = admin_request(conn, "get-subscription", {"Topic": topic, "Name": "late"})
    assert info["Rules"][0]["Properties"]["FilterType"] == "True"
    assert admin_request(conn, "delete-subscription", {"Topic": topic, "Name": "late"}) == {}


def test_receive_and_delete_takes_messages_without_locks(client: Any, queue: str) -> None:
    from azure.servicebus import ServiceBusReceiveMode

    with client.get_queue_sender(queue) as sender:
        sender.send_messages([ServiceBusMessage(b"one"), ServiceBusMessage(b"two")])
    mode = ServiceBusReceiveMode.RECEIVE_AND_DELETE
    with client.get_queue_receiver(queue, receive_mode=mode) as receiver:
        got = _receive(receiver, 2)
        assert [_body(m) for m in got] == [b"one", b"two"]
        assert receiver.peek_messages(10, sequence_number=1) == []
