"""Fixtures for the observability and tooling tests.

Broker fixtures come from ``tests/_brokers`` (shared by every test directory).
OpenTelemetry fixtures use the SDK's in-memory exporter and metric reader on providers
of their own (the global ones are untouched).
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

HERE = Path(__file__).parent
REPO = HERE.parents[1]


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def wait_for(check: Callable[[], bool], timeout: float = 20.0, what: str = "condition") -> None:
    """Poll ``check`` until true, failing after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)  # polling with a deadline


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def spans() -> Iterator[Any]:
    """``(tracer_provider, exporter)`` with a synchronous in-memory exporter."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


@pytest.fixture
def metrics() -> Iterator[Any]:
    """``(meter_provider, reader)`` with an in-memory metric reader."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    yield provider, reader
    provider.shutdown()


def points(reader: Any) -> dict[str, list[tuple[dict[str, Any], Any]]]:
    """Metric name -> [(attributes, value or histogram count)] from an in-memory reader."""
    out: dict[str, list[tuple[dict[str, Any], Any]]] = {}
    data = reader.get_metrics_data()
    for rm in data.resource_metrics if data else []:
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                for p in m.data.data_points:
                    value = p.value if hasattr(p, "value") else p.count
                    out.setdefault(m.name, []).append((dict(p.attributes), value))
    return out


@pytest.fixture
def make_rabbitmq(rabbitmq_url: str, topology: Any, exchange: str) -> Any:
    from eventbus_rabbitmq import RabbitMQAdapter

    made: list[Any] = []

    def make(**options: Any) -> Any:
        options.setdefault("exchange", exchange)
        a = topology.track(RabbitMQAdapter(rabbitmq_url, **options))
        made.append(a)
        return a

    yield make
    for a in made:
        a.close()
    topology.collect()


@pytest.fixture
def make_kafka(kafka_settings: Any) -> Any:
    from eventbus_kafka import KafkaAdapter

    made: list[Any] = []

    def make() -> Any:
        a = KafkaAdapter(kafka_settings)
        made.append(a)
        return a

    yield make
    for a in made:
        a.close()


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTBUS_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
    env.update(extra)
    return env


def run_cli(
    *argv: str, cwd: Path, timeout: float = 60, **env: str
) -> subprocess.CompletedProcess[str]:
    """The real ``eventbus`` command in a child process."""
    return subprocess.run(
        [sys.executable, "-m", "eventbus", *argv],
        cwd=cwd,
        env=cli_env(**env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start_cli(*argv: str, cwd: Path, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "eventbus", *argv],
        cwd=cwd,
        env=cli_env(**env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
