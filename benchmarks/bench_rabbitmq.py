"""eventbus on RabbitMQ against raw pika, kombu and FastStream, in one run.

    python benchmarks/bench_rabbitmq.py [--url amqp://...] [-n 5000] [--single 2000]
                                        [--repeat 1] [--json PATH]

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
- aio-pika: ``exchange.publish`` awaited per message (a confirm each), a queue
  iterator acking each message;
- eventbus: ``bus.publish_many`` (confirms pipelined) and a worker running a
  handler (decode, handler, ack); also the adapter's own publish of one event per
  call, and its consumer without the worker, for reference.

Publishing is measured two ways: one message per call, each waiting for its
confirm (``--single`` messages: raw pika, kombu, FastStream, aio-pika,
``bus.publish``), and batched, N messages with their confirms pipelined (raw
pika on a ``SelectConnection``, FastStream and aio-pika with ``asyncio.gather``,
``bus.publish_many``; kombu has no pipelined confirms). ``--repeat`` runs the
whole set again, contenders in reverse order every other time; the best counts.

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


def pika_publish_pipelined(url: str, q: str, n: int) -> None:
    """Raw pika with pipelined confirms: a ``SelectConnection``, every message written,
    confirms counted as they come (``multiple`` acks cover ranges)."""
    props = pika.BasicProperties(delivery_mode=2, content_type="application/json")
    bodies = [body(i) for i in range(n)]
    state: dict[str, Any] = {"pending": set(range(1, n + 1)), "error": None}

    def on_open(conn: Any) -> None:
        conn.channel(on_open_callback=on_channel)

    def on_channel(ch: Any) -> None:
        ch.confirm_delivery(on_confirm)
        ch.queue_declare(q, durable=True, callback=lambda _f: send(ch))

    def send(ch: Any) -> None:
        for b in bodies:
            ch.basic_publish("", q, b, props)

    def on_confirm(frame: Any) -> None:
        m = frame.method
        if isinstance(m, pika.spec.Basic.Nack):
            state["error"] = "nacked"
        pending = state["pending"]
        if m.multiple:
            pending -= {t for t in pending if t <= m.delivery_tag}
        else:
            pending.discard(m.delivery_tag)
        if not pending:
            conn.close()

    conn = pika.SelectConnection(
        pika.URLParameters(url),
        on_open_callback=on_open,
        on_open_error_callback=lambda c, e: c.ioloop.stop(),
        on_close_callback=lambda c, e: c.ioloop.stop(),
    )
    conn.ioloop.start()
    if state["pending"] or state["error"]:
        raise RuntimeError(f"raw pika pipelined: {len(state['pending'])} unconfirmed")


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
                body(i),
                routing_key=q,
                delivery_mode=2,
                content_type="application/json",
                content_encoding="utf-8",
                declare=[queue] if i == 0 else [],
            )


def kombu_consume(url: str, q: str, n: int) -> None:
    import kombu

    count = 0

    def on_message(data: Any, message: Any) -> None:
        nonlocal count
        message.ack()
        count += 1

    with kombu.Connection(url) as conn:
        queue = kombu.Queue(q, kombu.Exchange(""), routing_key=q, durable=True)
        with conn.Consumer(queue, callbacks=[on_message], prefetch_count=PREFETCH, accept=["json"]):
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


def faststream_publish_batched(url: str, q: str, n: int) -> None:
    from faststream.rabbit import RabbitBroker, RabbitQueue

    async def run() -> None:
        async with RabbitBroker(url, logger=None) as broker:
            queue = RabbitQueue(q, durable=True)
            await broker.declare_queue(queue)
            await asyncio.gather(
                *(broker.publish(payload(i), queue=queue, persist=True) for i in range(n))
            )

    asyncio.run(run())


# -- aio-pika --------------------------------------------------------------------------------------
def aiopika_publish(url: str, q: str, n: int, batched: bool = False) -> None:
    import aio_pika

    async def run() -> None:
        conn = await aio_pika.connect(url)
        async with conn:
            ch = await conn.channel(publisher_confirms=True)
            await ch.declare_queue(q, durable=True)
            persistent = aio_pika.DeliveryMode.PERSISTENT
            msgs = [
                aio_pika.Message(body(i), delivery_mode=persistent, content_type="application/json")
                for i in range(n)
            ]
            if batched:
                await asyncio.gather(*(ch.default_exchange.publish(m, q) for m in msgs))
            else:
                for m in msgs:
                    await ch.default_exchange.publish(m, q)

    asyncio.run(run())


def aiopika_consume(url: str, q: str, n: int) -> None:
    import aio_pika

    async def run() -> None:
        conn = await aio_pika.connect(url)
        async with conn:
            ch = await conn.channel()
            await ch.set_qos(prefetch_count=PREFETCH)
            queue = await ch.declare_queue(q, durable=True)
            count = 0
            async with queue.iterator() as it:
                async for message in it:
                    json.loads(message.body)
                    await message.ack()
                    count += 1
                    if count >= n:
                        break

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


Rates = dict[str, dict[str, list[float]]]  # contender -> case -> rates of every repeat


def _peers(url: str, names: Names, n: int, single: int) -> list[tuple[str, dict[str, Any]]]:
    """(contender, {case: zero-arg callable}) for the peers; consume reads the batched queue."""
    out: list[tuple[str, dict[str, Any]]] = []

    def cases(who: str, pub1: Any, pubn: Any, con: Any) -> dict[str, Any]:
        q1, qn = names.queue(who + "-single"), names.queue(who)
        c: dict[str, Any] = {"publish single": (single, lambda: pub1(url, q1, single))}
        if pubn is not None:
            c["publish batched"] = (n, lambda: pubn(url, qn, n))
        else:  # nothing to pipeline: the consume case reads a queue filled one by one
            c["fill"] = (n, lambda: pub1(url, qn, n))
        c["consume+ack"] = (n, lambda: con(url, qn, n))
        return c

    out.append(("raw pika", cases("pika", pika_publish, pika_publish_pipelined, pika_consume)))
    try:
        import kombu  # noqa: F401

        out.append(("kombu", cases("kombu", kombu_publish, None, kombu_consume)))
    except ImportError as exc:
        print(f"kombu skipped: {exc}", file=sys.stderr)
    try:
        import faststream.rabbit  # noqa: F401

        fs = cases("faststream", faststream_publish, faststream_publish_batched, faststream_consume)
        out.append(("FastStream", fs))
    except ImportError as exc:
        print(f"FastStream skipped: {exc}", file=sys.stderr)
    try:
        import aio_pika  # noqa: F401

        out.append(
            (
                "aio-pika",
                cases(
                    "aiopika",
                    aiopika_publish,
                    lambda u, q, k: aiopika_publish(u, q, k, batched=True),
                    aiopika_consume,
                ),
            )
        )
    except ImportError as exc:
        print(f"aio-pika skipped: {exc}", file=sys.stderr)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument(
        "--url",
        default=os.environ.get("EVENTBUS_RABBITMQ_URL") or "amqp://guest:guest@127.0.0.1:5672/",
    )
    ap.add_argument("-n", type=int, default=5000, help="messages per batched/consume case")
    ap.add_argument("--single", type=int, default=2000, help="messages per one-by-one case")
    ap.add_argument("--repeat", type=int, default=1, help="runs of every case; the best counts")
    ap.add_argument("--json", help="write every run's figures to this file")
    args = ap.parse_args()
    url, n, single = args.url, args.n, args.single
    names = Names()
    rates: Rates = {}

    def note(who: str, case: str, count: int, seconds: float) -> None:
        rates.setdefault(who, {}).setdefault(case, []).append(count / seconds)

    try:
        adapter, group = eventbus_setup(url, names)
        try:
            both = n + single  # the group's queue gets the batched and the one-by-one events
            for r in range(max(1, args.repeat)):
                contenders = _peers(url, names, n, single)
                ours: dict[str, Any] = {
                    "publish single": (single, lambda: eventbus_publish_each(adapter, single)),
                    "publish batched": (n, lambda: eventbus_publish(adapter, n)),
                    "consume+ack": (both, lambda: eventbus_consume(adapter, group, both)),
                }
                contenders.append(("eventbus", ours))
                for who, cases in contenders if r % 2 == 0 else contenders[::-1]:
                    for case, (count, fn) in cases.items():
                        seconds = timed(fn)
                        if case != "fill":
                            note(who, case, count, seconds)
            # for reference: the adapter alone (no EventBus, no worker)
            batch = [encode(Event("bench.created", payload(i), source="/b")) for i in range(n)]
            pub = timed(lambda: adapter.publish(batch))
            note("eventbus adapter only", "publish batched", n, pub)
            note(
                "eventbus adapter only",
                "consume+ack",
                n,
                timed(lambda: adapter_consume(adapter, group, n)),
            )
        finally:
            adapter.close()
    finally:
        names.cleanup(url)

    best = {who: {case: max(v) for case, v in cases.items()} for who, cases in rates.items()}
    print(
        f"\n{n} persistent 200-byte JSON messages ({single} one by one), confirms on, "
        f"prefetch {PREFETCH}, best of {args.repeat}\n"
    )
    cols = ("publish single", "publish batched", "consume+ack")
    print(f"{'':24}" + "".join(f"{c + '/s':>18}" for c in cols))
    for who, cases in best.items():
        print(
            f"{who:24}" + "".join(f"{cases[c]:18,.0f}" if c in cases else f"{'':>18}" for c in cols)
        )
    ours, raw = best["eventbus"], best["raw pika"]
    print()
    print(
        f"consume+ack      eventbus / raw pika = {ours['consume+ack'] / raw['consume+ack']:.2f}"
        "  (goal >= 0.9)"
    )
    if "kombu" in best:
        ratio = ours["publish batched"] / best["kombu"]["publish single"]
        print(f"publish batched  eventbus / kombu    = {ratio:.2f}  (goal >= 5)")
    print(
        f"publish batched  eventbus / raw pika = "
        f"{ours['publish batched'] / raw['publish batched']:.2f}"
    )
    print(
        f"publish single   eventbus / raw pika = "
        f"{ours['publish single'] / raw['publish single']:.2f}"
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {"n": n, "single": single, "repeat": args.repeat, "runs": rates, "best": best},
                f,
                indent=2,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
