"""A worker whose broker cannot be reached says so once, reminds, and says when it is back."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

import pytest

from eventbus import BrokerUnavailable, EventBus, MemoryAdapter
from eventbus.adapter import Consumer, Delivery
from eventbus.testing import eventually


class Flaky(MemoryAdapter):
    """The memory broker, unreachable for the first ``fail`` receives of each consumer set."""

    def __init__(self, fail: int) -> None:
        super().__init__()
        self.fail = fail
        self.lock = threading.Lock()

    def consumer(self, group: str, patterns: Sequence[str]) -> Consumer:
        inner = super().consumer(group, patterns)
        outer = self

        class FlakyConsumer(Consumer):
            def receive(self, max_messages: int, timeout: float) -> list[Delivery]:
                with outer.lock:
                    if outer.fail > 0:
                        outer.fail -= 1
                        raise BrokerUnavailable("connection refused")
                return inner.receive(max_messages, timeout)

            def ack(self, deliveries: Sequence[Delivery]) -> None:
                inner.ack(deliveries)

            def nack(self, delivery: Delivery, delay: float) -> None:
                inner.nack(delivery, delay)

            def dead_letter(self, delivery: Delivery, reason: str) -> None:
                inner.dead_letter(delivery, reason)

            def close(self) -> None:
                inner.close()

        return FlakyConsumer()


def test_an_outage_is_one_warning_and_its_end_one_info(caplog: pytest.LogCaptureFixture) -> None:
    adapter = Flaky(fail=4)
    bus = EventBus(adapter)
    got: list[object] = []
    bus.subscribe("x.y", lambda e: got.append(e.data), group="g")
    caplog.set_level(logging.DEBUG, logger="eventbus.worker")
    bus.start()
    try:
        eventually(lambda: "g" in bus.health()["down"] or adapter.fail == 0, what="an outage")
        bus.publish("x.y", 1)
        eventually(lambda: got == [1], what="the event after the outage")
        assert bus.health() == {"running": True, "down": {}}
    finally:
        bus.close()
    records = [r for r in caplog.records if r.name == "eventbus.worker"]
    warnings = [r.getMessage() for r in records if r.levelno == logging.WARNING]
    infos = [r.getMessage() for r in records if r.levelno == logging.INFO]
    assert warnings == ["group g: cannot receive (connection refused); retrying, backoff up to 5s"]
    assert any(m.startswith("group g: receiving again after 4 failed tries") for m in infos)
