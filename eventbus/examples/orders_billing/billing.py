"""Billing: makes an invoice for every new order (group ``billing``).

Run it with::

    eventbus worker eventbus.examples.orders_billing.billing:bus

If billing is down, orders keep being published: the broker keeps them in the
``billing`` group until billing is back, then billing catches up.

The handler is plain code with no broker in it: :func:`make_invoice` is a pure
function of an :class:`~.contracts.OrderCreated`, :func:`on_order_created` the
typed handler that calls it, :func:`attach` subscribes it to any bus (tests use
``attach(EventBus(MemoryAdapter()))``).
"""

from __future__ import annotations

import threading
from typing import Any

from eventbus import Event, EventBus

from .contracts import OrderCreated

SOURCE = "//shop/billing"
GROUP = "billing"
PATTERN = "order.created"

#: Every invoice this process made, in order (tests and the demo read it).
INVOICES: list[dict[str, Any]] = []
_lock = threading.Lock()


def make_invoice(order: OrderCreated, event_id: str) -> dict[str, Any]:
    """The invoice for an order (pure: no I/O)."""
    return {
        "invoice": f"INV-{order.id:0>6}",
        "order": order.id,
        "customer": order.user,
        "amount": round(order.total, 2),
        "event": event_id,
    }


def on_order_created(event: Event[OrderCreated]) -> None:
    """Handler: make the invoice and "send" it. Raising would ask for a retry.

    The annotation makes it a typed handler: ``event.data`` is a checked
    ``OrderCreated``; an ``order.created`` whose data does not fit goes to the
    group's dead letter at once, with the field errors as its reason.
    """
    invoice = make_invoice(event.data, event.id)
    with _lock:
        INVOICES.append(invoice)
    print(
        f"invoice {invoice['invoice']} for order {invoice['order']}: "
        f"{invoice['customer']} owes {invoice['amount']:.2f}",
        flush=True,
    )


def attach(bus: EventBus, *, group: str = GROUP) -> EventBus:
    """Subscribe billing's handler to ``bus`` (any broker) and return the bus."""
    bus.subscribe(PATTERN, on_order_created, group=group)
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
