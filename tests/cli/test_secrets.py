"""A secret put in every place a secret can go never comes out: not in any command's
output, not in any file a command writes, not in a repr.

The secret has an ``@`` in it (``S3cr3t-@-Zq9``): masking a URL's password up to the
*first* ``@`` would leave ``-Zq9`` showing, so both halves are looked for. It reaches
the config through ``${EB_SECRET}``, so the config file itself holds no secret and
every file under the working directory can be searched.
"""

from __future__ import annotations

import signal
import socket
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

from eventbus import create_adapter, load_config

SECRET = "S3cr3t-@-Zq9"
PIECES = ("S3cr3t", "Zq9")  # either half betrays it

APP = """
from eventbus import EventBus
bus = EventBus()

@bus.subscribe("order.*", group="billing")
def invoice(event):
    print("invoiced", event.data, flush=True)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def assert_clean(texts: Iterable[str], root: Path | None = None) -> None:
    """No piece of SECRET in ``texts`` nor in any file under ``root``."""
    for text in texts:
        for piece in PIECES:
            assert piece not in text, f"{piece!r} shows in:\n{text}"
    if root is not None:
        for path in root.rglob("*"):
            if path.is_file():
                data = path.read_bytes()
                for piece in PIECES:
                    assert piece.encode() not in data, f"{piece!r} is stored in {path}"


def _configs(port: int) -> dict[str, str]:
    """eventbus.toml text per broker, the secret in each place it can go."""
    fast = "[publish]\nretry_attempts = 1\nretry_timeout = 1.0\nclose_timeout = 0.5\n"
    return {
        "rabbitmq": f'url = "amqp://eventbus:${{EB_SECRET}}@127.0.0.1:{port}/shop"\n'
        "[options]\nconnect_timeout = 2.0\n" + fast,
        "kafka": f'url = "kafka://127.0.0.1:{port}"\n'
        '[options]\npublish_timeout = 2.0\n"sasl.password" = "${EB_SECRET}"\n'
        '[options.client]\n"security.protocol" = "SASL_PLAINTEXT"\n'
        '"sasl.mechanism" = "PLAIN"\n"sasl.username" = "eventbus"\n'
        '"sasl.oauthbearer.client.secret" = "${EB_SECRET}"\n' + fast,
        "azure_servicebus": 'broker = "azure_servicebus"\nurl = ""\n[options]\n'
        f'connection_string = "Endpoint=sb://127.0.0.1:{port}/;'
        "SharedAccessKeyName=app;SharedAccessKey=${EB_SECRET};"
        'UseDevelopmentEmulator=true"\n' + fast,
    }


@pytest.fixture
def secret_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EB_SECRET", SECRET)


def _run_all(cli: Callable[..., Any], spawn: Any, watch: Any, write: Any) -> list[str]:
    """Every command once (on an unreachable broker); what each printed."""
    write("app.py", APP)
    seen: list[str] = []
    for argv in (
        ("adapters",),
        ("adapters", "--json"),
        ("check", "--timeout", "3"),
        ("check", "--timeout", "3", "--debug"),
        ("publish", "order.created", '{"id": 1}'),
        ("publish", "order.created", '{"id": 2}', "--debug"),
        ("publish", "order.created", '{"id": 3}', "--no-outbox", "--debug"),
        ("outbox",),
        ("outbox", "--drain", "--timeout", "1"),
        ("dlq", "list", "billing"),
        ("dlq", "list"),
        ("dlq", "show", "billing", "#1", "--debug"),
        ("dlq", "replay", "billing", "--yes"),
        ("dlq", "purge", "billing", "--yes"),
        ("log",),
        ("asyncapi", "app"),
        ("asyncapi", "app", "--output", "asyncapi.json"),
    ):
        r = cli(*argv)
        seen += [f"$ eventbus {' '.join(argv)} -> {r.code}", r.out, r.err]
    for argv in (
        ("tail", "#", "--limit", "1"),
        ("worker", "app"),
        ("worker", "app", "--debug"),
        ("worker", "app", "--log-level", "DEBUG", "--log-format", "json"),
    ):
        proc = spawn(*argv)
        out = watch(proc)
        try:  # a few seconds of trying to reach the broker, then stop
            out.wait_for(lambda ls: len(ls) >= 3, timeout=6)
        except AssertionError:
            pass
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            proc.wait(60)
        seen += [f"$ eventbus {' '.join(argv)} -> {proc.returncode}", out.text()]
    return seen


@pytest.mark.rabbitmq
def test_every_command_on_rabbitmq(cli, spawn, watch, write, workdir: Path, secret_env) -> None:
    write("eventbus.toml", _configs(free_port())["rabbitmq"])
    seen = _run_all(cli, spawn, watch, write)
    assert (workdir / ".eventbus" / "outbox.db").exists()  # the outbox was written: searched
    assert "eventbus:***@127.0.0.1" in "\n".join(seen)  # the commands did show the URL
    assert_clean([*seen, repr(load_config()), str(load_config())], workdir)


@pytest.mark.parametrize(
    "broker",
    [
        pytest.param("kafka", marks=pytest.mark.kafka),
        pytest.param("azure_servicebus", marks=pytest.mark.azure_servicebus),
    ],
)
def test_check_and_publish_on(broker: str, cli, write, workdir: Path, secret_env) -> None:
    write("eventbus.toml", _configs(free_port())[broker])
    seen: list[str] = []
    for argv in (
        ("check", "--timeout", "3", "--debug"),
        ("publish", "x.y", "{}", "--debug"),
        ("outbox",),
    ):
        r = cli(*argv)
        seen += [r.out, r.err]
    assert_clean([*seen, repr(load_config())], workdir)


@pytest.mark.parametrize(
    "broker",
    [
        pytest.param("rabbitmq", marks=pytest.mark.rabbitmq),
        pytest.param("kafka", marks=pytest.mark.kafka),
        pytest.param("azure_servicebus", marks=pytest.mark.azure_servicebus),
    ],
)
def test_reprs_of_the_config_and_the_adapter_settings(broker: str, write, secret_env) -> None:
    write("eventbus.toml", _configs(free_port())[broker])
    cfg = load_config()
    assert_clean([repr(cfg), str(cfg)])
    assert "***" in repr(cfg)
    adapter = create_adapter(cfg.broker, cfg.url, cfg.options)  # connects lazily
    try:
        shown = repr(adapter.settings)
    finally:
        adapter.close()
    assert_clean([shown])  # masked by eventbus.adapter.Settings.__repr__


@pytest.mark.sqlite
def test_tracebacks_shown_are_masked(cli, write, sqlite_config, secret_env) -> None:
    """The user's own traceback (shown without --debug) and --debug tracebacks."""
    write(
        "boom.py",
        'import os\nraise RuntimeError(f"cannot reach amqp://eventbus:'
        "{os.environ['EB_SECRET']}@127.0.0.1:1/\")\n",
    )
    seen = []
    for argv in (("asyncapi", "boom"), ("worker", "boom"), ("asyncapi", "boom", "--debug")):
        r = cli(*argv)
        assert r.code == 1 and "Traceback" in r.err, r
        seen += [r.out, r.err]
    assert "eventbus:***@127.0.0.1" in "\n".join(seen)
    assert_clean(seen)
