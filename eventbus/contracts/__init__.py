"""Typed event contracts: an event's shape written once, checked at both ends, documented.

::

    from dataclasses import dataclass
    from eventbus import Event, EventBus
    from eventbus.contracts import event_type

    @event_type("order.created")
    @dataclass
    class OrderCreated:
        id: int
        user: str
        total: float

    bus.publish(OrderCreated(id=1, user="Ana", total=42.9))   # type from the class

    @bus.subscribe("order.created", group="billing")
    def invoice(order: OrderCreated) -> None: ...               # a checked OrderCreated

    @bus.subscribe("order.*", group="audit")
    def audit(event: Event[OrderCreated | OrderCancelled]) -> None: ...  # the envelope too

Models are stdlib dataclasses or TypedDicts, pydantic v2 models (extra
``pydantic``) or msgspec Structs (extra ``msgspec``). Data that does not fit is
a :class:`~eventbus.ValidationError`: the event is dead-lettered at once with
the field errors as its reason. ``docs/contracts.md`` has the whole story:
versions and upcasters, schemas, ``eventbus schema export|check``.
"""

from __future__ import annotations

from ._handlers import typed_handler
from ._models import ModelErrors
from ._registry import REGISTRY, VERSION_ATTRIBUTE, Contract, Registry, event_type, upcaster
from ._schema import breaking_changes, export_schemas

__all__ = [
    "REGISTRY",
    "VERSION_ATTRIBUTE",
    "Contract",
    "ModelErrors",
    "Registry",
    "breaking_changes",
    "contract_of",
    "event_type",
    "export_schemas",
    "typed_handler",
    "upcaster",
]


def contract_of(model: object, registry: Registry | None = None) -> Contract:
    """The contract of ``model``'s class; :class:`~eventbus.EncodeError` if it has none."""
    from .._errors import EncodeError

    contract = (registry or REGISTRY).for_class(type(model))
    if contract is None:
        raise EncodeError(
            f"{type(model).__name__} is bound to no event type: decorate its class with "
            "@event_type('...') (eventbus.contracts), or publish(type, data)"
        )
    return contract
