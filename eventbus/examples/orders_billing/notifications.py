"""Notifications: tells the customer about every order event (group ``notifications``).

Run it with::

    eventbus worker eventbus.examples.orders_billing.notifications:bus

It subscribes with ``order.#`` in its own group, so it gets every order event
that billing gets, and more (fan-out between groups). Its handler is
``async def``, to show that both kinds of handler run the same way.
"""

from __future__ import annotations

import threading
from typing import Any

from eventbus import Event, EventBus

SOURCE = "//shop/notifications"
GROUP = "notifications"
PATTERN = "order.#"

#: Every message this process "sent", in order (tests and the demo read it).
SENT: list[dict[str, Any]] = []
_lock = threading.Lock()


def compose(event: Event) -> dict[str, Any]:
    """The message for a customer about an order event (pure: no I/O)."""
    order = event.data if isinstance(event.data, dict) else {}
    user = order.get("user", "customer")
    order_id = order.get("id", "?")
    what = {"order.created": "we got your order"}.get(event.type, event.type)
    return {"to": user, "order": order_id, "text": f"{what} {order_id}", "event": event.id}


async def on_order_event(event: Event) -> None:
    """Handler: compose the message and "send" it."""
    message = compose(event)
    with _lock:
        SENT.append(message)
    print(f"notified {message['to']} about order {message['order']}: {message['text']}", flush=True)


def attach(bus: EventBus, *, group: str = GROUP) -> EventBus:
    """Subscribe the notifications handler to ``bus`` (any broker) and return the bus."""
    bus.subscribe(PATTERN, on_order_event, group=group)
    return bus


def __getattr__(name: str) -> Any:
    # ``bus`` is made on first use, from the config file (see billing.py for why).
    if name == "bus":
        bus = attach(EventBus(source=SOURCE))
        globals()["bus"] = bus
        return bus
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
