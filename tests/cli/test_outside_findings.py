"""What outside testing found in the CLI (#17): bad URLs, publish's exit codes, SDK log
noise in the worker, health lines, a bounded stop."""

from __future__ import annotations

import signal
import sqlite3
import time
from pathlib import Path

import pytest

from eventbus import EventBus, load_config

from .conftest import UNREACHABLE

SLOW_WORKER = """
import time
from eventbus import EventBus
bus = EventBus()

@bus.subscribe("job.*", group="slow")
def handle(event):
    print("handling", event.data, flush=True)
    time.sleep(120)
"""


# -- 5: a bad URL is one line and exit 2, in every command -----------------------------------

BAD_URLS = [
    pytest.param("amqp://u:p@host:notaport/", marks=pytest.mark.rabbitmq, id="amqp-port"),
    pytest.param("sqlite:///x.db?bogus=1", marks=pytest.mark.sqlite, id="sqlite-option"),
    pytest.param("kafka://", marks=pytest.mark.kafka, id="kafka-empty"),
]


@pytest.mark.parametrize("url", BAD_URLS)
@pytest.mark.parametrize("command", [("check", "--timeout", "3"), ("publish", "x.y")])
def test_a_bad_url_is_one_line_and_exit_2(
    cli, url: str, command: tuple[str, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EVENTBUS_URL", url)
    r = cli(*command)
    assert r.code == 2, r
    assert "Traceback" not in r.err
    errors = [ln for ln in r.err.splitlines() if ln.startswith("eventbus: error: ")]
    assert len(errors) == 1, r.err
    assert "EVENTBUS_URL" in errors[0]  # where the setting came from


@pytest.mark.sqlite
def test_check_on_a_bad_url_names_the_file_and_key(cli, write) -> None:
    path = write("eventbus.toml", 'url = "sqlite:///x.db?bogus=1"\n')
    r = cli("check")
    assert r.code == 2 and "Traceback" not in r.err
    assert "'bogus'" in r.err and f"key 'url' of {path}" in r.err


@pytest.mark.rabbitmq
def test_debug_still_shows_the_traceback_of_a_bad_url(cli, write) -> None:
    write("eventbus.toml", 'url = "amqp://u:p@host:notaport/"\n')
    r = cli("publish", "x.y", "--debug")
    assert r.code == 2 and "Traceback" in r.err


# -- 6: publish tells "delivered" from "kept in the outbox"; refusals are not kept ----------


def _outbox_rows(workdir: Path) -> int:
    path = workdir / ".eventbus" / "outbox.db"
    if not path.exists():
        return 0
    with sqlite3.connect(path) as conn:
        return int(conn.execute("SELECT count(*) FROM outbox").fetchone()[0])


@pytest.mark.rabbitmq
def test_no_outbox_flag_fails_instead_of_keeping(cli, write, workdir: Path) -> None:
    write("eventbus.toml", UNREACHABLE)
    r = cli("publish", "order.created", "{}", "--no-outbox")
    assert r.code == 1, r
    assert r.err.rstrip().splitlines()[-1].startswith("eventbus: error: ")
    assert _outbox_rows(workdir) == 0


@pytest.mark.rabbitmq
@pytest.mark.parametrize("what", ["password", "vhost"])
def test_a_refused_login_fails_and_is_not_kept(
    cli, write, workdir: Path, rabbitmq_url: str, what: str
) -> None:
    import pika

    p = pika.URLParameters(rabbitmq_url)
    password = "wrong" if what == "password" else p.credentials.password
    vhost = "no-such-vhost" if what == "vhost" else ""
    write(
        "eventbus.toml",
        f'url = "amqp://{p.credentials.username}:{password}@{p.host}:'
        f'{p.port}/{vhost}"\n[publish]\nretry_attempts = 3\n',
    )
    started = time.monotonic()
    r = cli("publish", "order.created", "{}")
    assert r.code == 1, r
    assert "refused the login" in r.err and "Traceback" not in r.err
    assert "outbox" not in r.out + r.err
    assert _outbox_rows(workdir) == 0
    assert time.monotonic() - started < 30  # no retry loop on a refusal


# -- 8, 9: the worker's logs, health and stop -------------------------------------------------


def _start_and_stop(spawn, watch, *argv: str) -> str:
    """Run ``eventbus worker *argv`` until ready, SIGINT it; its output (exit 0 asserted)."""
    proc = spawn("worker", *argv)
    out = watch(proc)
    out.wait_for(lambda ls: any("worker: ready:" in ln for ln in ls), timeout=60)
    proc.send_signal(signal.SIGINT)
    code = proc.wait(60)
    text = out.text()
    assert code == 0, "\n".join(ln for ln in text.splitlines() if " pika." not in ln)
    assert "worker: stopped" in text
    return text


@pytest.mark.rabbitmq
def test_the_worker_keeps_pika_quiet_at_the_default_level(
    spawn, watch, write, rabbitmq_url: str
) -> None:
    write("eventbus.toml", f'url = "{rabbitmq_url}"\n')
    write("app.py", SLOW_WORKER.replace("time.sleep(120)", "pass"))
    text = _start_and_stop(spawn, watch, "app")
    assert " pika." not in text, text  # e.g. "INFO pika.adapters.utils.connection_workflow"
    assert " pika." in _start_and_stop(spawn, watch, "app", "--log-level", "DEBUG")  # asked for


@pytest.mark.sqlite
def test_a_second_sigint_stops_the_worker_at_once(spawn, watch, write, sqlite_config) -> None:
    write("app.py", SLOW_WORKER)
    proc = spawn("worker", "app")
    out = watch(proc)
    out.wait_for(lambda ls: any("worker: ready:" in ln for ln in ls))
    with EventBus(config=load_config(sqlite_config)) as bus:
        bus.publish("job.run", 1)
    out.wait_for(lambda ls: any(ln.startswith("handling 1") for ln in ls))
    proc.send_signal(signal.SIGINT)
    out.wait_for(lambda ls: any("SIGINT: stopping" in ln for ln in ls))
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    assert proc.wait(20) == 128 + signal.SIGINT
    assert time.monotonic() - started < 10
    assert "SIGINT again: exiting now" in out.text()


@pytest.mark.sqlite
def test_check_says_whether_the_broker_is_reachable(cli, sqlite_config) -> None:
    r = cli("check")
    assert r.code == 0 and "reachable: yes" in r.out


@pytest.mark.rabbitmq
def test_check_says_an_unreachable_broker_is_not_reachable(cli, write) -> None:
    write("eventbus.toml", 'url = "amqp://guest:guest@127.0.0.1:1/"\n')
    r = cli("check", "--timeout", "3")
    assert r.code == 1 and "reachable: no" in r.out


SDK_LOGS = """
import logging
from eventbus import EventBus

log = logging.getLogger("pika.adapters.utils.io_services_utils")  # the names pika logs under
log.info("Pika version 1.4.4 connecting to ('127.0.0.1', 5672)")
try:
    raise ConnectionResetError(104, "Connection reset by peer")
except OSError as exc:
    log.exception("_produce() failed, aborting connection: error=%r; Caller's stack:\\n%s",
                  exc, "  File 'x.py', line 1, in produce")
bus = EventBus()

@bus.subscribe("x.*", group="g")
def handle(event):
    pass
"""


@pytest.mark.sqlite
def test_sdk_tracebacks_only_with_debug(spawn, watch, write, sqlite_config) -> None:
    write("app.py", SDK_LOGS)
    text = _start_and_stop(spawn, watch, "app")
    assert "_produce() failed, aborting connection" in text  # the error itself shows
    assert "Traceback" not in text and "Caller's stack" in text and "File 'x.py'" not in text
    assert "Pika version" not in text  # INFO of an SDK: not at the default level
    text = _start_and_stop(spawn, watch, "app", "--debug")
    assert "Traceback" in text and "File 'x.py'" in text and "Pika version" in text
