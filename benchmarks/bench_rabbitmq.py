"""eventbus on RabbitMQ against raw pika, kombu and FastStream, in one run.

    python benchmarks/bench_rabbitmq.py [--url amqp://...] [-n 5000]

Every contender publishes N persistent 200-byte JSON messages with publisher
confirms on, then consumes them with an ack per message (prefetch 100), in this
order: raw pika, kombu, FastStream, eventbus. Each gets its own queue; consume
is timed from a full queue to the last ack. Run it once (the machine is shared):
the ratios are what mean something, since all contenders share the noise.

- raw pika: ``BlockingConnection``, ``confirm_delivery()`` (a confirm per message),
  ``basic_consume`` + ``basic_ack`` per message;
- kombu: ``Producer.publish`` with ``confirm_publish``, ``Consumer`` + ``message.ack()``;
- FastStream: ``RabbitBroker.publish`` (aio-pika, confirms on) awaited per message,
  a subscriber that acks after the handler;
- eventbus: ``bus.publish_many`` (confirms pipelined) and a worker running a
  handler (decode, handler, ack); also the adapter's own publish of one event per
  call, and its consumer without the worker, for reference.

Queues and exchanges are named ``bench-<run>-*`` and deleted at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import pika
from eventbus_rabbitmq import RabbitMQAdapter

from eventbus import BusConfig, Event, EventBus, encode

PREFETCH = 100
RUN = uuid.uuid4().hex[:6]


def payload(i: int) -> dict[str, Any]:
    """A JSON object that encodes to exactly 200 bytes."""
    base = {"id": i, "user": "Ana", "total": 42.9, "pad": ""}
    pad = 200 - len(json.dumps(base, separators=(",", ":")))
    base["pad"] = "x" * pad
    return base


def body(i: int) -> bytes:
    b = json.dumps(payload(i), separators=(",", ":")).encode()
    assert len(b) == 200, len(b)
    return b


class Names:
    def __init__(self) -> None:
        self.queues: list[str] = []
        self.exchanges: list[str] = []

    def queue(self, who: str) -> str:
        q = f"bench-{RUN}-{who}"
        self.queues.append(q)
        return q

    def cleanup(self, url: str) -> None:
        conn = pika.BlockingConnection(pika.URLParameters(url))
        for q in self.queues:
            ch = conn.channel()
            try:
                ch.queue_delete(q)
            except pika.exceptions.ChannelClosedByBroker:
                pass
        for x in self.exchanges:
            ch = conn.channel()
            try:
                ch.exchange_delete(x)
            except pika.exceptions.ChannelClosedByBroker:
                pass
        conn.close()


def timed(fn: Callable[[], None]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


# -- raw pika --------------------------------------------------------------------------------
def pika_publish(url: str, q: str, n: int) -> None:
    conn = pika.BlockingConnection(pika.URLParameters(url))
    ch = conn.channel()
    ch.queue_declare(q, durable=True)
    ch.confirm_delivery()
    props = pika.BasicProperties(delivery_mode=2, content_type="application/json")
    for i in range(n):
        ch.basic_publish("", q, body(i), props)
    conn.close()


def pika_consume(url: str, q: str, n: int) -> None:
    conn = pika.BlockingConnection(pika.URLParameters(url))
    ch = conn.channel()
    ch.basic_qos(prefetch_count=PREFETCH)
    count = 0

    def on_message(ch: Any, method: Any, props: Any, data: bytes) -> None:
        nonlocal count
        json.loads(data)
        ch.basic_ack(method.delivery_tag)
        count += 1
        if count >= n:
            ch.stop_consuming()

    ch.basic_consume(q, on_message)
    ch.start_consuming()
    conn.close()


# -- kombu ---------------------------------------------------------------------------------------
def kombu_publish(url: str, q: str, n: int) -> None:
    import kombu

    with kombu.Connection(url, transport_options={"confirm_publish": True}) as conn:
        queue = kombu.Queue(q, kombu.Exchange(""), routing_key=q, durable=True)
        producer = conn.Producer()
        for i in range(n):
            producer.publish(
                body(i), routing_key=q, delivery_mode=2, content_type="application/json",
                content_encoding="utf-8", declare=[queue] if i == 0 else [],
            )  # fmt: skip


def kombu_consume(url: str, q: str, n: int) -> None:
    import kombu

    count = 0

    def on_message(data: Any, message: Any) -> None:
        nonlocal count
        message.ack()
        count += 1

    with kombu.Connection(url) as conn:
        queue = kombu.Queue(q, kombu.Exchange(""), routing_key=q, durable=True)
        with conn.Consumer(queue, callbacks=[on_message], prefetch_count=PREFETCH,
                           accept=["json"]):  # fmt: skip
            while count < n:
                conn.drain_events(timeout=30)


# -- FastStream ----------------------------------------------------------------------------------
def faststream_publish(url: str, q: str, n: int) -> None:
    from faststream.rabbit import RabbitBroker, RabbitQueue

    async def run() -> None:
        async with RabbitBroker(url, logger=None) as broker:
            queue = RabbitQueue(q, durable=True)
            await broker.declare_queue(queue)
            for i in range(n):
                await broker.publish(payload(i), queue=queue, persist=True)

    asyncio.run(run())


def faststream_consume(url: str, q: str, n: int) -> None:
    from faststream.rabbit import Channel, RabbitBroker, RabbitQueue

    async def run() -> None:
        done = asyncio.Event()
        count = 0
        broker = RabbitBroker(url, logger=None, default_channel=Channel(prefetch_count=PREFETCH))

        @broker.subscriber(RabbitQueue(q, durable=True))
        async def handle(data: dict[str, Any]) -> None:
            nonlocal count
            count += 1
            if count >= n:
                done.set()

        async with broker:
            await broker.start()
            await asyncio.wait_for(done.wait(), 120)

    asyncio.run(run())


# -- eventbus --------------------------------------------------------------------------------------
def eventbus_setup(url: str, names: Names) -> tuple[RabbitMQAdapter, str]:
    exchange = f"bench-{RUN}-eventbus"
    names.exchanges += [exchange, f"{exchange}:delay"]
    adapter = RabbitMQAdapter(url, exchange=exchange)
    group = "consume"
    names.queues += [adapter.settings.queue(group), adapter.settings.dead_queue(group)]
    adapter.declare(group, ["bench.#"])
    return adapter, group


def eventbus_publish(adapter: RabbitMQAdapter, n: int) -> None:
    bus = EventBus(adapter, source="/bench", config=BusConfig())
    bus.publish_many(bus.event("bench.created", payload(i)) for i in range(n))


def eventbus_publish_each(adapter: RabbitMQAdapter, n: int) -> None:
    bus = EventBus(adapter, source="/bench", config=BusConfig())
    for i in range(n):
        bus.publish("bench.created", payload(i))


def eventbus_consume(adapter: RabbitMQAdapter, group: str, n: int) -> None:
    count = 0
    done = threading.Event()

    def handler(event: Event) -> None:
        nonlocal count
        count += 1
        if count >= n:
            done.set()

    bus = EventBus(adapter, config=BusConfig(prefetch=PREFETCH, poll_interval=0.2))
    bus.subscribe("bench.#", handler, group=group)
    bus.start()
    if not done.wait(120):
        raise RuntimeError(f"eventbus consumed {count} of {n}")
    bus.stop()


def adapter_consume(adapter: RabbitMQAdapter, group: str, n: int) -> None:
    c = adapter.consumer(group, ["bench.#"])
    count = 0
    while count < n:
        batch = c.receive(PREFETCH, 1.0)
        count += len(batch)
        c.ack(batch)
    c.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--url", default=os.environ.get("EVENTBUS_RABBITMQ_URL")
                    or "amqp://guest:guest@127.0.0.1:5672/")  # fmt: skip
    ap.add_argument("-n", type=int, default=5000)
    args = ap.parse_args()
    url, n = args.url, args.n
    names = Names()
    rates: dict[str, tuple[float, float]] = {}
    try:
        q = names.queue("pika")
        rates["raw pika"] = (n / timed(lambda: pika_publish(url, q, n)),
                             n / timed(lambda: pika_consume(url, q, n)))  # fmt: skip
        try:
            q = names.queue("kombu")
            rates["kombu"] = (n / timed(lambda: kombu_publish(url, q, n)),
                              n / timed(lambda: kombu_consume(url, q, n)))  # fmt: skip
        except ImportError as exc:
            print(f"kombu skipped: {exc}", file=sys.stderr)
        try:
            q = names.queue("faststream")
            rates["FastStream"] = (n / timed(lambda: faststream_publish(url, q, n)),
                                   n / timed(lambda: faststream_consume(url, q, n)))  # fmt: skip
        except ImportError as exc:
            print(f"FastStream skipped: {exc}", file=sys.stderr)
        adapter, group = eventbus_setup(url, names)
        try:
            pub = n / timed(lambda: eventbus_publish(adapter, n))
            rates["eventbus"] = (pub, n / timed(lambda: eventbus_consume(adapter, group, n)))
            # for reference: one event per publish call, and the consumer without the worker
            m = min(n, 1000)
            each = m / timed(lambda: eventbus_publish_each(adapter, m))
            batch = [encode(Event("bench.created", payload(i), source="/b")) for i in range(n)]
            raw_pub = n / timed(lambda: adapter.publish(batch))
            raw_con = n / timed(lambda: adapter_consume(adapter, group, n + m))
            rates["eventbus adapter only"] = (raw_pub, raw_con)
        finally:
            adapter.close()
    finally:
        names.cleanup(url)

    print(f"\n{n} persistent 200-byte JSON messages, confirms on, prefetch {PREFETCH}\n")
    print(f"{'':24}{'publish/s':>12}{'consume+ack/s':>16}")
    for name, (pub, con) in rates.items():
        print(f"{name:24}{pub:12,.0f}{con:16,.0f}")
    print(f"{'eventbus, 1 per call':24}{each:12,.0f}{'':>16}")
    ours, pika_rates = rates["eventbus"], rates["raw pika"]
    print()
    print(f"consume+ack  eventbus / raw pika  = {ours[1] / pika_rates[1]:.2f}  (goal >= 0.9)")
    if "kombu" in rates:
        print(f"publish      eventbus / kombu     = {ours[0] / rates['kombu'][0]:.2f}  (goal >= 5)")
    print(f"publish      eventbus / raw pika  = {ours[0] / pika_rates[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
