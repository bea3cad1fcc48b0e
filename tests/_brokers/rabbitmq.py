"""RabbitMQ fixtures: the broker under test and the names this run creates on it.

``EVENTBUS_RABBITMQ_URL`` points the tests at a RabbitMQ (default: the local one,
guest/guest). CI guarantees the broker is up, so an unreachable broker fails the
tests loudly instead of skipping them.

Every adapter made through ``topology.track`` publishes to one exchange unique to
this test run and records the queues it declares; at the end of the session
exactly those queues and exchanges are deleted (never anything this run did not
create).
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

RUN = uuid.uuid4().hex[:8]


def broker_url() -> str:
    from eventbus_rabbitmq import DEFAULT_URL

    return os.environ.get("EVENTBUS_RABBITMQ_URL") or DEFAULT_URL


class Topology:
    """Names this run created on the broker, to delete at the end."""

    def __init__(self) -> None:
        self.queues: set[str] = set()
        self.exchanges: set[str] = set()
        self.adapters: list[Any] = []

    def track(self, adapter: Any) -> Any:
        self.adapters.append(adapter)
        return adapter

    def collect(self) -> None:
        for a in self.adapters:
            s = a.settings
            self.exchanges |= {s.exchange, s.delay_exchange}
            self.queues |= a._topology.queues()
        self.adapters.clear()

    def delete(self, url: str) -> None:
        import pika

        self.collect()
        conn = pika.BlockingConnection(pika.URLParameters(url))
        try:
            for kind, names in (("queue", self.queues), ("exchange", self.exchanges)):
                for name in sorted(names):
                    ch = conn.channel()
                    try:
                        if kind == "queue":
                            ch.queue_delete(name)
                        else:
                            ch.exchange_delete(name)
                    except pika.exceptions.ChannelClosedByBroker:
                        pass  # already gone
                    finally:
                        if ch.is_open:
                            ch.close()
        finally:
            conn.close()
        self.queues.clear()
        self.exchanges.clear()


@pytest.fixture(scope="session")
def rabbitmq_url() -> Iterator[str]:
    """The broker under test; fails (does not skip) if it cannot be reached."""
    import pika

    from eventbus import redact_text as redact

    url = broker_url()
    deadline = time.monotonic() + 15
    while True:
        try:
            pika.BlockingConnection(pika.URLParameters(url)).close()
            break
        except pika.exceptions.AMQPError as exc:
            if time.monotonic() > deadline:
                pytest.fail(
                    f"RabbitMQ is not reachable at {redact(url)} ({exc!r}); start it with "
                    "`rabbitmq-server -detached` or point EVENTBUS_RABBITMQ_URL at one",
                    pytrace=False,
                )
            time.sleep(0.5)  # the broker may be starting: poll until the deadline
    yield url


@pytest.fixture(scope="session")
def topology(rabbitmq_url: str) -> Iterator[Topology]:
    t = Topology()
    yield t
    t.delete(rabbitmq_url)


@pytest.fixture(scope="session")
def exchange() -> str:
    """The exchange every adapter of this run publishes to."""
    return f"eventbus-test-{RUN}"


@pytest.fixture
def raw_channel(rabbitmq_url: str) -> Iterator[Any]:
    """A plain pika channel (the tests' independent view of the broker)."""
    import pika

    conn = pika.BlockingConnection(pika.URLParameters(rabbitmq_url))
    yield conn.channel()
    if conn.is_open:
        conn.close()
