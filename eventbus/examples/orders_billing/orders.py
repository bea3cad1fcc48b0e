"""Orders: takes orders and publishes ``order.created``; it never waits for billing.

Run it with (the broker comes from the config file)::

    python -m eventbus.examples.orders_billing.orders --count 5
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

from eventbus import EventBus, PublishResult

from .contracts import OrderCreated

SOURCE = "//shop/orders"
CUSTOMERS = ("Ana", "Bruno", "Carla", "Diego", "Eva")


def new_order(order_id: int) -> OrderCreated:
    """A made-up order; order 1 is the one from the lesson: Ana, 42.90."""
    user = CUSTOMERS[(order_id - 1) % len(CUSTOMERS)]
    total = round(42.9 + ((order_id - 1) * 17.35) % 180, 2)
    return OrderCreated(id=order_id, user=user, total=total)


def place_order(bus: EventBus, order: OrderCreated) -> PublishResult:
    """Publish the order (as ``order.created``: its class says so); returns as soon as the
    broker has it. The customer is the ordering key: one customer's events stay in order.
    """
    return bus.publish(order, key=order.user, subject=f"orders/{order.id}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="orders", description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=5, help="orders to place (default: 5)")
    parser.add_argument("--first-id", type=int, default=1, help="id of the first order")
    parser.add_argument("--interval", type=float, default=0.2, help="seconds between orders")
    args = parser.parse_args(argv)
    with EventBus(source=SOURCE) as bus:
        for order_id in range(args.first_id, args.first_id + args.count):
            order = new_order(order_id)
            result = place_order(bus, order)
            print(
                f"published order {order.id}: {order.user}, {order.total:.2f} ({result.outcome})",
                flush=True,
            )
            if args.interval > 0:
                time.sleep(args.interval)
    return 0


if __name__ == "__main__":
    sys.exit(main())
