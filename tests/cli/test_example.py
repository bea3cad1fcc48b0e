"""The orders/billing example's handlers in-process on the memory broker."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from eventbus import Event, EventBus, MemoryAdapter
from eventbus.examples.orders_billing import billing, notifications, orders
from eventbus.examples.orders_billing.contracts import OrderCreated

pytestmark = pytest.mark.memory


def wait_until(check, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_new_order_one_is_the_lessons_order() -> None:
    assert orders.new_order(1) == OrderCreated(id=1, user="Ana", total=42.9)


def test_make_invoice_is_pure() -> None:
    order = OrderCreated(id=7, user="Eva", total=12.499)
    assert billing.make_invoice(order, "e-7") == {
        "invoice": "INV-000007",
        "order": 7,
        "customer": "Eva",
        "amount": 12.5,
        "event": "e-7",
    }
    assert billing.make_invoice(order, "e-7") == billing.make_invoice(order, "e-7")


def invoice_of(event: Event) -> dict:
    """The invoice billing makes for a published ``order.created`` (its data as JSON)."""
    return billing.make_invoice(OrderCreated(**event.data), event.id)


def test_compose_is_pure() -> None:
    event = Event(type="order.created", data={"id": 3, "user": "Carla", "total": 1}, id="e-3")
    assert notifications.compose(event) == {
        "to": "Carla",
        "order": 3,
        "text": "we got your order 3",
        "event": "e-3",
    }
    other = notifications.compose(Event(type="order.shipped", data={"id": 3, "user": "Carla"}))
    assert other["text"] == "order.shipped 3"


def test_the_three_services_on_one_memory_broker() -> None:
    broker = MemoryAdapter()
    worker = EventBus(broker)
    billing.attach(worker)
    notifications.attach(worker)
    worker.start()
    try:
        shop = EventBus(broker, source=orders.SOURCE)
        placed = [orders.place_order(shop, orders.new_order(i)).event for i in range(1, 6)]
        shop.publish("order.shipped", {"id": 1, "user": "Ana"})  # notifications only
        ids = {e.id for e in placed}

        def mine(items):
            return [x for x in list(items) if x["event"] in ids]

        wait_until(lambda: len(mine(billing.INVOICES)) == 5 and len(mine(notifications.SENT)) == 5)
        made = {i["invoice"]: i for i in mine(billing.INVOICES)}
        assert made == {i["invoice"]: i for i in map(invoice_of, placed)}
        assert {m["event"] for m in mine(notifications.SENT)} == ids  # fan-out: both got all
        wait_until(lambda: any(m["text"] == "order.shipped 1" for m in notifications.SENT))
        assert placed[0].key == "Ana" and placed[0].subject == "orders/1"
    finally:
        worker.close()


@pytest.mark.parametrize(
    "data, why",
    [
        (None, "expected object, got null"),
        ("text", "expected object, got string"),
        ({"id": 99}, "total: field required; user: field required"),
        ({"id": 1, "user": "Ana", "total": "lots"}, "total: expected number, got string"),
        ([1, 2], "expected object, got array"),
    ],
)
def test_a_bad_order_goes_straight_to_the_dead_letter(data, why) -> None:
    broker = MemoryAdapter()
    worker = EventBus(broker)
    billing.attach(worker, group="billing-dlq-test")
    worker.start()
    try:
        EventBus(broker).publish("order.created", data)
        wait_until(lambda: broker.dead_letters("billing-dlq-test"))
        ((delivery, reason),) = broker.dead_letters("billing-dlq-test")
        assert delivery.attempt == 1  # not retried: retrying cannot fix it
        assert (
            reason.startswith(
                "ValidationError: 'order.created' (version 1) does not fit OrderCreated: "
            )
            and why in reason
        )
    finally:
        worker.close()


def test_importing_the_services_connects_to_nothing(tmp_path) -> None:
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTBUS_")}
    code = (
        "import eventbus.examples.orders_billing.billing as b\n"
        "import eventbus.examples.orders_billing.notifications as n\n"
        "import eventbus.examples.orders_billing.orders\n"
        "assert 'bus' not in vars(b) and 'bus' not in vars(n)\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, check=True, timeout=60)
    assert list(tmp_path.iterdir()) == []  # no eventbus.db appeared


EXAMPLE_DIR = Path(billing.__file__).resolve().parent


@pytest.mark.parametrize(
    ("profile", "adapter"),
    [
        (None, "sqlite"),
        ("rabbitmq", "rabbitmq"),
        ("kafka", "kafka"),
        ("sqs", "sqs"),
        ("azure", "azure_servicebus"),
    ],
)
def test_the_example_config_and_its_profiles_load(
    monkeypatch: pytest.MonkeyPatch, profile: str | None, adapter: str
) -> None:
    from eventbus import adapter_specs, load_config

    for name in ("EVENTBUS_URL", "EVENTBUS_BROKER", "EVENTBUS_PROFILE", "EVENTBUS_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SERVICEBUS_CONNECTION_STRING", "Endpoint=sb://x/;SharedAccessKey=k")
    cfg = load_config(EXAMPLE_DIR / "eventbus.toml", profile=profile)
    assert cfg.url is not None
    scheme = cfg.url.split(":", 1)[0]
    specs = adapter_specs()
    if adapter in specs:  # the adapter plugin is installed: its scheme picks it
        assert scheme in specs[adapter].schemes or scheme == adapter


def test_the_rabbitmq_variant_differs_only_in_the_url() -> None:
    import sys

    if sys.version_info >= (3, 11):
        import tomllib
    else:
        import tomli as tomllib

    def read(name: str) -> dict:
        with (EXAMPLE_DIR / name).open("rb") as f:
            doc = tomllib.load(f)
        doc.pop("profiles", None)
        return doc

    sqlite, rabbit = read("eventbus.toml"), read("eventbus.rabbitmq.toml")
    assert sqlite.pop("url").startswith("sqlite:")
    assert rabbit.pop("url").startswith("amqp://")
    assert sqlite == rabbit
