"""Prometheus metrics, the worker's /metrics endpoint, and structured logs."""

from __future__ import annotations

import io
import json
import logging
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from eventbus import Event, EventBus, MemoryAdapter, RetryPolicy
from eventbus.observability import configure_logging

from .conftest import start_cli, wait_for

prometheus_client = pytest.importorskip("prometheus_client")

FAST_RETRY = RetryPolicy(max_attempts=2, initial_delay=0.05, max_delay=0.05, jitter=0.0)


@pytest.mark.memory
def test_prometheus_counts_what_happens() -> None:
    from eventbus.observability.prometheus import instrument, serve

    registry = prometheus_client.CollectorRegistry()
    bus = EventBus(MemoryAdapter(), retry=FAST_RETRY)
    instrument(bus, registry)
    calls: list[Any] = []

    @bus.subscribe("order.*", group="billing")
    def handle(event: Event) -> None:
        calls.append(event.data)
        if event.data == "poison":
            raise ValueError("no")

    bus.start()
    server = serve(0, registry=registry)
    try:
        bus.publish("order.created", "ok")
        bus.publish("order.created", "poison")
        wait_for(lambda: len(calls) == 3, 10, "3 handler calls")
        wait_for(
            lambda: (
                registry.get_sample_value(
                    "eventbus_dead_lettered_total",
                    {"system": "memory", "group": "billing", "type": "order.created"},
                )
                == 1
            ),
            5,
            "the dead letter",
        )
        labels = {"system": "memory", "group": "billing", "type": "order.created"}
        value = registry.get_sample_value
        assert (
            value(
                "eventbus_published_total",
                {"system": "memory", "type": "order.created", "outcome": "sent"},
            )
            == 2
        )
        assert value("eventbus_delivered_total", labels) == 3
        assert value("eventbus_acked_total", labels) == 1
        assert value("eventbus_retried_total", labels) == 1
        assert (
            value(
                "eventbus_handler_duration_seconds_count",
                {"system": "memory", "group": "billing", "outcome": "acked"},
            )
            == 1
        )
        assert value("eventbus_outbox_depth", {"system": "memory"}) == 0
        assert value("eventbus_circuit_state", {"system": "memory"}) == 0
        url = f"http://127.0.0.1:{server.server_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
        assert (
            'eventbus_acked_total{group="billing",system="memory",type="order.created"} 1.0' in text
        )
    finally:
        server.shutdown()
        bus.close()


@pytest.mark.sqlite
def test_worker_serves_metrics_and_logs_json(tmp_path: Path) -> None:
    (tmp_path / "eventbus.toml").write_text(
        'url = "sqlite:///bus.db"\n[worker]\npoll_interval = 0.1\n'
    )
    (tmp_path / "app.py").write_text(
        "import logging\nfrom eventbus import EventBus\nbus = EventBus()\n"
        "log = logging.getLogger('app')\n"
        "@bus.subscribe('order.*', group='billing')\n"
        "def invoice(event):\n    log.info('invoicing %s', event.data['id'])\n"
    )
    proc = start_cli(
        "worker", "app:bus", "--metrics-port", "0", "--log-format", "json", cwd=tmp_path
    )
    try:
        assert proc.stderr is not None
        lines: list[str] = []
        while "ready" not in "".join(lines):
            line = proc.stderr.readline()
            assert line, f"worker ended: {''.join(lines)}"
            lines.append(line)
        url = next(w for ln in lines for w in ln.split() if w.startswith("http://"))
        publisher = EventBus(f"sqlite:///{tmp_path / 'bus.db'}")
        publisher.publish("order.created", {"id": 7}, correlationid="corr-7")
        publisher.close()

        def scraped() -> bool:
            with urllib.request.urlopen(url, timeout=5) as r:
                return 'eventbus_acked_total{group="billing",system="sqlite"' in r.read().decode()

        wait_for(scraped, 15, "the acked event in /metrics")
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    records = [json.loads(ln) for ln in err.splitlines() if ln.startswith("{")]
    mine = [r for r in records if r["logger"] == "app"]
    assert mine and mine[0]["message"] == "invoicing 7"
    assert mine[0]["correlation_id"] == "corr-7"
    assert mine[0]["group"] == "billing" and mine[0]["handler"] == "app.invoice"
    assert mine[0]["event_type"] == "order.created" and mine[0]["event_id"]
    assert proc.returncode == 0


@pytest.mark.memory
def test_log_lines_name_the_event_they_are_about() -> None:
    stream = io.StringIO()
    handler = configure_logging("INFO", json=True, stream=stream, logger="eventbus")
    app_log = logging.getLogger("eventbus.test.app")
    try:
        bus = EventBus(MemoryAdapter(), retry=FAST_RETRY)
        done: list[int] = []

        @bus.subscribe("order.*", group="billing")
        def invoice(event: Event) -> None:
            app_log.info("working on it")
            done.append(event.attempt)
            if event.attempt == 1:
                raise RuntimeError("first try fails")

        bus.start()
        result = bus.publish("order.created", {"id": 1}, correlationid="corr-1")
        wait_for(lambda: len(done) == 2, 10, "the retry")
        bus.close()
    finally:
        logging.getLogger("eventbus").removeHandler(handler)
    records = [json.loads(ln) for ln in stream.getvalue().splitlines()]
    mine = [r for r in records if r["logger"] == "eventbus.test.app"]
    assert len(mine) == 2
    retry = [r for r in records if r["logger"] == "eventbus.worker" and "retrying" in r["message"]]
    for r in [*mine, *retry]:
        assert r["event_id"] == result.id
        assert r["correlation_id"] == "corr-1"
        assert r["group"] == "billing"
    assert mine[0]["handler"].endswith("invoice")
