"""The events the shop's services share, written once (typed contracts).

Each class is bound to its CloudEvents type: ``orders`` publishes an
``OrderCreated``, ``billing`` receives a checked ``OrderCreated``. The schema
goes into ``eventbus asyncapi`` and ``eventbus schema export``; data that does
not fit is dead-lettered with the field errors, never retried.
"""

from __future__ import annotations

from dataclasses import dataclass

from eventbus.contracts import event_type

__all__ = ["OrderCreated"]


@event_type("order.created")
@dataclass(frozen=True)
class OrderCreated:
    """A customer placed an order."""

    id: int
    user: str
    total: float
