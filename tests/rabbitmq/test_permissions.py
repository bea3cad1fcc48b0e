"""The vhost permissions docs/adapters/rabbitmq.md lists are enough, and a missing one says so.

Each test makes a user with exactly the documented configure/write/read regexps
(for the test exchange's names) and runs the adapter's operations with it.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from eventbus_rabbitmq import RabbitMQAdapter

from eventbus import BrokerError, Event, Message, encode
from eventbus.adapter import Consumer, Delivery

pytestmark = [pytest.mark.rabbitmq]

LimitedUser = Callable[[str, str, str], str]


def event(topic: str) -> Message:
    return encode(Event(type=topic, data={}, source="/tests"))


def receive_one(c: Consumer, timeout: float = 15.0) -> Delivery:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = c.receive(1, 0.5)
        if got:
            return got[0]
    raise AssertionError("no delivery")


@pytest.mark.parametrize("scope", ["every group", "its own group"])
def test_the_documented_worker_permissions_are_enough(
    limited_user: LimitedUser, exchange: str, topology: Any, scope: str
) -> None:
    group = f"perm{uuid.uuid4().hex[:8]}"
    e = re.escape(exchange)
    if scope == "every group":
        names = f"{e}([.:].*)?"
    else:
        names = f"({e}|{e}:delay(:.*)?|{e}\\.{group}(:dead)?)"
    url = limited_user(f"^{names}$", f"^({names}|amq\\.default)$", f"^{names}$")
    a = topology.track(RabbitMQAdapter(url, exchange=exchange))
    try:
        c = a.consumer(group, ["perm.*"])  # declare: exchange, queues, bindings
        a.publish([event("perm.x")])
        c.nack(receive_one(c), 0.01)  # a delay bucket: its exchange, queue and binding
        again = receive_one(c)
        assert again.attempt == 2
        c.nack(again, 0)
        c.dead_letter(receive_one(c), "kept for the test")
        assert [reason for _, reason in a.dead_letters(group)] == ["kept for the test"]
        assert a.replay_dead_letters(group) == 1
        c.dead_letter(receive_one(c), "purged")
        assert a.purge_dead_letters(group) == 1
        c.close()
        a.delete_group(group)
    finally:
        a.close()


def test_the_documented_publisher_permissions_publish_and_no_more(
    limited_user: LimitedUser, exchange: str, topology: Any, rabbitmq_url: str
) -> None:
    e = re.escape(exchange)
    group = f"perm{uuid.uuid4().hex[:8]}"
    admin = topology.track(RabbitMQAdapter(rabbitmq_url, exchange=exchange))
    publisher = topology.track(
        RabbitMQAdapter(limited_user(f"^{e}$", f"^{e}$", "^$"), exchange=exchange)
    )
    try:
        c = admin.consumer(group, ["perm.*"])
        publisher.publish([event("perm.x")])
        assert receive_one(c).message.topic == "perm.x"
        with pytest.raises(BrokerError, match="ACCESS_REFUSED") as info:
            publisher.declare(group, ["perm.*"])
        assert "lacks a permission" in str(info.value)
        c.close()
    finally:
        publisher.close()
        admin.close()
