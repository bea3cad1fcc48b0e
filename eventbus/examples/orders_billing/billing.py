"""Billing: makes an invoice for every new order (group ``billing``).

Run it with::

    eventbus worker eventbus.examples.orders_billing.billing:bus

If billing is down, orders keep being published: the broker keeps them in the
``billing`` group until billing is back, then billing catches up.

The handler is plain code with no broker in it: :func:`make_invoice` is a pure
function, :func:`on_order_created` the handler that calls it, :func:`attach`
subscribes it to any bus (tests use ``attach(EventBus(MemoryAdapter()))``).
"""

from __future__ import annotations

import dataclasses
import threading
from typing import Any

from eventbus import Event, EventBus

SOURCE = "//shop/billing"
GROUP = "billing"
PATTERN = "order.created"

#: Every invoice this process made, in order (tests and the demo read it).
INVOICES: list[dict[str, Any]] = []
_lock = threading.Lock()


class NotAnOrder(ValueError):
    """The event's data is not an order: retrying will not help, so it goes
    straight to the group's dead letter (see :func:`attach`)."""


def make_invoice(event: Event) -> dict[str, Any]:
    """The invoice for an ``order.created`` event (pure: no I/O)."""
    order = event.data
    if not isinstance(order, dict) or not {"id", "user", "total"} <= order.keys():
        raise NotAnOrder(f"event {event.id} is not an order: {order!r:.80}")
    try:
        amount = round(float(order["total"]), 2)
    except (TypeError, ValueError):
        bad = order["total"]
        raise NotAnOrder(f"order {order['id']!r}: total {bad!r} is not a number") from None
    return {
        "invoice": f"INV-{order['id']:0>6}",
        "order": order["id"],
        "customer": order["user"],
        "amount": amount,
        "event": event.id,
    }


def on_order_created(event: Event) -> None:
    """Handler: make the invoice and "send" it. Raising would ask for a retry."""
    invoice = make_invoice(event)
    with _lock:
        INVOICES.append(invoice)
    print(
        f"invoice {invoice['invoice']} for order {invoice['order']}: "
        f"{invoice['customer']} owes {invoice['amount']:.2f}",
        flush=True,
    )


def attach(bus: EventBus, *, group: str = GROUP) -> EventBus:
    """Subscribe billing's handler to ``bus`` (any broker) and return the bus.

    The bus's retry policy applies (config ``[retry]``), except that an event
    that is not an order is dead-lettered at once instead of retried.
    """
    retry = dataclasses.replace(bus.retry, dead_letter_on=(*bus.retry.dead_letter_on, NotAnOrder))
    bus.subscribe(PATTERN, on_order_created, group=group, retry=retry)
    return bus


def __getattr__(name: str) -> Any:
    # ``bus`` is made on first use, from the config file. Importing this module
    # (tests, the conformance suite) therefore connects to no broker;
    # ``eventbus worker eventbus.examples.orders_billing.billing:bus`` asks for it.
    if name == "bus":
        bus = attach(EventBus(source=SOURCE))
        globals()["bus"] = bus
        return bus
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
