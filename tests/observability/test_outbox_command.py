"""``eventbus outbox [--drain]``: events kept while the broker was down, sent with progress."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pika
import pytest

from .conftest import HERE, _load, run_cli

pytestmark = pytest.mark.rabbitmq

_harness = _load("eventbus_obs_fault_harness", HERE.parent / "resilience" / "fault_harness.py")


@pytest.fixture
def proxy(rabbitmq_url: str) -> Any:
    """A TCP proxy in front of the test RabbitMQ that can cut the line."""
    p = pika.URLParameters(rabbitmq_url)
    proxy = _harness.TcpProxy(p.host, p.port)
    yield proxy
    proxy.close()


def test_outbox_drain_shows_progress(
    tmp_path: Path, proxy: Any, rabbitmq_url: str, exchange: str, raw_channel: Any
) -> None:
    p = pika.URLParameters(rabbitmq_url)
    user, password = p.credentials.username, p.credentials.password
    url = f"amqp://{user}:{password}@127.0.0.1:{proxy.port}/"
    (tmp_path / "eventbus.toml").write_text(
        f'url = "{url}"\n[options]\nexchange = "{exchange}"\nconnect_timeout = 2\n'
        "[publish]\nretry_attempts = 1\nretry_timeout = 1.0\nclose_timeout = 0.5\n"
    )
    raw_channel.exchange_declare(exchange, "topic", durable=True)
    q = raw_channel.queue_declare("", exclusive=True).method.queue
    raw_channel.queue_bind(q, exchange, routing_key="drain.#")
    proxy.cut()
    for i in range(3):
        published = run_cli("publish", "drain.test", str(i), cwd=tmp_path)
        assert published.returncode == 3 and "(outbox)" in published.stdout, published
    status = run_cli("outbox", cwd=tmp_path)
    assert status.returncode == 0 and "3 event(s) wait" in status.stdout, status
    failed = run_cli("outbox", "--drain", "--timeout", "2", cwd=tmp_path)
    assert failed.returncode == 1 and "3 still wait" in failed.stderr, failed
    assert password not in failed.stdout + failed.stderr or password == "guest"
    proxy.restore()
    drained = run_cli("outbox", "--drain", "--timeout", "30", cwd=tmp_path)
    assert drained.returncode == 0, drained
    assert "drained 3 event(s)" in drained.stderr
    bodies = []
    for _ in range(3):
        method, _props, body = raw_channel.basic_get(q, auto_ack=True)
        assert method is not None
        bodies.append(body)
    assert sorted(bodies) == [b"0", b"1", b"2"]  # in publish order too, by the drainer's rule
    assert "0 event(s) wait" in run_cli("outbox", cwd=tmp_path).stdout
