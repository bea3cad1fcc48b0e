"""The conformance suite on Kafka (Tansu by default; EVENTBUS_KAFKA_BOOTSTRAP for a real one)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from eventbus_kafka import KafkaAdapter, KafkaSettings

from eventbus.testing import AdapterConformance

pytestmark = [pytest.mark.kafka]


class TestKafkaConformance(AdapterConformance):
    marker = "kafka"

    @pytest.fixture
    def adapter_factory(self, kafka_settings: KafkaSettings) -> Callable[[], KafkaAdapter]:
        # lease_seconds = max_poll_interval + session_timeout (6 + 3 s on Tansu)
        return lambda: KafkaAdapter(kafka_settings)

    @pytest.fixture
    def foreign_publisher(self, raw_producer: Callable[..., None]) -> Callable[[str, bytes], None]:
        # a plain record on the event type's topic: no ce_ headers, a body that isn't JSON
        return lambda topic, body: raw_producer(topic, body)

    @pytest.fixture
    def broker_restart(self) -> None:
        # Tansu keeps its log in memory only: a restart loses everything, so the
        # persistence test can't be run here (it is skipped with that reason).
        return None

    # librdkafka can only leave a group cleanly (LeaveGroup on close), so simulate_crash()
    # hands the partitions on at the next rebalance, as soon as a close would: in-process,
    # a crash cannot be told from a close here. A real crash (a SIGKILLed member process,
    # its session expiring) is tested in tests/kafka/test_crash.py.
    crash_holds_deliveries = False

    @pytest.fixture
    def crash(self) -> Callable[[Any], None]:
        # simulate_crash() stops the consumers without settling or committing; they leave
        # the group at once (a dead process's session would expire after session_timeout),
        # so the group hands their partitions on from the last commit.
        return lambda adapter: adapter.simulate_crash()
