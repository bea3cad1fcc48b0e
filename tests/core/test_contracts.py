"""Typed event contracts on the in-memory broker: binding, handling, publishing,
validation dead letters, versions and upcasters, schema export and check."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, TypedDict

import msgspec
import pydantic
import pytest

from eventbus import (
    ConfigError,
    EncodeError,
    Event,
    EventBus,
    MemoryAdapter,
    RetryPolicy,
    SqliteAdapter,
    ValidationError,
)
from eventbus.contracts import (
    REGISTRY,
    Registry,
    breaking_changes,
    event_type,
    export_schemas,
    upcaster,
)
from eventbus.testing import eventually


class Collector:
    """Records what handlers were given (models, not only events)."""

    def __init__(self) -> None:
        self.items: list[Any] = []

    def __call__(self, item: Any) -> None:
        self.items.append(item)

    def wait_for(self, n: int) -> None:
        eventually(lambda: len(self.items) >= n)


def unique(name: str) -> str:
    """A type name of its own per test, so tests share the process-wide registry safely."""
    return f"t{uuid.uuid4().hex[:8]}.{name}"


@pytest.fixture
def bus():
    b = EventBus(MemoryAdapter(), retry=RetryPolicy(max_attempts=5, initial_delay=0.01))
    yield b
    b.close()


def make_order_class(type_name: str, **bind: Any) -> type:
    @event_type(type_name, **bind)
    @dataclass
    class OrderCreated:
        id: int
        user: str
        total: float
        note: str | None = None

    return OrderCreated


# -- binding -------------------------------------------------------------------------------
def test_one_class_per_type_and_one_type_per_class() -> None:
    reg = Registry()

    @dataclass
    class A:
        x: int

    @dataclass
    class B:
        x: int

    reg.bind(A, "demo.a")
    reg.bind(A, "demo.a")  # the same class again is fine (a module imported twice)
    with pytest.raises(ConfigError, match=r"bound to .*A already; .*B cannot"):
        reg.bind(B, "demo.a")
    with pytest.raises(ConfigError, match=r"is bound to 'demo\.a' already"):
        reg.bind(A, "demo.other")
    with pytest.raises(ConfigError, match="not a model class"):
        reg.bind(int, "demo.int")
    with pytest.raises(ConfigError, match="version must be 1 or more"):
        reg.bind(B, "demo.b", version=0)


# -- handling ------------------------------------------------------------------------------
def test_a_handler_annotated_with_a_dataclass_gets_a_checked_instance(bus) -> None:
    t = unique("order.created")
    Order = make_order_class(t)
    got = Collector()

    @bus.subscribe(t, group="billing")
    def invoice(order: Order) -> None:  # type: ignore[valid-type]
        got(order)

    bus.start()
    bus.publish(t, {"id": 1, "user": "Ana", "total": 42, "extra": "ignored"})
    got.wait_for(1)
    assert got.items == [Order(id=1, user="Ana", total=42.0)]
    assert isinstance(got.items[0].total, float)


class Shipped(TypedDict):
    order: int
    carrier: str


SHIPPED = unique("order.shipped")
event_type(SHIPPED)(Shipped)


class PaidModel(pydantic.BaseModel):
    order: int
    amount: float = pydantic.Field(gt=0)


PAID = unique("order.paid")
event_type(PAID)(PaidModel)


class Refunded(msgspec.Struct):
    order: int
    amount: float


REFUNDED = unique("order.refunded")
event_type(REFUNDED)(Refunded)


@pytest.mark.parametrize(
    "type_name,cls,data,expected",
    [
        (SHIPPED, Shipped, {"order": 1, "carrier": "UPS"}, {"order": 1, "carrier": "UPS"}),
        (PAID, PaidModel, {"order": 1, "amount": 9.5}, PaidModel(order=1, amount=9.5)),
        (REFUNDED, Refunded, {"order": 1, "amount": 2}, Refunded(order=1, amount=2.0)),
    ],
    ids=["typeddict", "pydantic", "msgspec"],
)
def test_every_model_kind_is_handled(bus, type_name, cls, data, expected) -> None:
    got = Collector()

    def handler(model: Any) -> None:
        got(model)

    handler.__annotations__ = {"model": cls, "return": None}
    bus.subscribe(type_name, handler, group="g")
    bus.start()
    bus.publish(type_name, data)
    got.wait_for(1)
    assert got.items == [expected]


def test_event_of_a_model_gives_the_envelope_with_typed_data(bus) -> None:
    t = unique("order.created")
    Order = make_order_class(t)
    got = Collector()

    @bus.subscribe(t, group="audit")
    def audit(event: Event[Order]) -> None:  # type: ignore[valid-type]
        got(event)

    bus.start()
    bus.publish(t, {"id": 2, "user": "Bo", "total": 1.5}, correlationid="c-1")
    got.wait_for(1)
    event = got.items[0]
    assert event.data == Order(id=2, user="Bo", total=1.5)
    assert (event.type, event.correlationid) == (t, "c-1")


def test_a_union_or_a_base_class_takes_each_bound_type_by_the_event_type(bus) -> None:
    prefix = unique("shop")

    @dataclass
    class ShopEvent:
        order: int

    @event_type(f"{prefix}.created")
    @dataclass
    class Created(ShopEvent):
        total: float

    @event_type(f"{prefix}.cancelled")
    @dataclass
    class Cancelled(ShopEvent):
        reason: str

    by_union, by_base = Collector(), Collector()

    @bus.subscribe(f"{prefix}.*", group="union")
    def on_union(event: Event[Created | Cancelled]) -> None:
        by_union(type(event.data).__name__)

    @bus.subscribe(f"{prefix}.#", group="base")
    def on_base(e: ShopEvent) -> None:
        by_base(type(e).__name__)

    bus.start()
    bus.publish(Created(order=1, total=3.0))
    bus.publish(Cancelled(order=1, reason="changed my mind"))
    by_union.wait_for(2)
    by_base.wait_for(2)
    assert sorted(by_union.items) == sorted(by_base.items) == ["Cancelled", "Created"]


def test_handlers_without_an_annotation_still_get_plain_events(bus) -> None:
    t = unique("order.created")
    make_order_class(t)
    got = Collector()
    bus.subscribe(t, lambda e: got(e.data), group="plain")

    @bus.subscribe(t, group="annotated-plain")
    def plain(event: Event) -> None:
        got(event.data)

    bus.start()
    bus.publish(t, {"id": 1, "user": "Ana", "total": 1.0})
    got.wait_for(2)
    assert got.items == [{"id": 1, "user": "Ana", "total": 1.0}] * 2


def test_async_handlers_take_models_too(bus) -> None:
    t = unique("order.created")
    Order = make_order_class(t)
    got = Collector()

    @bus.subscribe(t, group="async")
    async def invoice(order: Order) -> None:  # type: ignore[valid-type]
        await asyncio.sleep(0)
        got(order.id)

    bus.start()
    bus.publish(Order(id=7, user="Ana", total=1.0))
    got.wait_for(1)
    assert got.items == [7]


# -- bad data is a dead letter at once -----------------------------------------------------
def test_data_that_does_not_fit_is_dead_lettered_at_once_with_the_field_errors(bus) -> None:
    t = unique("order.created")
    Order = make_order_class(t)
    calls: list[Any] = []

    @bus.subscribe(t, group="billing")
    def invoice(order: Order) -> None:  # type: ignore[valid-type]
        calls.append(order)

    bus.start()
    bus.publish(t, {"id": "one", "user": "Ana"})  # wrong type and a missing field
    bus.publish(t, {"id": 2, "user": "Bo", "total": 5.0})  # the worker goes on
    eventually(lambda: len(calls) == 1 and bus.adapter.dead_letters("billing"))
    [(delivery, reason)] = bus.adapter.dead_letters("billing")
    assert delivery.attempt == 1  # not retried
    assert "ValidationError" in reason and "does not fit OrderCreated" in reason
    assert "id: expected integer, got string" in reason and "total: field required" in reason
    assert calls[0].id == 2


def test_unknown_fields_are_ignored_or_rejected_as_the_type_says(bus) -> None:
    t = unique("order.created")
    Strict = make_order_class(t, unknown="reject")
    seen = Collector()

    @bus.subscribe(t, group="strict")
    def strict(order: Strict) -> None:  # type: ignore[valid-type]
        seen(order)

    bus.start()
    bus.publish(t, {"id": 1, "user": "Ana", "total": 1.0, "coupon": "X"})
    eventually(lambda: bus.adapter.dead_letters("strict"))
    [(_, reason)] = bus.adapter.dead_letters("strict")
    assert "coupon: unknown field" in reason and seen.items == []


def test_a_nested_path_names_the_field(bus) -> None:
    t = unique("cart.updated")

    @dataclass
    class Line:
        sku: str
        qty: int

    @event_type(t)
    @dataclass
    class Cart:
        lines: list[Line]
        at: datetime

    got = Collector()

    @bus.subscribe(t, group="cart")
    def on_cart(cart: Cart) -> None:
        got(cart)

    bus.start()
    bus.publish(
        t,
        {
            "lines": [{"sku": "a", "qty": 1}, {"sku": "b", "qty": "two"}],
            "at": "2026-12-04T10:00:00Z",
        },
    )
    bus.publish(t, {"lines": [{"sku": "a", "qty": 1}], "at": "2026-12-04T10:00:00Z"})
    got.wait_for(1)
    assert got.items[0].lines == [Line("a", 1)]
    assert got.items[0].at == datetime(2026, 12, 4, 10, tzinfo=timezone.utc)
    [(_, reason)] = bus.adapter.dead_letters("cart")
    assert "lines[1].qty: expected integer, got string" in reason


# -- mistakes found at subscribe time --------------------------------------------------------
def test_subscribe_refuses_unbound_classes_and_patterns_that_never_match(bus) -> None:
    t = unique("order.created")
    Order = make_order_class(t)

    @dataclass
    class Unbound:
        x: int

    def takes_unbound(u: Unbound) -> None: ...

    def takes_order(o: Order) -> None: ...  # type: ignore[valid-type]

    with pytest.raises(ConfigError, match="takes Unbound, which is bound to no event type"):
        bus.subscribe("a.b", takes_unbound, group="x")
    with pytest.raises(ConfigError, match=r"pattern\(s\) 'payment\.\*' never match"):
        bus.subscribe("payment.*", takes_order, group="y")


# -- publishing models ---------------------------------------------------------------------
def test_publish_takes_models_everywhere(bus) -> None:
    t = unique("order.created")
    Order = make_order_class(t, dataschema="https://example.com/order.json")
    got = Collector()
    bus.subscribe(t, lambda e: got(e), group="raw")
    bus.start()
    result = bus.publish(Order(id=1, user="Ana", total=2.0), key="k1")
    assert result.event.type == t
    bus.publish_many([Order(id=2, user="Bo", total=1.0), bus.event(t, {"id": 3})])
    asyncio.run(bus.apublish(Order(id=4, user="Cy", total=1.0)))
    asyncio.run(bus.apublish_many([Order(id=5, user="Di", total=1.0)]))
    got.wait_for(5)
    assert sorted(e.data["id"] for e in got.items) == [1, 2, 3, 4, 5]
    first = next(e for e in got.items if e.data["id"] == 1)
    assert first.key == "k1" and first.dataschema == "https://example.com/order.json"
    assert first.data == {"id": 1, "user": "Ana", "total": 2.0, "note": None}


def test_a_model_that_fails_its_own_validation_is_an_encode_error_and_nothing_is_sent(
    bus,
) -> None:
    t = unique("order.created")
    Order = make_order_class(t)
    got = Collector()
    bus.subscribe(t, lambda e: got(e), group="raw")
    bus.start()
    with pytest.raises(EncodeError, match="total: expected number, got string"):
        bus.publish(Order(id=1, user="Ana", total="lots"))
    with pytest.raises(EncodeError):  # none of the batch is sent
        bus.publish_many([Order(id=2, user="Bo", total=1.0), Order(id="x", user="C", total=1)])

    @dataclass
    class NotBound:
        x: int

    with pytest.raises(EncodeError, match="bound to no event type"):
        bus.publish(NotBound(1))
    with pytest.raises(EncodeError, match="takes no data"):
        bus.publish(Order(id=1, user="Ana", total=1.0), {"id": 1})
    bus.publish(t, {"id": 9, "user": "Z", "total": 1.0})
    got.wait_for(1)
    assert [e.data["id"] for e in got.items] == [9]


def test_pydantic_constraints_are_checked_at_publish() -> None:
    with pytest.raises(EncodeError, match="amount"):
        b = EventBus(MemoryAdapter())
        try:
            b.publish(PaidModel.model_construct(order=1, amount=-1))  # bypasses validation
        finally:
            b.close()


# -- versions and upcasters ----------------------------------------------------------------
def test_a_v2_handler_reads_v1_events_through_the_upcasters(bus) -> None:
    t = unique("customer.registered")

    @event_type(t, version=2)
    @dataclass
    class Registered:
        first_name: str
        last_name: str

    @upcaster(t, from_version=1)
    def split(data: dict[str, Any]) -> dict[str, Any]:
        first, _, last = data.pop("name").partition(" ")
        return {**data, "first_name": first, "last_name": last}

    got = Collector()

    @bus.subscribe(t, group="crm")
    def on_registered(r: Registered) -> None:
        got(r)

    bus.start()
    bus.publish(t, {"name": "Ana Lima"})  # an old producer: no dataversion, so version 1
    bus.publish(Registered("Bo", "Silva"))  # sent with dataversion 2
    got.wait_for(2)
    expected = [Registered("Ana", "Lima"), Registered("Bo", "Silva")]
    assert sorted(got.items, key=lambda r: r.first_name) == expected


def test_old_events_replayed_from_the_dead_letter_are_upcast(tmp_path) -> None:
    """Real old events: v1 events dead-lettered by a v2 handler with no upcaster yet,
    replayed from the SQLite broker's dead letters once the upcaster is deployed."""
    t = unique("customer.registered")
    url = f"sqlite:///{tmp_path / 'bus.db'}"

    @event_type(t, version=2)
    @dataclass
    class Registered:
        first_name: str
        last_name: str

    got = Collector()

    def handler(r: Registered) -> None:
        got(r)

    old = EventBus(url)
    old.publish(t, {"name": "Ana Lima"})  # v1, before any consumer has the upcaster
    old.close()
    bus = EventBus(url, retry=RetryPolicy(max_attempts=3, initial_delay=0.01))
    bus.subscribe(t, handler, group="crm")
    bus.declare()
    # the group was declared after the publish: feed it from the log as a replay would
    adapter = bus.adapter
    assert isinstance(adapter, SqliteAdapter)
    [entry] = adapter.log(pattern=t)
    adapter.publish([entry.message])
    bus.start()
    eventually(lambda: adapter.dead_letters("crm"))
    [(_, reason)] = adapter.dead_letters("crm")
    assert "has no upcaster to 2" in reason

    @upcaster(t, from_version=1)
    def split(data: dict[str, Any]) -> dict[str, Any]:
        first, _, last = data.pop("name").partition(" ")
        return {**data, "first_name": first, "last_name": last}

    assert adapter.replay_dead_letters("crm") == 1
    got.wait_for(1)
    assert got.items == [Registered("Ana", "Lima")]
    bus.close()


def test_a_bad_version_attribute_is_a_dead_letter(bus) -> None:
    t = unique("order.created")
    Order = make_order_class(t)

    @bus.subscribe(t, group="g")
    def h(o: Order) -> None: ...  # type: ignore[valid-type]

    bus.start()
    bus.publish(t, {"id": 1, "user": "A", "total": 1.0}, extensions={"dataversion": "two"})
    eventually(lambda: bus.adapter.dead_letters("g"))
    assert "dataversion 'two' is not a version number" in bus.adapter.dead_letters("g")[0][1]


# -- schemas -------------------------------------------------------------------------------
def test_export_lists_every_bound_type_with_its_json_schema() -> None:
    reg = Registry()

    @dataclass
    class Order:
        """An order was placed."""

        id: int
        lines: list[str]
        note: str | None = None

    reg.bind(Order, "order.created", version=3)
    reg.bind(PaidModel, "order.paid")
    reg.bind(Refunded, "order.refunded")
    doc = export_schemas(reg)
    order = doc["types"]["order.created"]
    assert order["version"] == 3 and order["kind"] == "dataclass"
    assert order["schema"]["required"] == ["id", "lines"]
    assert order["schema"]["properties"]["lines"] == {"type": "array", "items": {"type": "string"}}
    assert order["schema"]["description"] == "An order was placed."
    assert doc["types"]["order.paid"]["schema"]["properties"]["amount"]["exclusiveMinimum"] == 0
    assert doc["types"]["order.refunded"]["schema"]["required"] == ["order", "amount"]


def _export_of(*classes: tuple[type, str]) -> dict[str, Any]:
    reg = Registry()
    for cls, name in classes:
        reg.bind(cls, name)
    return export_schemas(reg)


def test_check_reports_breaking_changes_and_lets_compatible_ones_pass() -> None:
    @dataclass
    class V1:
        id: int
        user: str
        total: float

    @dataclass
    class V2:  # new optional field: compatible
        id: int
        user: str
        total: float
        note: str | None = None

    @dataclass
    class V3:  # user removed, total now a string, new required field
        id: int
        total: str
        currency: str

    @dataclass
    class Gone:
        id: int

    old = _export_of((V1, "order.created"), (Gone, "order.removed"))
    same = _export_of((V2, "order.created"), (Gone, "order.removed"))
    breaking, compatible = breaking_changes(old, same)
    assert breaking == [] and compatible == ["order.created: new optional field 'note'"]
    new = _export_of((V3, "order.created"))
    breaking, _ = breaking_changes(old, new)
    assert breaking == [
        "order.removed: event type removed",
        "order.created: field 'user' removed",
        "order.created: new required field 'currency'",
        "order.created.total: type changed from number to string",
    ]
    with pytest.raises(ValueError, match="not an 'eventbus schema export' document"):
        breaking_changes({}, new)


def test_the_process_wide_registry_is_what_event_type_fills() -> None:
    t = unique("x.y")
    cls = make_order_class(t)
    contract = REGISTRY.for_type(t)
    assert contract is not None and contract.cls is cls
    assert dataclasses.is_dataclass(cls)
    assert issubclass(ValidationError, Exception)


def test_the_typed_envelope_keeps_every_attribute_of_the_event(bus) -> None:
    t = unique("order.created")
    Order = make_order_class(t)
    plain, typed = Collector(), Collector()
    bus.subscribe(t, lambda e: plain(e), group="plain")

    @bus.subscribe(t, group="typed")
    def on_typed(event: Event[Order]) -> None:  # type: ignore[valid-type]
        typed(event)

    bus.start()
    bus.publish(
        t,
        {"id": 1, "user": "Ana", "total": 1.0},
        key="k",
        subject="s",
        correlationid="c",
        causationid="d",
        dataschema="urn:x",
        traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    )
    plain.wait_for(1)
    typed.wait_for(1)
    assert typed.items[0].data == Order(id=1, user="Ana", total=1.0)
    assert typed.items[0].replace(data=None) == plain.items[0].replace(data=None)
