"""The orders/billing example: three services, one bus, any broker.

- :mod:`.orders` publishes ``order.created`` and goes on; it never waits for billing.
- :mod:`.billing` (group ``billing``) makes an invoice for every order.
- :mod:`.notifications` (group ``notifications``) tells the customer about every
  order event: its own group, so it gets every event too (fan-out).

Each service is its own process; they ship with eventbus, so from any directory::

    eventbus worker eventbus.examples.orders_billing.billing:bus
    eventbus worker eventbus.examples.orders_billing.notifications:bus
    python -m eventbus.examples.orders_billing.orders --count 5

The broker comes from ``eventbus.toml`` (see the one in this folder); the
handlers never name one. ``eventbus demo`` runs all of it for you.
"""
