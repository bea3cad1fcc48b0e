"""Users' code as mypy --strict sees it: checked by tests/core/test_typing.py, never run.

Each ``# type: ignore[code]`` marks a line mypy must reject: under --strict an
ignore that is no longer needed is itself an error, so a typing regression that
let a wrong line through fails the check.
"""

from __future__ import annotations

from dataclasses import dataclass

from eventbus import Event, EventBus, PublishResult
from eventbus.contracts import event_type


@event_type("order.created")
@dataclass
class OrderCreated:
    id: int
    user: str
    total: float


bus = EventBus("memory://")


@bus.subscribe("order.created", group="billing")
def invoice(order: OrderCreated) -> None:
    cents: int = round(order.total * 100)
    name: str = order.user
    print(cents, name)


@bus.subscribe("order.created", group="audit")
def audit(event: Event[OrderCreated]) -> None:
    order_id: int = event.data.id
    correlation: str | None = event.correlationid
    wrong: str = event.data.id  # type: ignore[assignment]
    event.data.missing  # type: ignore[attr-defined]
    print(order_id, correlation, wrong)


@bus.subscribe("order.#", group="plain")
def plain(event: Event) -> None:  # a bare Event is Event[Any]: no type argument needed
    anything: dict[str, object] = event.data
    print(anything)


@bus.subscribe("order.created", group="async")
async def notify(order: OrderCreated) -> None:
    print(order.id)


def publish() -> None:
    result: PublishResult = bus.publish(OrderCreated(id=1, user="Ana", total=42.9))
    bus.publish("order.created", {"id": 1, "user": "Ana", "total": 42.9}, key="1")
    bus.publish_many([OrderCreated(id=2, user="Bo", total=1.0), bus.event("x.y", {})])
    event: Event = result.event
    invoice(OrderCreated(id=3, user="Cy", total=2.0))  # the decorator keeps the handler's type
    invoice("not an order")  # type: ignore[arg-type]
    print(event)
