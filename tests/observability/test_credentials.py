"""Credentials never appear in logs, reprs or error messages.

Each case builds a bus on a URL or connection string holding a password, makes
it fail (unreachable broker, refused login), and looks for the password in
everything a user or a log collector sees: every log record at DEBUG, the
reprs of the bus, its adapter and config, the error and its message, the
AsyncAPI document, and the CLI's output for ``check`` and ``publish``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from eventbus import BusConfig, EventBus, EventBusError
from eventbus.observability import JsonFormatter, TextFormatter, asyncapi_document, redact_text

from .conftest import free_port, run_cli

SECRET = "S3cr3t-Pa55w0rd"
FAST = {"retry_attempts": 1, "retry_timeout": 1.0, "outbox": False}


def _cases() -> list[Any]:
    port = free_port()  # nothing listens there
    return [
        pytest.param(
            "rabbitmq",
            f"amqp://eventbus:{SECRET}@127.0.0.1:{port}/shop",
            {},
            marks=pytest.mark.rabbitmq,
            id="rabbitmq-unreachable",
        ),
        pytest.param(
            "kafka",
            f"kafka://127.0.0.1:{port}",
            {
                "security.protocol": "SASL_PLAINTEXT",
                "sasl.mechanism": "PLAIN",
                "sasl.username": "eventbus",
                "sasl.password": SECRET,
                "publish_timeout": 2.0,
            },
            marks=pytest.mark.kafka,
            id="kafka-sasl-unreachable",
        ),
        pytest.param(
            "azure_servicebus",
            None,
            {
                "connection_string": f"Endpoint=sb://127.0.0.1:{port}/;SharedAccessKeyName=app;"
                f"SharedAccessKey={SECRET};UseDevelopmentEmulator=true"
            },
            marks=pytest.mark.azure_servicebus,
            id="servicebus-unreachable",
        ),
    ]


def _everything(caplog: pytest.LogCaptureFixture, *texts: str) -> str:
    lines = [r.getMessage() for r in caplog.records]
    lines += [TextFormatter().format(r) for r in caplog.records]
    lines += [JsonFormatter().format(r) for r in caplog.records]
    return "\n".join([*lines, *texts])


def _chain(exc: BaseException) -> list[str]:
    """Our error and what we say about it (the SDK's own exception is only ``__cause__``)."""
    return [str(exc), repr(exc)]


@pytest.mark.parametrize("broker, url, options", _cases())
def test_no_password_in_logs_reprs_or_errors(
    broker: str,
    url: str | None,
    options: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    caplog.set_level(logging.DEBUG)
    config = BusConfig(broker=broker, url=url, options=options, publish=FAST)
    errors: list[str] = []
    bus = EventBus(config=config)
    try:
        bus.subscribe("order.*", lambda e: None, group="billing")
        with pytest.raises(EventBusError) as info:
            bus.publish("order.created", {"id": 1})
        errors += _chain(info.value)
        doc = json.dumps(asyncapi_document(bus))
        seen = _everything(
            caplog, repr(bus), repr(bus.adapter), repr(bus.config), str(bus.config), doc, *errors
        )
    finally:
        try:
            bus.close()
        except EventBusError as exc:
            errors += _chain(exc)
    assert SECRET not in seen
    assert SECRET not in "\n".join(errors)
    assert "***" in repr(bus.config)


@pytest.mark.rabbitmq
def test_a_refused_login_does_not_echo_the_password(
    rabbitmq_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    import pika

    p = pika.URLParameters(rabbitmq_url)
    url = f"amqp://{p.credentials.username}:{SECRET}@{p.host}:{p.port}/"
    caplog.set_level(logging.DEBUG)
    bus = EventBus(config=BusConfig(url=url, publish=FAST))
    try:
        with pytest.raises(EventBusError) as info:
            bus.publish("order.created", {"id": 1})
    finally:
        bus.close()
    assert "ACCESS_REFUSED" in str(info.value) or "login" in str(info.value).lower()
    assert SECRET not in _everything(caplog, *_chain(info.value), repr(bus.adapter))


@pytest.mark.rabbitmq
def test_the_cli_masks_the_password(tmp_path: Path) -> None:
    url = f"amqp://eventbus:{SECRET}@127.0.0.1:{free_port()}/"
    check = run_cli("check", "--timeout", "3", cwd=tmp_path, EVENTBUS_URL=url)
    assert check.returncode == 1
    assert "eventbus:***@127.0.0.1" in check.stdout
    publish = run_cli("publish", "order.created", '{"id": 1}', cwd=tmp_path, EVENTBUS_URL=url)
    (tmp_path / "eventbus.toml").write_text(
        f'url = "{url}"\n[publish]\nretry_attempts = 1\noutbox = false\n'
    )
    again = run_cli("publish", "order.created", "{}", "--debug", cwd=tmp_path)
    for result in (check, publish, again):
        assert SECRET not in result.stdout + result.stderr, result


@pytest.mark.memory
@pytest.mark.parametrize(
    "text, hidden",
    [
        ("amqp://user:hunter2@host:5672/vhost", "hunter2"),
        ("connecting to 'amqps://u:p%40ss@h/' failed", "p%40ss"),
        ("Endpoint=sb://x/;SharedAccessKeyName=n;SharedAccessKey=abc/def+=", "abc/def+="),
        ("sasl.password=hunter2 security.protocol=SASL_SSL", "hunter2"),
        ('{"password": "hunter2", "user": "u"}', "hunter2"),
        ("redis://:hunter2@127.0.0.1:6379/0", "hunter2"),
        ("aws_secret_access_key=AbC123 region=eu", "AbC123"),
        ("postgresql://app:hunter2@db/shop?sslmode=require", "hunter2"),
    ],
)
def test_redact_text(text: str, hidden: str) -> None:
    assert hidden not in redact_text(text)
    assert "***" in redact_text(text)


@pytest.mark.memory
@pytest.mark.parametrize(
    "text, shown",
    [
        ("amqp://u:p@ss@host/v", "amqp://u:***@host/v"),
        (
            "failed: 'amqp://eventbus:S3cr3t-@-Zq9@127.0.0.1:5672/' (refused)",
            "failed: 'amqp://eventbus:***@127.0.0.1:5672/' (refused)",
        ),
        (
            "a amqp://u:x@h1/ and redis://:y@z@h2:6379/0 b",
            "a amqp://u:***@h1/ and redis://:***@h2:6379/0 b",
        ),
    ],
)
def test_redact_text_masks_to_the_last_at_of_the_authority(text: str, shown: str) -> None:
    assert redact_text(text) == shown


@pytest.mark.memory
def test_redact_text_keeps_ordinary_text() -> None:
    text = "group billing: order.created key=order-7 partitionkey=k1 http://host/path"
    assert redact_text(text) == text
