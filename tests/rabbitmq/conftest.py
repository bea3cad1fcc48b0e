"""Fixtures for the RabbitMQ adapter's tests.

``EVENTBUS_RABBITMQ_URL`` points the tests at a RabbitMQ (default: the local one,
guest/guest). CI guarantees the broker is up, so an unreachable broker fails the
tests loudly instead of skipping them.

Every adapter made here publishes to one exchange unique to this test run and
records the queues it declares; at the end of the session exactly those queues
and exchanges are deleted (never anything this run did not create).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pika
import pytest
from eventbus_rabbitmq import RabbitMQAdapter
from eventbus_rabbitmq._settings import DEFAULT_URL

from eventbus._config import redact

RUN = uuid.uuid4().hex[:8]
URL = os.environ.get("EVENTBUS_RABBITMQ_URL") or DEFAULT_URL


class Topology:
    """Names this run created on the broker, to delete at the end."""

    def __init__(self) -> None:
        self.queues: set[str] = set()
        self.exchanges: set[str] = set()
        self.adapters: list[RabbitMQAdapter] = []

    def track(self, adapter: RabbitMQAdapter) -> RabbitMQAdapter:
        self.adapters.append(adapter)
        return adapter

    def collect(self) -> None:
        for a in self.adapters:
            s = a.settings
            self.exchanges |= {s.exchange, s.delay_exchange}
            for group in a._bound:
                self.queues |= {s.queue(group), s.dead_queue(group)}
            self.queues |= {s.delay_queue(ms) for ms in a._buckets}
        self.adapters.clear()

    def delete(self, url: str) -> None:
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
    deadline = time.monotonic() + 15
    while True:
        try:
            pika.BlockingConnection(pika.URLParameters(URL)).close()
            break
        except pika.exceptions.AMQPError as exc:
            if time.monotonic() > deadline:
                pytest.fail(
                    f"RabbitMQ is not reachable at {redact(URL)} ({exc!r}); start it with "
                    "`rabbitmq-server -detached` or point EVENTBUS_RABBITMQ_URL at one",
                    pytrace=False,
                )
            time.sleep(0.5)  # the broker may be starting: poll until the deadline
    yield URL


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
def make_adapter(
    rabbitmq_url: str, topology: Topology, exchange: str
) -> Iterator[Callable[..., RabbitMQAdapter]]:
    """``make_adapter(**options)``: a new adapter on the test exchange; closed after the test."""
    made: list[RabbitMQAdapter] = []

    def make(**options: Any) -> RabbitMQAdapter:
        options.setdefault("exchange", exchange)
        a = topology.track(RabbitMQAdapter(rabbitmq_url, **options))
        made.append(a)
        return a

    yield make
    for a in made:
        a.close()
    topology.collect()


@pytest.fixture
def raw_channel(rabbitmq_url: str) -> Iterator[Any]:
    """A plain pika channel (the tests' independent view of the broker)."""
    conn = pika.BlockingConnection(pika.URLParameters(rabbitmq_url))
    yield conn.channel()
    if conn.is_open:
        conn.close()


def rabbitmqctl(*args: str, timeout: float = 120) -> None:
    """Run rabbitmqctl against the local node (restart tests only)."""
    exe = shutil.which("rabbitmqctl")
    if exe is None:
        pytest.fail("rabbitmqctl is not on PATH; the restart tests need the local broker")
    subprocess.run([exe, *args], check=True, capture_output=True, timeout=timeout)


def wait_for_port(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            pika.BlockingConnection(pika.URLParameters(url)).close()
            return
        except pika.exceptions.AMQPError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)  # polling the broker until it is back, with a deadline


@pytest.fixture
def restart_rabbitmq(rabbitmq_url: str) -> Callable[[], None]:
    """``restart()``: stop_app + start_app on the local node; returns once AMQP is back.

    About 3 s here. Skips (with the reason) when the broker under test is not the
    local node that ``rabbitmqctl`` controls.
    """
    host = pika.URLParameters(rabbitmq_url).host
    if host not in ("127.0.0.1", "localhost", "::1") or shutil.which("rabbitmqctl") is None:
        pytest.skip(f"restarting needs the local node and rabbitmqctl; the broker is at {host}")

    def restart() -> None:
        rabbitmqctl("stop_app")
        rabbitmqctl("start_app")
        wait_for_port(rabbitmq_url)

    return restart
