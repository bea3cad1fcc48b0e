"""Fixtures for the RabbitMQ adapter's tests: adapters and broker restarts.

The broker (``rabbitmq_url``: ``EVENTBUS_RABBITMQ_URL`` or the local one), the run's
``exchange``, ``topology`` (what this run created, deleted at the end) and
``raw_channel`` come from ``tests/_brokers/rabbitmq.py``.
"""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pika
import pytest
from eventbus_rabbitmq import RabbitMQAdapter


@pytest.fixture
def make_adapter(
    rabbitmq_url: str, topology: Any, exchange: str
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


@pytest.fixture
def limited_user(rabbitmq_url: str) -> Iterator[Callable[[str, str, str], str]]:
    """``url = limited_user(configure, write, read)``: the broker URL of a new user with
    these permission regexps on the test vhost; the users are deleted after the test.

    Skips (with the reason) when the broker is not the local node ``rabbitmqctl`` manages.
    """
    params = pika.URLParameters(rabbitmq_url)
    if params.host not in ("127.0.0.1", "localhost", "::1") or shutil.which("rabbitmqctl") is None:
        pytest.skip(
            f"making users needs the local node and rabbitmqctl; the broker is at {params.host}"
        )
    made: list[str] = []

    def make(configure: str, write: str, read: str) -> str:
        name, password = f"eventbus-test-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
        rabbitmqctl("add_user", name, password)
        made.append(name)
        rabbitmqctl("set_permissions", "-p", params.virtual_host, name, configure, write, read)
        parts = urlsplit(rabbitmq_url)
        host = parts.netloc.rpartition("@")[2]
        return urlunsplit(parts._replace(netloc=f"{name}:{password}@{host}"))

    yield make
    for name in made:
        rabbitmqctl("delete_user", name)
