"""Service Bus fixtures: a Service Bus endpoint for the session.

By default the test broker (``servicebus_broker``, next to this module: a test
double on python-qpid-proton, not part of the product) is started in a
subprocess on a free port, with the entities of
``tests/azure_servicebus/entities.json`` (emulator ``Config.json`` shape), and
stopped at the end; the adapter creates topics and subscriptions through its
``$eventbus-admin`` node (``TestBrokerEntities``).

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
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ENTITIES = Path(__file__).parents[1] / "azure_servicebus" / "entities.json"
#: The test broker's package; ``python BROKER_DIR --port N`` runs it.
BROKER_DIR = Path(__file__).with_name("servicebus_broker")
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
            from eventbus_test_brokers.servicebus_broker import TestBrokerEntities

            return TestBrokerEntities(self.connection_string)
        return self.entities_mode

    def adapter(self, **options: Any) -> Any:
        from eventbus_azure_servicebus import ServiceBusAdapter

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


@contextmanager
def start_test_broker(port: int = 0, *args: str) -> Iterator[tuple[subprocess.Popen[str], int]]:
    """The Service Bus test broker on ``port`` (0: a free one): ``(process, port)``.

    ``args``: more command-line options (``"--max-message-size", "4194304"``)."""
    cmd = [
        sys.executable,
        str(BROKER_DIR),
        "--port",
        str(port),
        "--config",
        str(ENTITIES),
        *args,
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    try:
        deadline = time.monotonic() + 20
        line = ""
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if line.startswith("listening on "):
                break
            if proc.poll() is not None:
                break
        else:
            line = ""
        if not line.startswith("listening on "):
            raise RuntimeError(f"the Service Bus test broker did not start (last output: {line!r})")
        yield proc, int(line.rsplit(":", 1)[1])
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()


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
    from eventbus_test_brokers.servicebus_broker import connection_string

    with start_test_broker() as (proc, port):
        yield ServiceBusTarget(
            connection_string("127.0.0.1", port), f"eventbus-{RUN}", "testbroker", proc
        )
