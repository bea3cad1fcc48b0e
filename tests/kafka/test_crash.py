"""No loss when a member dies mid-batch or the group rebalances while it works."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from eventbus_kafka import KafkaAdapter, KafkaSettings

from eventbus import BusConfig, Delivery, Event, EventBus
from eventbus.testing import Collector, eventually

pytestmark = pytest.mark.kafka

MEMBER = Path(__file__).with_name("_member.py")


@pytest.fixture
def member(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> Iterator[Callable[[str, str, float], tuple[subprocess.Popen[str], Path]]]:
    procs: list[subprocess.Popen[str]] = []

    def start(group: str, pattern: str, delay: float) -> tuple[subprocess.Popen[str], Path]:
        out = tmp_path / f"member-{len(procs)}.txt"
        s = kafka_settings
        proc = subprocess.Popen(
            [
                sys.executable,
                str(MEMBER),
                s.bootstrap_servers,
                s.prefix,
                str(s.session_timeout),
                group,
                pattern,
                str(out),
                str(delay),
            ],
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        procs.append(proc)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        return proc, out

    yield start
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()


def handled(path: Path) -> list[tuple[str, int]]:
    if not path.exists():
        return []
    return [(i, int(a)) for i, a in (line.split() for line in path.read_text().splitlines())]


def bus_on(adapter: KafkaAdapter) -> EventBus:
    config = BusConfig(prefetch=20, poll_interval=0.2)
    return EventBus(adapter, source="/tests/kafka", config=config)


def test_a_member_killed_mid_batch_loses_nothing(
    member: Callable[..., tuple[subprocess.Popen[str], Path]],
    make_adapter: Callable[..., KafkaAdapter],
) -> None:
    word = "c" + uuid.uuid4().hex[:8]
    group, pattern = f"{word}-crash", f"{word}.*"
    publisher = bus_on(make_adapter())
    survivor_bus = bus_on(make_adapter())
    survivor = Collector()
    survivor_bus.subscribe(pattern, survivor, group=group)
    survivor_bus.declare()
    events = [publisher.event(f"{word}.job", {"n": n}, key=f"k{n % 16}") for n in range(300)]
    sent = [r.id for r in publisher.publish_many(events)]
    proc, out = member(group, pattern, 0.02)  # ~1 batch of 20 every 0.4 s
    eventually(lambda: len(handled(out)) >= 40, timeout=30, what="the member working")
    survivor_bus.start()  # joins: the group rebalances, the member keeps some partitions
    survivor.wait(5, idle=30)
    eventually(lambda: len(handled(out)) >= 80, timeout=30, what="the member working on")
    os.killpg(proc.pid, signal.SIGKILL)  # mid-batch: its last events are handled, not acked
    proc.wait(10)
    dead = handled(out)
    survivor.wait_until(
        lambda evs: {e.id for e in evs} | {i for i, _ in dead} >= set(sent), idle=30
    )
    again = [e for e in survivor.events if e.id in {i for i, _ in dead}]
    assert again, "the killed member's unacknowledged events were not redelivered"
    # redeliveries of what the dead member had been handed carry attempt 2
    assert sum(e.attempt >= 2 for e in again) >= len(again) - 1, [e.attempt for e in again]
    survivor_bus.close()
    publisher.close()


def test_a_rebalance_while_processing_loses_and_repeats_nothing(
    make_adapter: Callable[..., KafkaAdapter],
) -> None:
    word = "r" + uuid.uuid4().hex[:8]
    group, pattern = f"{word}-rebalance", f"{word}.*"
    got = Collector(delay=0.004)
    first, second, publisher = (bus_on(make_adapter()) for _ in range(3))
    first.subscribe(pattern, got, group=group)
    second.subscribe(pattern, got, group=group)
    first.declare()
    n = 600
    sent = [
        r.id
        for r in publisher.publish_many(
            publisher.event(f"{word}.job", {"seq": i, "key": f"k{i % 8}"}, key=f"k{i % 8}")
            for i in range(n)
        )
    ]
    first.start()
    got.wait(60, idle=30)
    second.start()  # a member joins mid-stream
    eventually(lambda: got.count() >= 300, timeout=60, what="both working")
    second.close()  # and leaves mid-stream
    got.wait_until(lambda evs: len({e.id for e in evs}) >= n, idle=30)
    ids = got.ids()
    assert set(ids) == set(sent)
    assert len(ids) == len(set(ids)), f"{len(ids) - len(set(ids))} events handled twice"
    last: dict[str, int] = {}
    for e in got.events:  # per key, still in publish order across both rebalances
        key, seq = e.data["key"], e.data["seq"]
        assert seq > last.get(key, -1), f"key {key}: {seq} after {last[key]}"
        last[key] = seq
    first.close()
    publisher.close()


def test_simulate_crash_leaves_nothing_committed(
    make_adapter: Callable[..., KafkaAdapter],
) -> None:
    word = "s" + uuid.uuid4().hex[:8]
    group, topic = f"{word}-sim", f"{word}.x"
    doomed, heir = make_adapter(), make_adapter()
    first = doomed.consumer(group, [topic])
    publisher = bus_on(make_adapter())
    ids = {r.id for r in publisher.publish_many(publisher.event(topic, {"i": i}) for i in range(6))}
    held = eventually(lambda: first.receive(10, 0.5), what="deliveries")
    doomed.simulate_crash()
    second = heir.consumer(group, [topic])
    got: list[Event] = []
    eventually(lambda: got.extend(second.receive(10, 0.5)) or len(got) >= 6, timeout=30)
    assert {d.message.headers["id"] for d in got} == ids
    held_ids = {d.message.headers["id"] for d in held}
    assert all(d.attempt == 2 for d in got if d.message.headers["id"] in held_ids)
    second.ack(got)
    second.close()


@pytest.mark.parametrize("ahead", [0, 1000])
def test_after_a_crash_attempt_2_covers_the_events_handed_out_and_marks_ahead(
    make_adapter: Callable[..., KafkaAdapter], ahead: int
) -> None:
    """``marks_ahead``: 0 marks exactly what the dead member handed out; more marks
    that many events after it too ("may have been handed out before")."""
    word = "m" + uuid.uuid4().hex[:8]
    group, topic = f"{word}-marks", f"{word}.x"
    doomed, heir = (make_adapter(partitions=1, marks_ahead=ahead) for _ in range(2))
    first = doomed.consumer(group, [topic])
    publisher = bus_on(make_adapter(partitions=1))
    ids = [r.id for r in publisher.publish_many(publisher.event(topic, {"i": i}) for i in range(6))]
    held = eventually(lambda: first.receive(2, 0.5), what="deliveries")
    doomed.simulate_crash()
    second = heir.consumer(group, [topic])
    got: list[Delivery] = []
    eventually(lambda: got.extend(second.receive(10, 0.5)) or len(got) >= 6, timeout=30)
    attempts = {d.message.headers["id"]: d.attempt for d in got}
    held_ids = {d.message.headers["id"] for d in held}
    assert sorted(attempts) == sorted(ids) and held_ids < set(ids)
    assert [attempts[i] for i in ids] == [2 if i in held_ids or ahead else 1 for i in ids]
    second.ack(got)
    second.close()
