"""The conformance row of the in-memory adapter."""

from __future__ import annotations

import pytest

from eventbus import MemoryAdapter, Message
from eventbus.testing import AdapterConformance


class TestMemoryConformance(AdapterConformance):
    marker = "memory"

    @pytest.fixture
    def adapter_factory(self):
        # One in-process broker per test; each call is another client of it.
        broker = MemoryAdapter(lease=2.0, max_message_size=64 * 1024)
        yield broker.client
        broker.close()

    @pytest.fixture
    def foreign_publisher(self, adapter_factory):
        client = adapter_factory()

        def put(topic: str, body: bytes) -> None:
            client.publish([Message(topic=topic, body=body, headers={})])

        return put

    @pytest.fixture
    def crash(self):
        # The memory broker holds a delivery by its lease, not by a connection: a member
        # that is never called again (abandoned, as a hung process) is a crash.
        return lambda adapter: None
