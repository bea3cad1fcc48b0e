"""Fixtures for the interop tests: the Kafka and RabbitMQ test brokers, reused.

The broker fixtures are those of ``tests/kafka/conftest.py`` (Tansu, or
``EVENTBUS_KAFKA_BOOTSTRAP``) and ``tests/rabbitmq/conftest.py`` (the local
RabbitMQ, or ``EVENTBUS_RABBITMQ_URL``; every queue and exchange made here is
deleted at the end), loaded from those files so there is one copy of the
start-up and clean-up logic.
"""

from __future__ import annotations

import importlib.util
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

HERE = Path(__file__).parent


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


_kafka = _load("eventbus_interop_kafka_fixtures", HERE.parent / "kafka" / "conftest.py")
_rabbit = _load("eventbus_interop_rabbitmq_fixtures", HERE.parent / "rabbitmq" / "conftest.py")

# Fixtures, re-exported so pytest finds them here.
kafka_bootstrap = _kafka.kafka_bootstrap
kafka_settings = _kafka.kafka_settings
rabbitmq_url = _rabbit.rabbitmq_url
topology = _rabbit.topology
exchange = _rabbit.exchange
raw_channel = _rabbit.raw_channel


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


def wait_for(check: Callable[[], bool], timeout: float = 20.0, what: str = "condition") -> None:
    """Poll ``check`` until true, failing after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)  # polling with a deadline
