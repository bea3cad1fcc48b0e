"""Fixtures for the resilience tests: rigs (adapter + a real way to take it down),
PostgreSQL and Redis connections, and a working directory per test.

RabbitMQ, PostgreSQL and Redis are expected on 127.0.0.1 (CI starts them); an
unreachable one fails its tests with the reason instead of skipping them. The
Kafka, SQS and Service Bus rigs start a broker of their own (Tansu, moto, the
Service Bus test broker) behind the rig's TCP proxy; see ``rigs.py``.
"""

from __future__ import annotations

import os
import socket
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # fault_harness, worker_proc

from fault_harness import Rig, rig

PG_DSN = os.environ.get("EVENTBUS_POSTGRES_DSN") or "postgresql://postgres@127.0.0.1:5432/test"
REDIS_URL = os.environ.get("EVENTBUS_REDIS_URL") or "redis://127.0.0.1:6379/0"


def _reachable(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=2).close()
        return True
    except OSError:
        return False


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh directory, also the cwd (so default ``.eventbus/`` files land in it)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


PROXIED = ["rabbitmq", "kafka", "sqs", "azure_servicebus"]


def _open_rig(name: str, workdir: Path) -> Iterator[Rig]:
    if name == "rabbitmq" and not _reachable("127.0.0.1", 5672):
        pytest.fail(
            "RabbitMQ is not reachable on 127.0.0.1:5672; start it with "
            "`rabbitmq-server -detached`",
            pytrace=False,
        )
    with rig(name, workdir) as r:
        yield r


@pytest.fixture(params=["memory", "sqlite", *PROXIED])
def any_rig(request: pytest.FixtureRequest, workdir: Path) -> Iterator[Rig]:
    """Each adapter kind in turn; the test gets that kind's marker."""
    yield from _open_rig(request.param, workdir)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark parametrised rig tests with their adapter's marker (``-m rabbitmq`` selects them)."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is None:
            continue
        for key in ("any_rig", "down_rig", "outage_rig", "process_rig"):
            if key in callspec.params:
                item.add_marker(getattr(pytest.mark, callspec.params[key]))


@pytest.fixture(params=["sqlite", "rabbitmq"])
def down_rig(request: pytest.FixtureRequest, workdir: Path) -> Iterator[Rig]:
    """Adapter kinds whose broker can be made unavailable, for the publisher tests.

    Not Kafka and Service Bus: through a cut connection their publishes do go to the
    outbox, but the breaker is still closed after 50 of them (to be looked into).
    """
    yield from _open_rig(request.param, workdir)


@pytest.fixture(params=["sqlite", *PROXIED])
def outage_rig(request: pytest.FixtureRequest, workdir: Path) -> Iterator[Rig]:
    """Every adapter kind whose broker can really be made unavailable here (fault tests)."""
    yield from _open_rig(request.param, workdir)


@pytest.fixture
def pg_conn() -> Iterator[Any]:
    """A psycopg 3 connection to the local PostgreSQL (database ``test``)."""
    psycopg = pytest.importorskip("psycopg", reason="psycopg (eventbus[postgres]) not installed")
    try:
        conn = psycopg.connect(PG_DSN, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL is not reachable at {PG_DSN}: {exc}", pytrace=False)
    yield conn
    conn.close()


@pytest.fixture
def pg_table(pg_conn: Any) -> Iterator[str]:
    """A table name unique to the test; dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:10]}"
    yield name
    pg_conn.rollback()
    with pg_conn.cursor() as cur:
        cur.execute(f"DROP TABLE IF EXISTS {name}")
        cur.execute(f"DROP TABLE IF EXISTS {name}_orders")
    pg_conn.commit()


@pytest.fixture
def redis_url() -> str:
    pytest.importorskip("redis", reason="redis-py (eventbus[redis]) not installed")
    if not _reachable("127.0.0.1", 6379):
        pytest.fail("Redis is not reachable on 127.0.0.1:6379", pytrace=False)
    return REDIS_URL
