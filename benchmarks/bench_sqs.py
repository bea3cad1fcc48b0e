"""eventbus on SQS/SNS against raw boto3 making the same calls on the same server.

    python benchmarks/bench_sqs.py [-n 300] [--repeat 3] [--endpoint URL] [--json PATH]

Starts its own moto server (``moto[server]``) unless ``--endpoint`` (or
``EVENTBUS_SQS_ENDPOINT``) names one. The emulator is slow and slows further as a
queue fills, so absolute figures mean little: the ratio eventbus / raw, measured
in the same run on the same server, is the figure. Goal: >= 0.8 on every case.

Each contender has its own SNS topic and one SQS queue subscribed to it with raw
delivery (eventbus's layout, made by eventbus for eventbus and by hand for raw):

- publish: N events of a 60-byte JSON payload, 10 per ``sns.publish_batch`` call.
  raw: the body and a ``type`` and ``id`` attribute; eventbus: ``bus.publish_many``
  of 100 events at a time (encode to CloudEvents, pack the envelope, same calls);
- publish single: N events, one ``sns.publish`` per event (raw) or one
  ``bus.publish`` per event (eventbus). Both publish cases are drained after
  (untimed), so the queues stay shallow for the cases after them;
- consume: from a queue holding N events until all are handled and deleted.
  raw: ``receive_message`` (10, attributes) + ``delete_message_batch``; eventbus: a
  worker (receive, exact pattern check, decode, handler, batched delete), and, for
  reference, the adapter's consumer alone (receive + ack, no decode).

Each case runs ``--repeat`` times alternating who goes first; the best run of each
counts (noise only slows a run down). Everything created is deleted at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
from eventbus_sqs import SqsAdapter, SqsSettings

from eventbus import EventBus
from eventbus._config import BusConfig

REGION = "us-east-1"
TOPIC = "order.created"


def _start_moto() -> tuple[str, subprocess.Popen[bytes]]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    exe = Path(sys.executable).with_name("moto_server")
    proc = subprocess.Popen(
        [str(exe) if exe.exists() else "moto_server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return f"http://127.0.0.1:{port}", proc
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("moto_server did not start") from None
            time.sleep(0.05)


class Raw:
    """The same layout, by hand: a topic, a queue, a raw-delivery subscription."""

    def __init__(self, endpoint: str | None, name: str) -> None:
        session = boto3.session.Session(region_name=REGION)
        self.sqs = session.client("sqs", endpoint_url=endpoint)
        self.sns = session.client("sns", endpoint_url=endpoint)
        self.topic = self.sns.create_topic(Name=name)["TopicArn"]
        self.queue = self.sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "30"})[
            "QueueUrl"
        ]
        arn = self.sqs.get_queue_attributes(QueueUrl=self.queue, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        self.sns.subscribe(
            TopicArn=self.topic,
            Protocol="sqs",
            Endpoint=arn,
            Attributes={"RawMessageDelivery": "true"},
        )

    def publish(self, n: int) -> None:
        for start in range(0, n, 10):
            entries = [
                {
                    "Id": str(i),
                    "Message": json.dumps({"id": start + i, "user": "Ana", "total": 42.9}),
                    "MessageAttributes": {
                        "type": {"DataType": "String", "StringValue": TOPIC},
                        "id": {"DataType": "String", "StringValue": uuid.uuid4().hex},
                    },
                }
                for i in range(min(10, n - start))
            ]
            result = self.sns.publish_batch(TopicArn=self.topic, PublishBatchRequestEntries=entries)
            assert not result.get("Failed")

    def publish_one(self, n: int) -> None:
        for i in range(n):
            self.sns.publish(
                TopicArn=self.topic,
                Message=json.dumps({"id": i, "user": "Ana", "total": 42.9}),
                MessageAttributes={
                    "type": {"DataType": "String", "StringValue": TOPIC},
                    "id": {"DataType": "String", "StringValue": uuid.uuid4().hex},
                },
            )

    def consume(self, n: int) -> None:
        done = 0
        while done < n:
            got = self.sqs.receive_message(
                QueueUrl=self.queue,
                MaxNumberOfMessages=10,
                WaitTimeSeconds=1,
                MessageAttributeNames=["All"],
                MessageSystemAttributeNames=["ApproximateReceiveCount"],
            ).get("Messages", [])
            if not got:
                continue
            for m in got:
                json.loads(m["Body"])  # what a handler would do with it
            self.sqs.delete_message_batch(
                QueueUrl=self.queue,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got)
                ],
            )
            done += len(got)

    def delete(self) -> None:
        self.sqs.delete_queue(QueueUrl=self.queue)
        self.sns.delete_topic(TopicArn=self.topic)


class Ours:
    def __init__(self, endpoint: str | None, name: str) -> None:
        self.settings = SqsSettings(
            region=REGION, endpoint_url=endpoint, topic=name, prefix=name + "-"
        )
        self.adapter = SqsAdapter(self.settings)
        self.bus = EventBus(self.adapter, config=BusConfig(prefetch=10, poll_interval=1.0))
        self.adapter.declare("billing", [TOPIC])

    def publish(self, n: int) -> None:
        for start in range(0, n, 100):
            self.bus.publish_many(
                self.bus.event(TOPIC, {"id": start + i, "user": "Ana", "total": 42.9})
                for i in range(min(100, n - start))
            )

    def publish_one(self, n: int) -> None:
        for i in range(n):
            self.bus.publish(TOPIC, {"id": i, "user": "Ana", "total": 42.9})

    def consume(self, n: int) -> None:
        done = threading.Event()
        count = 0
        consumer_bus = EventBus(self.adapter, config=BusConfig(prefetch=10, poll_interval=1.0))

        @consumer_bus.subscribe(TOPIC, group="billing")
        def invoice(event: Any) -> None:
            nonlocal count
            count += 1
            if count >= n:
                done.set()

        consumer_bus.start()
        done.wait()
        consumer_bus.stop()

    def consume_adapter(self, n: int) -> None:
        c = self.adapter.consumer("billing", [TOPIC])
        handled = 0
        while handled < n:
            got = c.receive(10, 1.0)
            c.ack(got)
            handled += len(got)
        c.close()

    def delete(self) -> None:
        sqs = boto3.session.Session(region_name=REGION).client(
            "sqs", endpoint_url=self.settings.endpoint_url
        )
        for name in (self.settings.queue_name("billing"), self.settings.dlq_name("billing")):
            sqs.delete_queue(QueueUrl=sqs.get_queue_url(QueueName=name)["QueueUrl"])
        sns = boto3.session.Session(region_name=REGION).client(
            "sns", endpoint_url=self.settings.endpoint_url
        )
        sns.delete_topic(TopicArn=self.adapter._topic())
        self.adapter.close()


def _timed(fn: Callable[[int], None], n: int) -> float:
    started = time.perf_counter()
    fn(n)
    return n / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=300, help="events per case (default 300)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--endpoint", default=os.environ.get("EVENTBUS_SQS_ENDPOINT"))
    parser.add_argument("--json", help="write every run's figures to this file")
    args = parser.parse_args()
    proc = None
    endpoint = args.endpoint
    if endpoint == "aws":
        endpoint = None
    elif not endpoint:
        endpoint, proc = _start_moto()
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    run = uuid.uuid4().hex[:6]
    runs: dict[str, list[float]] = {}
    try:
        raw, ours = Raw(endpoint, f"bench-{run}-raw"), Ours(endpoint, f"bench-{run}-ours")
        try:
            cases: list[tuple[str, Callable[[int], None], Callable[[int], None]]] = [
                ("publish", raw.publish, ours.publish),
                ("publish single", raw.publish_one, ours.publish_one),
                ("consume (worker)", raw.consume, ours.consume),
            ]
            for r in range(args.repeat):
                for case, raw_fn, ours_fn in cases:
                    order = [("raw", raw_fn), ("eventbus", ours_fn)]
                    for who, fn in order if r % 2 == 0 else order[::-1]:
                        if case.startswith("consume"):  # fill its queue first (untimed)
                            (raw if who == "raw" else ours).publish(args.n)
                        runs.setdefault(f"{case}|{who}", []).append(_timed(fn, args.n))
                        if case.startswith("publish"):  # drain what it sent (untimed)
                            (raw if who == "raw" else ours).consume(args.n)
                # reference: the adapter's consumer without the worker
                ours.publish(args.n)
                runs.setdefault("consume (adapter only)|eventbus", []).append(
                    _timed(ours.consume_adapter, args.n)
                )
        finally:
            raw.delete()
            ours.delete()
    finally:
        if proc is not None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(10)

    print(
        f"SQS/SNS on {'moto ' + (endpoint or '') if proc else endpoint or 'AWS'}; "
        f"n={args.n}, best of {args.repeat}; load {os.getloadavg()[0]:.1f}, "
        f"{platform.python_implementation()} {platform.python_version()}"
    )
    print(f"{'case':<26}{'raw boto3/s':>14}{'eventbus/s':>14}{'ratio':>8}")
    for case in ("publish", "publish single", "consume (worker)", "consume (adapter only)"):
        ours_best = max(runs[f"{case}|eventbus"])
        raw_runs = runs.get(f"{case}|raw") or runs["consume (worker)|raw"]
        raw_best = max(raw_runs)
        print(f"{case:<26}{raw_best:>14,.0f}{ours_best:>14,.0f}{ours_best / raw_best:>8.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"n": args.n, "runs": runs}, indent=2))


if __name__ == "__main__":
    main()
