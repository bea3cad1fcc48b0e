"""The test broker's message sessions, each behaviour checked through the real SDK.

What the adapter's ``sessions=True`` mode relies on: session receivers for a
named or the next available session, one receiver per session, FIFO within a
session (an abandoned message is next again), session lock renewal and
expiry, and the session state operations. With
``EVENTBUS_SERVICEBUS_CONNECTION_STRING`` set these run against the emulator
or a namespace (``EVENTBUS_SERVICEBUS_ENTITIES=create``) instead.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from azure.servicebus import NEXT_AVAILABLE_SESSION, ServiceBusMessage, ServiceBusSubQueue
from azure.servicebus.exceptions import (
    OperationTimeoutError,
    ServiceBusError,
    SessionCannotBeLockedError,
    SessionLockLostError,
)

pytestmark = [pytest.mark.azure_servicebus]

LOCK = 2  # seconds: the session queue's lock duration


@pytest.fixture
def squeue(servicebus: Any) -> Iterator[str]:
    """A fresh session-enabled queue (2 s lock, max delivery count 5), deleted afterwards."""
    name = f"sq-{uuid.uuid4().hex[:8]}"
    if servicebus.is_test_broker:
        from eventbus_test_brokers.servicebus_broker import admin_request

        props = {"LockDuration": f"PT{LOCK}S", "MaxDeliveryCount": 5, "RequiresSession": True}
        body = {"Name": name, "Properties": props}
        admin_request(servicebus.connection_string, "ensure-queue", body)
        yield name
        return
    if servicebus.entities_mode != "create":
        pytest.skip("needs a queue created on the fly (EVENTBUS_SERVICEBUS_ENTITIES=create)")
    from azure.servicebus.management import ServiceBusAdministrationClient

    with ServiceBusAdministrationClient.from_connection_string(servicebus.connection_string) as adm:
        adm.create_queue(
            name, lock_duration=timedelta(seconds=LOCK), max_delivery_count=5, requires_session=True
        )
        try:
            yield name
        finally:
            adm.delete_queue(name)


@pytest.fixture
def client(servicebus: Any) -> Iterator[Any]:
    with servicebus.client() as c:
        yield c


def _send(client: Any, queue: str, *items: tuple[str, str]) -> None:
    with client.get_queue_sender(queue) as sender:
        sender.send_messages([ServiceBusMessage(body, session_id=sid) for sid, body in items])


def _receive(receiver: Any, n: int, timeout: float = 10.0) -> list[Any]:
    got: list[Any] = []
    deadline = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        got += receiver.receive_messages(max_message_count=n - len(got), max_wait_time=1)
    return got


def _bodies(msgs: list[Any]) -> list[str]:
    return [b"".join(m.body).decode() for m in msgs]


def test_next_available_session_names_itself_and_keeps_fifo(client: Any, squeue: str) -> None:
    _send(client, squeue, ("a", "a1"), ("b", "b1"), ("a", "a2"), ("a", "a3"), ("b", "b2"))
    with client.get_queue_receiver(
        squeue, session_id=NEXT_AVAILABLE_SESSION, max_wait_time=5
    ) as first:
        assert first.session.session_id == "a"  # the session whose first message is oldest
        assert first.session.locked_until_utc is not None
        got = _receive(first, 3)
        assert _bodies(got) == ["a1", "a2", "a3"]
        assert all(m.session_id == "a" for m in got)
        with client.get_queue_receiver(
            squeue, session_id=NEXT_AVAILABLE_SESSION, max_wait_time=5
        ) as second:
            assert second.session.session_id == "b"
            other = _receive(second, 2)
            assert _bodies(other) == ["b1", "b2"]
            for m in other:
                second.complete_message(m)
        for m in got:
            first.complete_message(m)


def test_a_held_session_is_not_handed_out_again(servicebus: Any, client: Any, squeue: str) -> None:
    from azure.servicebus import ServiceBusClient

    _send(client, squeue, ("only", "x"))
    # no SDK retries: it retries both errors, and would get the session once the lock ran out
    with ServiceBusClient.from_connection_string(
        servicebus.connection_string, retry_total=0
    ) as other:
        with client.get_queue_receiver(squeue, session_id="only", max_wait_time=5) as holder:
            assert _bodies(_receive(holder, 1)) == ["x"]
            with pytest.raises(SessionCannotBeLockedError):
                with other.get_queue_receiver(squeue, session_id="only", max_wait_time=1) as r:
                    r.receive_messages(max_message_count=1, max_wait_time=1)
            holder.session.renew_lock()
            started = time.monotonic()
            with pytest.raises(OperationTimeoutError):
                with other.get_queue_receiver(
                    squeue, session_id=NEXT_AVAILABLE_SESSION, max_wait_time=1
                ) as r:
                    r.receive_messages(max_message_count=1, max_wait_time=1)
            assert time.monotonic() - started >= 0.8  # it waited for a session to come free


def test_abandoned_message_is_next_again_before_later_ones(client: Any, squeue: str) -> None:
    _send(client, squeue, ("k", "1"), ("k", "2"), ("k", "3"))
    with client.get_queue_receiver(squeue, session_id="k", max_wait_time=5) as r:
        first = _receive(r, 1)
        assert _bodies(first) == ["1"] and first[0].delivery_count == 0
        r.abandon_message(first[0])
        again = _receive(r, 3)
        assert _bodies(again) == ["1", "2", "3"]
        assert [m.delivery_count for m in again] == [1, 0, 0]
        for m in again:
            r.complete_message(m)
        assert r.receive_messages(max_message_count=1, max_wait_time=1) == []


def test_closing_the_receiver_frees_the_session_and_counts_a_delivery(
    client: Any, squeue: str
) -> None:
    _send(client, squeue, ("c", "1"), ("c", "2"))
    with client.get_queue_receiver(squeue, session_id=NEXT_AVAILABLE_SESSION, max_wait_time=5) as r:
        assert _bodies(_receive(r, 2)) == ["1", "2"]
    with client.get_queue_receiver(squeue, session_id=NEXT_AVAILABLE_SESSION, max_wait_time=5) as r:
        assert r.session.session_id == "c"
        again = _receive(r, 2)
        assert _bodies(again) == ["1", "2"]
        assert [m.delivery_count for m in again] == [1, 1]
        for m in again:
            r.complete_message(m)


def test_session_lock_renewal_and_state(client: Any, squeue: str) -> None:
    _send(client, squeue, ("s", "1"))
    with client.get_queue_receiver(squeue, session_id="s", max_wait_time=5) as r:
        (msg,) = _receive(r, 1)
        session = r.session
        first_until = session.locked_until_utc
        assert session.get_state() is None
        session.set_state(b"step-1")
        assert session.get_state() == b"step-1"
        for _ in range(3):  # past the 2 s lock, renewed every 1 s
            time.sleep(LOCK / 2)
            session.renew_lock()
        assert session.locked_until_utc > first_until
        r.complete_message(msg)  # still locked: the renewals kept the session
        session.set_state(None)
        assert session.get_state() is None


def test_expired_session_lock_frees_the_session_for_another_receiver(
    client: Any, squeue: str
) -> None:
    _send(client, squeue, ("e", "1"))
    with client.get_queue_receiver(squeue, session_id="e", max_wait_time=5) as lapsed:
        (held,) = _receive(lapsed, 1)
        with client.get_queue_receiver(
            squeue, session_id=NEXT_AVAILABLE_SESSION, max_wait_time=LOCK * 3
        ) as taker:
            assert taker.session.session_id == "e"  # once the first lock ran out
            (again,) = _receive(taker, 1)
            assert _bodies([again]) == ["1"] and again.delivery_count == 1
            with pytest.raises((SessionLockLostError, ServiceBusError)):
                lapsed.complete_message(held)
            taker.complete_message(again)


def test_session_queue_refuses_messages_without_a_session_id(client: Any, squeue: str) -> None:
    with client.get_queue_sender(squeue) as sender, pytest.raises(ServiceBusError):
        sender.send_messages(ServiceBusMessage(b"no session"))


def test_session_subscription(servicebus: Any, client: Any) -> None:
    """A topic's copy without a session id is dead-lettered in a session subscription."""
    servicebus.require_test_broker()  # the reason is this broker's choice
    from eventbus_test_brokers.servicebus_broker import admin_request

    conn, topic = servicebus.connection_string, f"st-{uuid.uuid4().hex[:8]}"
    admin_request(conn, "ensure-topic", {"Name": topic})
    props = {"LockDuration": "PT5S", "RequiresSession": True}
    info = admin_request(
        conn, "ensure-subscription", {"Topic": topic, "Name": "ordered", "Properties": props}
    )
    assert info["Properties"]["RequiresSession"] is True
    with client.get_topic_sender(topic) as sender:
        sender.send_messages(
            [ServiceBusMessage(b"keyed", session_id="k"), ServiceBusMessage(b"bare")]
        )
    with client.get_subscription_receiver(
        topic, "ordered", session_id=NEXT_AVAILABLE_SESSION, max_wait_time=5
    ) as r:
        assert _bodies(_receive(r, 1)) == ["keyed"]
    with client.get_subscription_receiver(
        topic, "ordered", sub_queue=ServiceBusSubQueue.DEAD_LETTER
    ) as dlq:
        (dead,) = _receive(dlq, 1)
        assert _bodies([dead]) == ["bare"] and dead.dead_letter_reason == "SessionIdIsMissing"
        dlq.complete_message(dead)
    with pytest.raises(Exception, match="RequiresSession"):  # fixed at creation, as on Azure
        props = {"RequiresSession": False}
        admin_request(
            conn, "ensure-subscription", {"Topic": topic, "Name": "ordered", "Properties": props}
        )


def test_config_file_session_subscription(servicebus: Any) -> None:
    servicebus.require_test_broker()  # tests/azure_servicebus/entities.json
    from eventbus_test_brokers.servicebus_broker import admin_request

    info = admin_request(
        servicebus.connection_string,
        "get-subscription",
        {"Topic": "broker-topic", "Name": "ordered"},
    )
    assert info["Properties"]["RequiresSession"] is True
