"""Fixtures for the Azure Service Bus tests: a Service Bus endpoint for the session.

By default the test broker (``python -m eventbus_azure_servicebus.testbroker``)
is started in a subprocess on a free port, with the entities of
``entities.json`` (emulator ``Config.json`` shape), and stopped at the end;
the adapter creates topics and subscriptions through its ``$eventbus-admin``
node (``TestBrokerEntities``).

``EVENTBUS_SERVICEBUS_CONNECTION_STRING`` runs the same tests against the
official emulator or a real namespace instead; ``EVENTBUS_SERVICEBUS_ENTITIES``
is then ``create`` (default: the administration client creates what the
tests need; the namespace must allow management) or ``existing``.
Tests that need the test broker itself (its admin node, its config file) are
skipped then, with that reason.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from eventbus_azure_servicebus import ServiceBusAdapter

HERE = Path(__file__).parent
RUN = uuid.uuid4().hex[:6]


@dataclass
class ServiceBusTarget:
    """The endpoint the tests use, and how to make adapters on it."""

    connection_string: str
    topic: str
    entities_mode: str  # "testbroker" | "create" | "existing"
    process: subprocess.Popen[str] | None = None
    extra_topics: list[str] = field(default_factory=list)  # made by tests, deleted at the end

    @property
    def is_test_broker(self) -> bool:
        return self.entities_mode == "testbroker"

    def entities(self) -> Any:
        if self.is_test_broker:
            from eventbus_azure_servicebus.testbroker import TestBrokerEntities

            return TestBrokerEntities(self.connection_string)
        return self.entities_mode

    def adapter(self, **options: Any) -> ServiceBusAdapter:
        options.setdefault("topic", self.topic)
        if options["topic"] != self.topic and options["topic"] not in self.extra_topics:
            self.extra_topics.append(options["topic"])
        options.setdefault("entities", self.entities())
        return ServiceBusAdapter(self.connection_string, **options)

    def client(self) -> Any:
        from azure.servicebus import ServiceBusClient

        return ServiceBusClient.from_connection_string(self.connection_string)

    def require_test_broker(self) -> None:
        if not self.is_test_broker:
            pytest.skip("needs the test broker (EVENTBUS_SERVICEBUS_CONNECTION_STRING is set)")


def _start_broker() -> tuple[subprocess.Popen[str], int]:
    cmd = [
        sys.executable, "-m", "eventbus_azure_servicebus.testbroker",
        "--port", "0", "--config", str(HERE / "entities.json"),
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    deadline = time.monotonic() + 20
    line = ""
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.startswith("listening on "):
            return proc, int(line.rsplit(":", 1)[1])
        if proc.poll() is not None:
            break
    proc.kill()
    proc.wait()
    raise RuntimeError(f"the Service Bus test broker did not start (last output: {line!r})")


@pytest.fixture(scope="session")
def servicebus() -> Iterator[ServiceBusTarget]:
    conn = os.environ.get("EVENTBUS_SERVICEBUS_CONNECTION_STRING")
    if conn:
        mode = os.environ.get("EVENTBUS_SERVICEBUS_ENTITIES", "create")
        target = ServiceBusTarget(conn, f"eventbus-test-{RUN}", mode)
        yield target
        if mode == "create":  # the run's topic (and its subscriptions) go away with it
            from azure.servicebus.management import ServiceBusAdministrationClient

            with ServiceBusAdministrationClient.from_connection_string(conn) as admin:
                for topic in (target.topic, *target.extra_topics):
                    try:
                        admin.delete_topic(topic)
                    except Exception as exc:  # best effort: report, don't fail the run
                        print(f"could not delete test topic {topic}: {exc}")
        return
    from eventbus_azure_servicebus.testbroker import connection_string

    proc, port = _start_broker()
    conn = connection_string("127.0.0.1", port)
    target = ServiceBusTarget(conn, f"eventbus-{RUN}", "testbroker", proc)
    try:
        yield target
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


@pytest.fixture
def make_adapter(servicebus: ServiceBusTarget) -> Iterator[Callable[..., ServiceBusAdapter]]:
    """New adapters on the session's endpoint (short locks); closed after the test."""
    made: list[ServiceBusAdapter] = []

    if servicebus.entities_mode == "existing":
        pytest.skip("makes groups on the fly: needs entities created by the adapter")

    def make(**options: Any) -> ServiceBusAdapter:
        options.setdefault("lock_duration", 4.0)
        a = servicebus.adapter(**options)
        made.append(a)
        return a

    yield make
    for a in reversed(made):
        try:
            a.close()
        except Exception:
            pass
