"""SQS-specific behaviour on a real endpoint (moto by default; see conftest.py)."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.exceptions
import pytest
from eventbus_sqs import MAX_MESSAGE_SIZE, SqsAdapter, to_wire

from eventbus import (
    BrokerUnavailable,
    BusConfig,
    ClosedError,
    ConfigError,
    Delivery,
    Event,
    EventBus,
    Message,
    MessageTooLarge,
    encode,
)
from eventbus.testing import Collector, eventually

pytestmark = [pytest.mark.sqs]

PROC = str(Path(__file__).with_name("_proc.py"))


@pytest.fixture
def make(sqs_names: Any) -> Iterator[Any]:
    made: list[SqsAdapter] = []

    def make(**options: Any) -> SqsAdapter:
        a = SqsAdapter(sqs_names.settings(**{"lease": 2, **options}))
        made.append(a)
        return a

    yield make
    for a in made:
        a.close()


def _event(topic: str, i: int = 0, key: str | None = None) -> Message:
    return encode(Event(type=topic, data={"i": i}, source="/test", key=key))


def _receive(consumer: Any, n: int, timeout: float = 15) -> list[Delivery]:
    got: list[Delivery] = []
    deadline = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        got += consumer.receive(n - len(got), 0.5)
    return got


def _queue_depth(sqs_names: Any, name: str) -> int:
    sqs = sqs_names.endpoint.client("sqs")
    url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    attrs = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return sum(int(v) for v in attrs.values())


# -- crashes and leases ---------------------------------------------------------------------
def test_a_worker_killed_mid_batch_loses_nothing(make: Any, sqs_names: Any) -> None:
    """A process stuck in a handler keeps its batch past the lease (heartbeat); once it is
    SIGKILLed, the whole batch comes back to another member after the visibility timeout."""
    lease = 2
    adapter = make(lease=lease)
    group, pattern = "crash", "job.*"
    adapter.declare(group, [pattern])
    sent = [_event("job.run", i) for i in range(5)]
    adapter.publish(sent)
    settings = {k: v for k, v in vars(sqs_names.settings(lease=lease)).items()}
    proc = subprocess.Popen(
        [sys.executable, PROC, json.dumps(settings), group, pattern],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")))
        reader.daemon = True
        reader.start()
        eventually(
            lambda: any(x.startswith("got") for x in lines),
            timeout=30,
            what="the worker to take the batch",
        )
        other = adapter.consumer(group, [pattern])
        # three leases long, the stuck worker's heartbeat keeps the batch from us
        held_until = time.monotonic() + 3 * lease
        while time.monotonic() < held_until:
            assert other.receive(10, 0.5) == [], "the batch left a live worker"
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        killed = time.monotonic()
        got = _receive(other, 5, timeout=lease + 15)
        assert sorted(d.message.headers["id"] for d in got) == sorted(m.headers["id"] for m in sent)
        assert all(d.attempt >= 2 for d in got)
        assert time.monotonic() - killed <= lease + 10
        other.ack(got)
        other.close()
        assert len([x for x in lines if x.startswith("got")]) == 1  # stuck on the first one
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def test_close_hands_unsettled_deliveries_back_at_once(make: Any) -> None:
    a = make(lease=30)
    first, second = a.consumer("g", ["x.*"]), a.consumer("g", ["x.*"])
    a.publish([_event("x.y", i) for i in range(3)])
    held = _receive(first, 3)
    assert len(held) == 3
    first.close()
    first.close()  # idempotent
    back = _receive(second, 3, timeout=10)  # long before the 30 s lease
    assert sorted(d.attempt for d in back) == [2, 2, 2]
    second.ack(back)
    with pytest.raises(ClosedError):
        first.receive(1, 0.1)


# -- dead letters -----------------------------------------------------------------------------
def test_redrive_moves_a_message_to_the_dlq_after_max_receive_count(
    make: Any, sqs_names: Any
) -> None:
    """The redrive policy is the safety net: a message received max_receive_count times
    without being settled goes to the group's DLQ, and dead_letters() lists it."""
    a = make(max_receive_count=2)
    c = a.consumer("redrive", ["r.*"])
    m = _event("r.x")
    a.publish([m])
    attempts = []
    for _ in range(2):
        (d,) = _receive(c, 1)
        attempts.append(d.attempt)
        c.nack(d, 0)  # visible again at once, as a crashing consumer's would be
    assert attempts == [1, 2]
    assert c.receive(1, 1.5) == []  # the third receive finds it moved
    letters = eventually(lambda: a.dead_letters("redrive"), what="the redriven message")
    ((delivery, reason),) = letters
    assert delivery.message.headers["id"] == m.headers["id"]
    assert delivery.message.body == m.body
    assert "redrive" in reason
    assert a.dead_letters("redrive")  # a peek: still there
    c.close()


def test_dead_letter_keeps_the_message_and_the_reason(make: Any, sqs_names: Any) -> None:
    a = make()
    c = a.consumer("dl", ["d.*"])
    m = _event("d.x")
    a.publish([m])
    (d,) = _receive(c, 1)
    c.dead_letter(d, 'handler said "no" ✓')
    assert c.receive(1, 1) == []
    ((delivery, reason),) = a.dead_letters("dl")
    assert reason == 'handler said "no" ✓' and delivery.attempt == 1
    assert delivery.message.headers == m.headers and delivery.message.body == m.body
    assert _queue_depth(sqs_names, sqs_names.settings().queue_name("dl")) == 0
    # another adapter (tooling) finds the group's dead letters by name
    assert len(make().dead_letters("dl")) == 1
    c.close()


# -- routing -----------------------------------------------------------------------------------
def test_an_event_no_pattern_of_the_group_matches_is_dead_lettered_with_the_reason(
    make: Any, sqs_names: Any
) -> None:
    """SNS's prefix filter lets ``order.eu.created`` through to ``order.*``: a valid
    event type the group never subscribed to, deleted as RabbitMQ would never route it.
    A foreign producer's type with spaces, or ``type`` as a Number attribute, is a dead
    letter with the reason. None reaches a handler."""
    a = make()
    c = a.consumer("narrow", ["order.*"])  # SNS filter: prefix "order."
    a.publish([_event("order.eu.created", 1), _event("order.created", 2), _event("user.x", 3)])
    sqs = sqs_names.endpoint.client("sqs")
    url = sqs.get_queue_url(QueueName=sqs_names.settings().queue_name("narrow"))["QueueUrl"]
    for kind, value in (("String", "order created"), ("Number", "42")):
        attributes = {"type": {"DataType": kind, "StringValue": value}}
        sqs.send_message(QueueUrl=url, MessageBody="foreign", MessageAttributes=attributes)
    handed: list[str] = []

    def all_dead() -> list[tuple[Delivery, str]]:
        for d in c.receive(10, 0.5):
            handed.append(d.message.topic)
            c.ack([d])
        letters = a.dead_letters("narrow")
        return letters if len(letters) == 2 else []

    letters = eventually(all_dead, timeout=20, what="two dead letters")
    assert handed == ["order.created"]
    reasons = {d.message.topic: reason for d, reason in letters}
    assert set(reasons) == {"order created", "42"}
    for topic, reason in reasons.items():
        assert repr(topic) in reason and "'narrow'" in reason and "['order.*']" in reason
    eventually(
        lambda: _queue_depth(sqs_names, sqs_names.settings().queue_name("narrow")) == 0,
        what="the group's queue empty",
    )
    c.close()


def test_a_message_without_a_type_is_delivered_for_the_dead_letter(
    make: Any, sqs_names: Any
) -> None:
    """Sent to the queue by hand (no attributes at all): the core must see it, not lose it."""
    a = make()
    bus = EventBus(a, config=BusConfig(poll_interval=0.2))
    got = Collector()
    bus.subscribe("#", got, group="all")
    bus.declare()
    sqs = sqs_names.endpoint.client("sqs")
    url = sqs.get_queue_url(QueueName=sqs_names.settings().queue_name("all"))["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="hello from the console")
    bus.start()
    try:
        ((_, reason),) = eventually(lambda: a.dead_letters("all"), what="a dead letter")
        assert "undecodable" in reason
        assert got.count() == 0
    finally:
        bus.stop()


def test_queue_mode_sees_a_group_declared_by_another_process(make: Any) -> None:
    publisher = make(mode="sqs", refresh=0.5)
    publisher.publish([_event("early.x")])  # caches an empty route table
    consumer_side = make(mode="sqs")
    c = consumer_side.consumer("late", ["early.*"])
    m = _event("early.x", 1)

    def sent_and_received() -> list[Delivery]:
        publisher.publish([m])
        return c.receive(10, 0.3)

    got = eventually(sent_and_received, timeout=15, what="the publisher to see the new group")
    assert got[0].message.headers["id"] == m.headers["id"]
    c.ack(got)
    c.close()


# -- FIFO -----------------------------------------------------------------------------------------
def test_fifo_retry_is_not_overtaken_by_the_next_event_of_its_key(make: Any) -> None:
    a = make(fifo=True)
    c = a.consumer("fifo", ["f.*"])
    a.publish([_event("f.x", i, key="k1") for i in range(3)] + [_event("f.x", 9, key="k2")])
    first = _receive(c, 2)
    assert sorted(json.loads(d.message.body)["i"] for d in first) == [0, 9]  # one per key
    k1 = next(d for d in first if d.message.key == "k1")
    c.ack([d for d in first if d is not k1])
    c.nack(k1, 1)
    order = []
    deadline = time.monotonic() + 20
    while len(order) < 3 and time.monotonic() < deadline:
        for d in c.receive(10, 0.5):
            order.append((json.loads(d.message.body)["i"], d.attempt))
            c.ack([d])
    assert [i for i, _ in order] == [0, 1, 2]
    assert order[0][1] == 2
    c.close()


def test_fifo_drops_a_second_copy_of_an_event(make: Any) -> None:
    a = make(fifo=True)
    c = a.consumer("once", ["o.*"])
    m = _event("o.x")
    a.publish([m])
    a.publish([m])
    got = _receive(c, 2, timeout=3)
    assert [d.message.headers["id"] for d in got] == [m.headers["id"]]
    c.ack(got)
    c.close()


# -- layout and failure -------------------------------------------------------------------------
def test_create_false_needs_the_queues_and_only_checks_them(make: Any) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        make(create=False).declare("made", ["m.*"])
    make().declare("made", ["m.*"])  # e.g. by your infrastructure code
    strict = make(create=False)
    c = strict.consumer("made", ["m.*"])
    strict.publish([_event("m.x")])
    got = _receive(c, 1)
    assert len(got) == 1
    c.ack(got)
    c.close()


def _queue_attributes(sqs_names: Any, group: str) -> tuple[str, dict[str, str]]:
    sqs = sqs_names.endpoint.client("sqs")
    url = sqs.get_queue_url(QueueName=sqs_names.settings().queue_name(group))["QueueUrl"]
    return url, sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]


def test_create_false_checks_raw_delivery_and_that_the_topic_may_send(
    make: Any, sqs_names: Any
) -> None:
    """A layout made by hand (Terraform) without raw delivery, or whose queue policy
    doesn't let the topic send, would lose or garble every event: refused, saying why."""
    make().declare("tf", ["t.*"])
    make(create=False).declare("tf", ["t.*"])  # as eventbus makes it: fine
    sns, sqs = sqs_names.endpoint.client("sns"), sqs_names.endpoint.client("sqs")
    url, attrs = _queue_attributes(sqs_names, "tf")
    topic = sns.create_topic(Name=sqs_names.settings().topic_name)["TopicArn"]
    (sub,) = [
        x["SubscriptionArn"]
        for x in sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
        if x["Endpoint"] == attrs["QueueArn"]
    ]
    sns.set_subscription_attributes(
        SubscriptionArn=sub, AttributeName="RawMessageDelivery", AttributeValue="false"
    )
    with pytest.raises(ConfigError, match="RawMessageDelivery=true"):
        make(create=False).declare("tf", ["t.*"])
    sns.set_subscription_attributes(
        SubscriptionArn=sub, AttributeName="RawMessageDelivery", AttributeValue="true"
    )
    policy = json.loads(attrs["Policy"])
    policy["Statement"][0]["Condition"]["ArnEquals"]["aws:SourceArn"] = topic + "-other"
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps(policy)})
    with pytest.raises(ConfigError, match="sqs:SendMessage") as info:
        make(create=False).declare("tf", ["t.*"])
    assert topic in str(info.value)
    policy["Statement"][0]["Condition"] = {"ArnLike": {"aws:SourceArn": topic[:-3] + "*"}}
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps(policy)})
    make(create=False).declare("tf", ["t.*"])  # a wildcard that covers the topic will do


def test_declare_keeps_what_others_put_in_the_queue_policy_and_redrive_policy(
    make: Any, sqs_names: Any
) -> None:
    make().declare("shared", ["s.*"])
    sqs = sqs_names.endpoint.client("sqs")
    url, attrs = _queue_attributes(sqs_names, "shared")
    policy = json.loads(attrs["Policy"])
    policy["Statement"].append(
        {
            "Sid": "other-team",
            "Effect": "Allow",
            "Action": "sqs:SendMessage",
            "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
            "Resource": attrs["QueueArn"],
        }
    )
    theirs = sqs.create_queue(QueueName=sqs_names.prefix + "ops-dlq")["QueueUrl"]
    theirs_arn = sqs.get_queue_attributes(QueueUrl=theirs, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    redrive = json.dumps({"deadLetterTargetArn": theirs_arn, "maxReceiveCount": 5})
    sqs.set_queue_attributes(
        QueueUrl=url, Attributes={"Policy": json.dumps(policy), "RedrivePolicy": redrive}
    )
    make(lease=7).declare("shared", ["s.*"])  # another lease: the queue is updated
    _, after = _queue_attributes(sqs_names, "shared")
    assert after["VisibilityTimeout"] == "7"
    statements = json.loads(after["Policy"])["Statement"]
    assert sorted(x["Sid"] for x in statements) == ["eventbus-sns", "other-team"]
    assert json.loads(after["RedrivePolicy"])["deadLetterTargetArn"] == theirs_arn


def test_an_unreachable_endpoint_is_broker_unavailable_quickly(sqs_names: Any) -> None:
    a = SqsAdapter(
        sqs_names.settings(endpoint_url="http://127.0.0.1:9", connect_timeout=1, max_attempts=1)
    )
    started = time.monotonic()
    with pytest.raises(BrokerUnavailable) as info:
        a.publish([_event("x.y")])
    assert time.monotonic() - started < 10
    assert info.value.__cause__ is not None
    a.close()
    a.close()
    with pytest.raises(ClosedError):
        a.publish([_event("x.y")])


def test_bus_from_a_url(sqs_names: Any) -> None:
    url = sqs_names.endpoint.url(**sqs_names.options(lease=2))
    with EventBus(url, config=BusConfig(poll_interval=0.2)) as bus:
        assert type(bus.adapter).__name__ == "SqsAdapter"
        got = Collector()
        bus.subscribe("order.created", got, group="billing")
        bus.declare()
        bus.publish("order.created", {"id": 1, "user": "Ana", "total": 42.9})
        bus.start()
        (e,) = got.wait(1)
        assert e.data == {"id": 1, "user": "Ana", "total": 42.9}


def test_declaring_with_another_lease_updates_the_queue(make: Any, sqs_names: Any) -> None:
    make(lease=2).declare("relet", ["l.*"])
    make(lease=7).declare("relet", ["l.*"])
    sqs = sqs_names.endpoint.client("sqs")
    url = sqs.get_queue_url(QueueName=sqs_names.settings().queue_name("relet"))["QueueUrl"]
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["VisibilityTimeout"])
    assert attrs["Attributes"]["VisibilityTimeout"] == "7"


def test_receive_long_polls_in_whole_seconds_and_never_spins(make: Any) -> None:
    a = make()
    c = a.consumer("idle", ["i.*"])
    waits: list[int] = []
    a._client.poll.meta.events.register(  # botocore's own event hook: records what is sent
        "provide-client-params.sqs.ReceiveMessage",
        lambda params, **_: waits.append(params["WaitTimeSeconds"]),
    )
    assert c.receive(10, 1.0) == []
    assert waits[0] == 1  # a one-second poll interval is a one-second long poll
    waits.clear()
    started = time.monotonic()
    while time.monotonic() - started < 2:
        assert c.receive(10, 0.2) == []  # sub-second: short polls, with back-off
    assert set(waits) == {0}
    assert len(waits) < 20, f"{len(waits)} receive calls in 2 s on an empty queue"
    c.close()


# -- an endpoint that goes away -------------------------------------------------------------------
def _blackhole(port: int) -> list[socket.socket]:
    """Listen on ``port`` and never accept, with the backlog full: connecting hangs there,
    as it does to an endpoint behind a firewall that drops packets."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(0)
    held = [listener]
    for _ in range(4):  # fill the accept queue; the first that hangs is left to time out
        c = socket.socket()
        c.setblocking(False)
        c.connect_ex(("127.0.0.1", port))
        held.append(c)
    time.sleep(0.2)
    return held


def test_with_the_endpoint_gone_stop_is_bounded_and_health_is_logged(
    sqs_names: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """The endpoint dies under a running worker: one WARNING says so, one more when it is
    back; and with it unreachable (connections hang), closing the bus does not wait for
    botocore's retries of a receive."""
    from eventbus_test_brokers.sqs import MotoServer

    server = MotoServer()
    server.start()
    held: list[socket.socket] = []
    bus = EventBus(
        SqsAdapter(sqs_names.settings(endpoint_url=server.url, lease=2)),
        config=BusConfig(poll_interval=0.5),
    )
    try:
        bus.subscribe("h.*", Collector(), group="health")
        bus.start()
        caplog.set_level(logging.WARNING, logger="eventbus.sqs")

        def said(text: str) -> int:
            return sum(text in r.getMessage() for r in caplog.records if r.name == "eventbus.sqs")

        server.stop()
        eventually(lambda: said("unreachable"), timeout=30, what="the unreachable warning")
        server.start()  # back (empty: moto keeps nothing, so receives now fail otherwise)
        eventually(lambda: said("reachable again"), timeout=30, what="the reachable warning")
        time.sleep(1.5)  # more failing receives: no more health warnings
        assert said("unreachable") == 1 and said("reachable again") == 1
        server.stop()
        held = _blackhole(server.port)
        time.sleep(1.5)  # a receive is now hanging in connect
        started = time.monotonic()
        bus.close()
        assert time.monotonic() - started < 10, "close waited for botocore's retries"
    finally:
        bus.close()
        server.stop()
        for s in held:
            s.close()


# -- size ------------------------------------------------------------------------------------------
def _message_of_size(size: int) -> Message:
    """An event whose wire form is exactly ``size`` bytes as SQS and SNS count them."""
    headers = {"specversion": "1.0", "type": "big.x", "id": "big-1", "source": "/t"}
    overhead = to_wire(Message(topic="big.x", body=b"", headers=headers)).size - 1  # "-" body
    m = Message(topic="big.x", body=b"x" * (size - overhead), headers=headers)
    assert to_wire(m).size == size
    return m


@pytest.mark.parametrize("mode", ["sns", "sqs"])
def test_the_size_limit_is_the_services_own(make: Any, sqs_names: Any, mode: str) -> None:
    """The test server refuses what SNS refuses (over 262,144 bytes, body and attributes),
    so this proves the adapter's count: an event of exactly the limit goes through, one
    byte more is refused before anything is sent."""
    sqs, sns = sqs_names.endpoint.client("sqs"), sqs_names.endpoint.client("sns")
    raw = sqs.create_queue(QueueName=sqs_names.prefix + "raw")["QueueUrl"]
    attributes = {"a": {"DataType": "String", "StringValue": "b"}}  # 1 + 6 + 1 bytes
    with pytest.raises(botocore.exceptions.ClientError, match="InvalidParameterValue"):
        sqs.send_message(
            QueueUrl=raw, MessageBody="x" * (MAX_MESSAGE_SIZE - 7), MessageAttributes=attributes
        )
    sqs.send_message(
        QueueUrl=raw, MessageBody="x" * (MAX_MESSAGE_SIZE - 8), MessageAttributes=attributes
    )
    topic = sns.create_topic(Name=sqs_names.topic + "-raw")["TopicArn"]
    try:
        with pytest.raises(botocore.exceptions.ClientError, match="InvalidParameter"):
            sns.publish(TopicArn=topic, Message="x" * (MAX_MESSAGE_SIZE + 1))
    finally:
        sns.delete_topic(TopicArn=topic)

    a = make(mode=mode)
    c = a.consumer("big", ["big.*"])
    largest = _message_of_size(MAX_MESSAGE_SIZE)
    a.publish([largest])
    (d,) = _receive(c, 1)
    assert d.message.body == largest.body
    c.ack([d])
    with pytest.raises(MessageTooLarge):
        a.publish([_message_of_size(MAX_MESSAGE_SIZE + 1)])
    c.close()
