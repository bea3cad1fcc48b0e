"""End-to-end latency at a fixed rate and the consuming process's peak RSS, ours vs raw clients.

    python benchmarks/bench_latency.py --broker rabbitmq [--rate 500] [--seconds 3]
                                       [--contenders eventbus,pika] [--json PATH]

For each contender of the broker, in turn: a consumer runs in its own process
(the "worker"), the publisher (this process) sends warm-up events until the
consumer has seen one (connected, subscribed, partitions assigned), then
``rate x seconds`` events, one publish call each (a confirmed publish: the
call returns once the broker has the event), spaced to the fixed rate. Each
200-byte JSON event carries its send time (CLOCK_MONOTONIC, shared by every
process on the machine); the consumer takes the difference when its handler
(or raw callback) gets the event and acks it as usual. The consumer reports
p50/p90/p99/max and its peak RSS (``ru_maxrss``), i.e. what a worker process
of that client costs with the interpreter, the SDK and the run's events.

Contenders: ``eventbus`` (an ``EventBus`` worker with a trivial handler) on
every broker; the raw SDK doing the same work (pika, confluent-kafka, boto3,
azure-servicebus); peers (kombu, FastStream on RabbitMQ; FastStream's
confluent broker on Kafka). On Kafka, ``@fw10`` runs a contender again with
``fetch.wait.max.ms=10``: Tansu answers a fetch only when that wait runs out,
not when a record arrives, so it sets every Kafka client's latency here
(librdkafka's default is 500 ms). ``memory`` runs in one process (the broker is
in-process): the RSS is that whole process's.

Brokers: RabbitMQ at ``EVENTBUS_RABBITMQ_URL`` (default 127.0.0.1:5672); a
Tansu broker, a moto server and the Service Bus test broker are started on
free ports and stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import (
    RABBITMQ_URL,
    body,
    kafka_broker,
    latency_summary,
    moto_server,
    now_ns,
    paced,
    payload,
    peak_rss_mb,
    rss_mb,
    servicebus_broker,
    servicebus_testbroker,
    write_json,
)

TYPE = "bench.latency"
GROUP = "latency"
REGION = "us-east-1"
CONTENDERS = {
    "memory": ["eventbus"],
    "sqlite": ["eventbus"],
    "rabbitmq": ["eventbus", "pika", "kombu", "faststream"],
    "kafka": ["eventbus", "confluent-kafka", "faststream", "eventbus@fw10", "confluent-kafka@fw10"],
    "sqs": ["eventbus", "boto3"],
    "azure_servicebus": ["eventbus", "azure-servicebus"],
}
Record = Callable[[Any], bool]  # takes a body (bytes) or decoded data (dict); True when done


# ==================================================================================================
# adapters for "eventbus"
# ==================================================================================================
def make_adapter(spec: dict[str, Any]) -> Any:
    broker = spec["broker"]
    if broker == "sqlite":
        from eventbus import SqliteAdapter

        return SqliteAdapter(spec["path"])
    if broker == "rabbitmq":
        from eventbus_rabbitmq import RabbitMQAdapter

        return RabbitMQAdapter(spec["url"], exchange=spec["exchange"])
    if broker == "kafka":
        from eventbus_kafka import KafkaAdapter, KafkaSettings

        client = {"fetch.wait.max.ms": spec["fetch_wait"]} if spec.get("fetch_wait") else {}
        return KafkaAdapter(
            KafkaSettings(
                bootstrap_servers=spec["bootstrap"],
                prefix=spec["prefix"],
                start="earliest",
                session_timeout=6.0,
                client=client,
            )
        )
    if broker == "sqs":
        from eventbus_sqs import SqsAdapter, SqsSettings

        return SqsAdapter(
            SqsSettings(
                region=REGION,
                endpoint_url=spec["endpoint"],
                topic=spec["topic"],
                prefix=spec["topic"] + "-",
            )
        )
    if broker == "azure_servicebus":
        from eventbus_azure_servicebus import ServiceBusAdapter

        conn = spec["connection_string"]
        entities = servicebus_testbroker().TestBrokerEntities(conn)
        return ServiceBusAdapter(conn, topic=spec["topic"], entities=entities)
    raise ValueError(broker)


def consume_eventbus(spec: dict[str, Any], record: Record, deadline: float) -> None:
    from eventbus import BusConfig, EventBus

    done = threading.Event()
    bus = EventBus(make_adapter(spec), config=BusConfig(prefetch=100))

    @bus.subscribe(TYPE, group=GROUP)
    def handle(event: Any) -> None:
        if record(event.data):
            done.set()

    bus.start()
    done.wait(max(0.0, deadline - time.monotonic()))
    bus.close()


class EventbusPublisher:
    def __init__(self, spec: dict[str, Any]) -> None:
        from eventbus import BusConfig, EventBus

        only_publish = {k: v for k, v in spec.items() if k != "fetch_wait"}  # a consumer setting
        self.bus = EventBus(make_adapter(only_publish), source="/bench", config=BusConfig())

    def send(self, i: int) -> None:
        self.bus.publish(TYPE, payload(i, now_ns()))

    def close(self) -> None:
        self.bus.close()


# ==================================================================================================
# RabbitMQ: pika, kombu, FastStream
# ==================================================================================================
def consume_pika(spec: dict[str, Any], record: Record, deadline: float) -> None:
    import pika

    conn = pika.BlockingConnection(pika.URLParameters(spec["url"]))
    ch = conn.channel()
    ch.queue_declare(spec["queue"], durable=True)
    ch.basic_qos(prefetch_count=100)
    for method, _props, data in ch.consume(spec["queue"], inactivity_timeout=0.5):
        if method is None:
            if time.monotonic() > deadline:
                break
            continue
        done = record(data)
        ch.basic_ack(method.delivery_tag)
        if done or time.monotonic() > deadline:
            break
    ch.cancel()
    conn.close()


class PikaPublisher:
    def __init__(self, spec: dict[str, Any]) -> None:
        import pika

        self.conn = pika.BlockingConnection(pika.URLParameters(spec["url"]))
        self.ch = self.conn.channel()
        self.ch.queue_declare(spec["queue"], durable=True)
        self.ch.confirm_delivery()
        self.queue = spec["queue"]
        self.props = pika.BasicProperties(delivery_mode=2, content_type="application/json")

    def send(self, i: int) -> None:
        self.ch.basic_publish("", self.queue, body(i, now_ns()), self.props)

    def close(self) -> None:
        self.conn.close()


def consume_kombu(spec: dict[str, Any], record: Record, deadline: float) -> None:
    import socket as _socket

    import kombu

    state = {"done": False}

    def on_message(data: Any, message: Any) -> None:
        state["done"] = record(message.body) or state["done"]
        message.ack()

    with kombu.Connection(spec["url"]) as conn:
        q = kombu.Queue(spec["queue"], kombu.Exchange(""), routing_key=spec["queue"], durable=True)
        with conn.Consumer(q, callbacks=[on_message], prefetch_count=100, accept=["json"]):
            while not state["done"] and time.monotonic() < deadline:
                with contextlib.suppress(_socket.timeout, TimeoutError):
                    conn.drain_events(timeout=0.5)


class KombuPublisher:
    def __init__(self, spec: dict[str, Any]) -> None:
        import kombu

        self.conn = kombu.Connection(spec["url"], transport_options={"confirm_publish": True})
        self.queue = kombu.Queue(
            spec["queue"], kombu.Exchange(""), routing_key=spec["queue"], durable=True
        )
        self.producer = self.conn.Producer()
        self.first = True

    def send(self, i: int) -> None:
        self.producer.publish(
            body(i, now_ns()),
            routing_key=self.queue.name,
            delivery_mode=2,
            content_type="application/json",
            content_encoding="utf-8",
            declare=[self.queue] if self.first else [],
        )
        self.first = False

    def close(self) -> None:
        self.conn.release()


def consume_faststream_rabbit(spec: dict[str, Any], record: Record, deadline: float) -> None:
    from faststream.rabbit import Channel, RabbitBroker, RabbitQueue

    async def run() -> None:
        done = asyncio.Event()
        broker = RabbitBroker(spec["url"], logger=None, default_channel=Channel(prefetch_count=100))

        @broker.subscriber(RabbitQueue(spec["queue"], durable=True))
        async def handle(data: dict[str, Any]) -> None:
            if record(data):
                done.set()

        async with broker:
            await broker.start()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(done.wait(), max(0.1, deadline - time.monotonic()))

    asyncio.run(run())


class LoopThread:
    """An asyncio loop on a thread, for publishers whose client is async."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(60)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


class FaststreamRabbitPublisher:
    def __init__(self, spec: dict[str, Any]) -> None:
        from faststream.rabbit import RabbitBroker, RabbitQueue

        self.lt = LoopThread()
        self.broker = RabbitBroker(spec["url"], logger=None)
        self.queue = RabbitQueue(spec["queue"], durable=True)

        async def start() -> None:
            await self.broker.connect()
            await self.broker.declare_queue(self.queue)

        self.lt.run(start())

    def send(self, i: int) -> None:
        self.lt.run(self.broker.publish(payload(i, now_ns()), queue=self.queue, persist=True))

    def close(self) -> None:
        self.lt.run(self.broker.stop())
        self.lt.stop()


# ==================================================================================================
# Kafka: confluent-kafka, FastStream (confluent)
# ==================================================================================================
def kafka_producer_config(bootstrap: str) -> dict[str, Any]:
    return {
        "bootstrap.servers": bootstrap,
        "acks": "all",
        "enable.idempotence": True,
        "linger.ms": 5,
    }


def consume_confluent(spec: dict[str, Any], record: Record, deadline: float) -> None:
    import confluent_kafka

    c = confluent_kafka.Consumer(
        {
            "bootstrap.servers": spec["bootstrap"],
            "group.id": spec["group"],
            "auto.offset.reset": "earliest",
            "enable.auto.commit": True,
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 1000,
            **({"fetch.wait.max.ms": spec["fetch_wait"]} if spec.get("fetch_wait") else {}),
        }
    )
    c.subscribe([spec["topic"]])
    try:
        while time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None or m.error() is not None:
                continue
            if record(m.value()):
                break
    finally:
        c.close()


class ConfluentPublisher:
    def __init__(self, spec: dict[str, Any]) -> None:
        import confluent_kafka

        self.p = confluent_kafka.Producer(kafka_producer_config(spec["bootstrap"]))
        self.topic = spec["topic"]

    def send(self, i: int) -> None:
        self.p.produce(self.topic, body(i, now_ns()))
        self.p.flush()  # returns once the broker acked it, like a confirmed publish

    def close(self) -> None:
        self.p.flush()


def consume_faststream_kafka(spec: dict[str, Any], record: Record, deadline: float) -> None:
    from faststream.confluent import KafkaBroker

    async def run() -> None:
        done = asyncio.Event()
        broker = KafkaBroker(spec["bootstrap"], logger=None)

        @broker.subscriber(
            spec["topic"],
            group_id=spec["group"],
            auto_offset_reset="earliest",
            session_timeout_ms=6000,
            heartbeat_interval_ms=1000,
        )
        async def handle(data: dict[str, Any]) -> None:
            if record(data):
                done.set()

        async with broker:
            await broker.start()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(done.wait(), max(0.1, deadline - time.monotonic()))

    asyncio.run(run())


class FaststreamKafkaPublisher:
    def __init__(self, spec: dict[str, Any]) -> None:
        from faststream.confluent import KafkaBroker

        self.lt = LoopThread()
        self.broker = KafkaBroker(
            spec["bootstrap"], logger=None, acks="all", enable_idempotence=True, linger_ms=5
        )  # as the others
        self.topic = spec["topic"]
        self.lt.run(self.broker.connect())

    def send(self, i: int) -> None:
        self.lt.run(self.broker.publish(payload(i, now_ns()), self.topic))

    def close(self) -> None:
        self.lt.run(self.broker.stop())
        self.lt.stop()


# ==================================================================================================
# SQS (+SNS): boto3
# ==================================================================================================
def _boto(spec: dict[str, Any], service: str) -> Any:
    import boto3

    return boto3.session.Session(region_name=REGION).client(service, endpoint_url=spec["endpoint"])


def setup_boto3(spec: dict[str, Any]) -> None:
    """The layout eventbus makes, by hand: an SNS topic, a queue, a raw-delivery subscription."""
    sns, sqs = _boto(spec, "sns"), _boto(spec, "sqs")
    spec["topic_arn"] = sns.create_topic(Name=spec["topic"])["TopicArn"]
    spec["queue_url"] = sqs.create_queue(QueueName=spec["topic"])["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=spec["queue_url"], AttributeNames=["QueueArn"])
    sns.subscribe(
        TopicArn=spec["topic_arn"],
        Protocol="sqs",
        Endpoint=arn["Attributes"]["QueueArn"],
        Attributes={"RawMessageDelivery": "true"},
    )


def consume_boto3(spec: dict[str, Any], record: Record, deadline: float) -> None:
    sqs = _boto(spec, "sqs")
    done = False
    while not done and time.monotonic() < deadline:
        got = sqs.receive_message(
            QueueUrl=spec["queue_url"],
            MaxNumberOfMessages=10,
            WaitTimeSeconds=1,
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        for m in got:
            done = record(m["Body"].encode()) or done
        if got:
            sqs.delete_message_batch(
                QueueUrl=spec["queue_url"],
                Entries=[
                    {"Id": str(k), "ReceiptHandle": m["ReceiptHandle"]} for k, m in enumerate(got)
                ],
            )


class Boto3Publisher:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.sns = _boto(spec, "sns")
        self.arn = spec["topic_arn"]

    def send(self, i: int) -> None:
        self.sns.publish(
            TopicArn=self.arn,
            Message=body(i, now_ns()).decode(),
            MessageAttributes={
                "type": {"DataType": "String", "StringValue": TYPE},
                "id": {"DataType": "String", "StringValue": uuid.uuid4().hex},
            },
        )

    def close(self) -> None:
        pass


# ==================================================================================================
# Azure Service Bus (the test broker): azure-servicebus
# ==================================================================================================
def setup_azure(spec: dict[str, Any]) -> None:
    from eventbus_azure_servicebus import subscription_spec

    entities = servicebus_testbroker().TestBrokerEntities(spec["connection_string"])
    entities.ensure_topic(spec["topic"])
    sub = subscription_spec(spec["topic"], "raw", ["#"], lock_duration=30, max_delivery_count=10)
    entities.ensure_subscription(sub)
    spec["subscription"] = sub.name
    entities.close()


def consume_azure(spec: dict[str, Any], record: Record, deadline: float) -> None:
    from azure.servicebus import ServiceBusClient

    with (
        ServiceBusClient.from_connection_string(spec["connection_string"]) as client,
        client.get_subscription_receiver(spec["topic"], spec["subscription"]) as receiver,
    ):
        done = False
        while not done and time.monotonic() < deadline:
            for m in receiver.receive_messages(max_message_count=100, max_wait_time=0.5):
                done = record(b"".join(m.body)) or done
                receiver.complete_message(m)


class AzurePublisher:
    def __init__(self, spec: dict[str, Any]) -> None:
        from azure.servicebus import ServiceBusClient, ServiceBusMessage

        self.message = ServiceBusMessage
        self.client = ServiceBusClient.from_connection_string(spec["connection_string"])
        self.sender = self.client.get_topic_sender(spec["topic"])

    def send(self, i: int) -> None:
        self.sender.send_messages(
            self.message(
                body(i, now_ns()), subject=TYPE, application_properties={"id": uuid.uuid4().hex}
            )
        )

    def close(self) -> None:
        self.sender.close()
        self.client.close()


CONSUME: dict[str, Callable[[dict[str, Any], Record, float], None]] = {
    "eventbus": consume_eventbus,
    "rabbitmq/pika": consume_pika,
    "rabbitmq/kombu": consume_kombu,
    "rabbitmq/faststream": consume_faststream_rabbit,
    "kafka/confluent-kafka": consume_confluent,
    "kafka/faststream": consume_faststream_kafka,
    "sqs/boto3": consume_boto3,
    "azure_servicebus/azure-servicebus": consume_azure,
}
PUBLISH: dict[str, Callable[[dict[str, Any]], Any]] = {
    "eventbus": EventbusPublisher,
    "rabbitmq/pika": PikaPublisher,
    "rabbitmq/kombu": KombuPublisher,
    "rabbitmq/faststream": FaststreamRabbitPublisher,
    "kafka/confluent-kafka": ConfluentPublisher,
    "kafka/faststream": FaststreamKafkaPublisher,
    "sqs/boto3": Boto3Publisher,
    "azure_servicebus/azure-servicebus": AzurePublisher,
}


def key(spec: dict[str, Any]) -> str:
    """The contender's code: ``who`` without its ``@variant`` (``@fw10``: Kafka consumers with
    ``fetch.wait.max.ms=10``)."""
    base = spec["who"].split("@")[0]
    return "eventbus" if base == "eventbus" else f"{spec['broker']}/{base}"


# ==================================================================================================
# the consumer process
# ==================================================================================================
def consumer_main(spec: dict[str, Any]) -> None:
    n = spec["n"]
    latencies: list[float] = []
    state = {"ready": False}
    rss_start = rss_mb()

    def record(data: Any) -> bool:
        received = now_ns()
        d = data if isinstance(data, dict) else json.loads(data)
        if d["id"] < 0:
            if not state["ready"]:
                state["ready"] = True
                print("ready", flush=True)
            return False
        latencies.append((received - d["t"]) / 1000)
        return len(latencies) >= n

    deadline = time.monotonic() + spec["timeout"]
    CONSUME[key(spec)](spec, record, deadline)
    print(
        json.dumps(
            {
                "received": len(latencies),
                **latency_summary(latencies),
                "rss_start_mb": rss_start,
                "rss_peak_mb": peak_rss_mb(),
            }
        ),
        flush=True,
    )


# ==================================================================================================
# the publisher side (this process)
# ==================================================================================================
def _reader(proc: subprocess.Popen[str], lines: queue.Queue[str]) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.put(line.strip())
    lines.put("")


def run_contender(spec: dict[str, Any], rate: float, seconds: float) -> dict[str, Any]:
    n = spec["n"] = max(1, int(rate * seconds))
    spec["timeout"] = seconds + 90
    proc = subprocess.Popen(
        [sys.executable, __file__, "--consume", json.dumps(spec)], stdout=subprocess.PIPE, text=True
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=_reader, args=(proc, lines), daemon=True).start()
    publisher = None
    try:
        publisher = PUBLISH[key(spec)](spec)
        ready_by = time.monotonic() + 60
        started = time.monotonic()
        while True:  # warm-up events until the consumer has one: it is connected and assigned
            publisher.send(-1)
            try:
                line = lines.get(timeout=0.2)
            except queue.Empty:
                line = None
            if line == "ready":
                break
            if line == "" or proc.poll() is not None or time.monotonic() > ready_by:
                raise RuntimeError(f"{key(spec)} consumer not ready (exit {proc.poll()})")
        warmup = time.monotonic() - started
        t0 = time.perf_counter()
        for k in paced(rate, n):
            publisher.send(k)
        achieved = n / (time.perf_counter() - t0)
        publisher.close()
        publisher = None
        result_line = lines.get(timeout=spec["timeout"])
        proc.wait(30)
        result = json.loads(result_line)
        result.update(
            sent=n, rate=rate, achieved_rate=round(achieved, 1), warmup_s=round(warmup, 2)
        )
        if result["received"] < n:
            result["error"] = f"received {result['received']} of {n}"
        return result
    finally:
        if publisher is not None:
            with contextlib.suppress(Exception):
                publisher.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def run_memory(rate: float, seconds: float) -> dict[str, Any]:
    from eventbus import EventBus, MemoryAdapter

    n = max(1, int(rate * seconds))
    latencies: list[float] = []
    done = threading.Event()
    bus = EventBus(MemoryAdapter(), source="/bench")

    @bus.subscribe(TYPE, group=GROUP)
    def handle(event: Any) -> None:
        latencies.append((now_ns() - event.data["t"]) / 1000)
        if len(latencies) >= n:
            done.set()

    bus.start()
    t0 = time.perf_counter()
    for k in paced(rate, n):
        bus.publish(TYPE, payload(k, now_ns()))
    achieved = n / (time.perf_counter() - t0)
    done.wait(60)
    bus.close()
    out: dict[str, Any] = {
        "received": len(latencies),
        **latency_summary(latencies),
        "rss_peak_mb": peak_rss_mb(),
        "sent": n,
        "rate": rate,
        "achieved_rate": round(achieved, 1),
        "warmup_s": 0.0,
    }
    if len(latencies) < n:
        out["error"] = f"received {len(latencies)} of {n}"
    return out


@contextlib.contextmanager
def broker_context(broker: str, run: str) -> Iterator[dict[str, Any]]:
    """What every contender's spec shares: the endpoint (started here if it is ours to start)."""
    if broker == "sqlite":
        with tempfile.TemporaryDirectory(prefix="eventbus-bench-") as d:
            yield {"path": os.path.join(d, "latency.db")}
    elif broker == "rabbitmq":
        yield {"url": RABBITMQ_URL}
    elif broker == "kafka":
        with kafka_broker() as bootstrap:
            yield {"bootstrap": bootstrap}
    elif broker == "sqs":
        with moto_server() as endpoint:
            yield {"endpoint": endpoint}
    elif broker == "azure_servicebus":
        with servicebus_broker() as conn:
            yield {"connection_string": conn}
    else:
        raise ValueError(broker)


def contender_spec(broker: str, who: str, base: dict[str, Any], run: str) -> dict[str, Any]:
    spec = dict(base, broker=broker, who=who)
    tag = f"bench-{run}-{who.replace('-', '').replace('@', '')}"
    if who.endswith("@fw10"):
        spec["fetch_wait"] = 10
    if broker == "rabbitmq":
        spec.update(exchange=tag, queue=tag)
    elif broker == "kafka":
        from eventbus_kafka import topic_for

        spec.update(prefix=f"lat{run}{tag[-6:]}.", group=tag)
        spec["topic"] = topic_for(TYPE, spec["prefix"]) if key(spec) == "eventbus" else tag
        _kafka_topic(spec["bootstrap"], spec["topic"])
    elif broker == "sqs":
        spec["topic"] = tag
        if who == "boto3":
            setup_boto3(spec)
    elif broker == "azure_servicebus":
        spec["topic"] = tag
        if who != "eventbus":
            setup_azure(spec)
    return spec


def _kafka_topic(bootstrap: str, topic: str) -> None:
    """Create the topic with eventbus's default partition count (4) for every contender."""
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    for f in admin.create_topics([NewTopic(topic, num_partitions=4)]).values():
        with contextlib.suppress(Exception):
            f.result(15)


def cleanup_rabbitmq(specs: list[dict[str, Any]]) -> None:
    import pika

    conn = pika.BlockingConnection(pika.URLParameters(RABBITMQ_URL))
    for spec in specs:
        names = [spec["queue"]]
        exchanges: list[str] = []
        if key(spec) == "eventbus":
            from eventbus_rabbitmq import RabbitMQAdapter

            a = RabbitMQAdapter(spec["url"], exchange=spec["exchange"])
            names = [a.settings.queue(GROUP), a.settings.dead_queue(GROUP)]
            exchanges = [spec["exchange"], a.settings.delay_exchange]
            a.close()
        for q in names:
            with contextlib.suppress(Exception):
                conn.channel().queue_delete(q)
        for x in exchanges:
            with contextlib.suppress(Exception):
                conn.channel().exchange_delete(x)
    conn.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--broker", choices=sorted(CONTENDERS))
    ap.add_argument("--rate", type=float, default=500.0, help="events/s (default 500)")
    ap.add_argument("--seconds", type=float, default=3.0, help="measured seconds per contender")
    ap.add_argument("--contenders", help="comma-separated subset, in this order")
    ap.add_argument("--json", help="write the results to this file")
    ap.add_argument("--consume", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.consume:
        consumer_main(json.loads(args.consume))
        return 0
    if not args.broker:
        ap.error("--broker is required")
    broker = args.broker
    who_list = args.contenders.split(",") if args.contenders else CONTENDERS[broker]
    run = uuid.uuid4().hex[:6]
    results: dict[str, Any] = {}
    if broker == "memory":
        results["eventbus"] = run_memory(args.rate, args.seconds)
    else:
        specs: list[dict[str, Any]] = []
        with broker_context(broker, run) as base:
            try:
                for who in who_list:
                    try:
                        spec = contender_spec(broker, who, base, run)
                        specs.append(spec)
                        results[who] = run_contender(spec, args.rate, args.seconds)
                    except Exception as exc:  # one contender failing must not hide the others
                        results[who] = {"error": f"{type(exc).__name__}: {exc}"}
            finally:
                if broker == "rabbitmq":
                    cleanup_rabbitmq(specs)
    print(f"{broker}: {args.rate:g} events/s for {args.seconds:g} s, one publish call per event")
    print(f"{'':22}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'rate/s':>9}{'RSS MiB':>9}")
    for who, r in results.items():
        if "p50_ms" in r:
            print(
                f"{who:22}{r['p50_ms']:9.2f}{r['p99_ms']:9.2f}{r['max_ms']:9.1f}"
                f"{r['achieved_rate']:9.0f}{r['rss_peak_mb']:9.1f}  {r.get('error', '')}"
            )
        else:
            print(f"{who:22}{r.get('error')}")
    if args.json:
        write_json(
            args.json,
            {"broker": broker, "rate": args.rate, "seconds": args.seconds, "results": results},
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
