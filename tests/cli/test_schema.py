"""``eventbus schema export|check``: the contracts of an app as JSON Schema, and the CI gate."""

from __future__ import annotations

import json

V1 = """
from dataclasses import dataclass
from eventbus.contracts import event_type

@event_type("order.created")
@dataclass
class OrderCreated:
    id: int
    user: str
    total: float

@event_type("order.cancelled")
@dataclass
class OrderCancelled:
    id: int
"""

COMPATIBLE = V1.replace("    total: float\n", "    total: float\n    note: str | None = None\n")
BREAKING = V1.replace("    user: str\n", "").replace("total: float", "total: str")


def test_export_writes_every_bound_type_of_the_modules(run_cli, write, workdir) -> None:
    write("shop_contracts.py", V1)
    r = run_cli("schema", "export", "shop_contracts", "-o", "v1.json")
    assert r.code == 0, r.err
    assert "wrote v1.json (2 event type(s))" in r.err
    doc = json.loads((workdir / "v1.json").read_text())
    created = doc["types"]["order.created"]
    assert created["class"] == "shop_contracts.OrderCreated"
    assert created["schema"]["required"] == ["id", "total", "user"]
    to_stdout = run_cli("schema", "export", "eventbus.examples.orders_billing.billing:bus")
    assert to_stdout.code == 0 and "order.created" in json.loads(to_stdout.out)["types"]


def test_check_passes_compatible_changes_and_fails_breaking_ones(run_cli, write) -> None:
    write("shop_contracts.py", V1)
    assert run_cli("schema", "export", "shop_contracts", "-o", "old.json").code == 0
    write("shop_contracts.py", COMPATIBLE)
    assert run_cli("schema", "export", "shop_contracts", "-o", "ok.json").code == 0
    write("shop_contracts.py", BREAKING)
    assert run_cli("schema", "export", "shop_contracts", "-o", "bad.json").code == 0

    ok = run_cli("schema", "check", "old.json", "ok.json")
    assert ok.code == 0, ok.err
    assert "ok        order.created: new optional field 'note'" in ok.out
    bad = run_cli("schema", "check", "old.json", "bad.json")
    assert bad.code == 1
    assert "BREAKING  order.created: field 'user' removed" in bad.out
    assert "BREAKING  order.created.total: type changed from number to string" in bad.out
    as_json = json.loads(run_cli("schema", "check", "old.json", "bad.json", "--json").out)
    assert len(as_json["breaking"]) == 2


def test_bad_input_is_a_usage_error(run_cli, write) -> None:
    write("not_schemas.json", "[1, 2]")
    write("broken.json", "{")
    for argv, needle in [
        (("schema", "check", "missing.json", "broken.json"), "cannot read missing.json"),
        (("schema", "check", "broken.json", "broken.json"), "broken.json is not JSON"),
        (("schema", "check", "not_schemas.json", "not_schemas.json"), "not an 'eventbus schema"),
        (("schema", "export", "no_such_module"), "cannot import 'no_such_module'"),
        (("schema",), "name an action: export or check"),
    ]:
        r = run_cli(*argv)
        assert r.code == 2 and needle in r.err, (argv, r.err)


def test_the_console_command_hands_its_arguments_to_the_console(run_cli) -> None:
    r = run_cli("console", "--help")
    assert r.code == 0 and "--token" in r.out and "--app MODULE[:ATTR]" in r.out


def test_dlq_show_lists_the_field_errors_of_a_refused_event(run_cli, sqlite_config) -> None:
    from eventbus import EventBus
    from eventbus.examples.orders_billing import billing
    from eventbus.testing import eventually

    bus = billing.attach(EventBus("sqlite:///bus.db"), group="billing")
    bus.start()
    try:
        bus.publish("order.created", {"id": "seven", "user": "Ana"})
        eventually(lambda: bus.adapter.dead_letters("billing"), what="the dead letter")
    finally:
        bus.close()
    r = run_cli("dlq", "show", "billing", "#1")
    assert r.code == 0, r.err
    record = json.loads(r.out)
    assert record["problems"] == [
        {"field": "total", "error": "field required"},
        {"field": "id", "error": "expected integer, got string"},
    ]
