"""The RabbitMQ adapter beyond the conformance suite: mapping, settings, leases, errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import pika
import pytest
from eventbus_rabbitmq import RabbitMQAdapter, RabbitMQSettings, delay_bucket

from eventbus import (
    BrokerError,
    BrokerUnavailable,
    BusConfig,
    ClosedError,
    ConfigError,
    EncodeError,
    Event,
    EventBus,
    Message,
    MessageTooLarge,
    create_adapter,
    decode,
    encode,
    find_spec,
)
from eventbus.testing import Collector, eventually

pytestmark = [pytest.mark.rabbitmq]

Make = Callable[..., RabbitMQAdapter]


def unique(word: str) -> str:
    return f"{word}{uuid.uuid4().hex[:8]}"


def event(topic: str, data: Any = None, **kw: Any) -> Message:
    return encode(Event(type=topic, data=data if data is not None else {}, source="/tests", **kw))


def receive(consumer: Any, n: int, timeout: float = 15.0) -> list[Any]:
    """Poll ``consumer`` until ``n`` deliveries arrived (fails after ``timeout``)."""
    got: list[Any] = []
    deadline = time.monotonic() + timeout
    while len(got) < n:
        assert time.monotonic() < deadline, f"received {len(got)} of {n}"
        got += consumer.receive(n - len(got), 0.5)
    return got


def get_one(raw_channel: Any, queue: str) -> tuple[Any, Any, bytes]:
    """One message from ``queue`` with plain pika (polls until there is one)."""
    found: list[tuple[Any, Any, bytes]] = []

    def check() -> bool:
        method, props, body = raw_channel.basic_get(queue, auto_ack=True)
        if method is not None:
            found.append((method, props, body))
        return bool(found)

    eventually(check, what=f"a message on {queue}")
    return found[0]


def queue_depth(raw_channel: Any, queue: str) -> int:
    return int(raw_channel.queue_declare(queue, passive=True).method.message_count)


# -- the plugin ------------------------------------------------------------------------------------
def test_found_by_name_and_url_scheme(rabbitmq_url: str, exchange: str, topology: Any) -> None:
    spec = find_spec("rabbitmq")
    assert spec.schemes == ("amqp", "amqps") and spec.extra == "rabbitmq" and spec.sdk == "pika"
    assert find_spec("amqps") is spec
    bus = EventBus(f"{rabbitmq_url}?exchange={exchange}&lease=5", config=BusConfig())
    try:
        topology.track(bus.adapter)
        assert isinstance(bus.adapter, RabbitMQAdapter)
        assert bus.adapter.settings.exchange == exchange
        assert bus.adapter.capabilities.lease_seconds == max(5.0, 3 * 10)
    finally:
        bus.close()


def test_importing_the_plugin_does_not_import_pika() -> None:
    code = (
        "import sys, eventbus, eventbus_rabbitmq\n"
        "from eventbus import adapter_specs\n"
        "assert 'rabbitmq' in adapter_specs()\n"
        "assert 'pika' not in sys.modules, 'pika imported at plugin load'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# -- settings --------------------------------------------------------------------------------------
def test_settings_from_url_query_and_options() -> None:
    s = RabbitMQSettings.from_url(
        "amqps://u:p@broker:5671/shop?exchange=orders&queue_type=quorum&lease=2.5"
        "&heartbeat=0&tls_verify=false&frame_max=131072",
        {"prefetch": 50, "delivery_limit": 10},
    )
    assert (s.exchange, s.queue_type, s.lease, s.heartbeat) == ("orders", "quorum", 2.5, 0)
    assert (s.prefetch, s.delivery_limit, s.tls_verify) == (50, 10, False)
    assert s.queue("billing") == "orders.billing"
    assert s.dead_queue("billing") == "orders.billing:dead"
    assert s.lease_seconds == 2.5  # heartbeat off: only the keeper's lease
    pika_url = s.pika_url()
    assert "frame_max=131072" in pika_url and "exchange" not in pika_url and "lease" not in pika_url
    pika.URLParameters(pika_url)  # pika accepts what is left


@pytest.mark.parametrize(
    ("url", "options", "match"),
    [
        (None, {"leese": 1}, "did you mean 'lease'"),
        (None, {"queue_type": "fifo"}, "queue_type"),
        (None, {"delivery_limit": 3}, "delivery_limit needs queue_type"),
        (None, {"lease": "soon"}, "lease.*must be a number"),
        (None, {"exchange": "amq.topic"}, "amq."),
        (None, {"max_message_size": 1 << 30}, "max_message_size"),
        (None, {"tls_ca_file": "/ca.pem"}, "amqps"),
        ("amqp://h/?prefetch=0", {}, "prefetch"),
        ("http://h/", {}, "scheme"),
        ("amqp://h/?url=amqp://other/", {}, "not an option"),
        (None, {"url": "amqp://other/"}, "not an option"),
    ],
)
def test_bad_settings_are_config_errors(
    url: str | None, options: dict[str, Any], match: str
) -> None:
    with pytest.raises(ConfigError, match=match):
        RabbitMQSettings.from_url(url, options)


BAD_URLS = [
    ("amqp://u:secret@host:notaport/", "notaport"),
    ("amqp://u:secret@[::1/", "IPv6"),
    ("amqp://guest:guest@127.0.0.1/?bogus=1", "'bogus'"),
    ("amqp://guest:guest@127.0.0.1/?frame_max=lots", "frame_max"),  # pika's own parameter
]


@pytest.mark.parametrize(("url", "match"), BAD_URLS)
def test_bad_urls_are_one_line_config_errors(url: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match) as info:
        create_adapter(None, url)
    assert "\n" not in str(info.value) and "secret" not in str(info.value)


@pytest.mark.parametrize(("url", "match"), BAD_URLS)
@pytest.mark.parametrize("via", ["env", "config"])
def test_bad_urls_make_the_cli_exit_2_with_one_line(
    tmp_path: Any, url: str, match: str, via: str
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTBUS_")}
    args = [sys.executable, "-m", "eventbus", "check"]
    if via == "env":
        env["EVENTBUS_URL"] = url
    else:
        (tmp_path / "bus.toml").write_text(f"url = {json.dumps(url)}\n")
        args[3:3] = ["--config", "bus.toml"]
    r = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, r
    assert len(r.stderr.splitlines()) == 1 and match in r.stderr, r.stderr
    assert "secret" not in r.stderr + r.stdout


def test_long_group_names_are_refused() -> None:
    with pytest.raises(ConfigError, match="at most"):
        RabbitMQSettings().queue("g" * 300)


# -- errors ----------------------------------------------------------------------------------------
def test_unreachable_broker_is_broker_unavailable() -> None:
    a = RabbitMQAdapter("amqp://guest:guest@127.0.0.1:1/", connect_timeout=3)
    try:
        with pytest.raises(BrokerUnavailable) as info:
            a.publish([event("x.y")])
        assert isinstance(info.value.__cause__, pika.exceptions.AMQPError)
        with pytest.raises(BrokerUnavailable):
            a.consumer("g", ["x.#"])
        with pytest.raises(BrokerUnavailable):
            a.declare("g", ["x.#"])
    finally:
        a.close()


def test_refused_login_is_a_broker_error_not_unavailable(rabbitmq_url: str) -> None:
    bad = rabbitmq_url.replace("guest:guest@", "guest:wrong@")
    assert bad != rabbitmq_url, "the test needs a URL with guest:guest"
    a = RabbitMQAdapter(bad, exchange=unique("unused"))
    try:
        for call in (lambda: a.publish([event("x.y")]), lambda: a.declare("g", ["#"])):
            with pytest.raises(BrokerError, match="refused the login") as info:
                call()
            assert not isinstance(info.value, BrokerUnavailable)
    finally:
        a.close()


def test_queue_declared_with_other_settings_is_explained(make_adapter: Make) -> None:
    group = unique("mixed")
    make_adapter().declare(group, ["mixed.#"])
    with pytest.raises(BrokerError, match="exists with other settings"):
        make_adapter(queue_type="quorum").declare(group, ["mixed.#"])


def test_closed_adapter_and_consumer(make_adapter: Make) -> None:
    a = make_adapter()
    c = a.consumer(unique("closing"), ["closing.#"])
    c.close()
    c.close()
    with pytest.raises(ClosedError):
        c.receive(1, 0.1)
    c2 = a.consumer(unique("closing"), ["closing.#"])
    a.close()
    a.close()
    with pytest.raises(ClosedError):
        c2.receive(1, 0.1)
    with pytest.raises(ClosedError):
        a.publish([event("closing.x")])


# -- the wire form ---------------------------------------------------------------------------------
def test_attributes_are_amqp_headers_and_properties(make_adapter: Make, raw_channel: Any) -> None:
    a = make_adapter()
    group = unique("wire")
    a.declare(group, ["wire.*"])
    m = event("wire.x", {"a": 1}, subject="s/1", key="k1", extensions={"tenant": "acme"})
    a.publish([m])
    queue = a.settings.queue(group)
    method, props, body = get_one(raw_channel, queue)
    assert method.routing_key == "wire.x" and body == m.body
    assert props.delivery_mode == 2
    assert props.content_type == "application/json"
    assert props.message_id == m.headers["id"]
    assert props.headers["cloudEvents:id"] == m.headers["id"]
    assert props.headers["cloudEvents:subject"] == "s/1"
    assert props.headers["cloudEvents:partitionkey"] == "k1"
    assert props.headers["cloudEvents:tenant"] == "acme"
    assert "cloudEvents:datacontenttype" not in props.headers


def test_other_publishers_headers_are_read(
    make_adapter: Make, raw_channel: Any, exchange: str
) -> None:
    a = make_adapter()
    group = unique("interop")
    c = a.consumer(group, ["interop.#"])
    # the JMS-style prefix, and a non-string attribute value
    raw_channel.basic_publish(
        exchange,
        "interop.a",
        b'{"x":1}',
        pika.BasicProperties(
            content_type="application/json",
            headers={
                "cloudEvents_id": "e1",
                "cloudEvents_source": "/legacy",
                "cloudEvents_type": "interop.a",
                "cloudEvents_specversion": "1.0",
                "cloudEvents_seq": 7,
            },
        ),
    )
    # nothing of ours at all: odd header types, no content type
    raw_channel.basic_publish(
        exchange,
        "interop.b",
        b"\x00\xff",
        pika.BasicProperties(headers={"x-list": [1, "two"], "n": 3, "flag": True}),
    )
    first, second = receive(c, 2)
    e = decode(first.message, first.attempt)
    assert (e.id, e.source, e.data, e.extensions) == ("e1", "/legacy", {"x": 1}, {"seq": "7"})
    assert second.message.headers == {} and second.message.body == b"\x00\xff"
    assert second.message.topic == "interop.b" and second.attempt == 1
    c.dead_letter(second, "undecodable: test")
    c.ack([first])
    c.close()
    ((letter, reason),) = a.dead_letters(group)
    assert reason == "undecodable: test" and letter.message.body == b"\x00\xff"


def test_publish_from_many_threads_at_once(make_adapter: Make) -> None:
    a, b = make_adapter(), make_adapter()
    group = unique("threads")
    c = b.consumer(group, ["threads.#"])
    sent: list[str] = []
    lock = threading.Lock()

    def publish(k: int) -> None:
        for _ in range(10):
            batch = [event(f"threads.p{k}", {"k": k}) for _ in range(20)]
            a.publish(batch)
            with lock:
                sent.extend(m.headers["id"] for m in batch)

    threads = [threading.Thread(target=publish, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    got = receive(c, len(sent))
    c.ack(got)
    assert sorted(d.message.headers["id"] for d in got) == sorted(sent)
    assert c.receive(10, 0.3) == []
    c.close()


def test_too_large_messages_are_refused_before_sending(make_adapter: Make) -> None:
    a = make_adapter(max_message_size=4096)
    assert a.capabilities.max_message_size == 4096
    group = unique("size")
    c = a.consumer(group, ["size.#"])
    with pytest.raises(MessageTooLarge, match="4096"):
        a.publish([event("size.ok"), event("size.big", b"x" * 4096)])
    big_attributes = make_adapter()
    with pytest.raises(MessageTooLarge, match="one frame"):
        big_attributes.publish([event("size.ext", extensions={"blob": "y" * 70_000})])
    sentinel = event("size.ok")
    a.publish([sentinel])
    (d,) = receive(c, 1)
    assert d.message.headers["id"] == sentinel.headers["id"], "part of a refused batch was sent"
    c.ack([d])
    c.close()


def test_attributes_not_encodable_as_utf8_are_encode_errors_and_nothing_is_sent(
    make_adapter: Make, raw_channel: Any
) -> None:
    group = unique("surrogate")
    bus = EventBus(make_adapter(), config=BusConfig())
    try:
        bus.subscribe("surrogate.*", Collector(), group=group)
        bus.declare()
        with pytest.raises(EncodeError, match="correlationid"):
            bus.publish("surrogate.x", {"n": 1}, correlationid="\udc80")  # a lone surrogate
        # a Message made by hand, not by encode, is refused by the adapter the same way
        hand_made = Message("surrogate.y", b"{}", {"id": "1", "source": "/s", "x": "\ud800"})
        with pytest.raises(EncodeError, match="UTF-8"):
            bus.adapter.publish([event("surrogate.ok"), hand_made])
        assert queue_depth(raw_channel, bus.adapter.settings.queue(group)) == 0
    finally:
        bus.close()


# -- retries and dead letters ----------------------------------------------------------------------
def test_delay_buckets_round_up() -> None:
    assert delay_bucket(0) == 0 and delay_bucket(-1) == 0
    assert delay_bucket(0.0001) == 10
    previous = 0
    for ms in [1, 9, 10, 11, 99, 150, 151, 999, 1000, 1001, 29_999, 30_000, 3_600_000, 50_000_000]:
        bucket = delay_bucket(ms / 1000)
        assert bucket >= ms, (ms, bucket)
        assert bucket <= max(10, ms * 2), (ms, bucket)  # never more than twice as long
        assert bucket >= previous
        previous = bucket
    assert delay_bucket(10**9) == 86_400_000  # a day is the longest bucket


def test_nack_counts_attempts_and_keeps_the_message(make_adapter: Make, raw_channel: Any) -> None:
    a = make_adapter()
    group = unique("retry")
    c = a.consumer(group, ["retry.*"])
    sent = event("retry.x", {"n": 1}, subject="again")
    a.publish([sent])
    (first,) = receive(c, 1)
    assert first.attempt == 1
    t = time.monotonic()
    c.nack(first, 0.4)  # the 500 ms bucket
    (second,) = receive(c, 1)
    assert time.monotonic() - t >= 0.4
    c.nack(second, 0)  # straight back into the group's queue
    (third,) = receive(c, 1)
    for d, attempt in ((second, 2), (third, 3)):
        assert d.attempt == attempt
        assert d.message.topic == "retry.x"
        assert d.message.headers == sent.headers and d.message.body == sent.body
    c.ack([third])
    assert c.receive(1, 0.3) == []
    c.close()
    assert queue_depth(raw_channel, a.settings.delay_queue(500)) == 0


def test_dead_letter_keeps_the_event_with_the_reason(make_adapter: Make, raw_channel: Any) -> None:
    a = make_adapter()
    group = unique("dead")
    c = a.consumer(group, ["dead.*"])
    sent = event("dead.x", {"n": 1})
    a.publish([sent])
    (d,) = receive(c, 1)
    c.nack(d, 0)
    (d,) = receive(c, 1)
    c.dead_letter(d, "ValueError: bad order (attempt 2 of 2)")
    assert c.receive(1, 0.3) == []
    c.close()
    for _ in range(2):  # peeking leaves them there
        ((letter, reason),) = a.dead_letters(group)
        assert reason == "ValueError: bad order (attempt 2 of 2)"
        assert letter.attempt == 2 and letter.message.topic == "dead.x"
        assert letter.message.headers == sent.headers and letter.message.body == sent.body
    method, props, _ = raw_channel.basic_get(a.settings.dead_queue(group), auto_ack=False)
    assert props.headers["eventbus-group"] == group
    assert props.headers["eventbus-failed-at"].endswith("+00:00")
    raw_channel.basic_nack(method.delivery_tag, requeue=True)
    assert a.dead_letters(unique("never-declared")) == []


# -- leases and heartbeats -------------------------------------------------------------------------
def test_lease_runs_out_and_another_member_gets_the_events(make_adapter: Make) -> None:
    group = unique("lease")
    first = make_adapter(lease=2, heartbeat=1).consumer(group, ["lease.*"])
    second = make_adapter(lease=2, heartbeat=1).consumer(group, ["lease.*"])
    make_adapter().publish([event("lease.x", {"i": i}) for i in range(3)])
    held = receive(first, 3)
    t = time.monotonic()
    assert second.receive(3, 1.0) == []  # still leased to the first member
    got = receive(second, 3)
    assert time.monotonic() - t >= 1.5  # about the 2 s lease (keeper ticks at 0.2 s)
    assert sorted(d.message.headers["id"] for d in got) == sorted(
        d.message.headers["id"] for d in held
    )
    assert all(d.attempt == 2 for d in got)
    with pytest.raises(BrokerError, match="lease ran out"):
        first.ack(held)
    second.ack(got)


def test_heartbeats_are_answered_while_a_handler_runs(make_adapter: Make) -> None:
    # three missed 1 s heartbeats would make RabbitMQ drop the connection
    group = unique("slow")
    c = make_adapter(lease=20, heartbeat=1).consumer(group, ["slow.*"])
    other = make_adapter().consumer(group, ["slow.*"])
    make_adapter().publish([event("slow.x")])
    (d,) = receive(c, 1)
    time.sleep(4.5)  # a slow handler holding the consumer thread (not a wait for delivery)
    c.ack([d])
    assert other.receive(1, 0.5) == [], "the event was redelivered: the connection was dropped"
    c.close()


# -- topology --------------------------------------------------------------------------------------
def test_redeclaring_a_group_replaces_its_patterns(make_adapter: Make, raw_channel: Any) -> None:
    a = make_adapter()
    group = unique("swap")
    a.declare(group, ["swap.old"])
    a.declare(group, ["swap.new"])
    a.publish([event("swap.old"), event("swap.new")])
    eventually(lambda: queue_depth(raw_channel, a.settings.queue(group)) == 1, what="one routed")
    c = a.consumer(group, ["swap.new"])
    (d,) = receive(c, 1)
    assert d.message.topic == "swap.new"
    c.ack([d])
    c.close()


def test_a_binding_left_by_an_older_deployment_is_dead_lettered(make_adapter: Make) -> None:
    group = unique("stale")
    make_adapter().declare(group, ["stale.old", "stale.new"])  # the old deployment
    a = make_adapter()
    c = a.consumer(group, ["stale.new"])  # the new one does not know 'stale.old'
    make_adapter().publish([event("stale.old"), event("stale.new"), event("stale.new")])
    got = receive(c, 2)
    assert [d.message.topic for d in got] == ["stale.new", "stale.new"]
    c.ack(got)
    assert c.receive(5, 0.3) == []
    c.close()
    ((letter, reason),) = a.dead_letters(group)
    assert letter.message.topic == "stale.old"
    assert reason == f"topic 'stale.old' matches none of group {group!r}'s patterns ['stale.new']"


def test_a_message_put_straight_into_the_queue_is_dead_lettered_not_dropped(
    make_adapter: Make, raw_channel: Any
) -> None:
    """A foreign producer on the default exchange: the routing key is the queue's name."""
    group = unique("direct")
    a = make_adapter()
    c = a.consumer(group, ["direct.*"])
    queue = a.settings.queue(group)
    raw_channel.basic_publish("", queue, b'{"n": 1}')  # topic = the routing key = queue name
    raw_channel.basic_publish(
        "", queue, b"{}", pika.BasicProperties(headers={"eventbus-topic": "direct.x"})
    )
    (d,) = receive(c, 1)
    assert d.message.topic == "direct.x"
    c.ack([d])
    assert c.receive(5, 0.3) == []
    ((letter, reason),) = a.dead_letters(group)
    assert letter.message.topic == queue and letter.message.body == b'{"n": 1}'
    assert repr(queue) in reason and "['direct.*']" in reason and group in reason
    c.close()


# -- quorum queues ---------------------------------------------------------------------------------
def test_quorum_queues_count_every_redelivery(make_adapter: Make) -> None:
    group = unique("quorum")
    make_adapter(queue_type="quorum").declare(group, ["quorum.*"])
    make_adapter().publish([event("quorum.x")])
    attempts = []
    for _ in range(3):  # a member crashes twice with the event in hand
        a = make_adapter(queue_type="quorum")
        c = a.consumer(group, ["quorum.*"])
        (d,) = receive(c, 1)
        attempts.append(d.attempt)
        if len(attempts) < 3:
            a.simulate_crash()
    assert attempts == [1, 2, 3]  # x-delivery-count, not just the redelivered flag
    c.nack(d, 0.01)
    (d,) = receive(c, 1)
    assert d.attempt == 4
    c.ack([d])
    c.close()


def test_quorum_delivery_limit_dead_letters_on_the_broker(make_adapter: Make) -> None:
    group = unique("limit")
    make_adapter(queue_type="quorum", delivery_limit=1).declare(group, ["limit.*"])
    make_adapter().publish([event("limit.x")])
    for _ in range(2):  # delivered twice, crashing each time: over the limit
        a = make_adapter(queue_type="quorum", delivery_limit=1)
        receive(a.consumer(group, ["limit.*"]), 1)
        a.simulate_crash()
    a = make_adapter(queue_type="quorum", delivery_limit=1)
    ((letter, reason),) = eventually(lambda: a.dead_letters(group), what="the dead letter")
    assert reason == "dead-lettered by RabbitMQ: delivery_limit"
    assert letter.message.topic == "limit.x" and letter.attempt == 2


# -- connection loss -------------------------------------------------------------------------------
def test_publisher_reconnects_after_losing_its_connection(make_adapter: Make) -> None:
    a = make_adapter()
    group = unique("reconnect")
    c = make_adapter().consumer(group, ["reconnect.*"])
    a.publish([event("reconnect.x")])
    a.simulate_crash()
    eventually(lambda: a._publisher._link is None or a._publisher._link.dead, what="link down")
    a.publish([event("reconnect.x")])
    got = receive(c, 2)
    c.ack(got)
    c.close()


def test_worker_recovers_when_its_connection_drops(make_adapter: Make) -> None:
    a = make_adapter(lease=30)
    got = Collector()
    bus = EventBus(a, config=BusConfig(prefetch=10, poll_interval=0.2))
    bus.subscribe("recover.*", got, group=unique("recover"))
    bus.start()
    try:
        p = EventBus(make_adapter(), config=BusConfig())
        p.publish("recover.x", {"n": 1})
        got.wait(1)
        a.simulate_crash()  # the worker's consumer connection dies under it
        p.publish("recover.x", {"n": 2})
        events = got.wait(2, idle=20)
        assert [e.data["n"] for e in events] == [1, 2]
    finally:
        bus.stop()


def test_a_deleted_queue_is_noticed_and_declared_again(
    make_adapter: Make, raw_channel: Any
) -> None:
    a = make_adapter()
    group = unique("gone")
    c = a.consumer(group, ["gone.*"])
    assert c.receive(1, 0.2) == []
    raw_channel.queue_delete(a.settings.queue(group))  # an operator deletes it
    with pytest.raises(BrokerError, match="cancelled"):
        eventually(lambda: c.receive(1, 0.2) and False, what="the cancel")
    c.close()
    c = a.consumer(group, ["gone.*"])  # the worker's next try declares it again
    a.publish([event("gone.x")])
    (d,) = receive(c, 1)
    c.ack([d])
    c.close()


def test_tls_settings_make_an_ssl_context() -> None:
    a = RabbitMQAdapter(
        "amqps://u:p@broker.internal/vh", tls_verify=False, tls_server_hostname="rabbit"
    )
    params = a._parameters("test")  # nothing connects until the first call
    assert params.ssl_options is not None and params.port == 5671
    assert params.ssl_options.server_hostname == "rabbit"
    assert params.ssl_options.context.check_hostname is False
    assert params.virtual_host == "vh" and params.heartbeat == 10
    a.close()


def test_receive_with_no_wait_still_reads_the_socket(make_adapter: Make) -> None:
    a = make_adapter()
    c = a.consumer(unique("nowait"), ["nowait.*"])
    a.publish([event("nowait.x")])
    (d,) = eventually(lambda: c.receive(1, 0), what="a delivery with timeout 0")
    c.ack([d])
    c.close()


def test_vhost_comes_from_the_url_path(rabbitmq_url: str, exchange: str, topology: Any) -> None:
    params = pika.URLParameters(rabbitmq_url)
    encoded = "%2F" if params.virtual_host == "/" else params.virtual_host
    base = rabbitmq_url.rsplit("/", 1)[0]
    a = topology.track(RabbitMQAdapter(f"{base}/{encoded}", exchange=exchange))
    try:
        assert a._parameters("test").virtual_host == params.virtual_host
        c = a.consumer(unique("vhost"), ["vhost.*"])
        a.publish([event("vhost.x")])
        (d,) = receive(c, 1)
        c.ack([d])
        c.close()
    finally:
        a.close()
