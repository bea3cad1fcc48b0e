"""FastStream's confluent Kafka broker against raw confluent-kafka, same broker, same run.

    python benchmarks/bench_kafka_peers.py [--events N] [--single N] [--json PATH]

The eventbus-vs-raw figures come from ``bench_kafka.py``; this script measures
the peer against the same raw baselines, so ``run_all.py`` can set eventbus
against FastStream as a ratio of ratios (eventbus/raw over FastStream/raw),
each measured back to back on one broker. Cases (events/s, 200-byte JSON):

- ``raw produce+flush`` / ``faststream publish``: one event per call, each
  waiting for the broker's ack (acks=all, idempotent, linger 5 ms);
- ``raw produce+flush + ce headers``: the first case with the CloudEvents
  headers eventbus's records carry, for the page's explanation of that gap;
- ``raw produce`` / ``faststream publish batched``: N events, raw with one
  flush at the end, FastStream with ``asyncio.gather`` of its awaited publishes;
- ``raw consume`` / ``faststream consume``: N records already in the topic,
  ``json.loads`` + a trivial callback (raw, auto-commit), a FastStream
  subscriber with a trivial handler; timed from the first record to the last.

Starts a Tansu broker (or uses ``EVENTBUS_KAFKA_BOOTSTRAP``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import time
import uuid
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import body, kafka_broker, payload, write_json

PRODUCER = {"acks": "all", "enable.idempotence": True, "linger.ms": 5}


def create_topics(bootstrap: str, topics: list[str]) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    for f in admin.create_topics([NewTopic(t, num_partitions=4) for t in topics]).values():
        with contextlib.suppress(Exception):
            f.result(15)


def raw_single(bootstrap: str, topic: str, n: int) -> float:
    import confluent_kafka

    p = confluent_kafka.Producer({"bootstrap.servers": bootstrap, **PRODUCER})
    p.produce(topic, body(-1))
    p.flush()
    start = time.perf_counter()
    for i in range(n):
        p.produce(topic, body(i))
        p.flush()
    return n / (time.perf_counter() - start)


def raw_single_headers(bootstrap: str, topic: str, n: int) -> float:
    """``raw_single`` with the CloudEvents headers eventbus's records carry (built the way
    the adapter builds them, before the timing): what the binding costs a confirmed send."""
    import confluent_kafka
    from eventbus_kafka._codec import out_headers

    from eventbus import EventBus, encode

    bus = EventBus("memory://", source="/bench")
    headers = [out_headers(encode(bus.event("bench.raw", payload(i))).headers) for i in range(n)]
    p = confluent_kafka.Producer({"bootstrap.servers": bootstrap, **PRODUCER})
    p.produce(topic, body(-1))
    p.flush()
    start = time.perf_counter()
    for i in range(n):
        p.produce(topic, body(i), headers=headers[i])
        p.flush()
    return n / (time.perf_counter() - start)


def raw_batched(bootstrap: str, topic: str, n: int) -> float:
    import confluent_kafka

    p = confluent_kafka.Producer({"bootstrap.servers": bootstrap, **PRODUCER})
    values = [body(i) for i in range(n)]
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


def raw_consume(bootstrap: str, topic: str, n: int) -> float:
    import json

    import confluent_kafka

    c = confluent_kafka.Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "raw-" + uuid.uuid4().hex,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": True,
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 1000,
        }
    )
    c.subscribe([topic])
    count, start = 0, 0.0
    try:
        while count < n:
            for m in c.consume(500, 0) or [c.poll(1.0)]:
                if m is None or m.error() is not None:
                    continue
                if not start:
                    start = time.perf_counter()
                json.loads(m.value())
                count += 1
        return n / (time.perf_counter() - start)
    finally:
        c.close()


def fs_publish(bootstrap: str, topic: str, n: int, batched: bool) -> float:
    from faststream.confluent import KafkaBroker

    async def run() -> float:
        broker = KafkaBroker(
            bootstrap, logger=None, acks="all", enable_idempotence=True, linger_ms=5
        )
        async with broker:
            await broker.publish(payload(-1), topic)
            start = time.perf_counter()
            if batched:
                await asyncio.gather(*(broker.publish(payload(i), topic) for i in range(n)))
            else:
                for i in range(n):
                    await broker.publish(payload(i), topic)
            return n / (time.perf_counter() - start)

    return asyncio.run(run())


def fs_consume(bootstrap: str, topic: str, n: int) -> float:
    from faststream.confluent import KafkaBroker

    async def run() -> float:
        done = asyncio.Event()
        state: dict[str, Any] = {"count": 0, "start": 0.0}
        broker = KafkaBroker(bootstrap, logger=None)

        @broker.subscriber(
            topic,
            group_id="fs-" + uuid.uuid4().hex,
            auto_offset_reset="earliest",
            session_timeout_ms=6000,
            heartbeat_interval_ms=1000,
        )
        async def handle(data: dict[str, Any]) -> None:
            if not state["start"]:
                state["start"] = time.perf_counter()
            state["count"] += 1
            if state["count"] >= n:
                done.set()

        async with broker:
            await broker.start()
            await asyncio.wait_for(done.wait(), 300)
            return n / (time.perf_counter() - state["start"])

    return asyncio.run(run())


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--events", type=int, default=20_000)
    ap.add_argument("--single", type=int, default=1_000)
    ap.add_argument("--json")
    args = ap.parse_args()
    n, single = args.events, args.single
    r: dict[str, float] = {}
    with kafka_broker() as bootstrap:
        tag = f"peers{uuid.uuid4().hex[:6]}"
        topics = {k: f"{tag}.{k}" for k in ("raw1", "raw1h", "rawn", "fs1", "fsn")}
        create_topics(bootstrap, list(topics.values()))
        r["raw produce+flush"] = raw_single(bootstrap, topics["raw1"], single)
        r["raw produce+flush + ce headers"] = raw_single_headers(bootstrap, topics["raw1h"], single)
        r["faststream publish"] = fs_publish(bootstrap, topics["fs1"], single, batched=False)
        r["raw produce"] = raw_batched(bootstrap, topics["rawn"], n)
        r["faststream publish batched"] = fs_publish(bootstrap, topics["fsn"], n, batched=True)
        # both consumers read the same n + 1 records (the raw batched topic)
        r["raw consume"] = raw_consume(bootstrap, topics["rawn"], n + 1)
        r["faststream consume"] = fs_consume(bootstrap, topics["rawn"], n + 1)
    ratios = {
        "faststream publish / raw produce+flush": r["faststream publish"] / r["raw produce+flush"],
        "faststream publish batched / raw produce": r["faststream publish batched"]
        / r["raw produce"],
        "faststream consume / raw consume": r["faststream consume"] / r["raw consume"],
    }
    print(f"FastStream (confluent) vs raw confluent-kafka: {n} events, {single} one by one")
    for name, value in r.items():
        print(f"  {name:<28} {value:>12,.0f} events/s")
    for name, value in ratios.items():
        print(f"  {name:<44} {value:5.2f}")
    if args.json:
        write_json(args.json, {"events": n, "single": single, "results": r, "ratios": ratios})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
