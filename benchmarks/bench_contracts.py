"""What typed contracts cost on the consume path, against the dict path in the same run.

    python benchmarks/bench_contracts.py [--events N] [--repeat R] [--brokers memory,rabbitmq]
                                         [--json PATH]

N ``order.created`` events wait in a group; a bus drains them with one handler
whose first parameter is, per case:

- ``dict``: unannotated (today's path: ``event.data`` is a dict) — the baseline;
- ``dataclass``: an ``OrderCreated`` dataclass, checked by eventbus's validator;
- ``msgspec``: a ``msgspec.Struct`` (``msgspec.convert``);
- ``pydantic``: a pydantic v2 ``BaseModel`` (``model_validate``);
- ``Event[dataclass]``: the envelope with typed data.

Events/s from the first delivery to the last handler call. Cases take turns
(dict, dataclass, ... then again) ``--repeat`` times and each keeps its best run,
so the machine's noise spreads over all; ratios are against ``dict`` of the same
broker. Goal (issue #18): dataclass and msgspec cost at most 10 % of consume
throughput (ratio >= 0.90) on memory and RabbitMQ.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from _common import RABBITMQ_URL, rabbitmq_up, write_json

from eventbus import Event, EventBus, MemoryAdapter, RetryPolicy
from eventbus.contracts import event_type

TYPE = f"benchcontract{uuid.uuid4().hex[:6]}.order.created"
PAYLOAD = {"id": 1, "user": "Ana", "total": 42.9, "lines": ["sku-1", "sku-2"], "paid": True}


@event_type(TYPE)
@dataclass
class OrderCreated:
    id: int
    user: str
    total: float
    lines: list[str]
    paid: bool


def _typed_kinds() -> dict[str, type]:
    kinds: dict[str, type] = {}
    try:
        import msgspec

        class OrderStruct(msgspec.Struct):
            id: int
            user: str
            total: float
            lines: list[str]
            paid: bool

        event_type(TYPE.replace("order", "orderstruct"))(OrderStruct)
        kinds["msgspec"] = OrderStruct
    except ImportError:
        pass
    try:
        import pydantic

        class OrderModel(pydantic.BaseModel):
            id: int
            user: str
            total: float
            lines: list[str]
            paid: bool

        event_type(TYPE.replace("order", "ordermodel"))(OrderModel)
        kinds["pydantic"] = OrderModel
    except ImportError:
        pass
    return kinds


KINDS = _typed_kinds()


def _handler(case: str, done: threading.Event, n: int) -> tuple[str, Any]:
    """(event type, handler) for ``case``; the handler sets ``done`` after ``n`` calls."""
    count = 0

    def tick() -> None:
        nonlocal count
        count += 1
        if count == n:
            done.set()

    if case == "dict":

        def plain(event):  # type: ignore[no-untyped-def]
            assert event.data["id"] == 1
            tick()

        return TYPE, plain
    if case == "dataclass":

        def typed(order: OrderCreated) -> None:
            assert order.id == 1
            tick()

        return TYPE, typed
    if case == "Event[dataclass]":

        def envelope(event: Event[OrderCreated]) -> None:
            assert event.data.id == 1
            tick()

        return TYPE, envelope
    cls = KINDS[case]
    kind_type = TYPE.replace("order", "orderstruct" if case == "msgspec" else "ordermodel")

    def other(model: Any) -> None:
        assert model.id == 1
        tick()

    other.__annotations__ = {"model": cls, "return": None}
    return kind_type, other


def run_case(broker: str, case: str, n: int) -> float:
    done = threading.Event()
    event_type_name, handler = _handler(case, done, n)
    group = f"bench-{case.replace('[', '-').replace(']', '')}-{uuid.uuid4().hex[:6]}"
    if broker == "memory":
        adapter: Any = MemoryAdapter()
        make = lambda: EventBus(adapter.client())  # noqa: E731
    else:
        make = lambda: EventBus(RABBITMQ_URL)  # noqa: E731
    bus = make()
    bus.retry = RetryPolicy(max_attempts=1)
    bus.subscribe(event_type_name, handler, group=group, concurrency=1)
    bus.declare()
    pub = make()
    batch = [pub.event(event_type_name, PAYLOAD) for _ in range(500)]
    for _ in range(n // 500):
        pub.publish_many(batch)
    pub.close()
    started = time.perf_counter()
    bus.start()
    if not done.wait(300):
        raise RuntimeError(f"{broker}/{case}: not all {n} events handled")
    elapsed = time.perf_counter() - started
    if broker == "rabbitmq":
        bus.stop()
        bus.adapter.delete_group(group)  # type: ignore[attr-defined]
    bus.close()
    return n / elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--brokers", default="memory,rabbitmq")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)
    cases = ["dict", "dataclass", *KINDS, "Event[dataclass]"]
    results: dict[str, Any] = {"events": args.events, "repeat": args.repeat, "brokers": {}}
    for broker in args.brokers.split(","):
        if broker == "rabbitmq" and not rabbitmq_up():
            print(f"skipping rabbitmq: nothing at {RABBITMQ_URL}", file=sys.stderr)
            continue
        runs: dict[str, list[float]] = {c: [] for c in cases}
        for _ in range(args.repeat):
            for case in cases:
                runs[case].append(run_case(broker, case, args.events))
        best = {c: max(v) for c, v in runs.items()}
        results["brokers"][broker] = {
            "runs": runs,
            "best": best,
            "ratio_vs_dict": {c: best[c] / best["dict"] for c in cases},
        }
        print(f"\n{broker}: events/s, best of {args.repeat} ({args.events} events each)")
        for c in cases:
            print(f"  {c:<18} {best[c]:>10,.0f}   {best[c] / best['dict']:.2f} x dict")
    if args.json:
        write_json(args.json, results)
    print(json.dumps({b: r["ratio_vs_dict"] for b, r in results["brokers"].items()}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
