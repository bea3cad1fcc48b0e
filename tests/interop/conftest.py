"""Fixtures for the interop tests: adapters on the shared Kafka and RabbitMQ brokers.

The broker fixtures come from ``tests/_brokers`` (Tansu, or
``EVENTBUS_KAFKA_BOOTSTRAP``; the local RabbitMQ, or ``EVENTBUS_RABBITMQ_URL``, where
every queue and exchange made here is deleted at the end).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest


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
