"""The console on every adapter, in the app's process (``serve(bus=...)``): what the
adapter supports works, what it cannot show is said on the page, never an error."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from eventbus import BusConfig, Event, EventBus, MemoryAdapter, RetryPolicy
from eventbus.testing import eventually


def _adapter(name: str, request: pytest.FixtureRequest) -> Any:
    if name == "memory":
        return MemoryAdapter()
    if name == "kafka":
        from eventbus_kafka import KafkaAdapter

        return KafkaAdapter(request.getfixturevalue("kafka_settings"))
    if name == "sqs":
        from eventbus_sqs import SqsAdapter

        return SqsAdapter(request.getfixturevalue("sqs_names").settings())
    if name == "azure_servicebus":
        return request.getfixturevalue("servicebus").adapter()
    from eventbus_rabbitmq import RabbitMQAdapter

    return RabbitMQAdapter(request.getfixturevalue("rabbitmq_url"))


@pytest.fixture(
    params=[
        pytest.param("memory", marks=pytest.mark.memory),
        pytest.param("rabbitmq", marks=pytest.mark.rabbitmq),
        pytest.param("kafka", marks=pytest.mark.kafka),
        pytest.param("sqs", marks=pytest.mark.sqs),
        pytest.param("azure_servicebus", marks=pytest.mark.azure_servicebus),
    ]
)
def app_bus(request: pytest.FixtureRequest, db) -> Iterator[tuple[str, EventBus, str]]:
    """(adapter name, a running bus whose group dead-letters everything, the group)."""
    name = request.param
    adapter = _adapter(name, request)
    bus = EventBus(
        adapter,
        config=BusConfig(broker=name, url=None, poll_interval=0.1),
        retry=RetryPolicy(max_attempts=1),
    )
    group = f"console-{uuid.uuid4().hex[:6]}"

    @bus.subscribe("order.*", group=group)
    def reject(event: Event) -> None:
        raise ValueError("rejected by the test")

    bus.start()
    try:
        yield name, bus, group
    finally:
        bus.close()


def test_every_adapter(app_bus, start_console: Callable[..., str], token: str) -> None:
    name, bus, group = app_bus
    with httpx.Client(base_url=start_console(None, bus=bus), timeout=30) as c:
        sent = bus.publish("order.paid", {"order": 7})

        def letters() -> list[dict] | None:
            r = c.get(f"/api/groups/{group}/dead")
            assert r.status_code == 200, r.text
            return r.json()["dead_letters"] or None

        [letter] = eventually(letters, what=f"the dead letter on {name}")
        assert letter["id"] == sent.id and "rejected by the test" in letter["reason"]
        home = c.get("/")
        assert home.status_code == 200 and f'data-group="{group}"' in home.text
        if name not in ("memory",):  # memory has depth(); the others say what they lack
            assert "does not report" in home.text
        page = c.get(f"/groups/{group}/dead/{sent.id}")
        assert page.status_code == 200 and "&quot;order&quot;: 7" in page.text
        log = c.get("/log")
        assert log.status_code == 200 and "feature of the embedded SQLite broker" in log.text
        for path in ("/outbox", "/asyncapi", "/tail", f"/chart/{group}.svg"):
            assert c.get(path).status_code == 200, path
        # The chart counts what the app's handlers did (or the log, on sqlite).
        history = lambda: c.get(f"/api/groups/{group}/history").json()  # noqa: E731
        eventually(lambda: sum(history()["throughput"]) == 1 or None, what="the chart's count")
        assert "handlers finished in this process" in history()["throughput_counts"]
        r = c.post(f"/groups/{group}/purge", headers={"X-Eventbus-Token": token})
        assert r.status_code == 200 and r.json()["purged"] == 1
