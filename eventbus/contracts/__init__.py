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

import re
from collections.abc import Mapping
from datetime import datetime, timezone

from .._envelope import Event
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
    "model_event",
    "problems_in",
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


def model_event(
    model: object,
    source: str,
    *,
    key: str | None = None,
    subject: str | None = None,
    id: str | None = None,
    time: datetime | None = None,
    datacontenttype: str | None = None,
    dataschema: str | None = None,
    correlationid: str | None = None,
    causationid: str | None = None,
    traceparent: str | None = None,
    extensions: Mapping[str, str] | None = None,
) -> Event:
    """The event that publishing ``model`` sends: its contract's type, the model's data
    (checked: :class:`~eventbus.EncodeError`), its ``dataschema`` and, above version 1,
    the ``dataversion`` extension."""
    from .._envelope import make_event, new_event_id

    contract = contract_of(model)
    ext = dict(extensions or {})
    if contract.version > 1:
        ext[VERSION_ATTRIBUTE] = str(contract.version)
    return make_event(
        contract.type,
        contract.to_data(model),
        id or new_event_id(),
        source,
        time or datetime.now(timezone.utc),
        datacontenttype,
        dataschema or contract.dataschema,
        subject,
        correlationid,
        causationid,
        traceparent,
        key,
        ext or None,
    )


_FITS = re.compile(
    r"^ValidationError: '[^']*' \(version \d+\) does not fit [\w.]+: (.*?)"
    r"(?: \(attempt \d+ of \d+\))?$",
    re.S,
)


def problems_in(reason: str) -> list[tuple[str, str]] | None:
    """The ``(field path, message)`` pairs of a dead letter's reason when a typed
    contract refused its data (None for other reasons): ``eventbus dlq show`` lists them."""
    m = _FITS.match(reason.strip())
    if m is None:
        return None
    out = []
    for part in m.group(1).split("; "):
        path, sep, message = part.partition(": ")
        out.append((path, message) if sep else ("$", part))
    return out
