"""``eventbus asyncapi``: an AsyncAPI 3.0 document from a bus, validated.

Two validations:

- against ``asyncapi3``, a PyPI package modelling the whole AsyncAPI 3.0
  specification (pydantic), always;
- against the official AsyncAPI 3.0.0 JSON Schema, which no PyPI package ships:
  it comes from the official npm package ``@asyncapi/specs`` (the file named by
  ``EVENTBUS_ASYNCAPI_SCHEMA``, else fetched once with ``npm pack`` into pytest's
  cache); skipped, with the reason, when neither is possible.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest

from eventbus import EventBus, MemoryAdapter, RetryPolicy
from eventbus.observability import asyncapi_document

from .conftest import REPO, run_cli

pytestmark = pytest.mark.memory

pytest.importorskip("asyncapi3", reason="the AsyncAPI 3 model: pip install asyncapi3 (test extra)")

SPECS = "@asyncapi/specs@6"


@pytest.fixture(scope="session")
def official_schema(
    pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    named = os.environ.get("EVENTBUS_ASYNCAPI_SCHEMA")
    if named:
        return json.loads(Path(named).read_text())  # type: ignore[no-any-return]
    store = getattr(pytestconfig, "cache", None)  # absent with -p no:cacheprovider
    cache = (
        Path(store.mkdir("asyncapi-specs"))
        if store is not None
        else tmp_path_factory.mktemp("asyncapi-specs")
    )
    schema = cache / "3.0.0.json"
    if not schema.exists():
        npm = shutil.which("npm")
        if npm is None:
            pytest.skip(
                "the official AsyncAPI JSON Schema ships only in the npm package "
                f"{SPECS}; no npm here: set EVENTBUS_ASYNCAPI_SCHEMA to its "
                "schemas/3.0.0.json"
            )
        try:
            done = subprocess.run(
                [npm, "pack", SPECS, "--pack-destination", str(cache)],
                capture_output=True,
                text=True,
                timeout=120,
            )
        except subprocess.TimeoutExpired:
            pytest.skip(f"npm pack {SPECS} timed out (registry unreachable?)")
        if done.returncode != 0:
            pytest.skip(f"npm pack {SPECS} failed: {done.stderr.strip()[-300:]}")
        tgz = cache / done.stdout.strip().splitlines()[-1]
        with tarfile.open(tgz) as tar:
            member = tar.extractfile("package/schemas/3.0.0.json")
            assert member is not None
            schema.write_bytes(member.read())
    return json.loads(schema.read_text())  # type: ignore[no-any-return]


def _shop_bus(url: str = "memory://") -> EventBus:
    bus = EventBus(url) if url != "memory://" else EventBus(MemoryAdapter())

    @bus.subscribe("order.created", group="billing", retry=RetryPolicy(max_attempts=3))
    def invoice(event: Any) -> None:
        """Make the invoice of a new order.

        Pure function of the order; idempotent by order id.
        """

    @bus.subscribe(["order.#", "user.*"], group="audit", timeout=5)
    def audit(event: Any) -> None:
        pass

    return bus


def _validate(doc: dict[str, Any], schema: dict[str, Any] | None = None) -> None:
    from asyncapi3 import AsyncAPI3

    AsyncAPI3.model_validate(doc)
    if schema is not None:
        import jsonschema

        jsonschema.Draft7Validator(schema).validate(doc)


@pytest.mark.parametrize(
    "url, protocol, header",
    [
        ("memory://", "memory", "correlationid"),
        ("amqp://shop:S3cret@rabbit.example:5672/prod", "amqp", "cloudEvents:correlationid"),
        ("kafka://k1.example:9092", "kafka", "ce_correlationid"),
    ],
)
def test_the_document_is_valid_asyncapi_3(
    url: str, protocol: str, header: str, official_schema: dict[str, Any]
) -> None:
    bus = _shop_bus(url)
    try:
        doc = asyncapi_document(bus, title="shop", version="2.1.0")
    finally:
        bus.close()
    _validate(doc, official_schema)
    assert doc["asyncapi"] == "3.0.0"
    assert doc["info"]["title"] == "shop" and doc["info"]["version"] == "2.1.0"
    (server,) = doc["servers"].values()
    assert server["protocol"] == protocol
    assert "S3cret" not in json.dumps(doc)
    ops = doc["operations"]
    assert len(ops) == 3 and all(op["action"] == "receive" for op in ops.values())
    billing = next(op for op in ops.values() if op["x-eventbus-group"] == "billing")
    assert billing["summary"] == "Make the invoice of a new order."
    assert billing["description"].startswith("Pure function")
    assert billing["x-eventbus-retry"]["max_attempts"] == 3
    addresses = sorted(ch["address"] for ch in doc["channels"].values())
    assert addresses == ["order.#", "order.created", "user.*"]
    message = doc["components"]["messages"]["cloudEvent"]
    assert header in message["headers"]["properties"]
    assert message["correlationId"]["location"] == f"$message.header#/{header}"
    for op in ops.values():  # every reference resolves
        channel = op["channel"]["$ref"].split("/")[-1]
        assert channel in doc["channels"]
        for ref in op["messages"]:
            name = ref["$ref"].split("/")[-1]
            assert ref["$ref"] == f"#/channels/{channel}/messages/{name}"
            assert name in doc["channels"][channel]["messages"]


def test_bound_event_types_have_their_schema_in_the_document(
    official_schema: dict[str, Any],
) -> None:
    from dataclasses import dataclass

    import pydantic

    from eventbus.contracts import event_type

    @dataclass
    class Line:
        sku: str
        qty: int

    @event_type("shopdoc.order.created", version=2)
    @dataclass
    class ShopOrderCreated:
        """An order was placed."""

        id: int
        lines: list[Line]

    class Address(pydantic.BaseModel):
        city: str

    @event_type("shopdoc.order.shipped")
    class ShopOrderShipped(pydantic.BaseModel):
        id: int
        to: Address

    bus = EventBus(MemoryAdapter())

    @bus.subscribe("shopdoc.order.created", group="billing")
    def invoice(order: ShopOrderCreated) -> None: ...

    @bus.subscribe("shopdoc.order.*", group="audit")
    def audit(event: Any) -> None: ...

    try:
        doc = asyncapi_document(bus)
    finally:
        bus.close()
    _validate(doc, official_schema)
    components = doc["components"]
    created = components["messages"]["shopdoc_order_created"]
    assert created["name"] == "ShopOrderCreated" and created["x-eventbus-version"] == 2
    assert created["summary"] == "An order was placed."
    schema = components["schemas"]["shopdoc_order_created"]
    assert schema["required"] == ["id", "lines"]
    assert schema["properties"]["lines"]["items"]["properties"]["qty"] == {"type": "integer"}
    shipped = components["schemas"]["shopdoc_order_shipped"]
    assert shipped["properties"]["to"]["$ref"] == "#/components/schemas/Address"
    assert components["schemas"]["Address"]["properties"]["city"]["type"] == "string"
    channels = {ch["address"]: ch for ch in doc["channels"].values()}
    assert set(channels["shopdoc.order.created"]["messages"]) == {"shopdoc_order_created"}
    assert set(channels["shopdoc.order.*"]["messages"]) == {
        "shopdoc_order_created",
        "shopdoc_order_shipped",
        "cloudEvent",
    }


def test_the_asyncapi_command(tmp_path: Path, official_schema: dict[str, Any]) -> None:
    out = tmp_path / "asyncapi.json"
    config = REPO / "eventbus" / "examples" / "orders_billing" / "eventbus.toml"
    result = run_cli(
        "--config",
        str(config),
        "asyncapi",
        "eventbus.examples.orders_billing.billing:bus",
        "--output",
        str(out),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "wrote" in result.stderr and "1 operation(s)" in result.stderr
    doc = json.loads(out.read_text())
    _validate(doc, official_schema)
    assert doc["info"]["title"] == "eventbus.examples.orders_billing.billing"
    (server,) = doc["servers"].values()
    assert server["protocol"] == "sqlite"
    to_stdout = run_cli(
        "asyncapi",
        "eventbus.examples.orders_billing.billing:bus",
        cwd=tmp_path,
        EVENTBUS_URL="memory://",
    )
    assert to_stdout.returncode == 0 and json.loads(to_stdout.stdout)["asyncapi"] == "3.0.0"
    missing = run_cli("asyncapi", "no_such_module:bus", cwd=tmp_path)
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
