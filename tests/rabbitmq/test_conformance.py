"""The conformance row of the RabbitMQ adapter."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pika
import pytest

from eventbus.testing import AdapterConformance

pytestmark = [pytest.mark.rabbitmq]


class TestRabbitMQConformance(AdapterConformance):
    marker = "rabbitmq"

    @pytest.fixture
    def adapter_factory(self, make_adapter: Callable[..., Any]) -> Callable[[], Any]:
        # A short lease and heartbeat so the crash-redelivery tests are quick.
        return lambda: make_adapter(lease=3, heartbeat=1)

    @pytest.fixture
    def foreign_publisher(self, raw_channel: Any, exchange: str) -> Callable[[str, bytes], None]:
        def put(topic: str, body: bytes) -> None:
            # plain pika: no CloudEvents headers, a body that is not JSON
            raw_channel.basic_publish(
                exchange, topic, body, pika.BasicProperties(headers={"x-source": "legacy"})
            )

        return put

    @pytest.fixture
    def broker_restart(self, restart_rabbitmq: Callable[[], None]) -> Callable[[], None]:
        return restart_rabbitmq  # stop_app + start_app: about 3 s

    @pytest.fixture
    def crash(self) -> Callable[[Any], None]:
        # A hung member: nothing calls the adapter again, so its keeper thread drops the
        # consumer's connection once the lease runs out, and RabbitMQ hands the deliveries
        # on: what lease_seconds promises. simulate_crash() (a killed process) drops the TCP
        # connection at once and RabbitMQ requeues at once, like close(); test_adapter.py
        # covers that path.
        return lambda adapter: None
