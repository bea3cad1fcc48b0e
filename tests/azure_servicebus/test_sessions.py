"""The adapter's ``sessions=True`` mode beyond the conformance suite.

Per-key order across retries, one event per key in hand, session rotation,
session lock renewal for long handlers, the session id of a key, config.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest
from eventbus_azure_servicebus import DEFAULT_SESSION, from_url, session_for_key

from eventbus import BrokerError, BusConfig, ConfigError, Event, EventBus, RetryPolicy, encode
from eventbus.testing import Collector, eventually

pytestmark = [pytest.mark.azure_servicebus]


def _names() -> tuple[str, str]:
    word = uuid.uuid4().hex[:6]
    return f"sess-{word}", f"s{word}.x"


def _msg(topic: str, n: int, key: str | None) -> Any:
    return encode(Event(type=topic, data={"n": n}, source="/t", key=key))


def _take(consumer: Any, n: int, timeout: float = 20.0) -> list[Any]:
    got: list[Any] = []
    deadline = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        got += consumer.receive(n - len(got), 0.5)
    return got


def _n(d: Any) -> int:
    return int(json.loads(d.message.body)["n"])


def test_session_for_key() -> None:
    assert session_for_key("k1") == "k1"
    assert session_for_key(None) == session_for_key("") == DEFAULT_SESSION
    long_a, long_b = "a" * 200, "a" * 199 + "b"
    assert len(session_for_key(long_a)) <= 128
    assert session_for_key(long_a) != session_for_key(long_b)
    assert session_for_key(long_a) == session_for_key("a" * 200)


def test_url_options_turn_sessions_on() -> None:
    url = (
        "sb://127.0.0.1:5999/t?UseDevelopmentEmulator=true&entities=existing"
        "&sessions=true&max_sessions=3"
    )
    a = from_url(url, {})
    try:
        assert a.settings.sessions and a.settings.max_sessions == 3
        assert a.capabilities.ordering_per_key
    finally:
        a.close()
    plain = from_url("sb://127.0.0.1:5999/t?UseDevelopmentEmulator=true&entities=existing", {})
    try:
        assert not plain.settings.sessions and not plain.capabilities.ordering_per_key
    finally:
        plain.close()
    with pytest.raises(ConfigError, match="'sessions' must be true or false"):
        from_url(url.replace("sessions=true", "sessions=maybe"), {})


def test_one_event_per_key_in_hand_and_a_retry_keeps_its_place(make_adapter: Any) -> None:
    group, topic = _names()
    a = make_adapter(sessions=True)
    c = a.consumer(group, [topic])
    a.publish([_msg(topic, 1, "k"), _msg(topic, 2, "k"), _msg(topic, 3, "k")])
    first = _take(c, 1)
    assert [_n(d) for d in first] == [1]
    assert c.receive(10, 1.0) == [], "a second event of the key was handed out"
    c.nack(first[0], 0.5)
    again = _take(c, 1)
    assert [(_n(d), d.attempt) for d in again] == [(1, 2)]  # not overtaken by 2
    c.nack(again[0], 0)
    third = _take(c, 1)
    assert [(_n(d), d.attempt) for d in third] == [(1, 3)]
    c.ack(third)
    rest = _take(c, 1) + _take(c, 1)  # one at a time: each after the one before is settled
    assert [(_n(d), d.attempt) for d in rest] == [(2, 1)]
    c.ack(rest)
    last = _take(c, 1)
    assert [(_n(d), d.attempt) for d in last] == [(3, 1)]
    c.ack(last)
    c.close()


def test_keys_are_independent_and_keyless_events_go_together(make_adapter: Any) -> None:
    group, topic = _names()
    a = make_adapter(sessions=True)
    c = a.consumer(group, [topic])
    a.publish(
        [
            _msg(topic, 1, "a"),
            _msg(topic, 2, "b"),
            _msg(topic, 3, None),
            _msg(topic, 4, None),
            _msg(topic, 5, "a"),
        ]
    )
    got = _take(c, 4)
    assert sorted(_n(d) for d in got) == [1, 2, 3, 4]  # 5 waits for 1 (same key)
    c.ack(got)
    later = _take(c, 1)
    assert [_n(d) for d in later] == [5]
    c.ack(later)
    c.close()


def test_one_session_at_a_time_still_reaches_every_key(make_adapter: Any) -> None:
    """max_sessions=1: the consumer lets an idle session go and takes the next."""
    group, topic = _names()
    a = make_adapter(sessions=True, max_sessions=1)
    c = a.consumer(group, [topic])
    a.publish([_msg(topic, i, f"k{i % 3}") for i in range(9)])
    seen: list[int] = []
    deadline = time.monotonic() + 60
    while len(seen) < 9 and time.monotonic() < deadline:
        got = c.receive(10, 0.5)
        seen += [_n(d) for d in got]
        c.ack(got)
    assert sorted(seen) == list(range(9))
    for k in range(3):
        ours = [n for n in seen if n % 3 == k]
        assert ours == sorted(ours)
    c.close()


def test_retries_through_the_bus_keep_per_key_order(make_adapter: Any) -> None:
    group, topic = _names()
    retry = RetryPolicy(max_attempts=5, initial_delay=0.1, max_delay=0.3, jitter=0.0)
    failed: set[int] = set()

    def flaky(e: Event) -> bool:  # every third event fails once
        n = e.data["n"]
        if n % 3 == 0 and n not in failed:
            failed.add(n)
            return True
        return False

    got = Collector(fail=flaky)
    worker = EventBus(
        make_adapter(sessions=True), config=BusConfig(poll_interval=0.2, prefetch=20, retry=retry)
    )
    worker.subscribe(topic, got, group=group)
    worker.declare()
    worker.start()
    publisher = EventBus(make_adapter(sessions=True))
    n = 60
    publisher.publish_many(publisher.event(topic, {"n": i}, key=f"k{i % 4}") for i in range(n))
    got.wait_until(
        lambda evs: (
            len({e.data["n"] for e in evs if e.data["n"] not in failed or e.attempt > 1}) >= n
        ),
        idle=30,
    )
    worker.close()
    publisher.close()
    handled: dict[str, list[int]] = {}
    for e in got.events:
        if e.data["n"] in failed and e.attempt == 1:
            continue  # the failing attempt
        handled.setdefault(e.key or "", []).append(e.data["n"])
    for key, ns in handled.items():
        assert ns == sorted(ns), f"key {key}: {ns}"
    assert failed, "no event failed: the test tested nothing"


def test_long_handler_keeps_its_session(make_adapter: Any) -> None:
    """A handler running past the lock duration keeps the session lock: renewed."""
    group, topic = _names()
    got = Collector(delay=2.2)  # more than twice the 1 s lock
    worker = EventBus(
        make_adapter(lock_duration=1.0, sessions=True), config=BusConfig(poll_interval=0.2)
    )
    worker.subscribe(topic, got, group=group)
    worker.declare()
    worker.start()
    publisher = EventBus(make_adapter(sessions=True))
    first = publisher.publish(topic, {"n": 1}, key="slow").id
    second = publisher.publish(topic, {"n": 2}, key="slow").id
    got.wait_until(lambda evs: any(e.id == second for e in evs), idle=20)
    worker.close()
    publisher.close()
    assert [e.id for e in got.events] == [first, second]
    assert all(e.attempt == 1 for e in got.events)


def test_long_keys_round_trip(make_adapter: Any) -> None:
    group, topic = _names()
    a = make_adapter(sessions=True)
    c = a.consumer(group, [topic])
    key = "ü" * 300
    a.publish([_msg(topic, 1, key)])
    (d,) = eventually(lambda: c.receive(1, 0.5), what="the event")
    assert d.message.key == key
    c.ack([d])
    c.close()


def test_a_group_made_without_sessions_is_refused_with_sessions(
    servicebus: Any, make_adapter: Any
) -> None:
    servicebus.require_test_broker()  # the admin client's message differs; same refusal
    group, topic = _names()
    make_adapter().declare(group, [topic])
    with pytest.raises(BrokerError, match="RequiresSession"):
        make_adapter(sessions=True).declare(group, [topic])
