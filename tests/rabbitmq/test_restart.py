"""10,000 events published and consumed across a broker restart: nothing lost, counted.

``rabbitmqctl stop_app`` / ``start_app`` on the local node while a publisher and a
two-thread worker run. The publisher retries a batch the broker did not confirm
(the core's outbox will do this for users); the worker reconnects by itself.
Every confirmed event must reach the handler; duplicates (at-least-once) are
counted and reported. The restart takes about 3 s here, the test about 5 s, so it
runs in the default tier; it needs the local node (``rabbitmqctl``).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable

import pytest
from eventbus_rabbitmq import RabbitMQAdapter

from eventbus import BrokerError, BusConfig, Event, EventBus, encode
from eventbus.testing import Collector, eventually

pytestmark = [pytest.mark.rabbitmq]

N = 10_000
BATCH = 50


def test_10000_events_survive_a_broker_restart(
    make_adapter: Callable[..., RabbitMQAdapter], restart_rabbitmq: Callable[[], None]
) -> None:
    group = f"restart-{uuid.uuid4().hex[:8]}"
    got = Collector()
    worker = EventBus(
        make_adapter(lease=30, heartbeat=2),
        config=BusConfig(prefetch=100, poll_interval=0.2, concurrency=2),
    )
    worker.subscribe("restart.#", got, group=group)
    worker.declare()
    worker.start()
    publisher = make_adapter(confirm_timeout=10, connect_timeout=5)
    confirmed: list[str] = []
    failures = 0

    def publish() -> None:
        nonlocal failures
        for start in range(0, N, BATCH):
            batch = [
                encode(Event(type="restart.e", data={"i": i}, source="/restart"))
                for i in range(start, start + BATCH)
            ]
            while True:
                try:
                    publisher.publish(batch)
                    break
                except BrokerError:
                    failures += 1
                    time.sleep(0.2)  # backoff while the broker is down
            confirmed.extend(m.headers["id"] for m in batch)
            time.sleep(0.01)  # pace it, so the restart happens mid-stream

    thread = threading.Thread(target=publish)
    thread.start()
    try:
        eventually(
            lambda: len(confirmed) >= 3000 and got.count() >= 1000,
            timeout=60,
            what="traffic before the restart",
        )
        restart_rabbitmq()
        thread.join(240)
        assert not thread.is_alive(), f"publisher stuck at {len(confirmed)} confirmed"
        assert len(confirmed) == N
        assert failures > 0, "the restart did not interrupt the publisher: test proves nothing"
        got.wait_until(lambda evs: len({e.id for e in evs}) >= N, idle=90)
        received = got.ids()
        assert set(received) == set(confirmed)
        print(
            f"\n{N} confirmed, {len(received)} handled ({len(received) - N} duplicates), "
            f"{failures} publish attempts failed during the restart"
        )
    finally:
        thread.join(60)
        worker.stop()
