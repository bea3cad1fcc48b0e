"""eventbus on Azure Service Bus against the raw azure-servicebus SDK, on the test broker.

    python benchmarks/bench_azure_servicebus.py [-n 1000] [--single 300] [--repeat 1] [--json PATH]

No Service Bus namespace is reachable here, so both run against the project's
Service Bus test broker (``tests/_brokers/servicebus_broker``, a Python
AMQP 1.0 test double on python-qpid-proton), started on a free port. Its speed
says nothing about Azure's; the ratio eventbus / raw SDK, same broker, same run,
is what the figures are for: what our adapter and core add on top of the SDK.

Each contender has its own topic and one subscription:
- publish single: one ``send_messages(ServiceBusMessage)`` (raw) or one
  ``bus.publish`` (eventbus) per event;
- publish batched: 100 events per ``ServiceBusMessageBatch`` (raw) or per
  ``bus.publish_many`` call (which batches the same way);
- consume+ack: a subscription holding N events, drained by
  ``receive_messages(100, max_wait_time=0.5)`` + ``complete_message`` (raw) or an
  ``EventBus`` worker with a trivial handler (peek-lock, decode, complete).
Contenders alternate who goes first on every repeat; the best run counts.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import body, payload, servicebus_broker, servicebus_testbroker, write_json
from bench_latency import setup_azure

TYPE = "bench.created"


class Raw:
    def __init__(self, conn: str, topic: str) -> None:
        from azure.servicebus import ServiceBusClient, ServiceBusMessage

        self.spec: dict[str, Any] = {"connection_string": conn, "topic": topic}
        setup_azure(self.spec)
        self.message = ServiceBusMessage
        self.client = ServiceBusClient.from_connection_string(conn)
        self.sender = self.client.get_topic_sender(topic)

    def _msg(self, i: int) -> Any:
        return self.message(
            body(i),
            subject=TYPE,
            content_type="application/json",
            application_properties={"id": uuid.uuid4().hex},
        )

    def publish_one(self, n: int) -> None:
        for i in range(n):
            self.sender.send_messages(self._msg(i))

    def publish_batched(self, n: int) -> None:
        for start in range(0, n, 100):
            batch = self.sender.create_message_batch()
            for i in range(start, min(n, start + 100)):
                batch.add_message(self._msg(i))
            self.sender.send_messages(batch)

    def consume(self, n: int) -> None:
        done = 0
        with self.client.get_subscription_receiver(
            self.spec["topic"], self.spec["subscription"]
        ) as receiver:
            while done < n:
                for m in receiver.receive_messages(max_message_count=100, max_wait_time=0.5):
                    json.loads(b"".join(m.body))
                    receiver.complete_message(m)
                    done += 1

    def close(self) -> None:
        self.sender.close()
        self.client.close()


class Ours:
    def __init__(self, conn: str, topic: str) -> None:
        from eventbus_azure_servicebus import ServiceBusAdapter

        from eventbus import BusConfig, EventBus

        entities = servicebus_testbroker().TestBrokerEntities(conn)
        self.adapter = ServiceBusAdapter(conn, topic=topic, entities=entities)
        self.adapter.declare("billing", [TYPE])
        self.bus = EventBus(self.adapter, source="/bench", config=BusConfig())

    def publish_one(self, n: int) -> None:
        for i in range(n):
            self.bus.publish(TYPE, payload(i))

    def publish_batched(self, n: int) -> None:
        for start in range(0, n, 100):
            self.bus.publish_many(
                self.bus.event(TYPE, payload(i)) for i in range(start, min(n, start + 100))
            )

    def consume(self, n: int) -> None:
        from eventbus import BusConfig, EventBus

        done = threading.Event()
        count = 0
        worker = EventBus(self.adapter, config=BusConfig(prefetch=100, poll_interval=0.5))

        @worker.subscribe(TYPE, group="billing")
        def invoice(event: Any) -> None:
            nonlocal count
            count += 1
            if count >= n:
                done.set()

        worker.start()
        if not done.wait(300):
            raise RuntimeError(f"eventbus consumed {count} of {n}")
        worker.stop()

    def close(self) -> None:
        self.adapter.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("-n", type=int, default=1000, help="events per batched/consume case")
    ap.add_argument("--single", type=int, default=300, help="events per one-by-one case")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--json")
    args = ap.parse_args()
    n, single = args.n, args.single
    runs: dict[str, dict[str, list[float]]] = {"raw": {}, "eventbus": {}}
    run = uuid.uuid4().hex[:6]
    with servicebus_broker() as conn:
        raw, ours = Raw(conn, f"bench-{run}-raw"), Ours(conn, f"bench-{run}-ours")
        try:
            for r in range(max(1, args.repeat)):
                order: list[tuple[str, Any]] = [("raw", raw), ("eventbus", ours)]
                for who, c in order if r % 2 == 0 else order[::-1]:
                    cases: list[tuple[str, int, Callable[[int], None]]] = [
                        ("publish single", single, c.publish_one),
                        ("publish batched", n, c.publish_batched),
                        ("consume+ack", n + single, c.consume),
                    ]
                    for case, count, fn in cases:
                        started = time.perf_counter()
                        fn(count)
                        rate = count / (time.perf_counter() - started)
                        runs[who].setdefault(case, []).append(rate)
        finally:
            raw.close()
            ours.close()
    best = {who: {case: max(v) for case, v in cases_.items()} for who, cases_ in runs.items()}
    ratios = {case: best["eventbus"][case] / best["raw"][case] for case in best["raw"]}
    print(f"Azure Service Bus test broker: n={n} ({single} one by one), best of {args.repeat}")
    print(f"{'case':<18}{'raw SDK/s':>12}{'eventbus/s':>12}{'ratio':>8}")
    for case, ratio in ratios.items():
        print(f"{case:<18}{best['raw'][case]:12,.0f}{best['eventbus'][case]:12,.0f}{ratio:8.2f}")
    if args.json:
        write_json(
            args.json,
            {
                "n": n,
                "single": single,
                "repeat": args.repeat,
                "runs": runs,
                "best": best,
                "ratios": ratios,
            },
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
