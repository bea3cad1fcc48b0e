"""The CLI in-process (main(argv)): help, exit codes, publish + log, adapters, check, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from eventbus import EventBus, __version__, load_config
from eventbus.cli import build_parser

from .conftest import UNREACHABLE

pytestmark = pytest.mark.sqlite

COMMANDS = ["publish", "worker", "adapters", "check", "log", "demo"]


# -- help, usage and exit codes -------------------------------------------------------------


def test_help_lists_every_command(cli) -> None:
    r = cli("--help")
    assert r.code == 0
    for name in COMMANDS:
        assert name in r.out
    assert "Exit codes" in r.out


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(cli, command: str) -> None:
    r = cli(command, "--help")
    assert r.code == 0
    assert f"usage: eventbus {command}" in r.out
    assert "--config" in r.out  # global options are accepted after the command too


def test_no_command_prints_help_and_exits_2(cli) -> None:
    r = cli()
    assert r.code == 2
    assert "usage: eventbus" in r.err


def test_unknown_command_is_a_usage_error(cli) -> None:
    r = cli("pubish")
    assert r.code == 2
    assert "invalid choice: 'pubish'" in r.err
    assert "Traceback" not in r.err


def test_missing_argument_is_a_usage_error(cli) -> None:
    r = cli("publish")
    assert r.code == 2
    assert "TYPE" in r.err


def test_bad_option_value_is_a_usage_error(cli) -> None:
    r = cli("log", "--limit", "0")
    assert r.code == 2
    assert "must be at least 1" in r.err


def test_version(cli) -> None:
    r = cli("--version")
    assert r.code == 0
    assert r.out.strip() == f"eventbus {__version__}"


def test_parser_is_buildable_for_the_docs() -> None:
    assert build_parser().prog == "eventbus"


# -- publish and log -------------------------------------------------------------------------


def test_publish_then_log(cli, sqlite_config: Path, workdir: Path) -> None:
    r = cli("publish", "order.created", '{"id": 1, "user": "Ana", "total": 42.9}', "--key", "Ana")
    assert r.code == 0, r.err
    assert r.out.startswith("published order.created id=")
    assert "sqlite at sqlite:///bus.db" in r.out
    assert (workdir / "bus.db").exists()
    assert cli("publish", "order.paid", '{"id": 1}').code == 0
    assert cli("publish", "user.registered", '{"user": "Bruno"}').code == 0

    r = cli("log")
    assert r.code == 0, r.err
    lines = r.out.splitlines()
    assert lines[0].split()[:3] == ["SEQ", "PUBLISHED", "(UTC)"]
    assert [line.split()[0] for line in lines[1:]] == ["1", "2", "3"]
    assert "order.created" in lines[1] and "Ana" in lines[1]
    assert '{"id":1,"user":"Ana","total":42.9}' in lines[1]
    assert "user.registered" in lines[3]


def test_log_json_pattern_and_paging(cli, sqlite_config: Path) -> None:
    for i in range(1, 6):
        assert cli("publish", "order.created", json.dumps({"id": i})).code == 0
        assert cli("publish", "user.registered", json.dumps({"id": i})).code == 0

    r = cli("log", "--json", "--pattern", "order.#")
    assert r.code == 0, r.err
    records = [json.loads(line) for line in r.out.splitlines()]
    assert [rec["data"]["id"] for rec in records] == [1, 2, 3, 4, 5]
    assert {rec["topic"] for rec in records} == {"order.created"}
    assert all(rec["attributes"]["type"] == "order.created" for rec in records)
    assert records[0]["published_at"].endswith("Z")

    first = cli("log", "--json", "--limit", "4")
    page = [json.loads(line) for line in first.out.splitlines()]
    assert len(page) == 4
    assert f"more with --after {page[-1]['seq']}" in first.err
    rest = cli("log", "--json", "--after", str(page[-1]["seq"]))
    seqs = [rec["seq"] for rec in page] + [json.loads(x)["seq"] for x in rest.out.splitlines()]
    assert seqs == sorted(seqs) and len(seqs) == 10 and len(set(seqs)) == 10


def test_log_of_an_empty_broker(cli, sqlite_config: Path) -> None:
    assert cli("check").code == 0  # creates the file, publishes only the probe
    r = cli("log", "--pattern", "order.#")
    assert r.code == 0
    assert r.out.strip() == "(no events)"


def test_log_without_a_broker_file_creates_nothing(cli, sqlite_config: Path, workdir: Path) -> None:
    r = cli("log")
    assert r.code == 1
    assert r.err.startswith("eventbus: error: no broker file at bus.db")
    assert not (workdir / "bus.db").exists()


def test_log_on_another_broker_says_it_is_a_sqlite_feature(cli, write) -> None:
    write("eventbus.toml", 'url = "memory://"\n')
    r = cli("log")
    assert r.code == 2
    assert "the event log is a feature of the embedded SQLite broker" in r.err
    assert "'memory'" in r.err
    assert "Traceback" not in r.err


def test_publish_reads_data_from_stdin(cli, sqlite_config: Path, monkeypatch) -> None:
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO('{"id": 7, "user": "Eva", "total": 1.5}'))
    assert cli("publish", "order.created", "-").code == 0
    rec = json.loads(cli("log", "--json").out)
    assert rec["data"] == {"id": 7, "user": "Eva", "total": 1.5}


def test_publish_without_data_sends_null(cli, sqlite_config: Path) -> None:
    assert cli("publish", "heartbeat").code == 0
    assert json.loads(cli("log", "--json").out)["data"] is None


def test_publish_attributes_and_headers(cli, sqlite_config: Path) -> None:
    r = cli(
        "publish",
        "order.created",
        '{"id": 1}',
        "--key",
        "Ana",
        "--subject",
        "orders/1",
        "--source",
        "//shop/cli",
        "--header",
        "correlationid=corr-1",
        "--header",
        "causationid=cause-1",
        "--header",
        "id=order-1-created",
        "--header",
        "tenant=acme",
        "--header",
        "note=a=b, ünïcode",
    )
    assert r.code == 0, r.err
    assert "id=order-1-created" in r.out
    attrs = json.loads(cli("log", "--json").out)["attributes"]
    assert attrs["id"] == "order-1-created"
    assert attrs["source"] == "//shop/cli"
    assert attrs["subject"] == "orders/1"
    assert attrs["partitionkey"] == "Ana"
    assert attrs["correlationid"] == "corr-1"
    assert attrs["causationid"] == "cause-1"
    assert attrs["tenant"] == "acme"
    assert attrs["note"] == "a=b, ünïcode"


def test_source_from_the_config_file(cli, write) -> None:
    write("eventbus.toml", 'url = "sqlite:///bus.db"\nsource = "//shop/from-config"\n')
    assert cli("publish", "x.y").code == 0
    assert json.loads(cli("log", "--json").out)["attributes"]["source"] == "//shop/from-config"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["order.created", "{bad json"], "DATA is not valid JSON"),
        (["order.created", "hello"], "quote a string as JSON"),
        (["order.created", "{}", "--header", "novalue"], "write NAME=VALUE"),
        (["order.created", "{}", "--header", "=x"], "write NAME=VALUE"),
        (["order.created", "{}", "--header", "subject=x"], "use --subject instead"),
        (["order.created", "{}", "--header", "partitionkey=x"], "use --key instead"),
        (["order.created", "{}", "--header", "time=now"], "time is set by eventbus"),
        (["order.created", "{}", "--header", "Bad-Name=x"], "lower-case a-z and 0-9 only"),
        (["order.*", "{}"], "contains a wildcard"),
    ],
)
def test_publish_user_mistakes_exit_2_without_traceback(
    cli, sqlite_config: Path, argv: list[str], message: str
) -> None:
    r = cli("publish", *argv)
    assert r.code == 2
    assert r.err.startswith("eventbus: error: ")
    assert message in r.err
    assert len(r.err.strip().splitlines()) == 1
    assert "Traceback" not in r.err


def test_nothing_is_sent_when_publish_fails(cli, sqlite_config: Path) -> None:
    assert cli("publish", "ok.event", "{}").code == 0
    assert cli("publish", "bad.event", "{}", "--header", "BAD=x").code == 2
    assert [json.loads(x)["topic"] for x in cli("log", "--json").out.splitlines()] == ["ok.event"]


def test_debug_shows_the_traceback(cli, sqlite_config: Path) -> None:
    r = cli("--debug", "publish", "order.*")
    assert r.code == 2
    assert "Traceback" in r.err
    assert r.err.rstrip().splitlines()[-1].startswith("eventbus: error: ")


# -- config selection and config errors --------------------------------------------------------


def test_config_and_profile_options(cli, write, workdir: Path) -> None:
    write(
        "conf/shop.toml",
        """
        url = "sqlite:///main.db"
        [profiles.audit]
        url = "sqlite:///audit.db"
        """,
    )
    assert cli("--config", "conf/shop.toml", "publish", "a.b").code == 0
    assert cli("publish", "a.c", "--config", "conf/shop.toml", "--profile", "audit").code == 0
    assert (workdir / "main.db").exists() and (workdir / "audit.db").exists()
    r = cli("log", "--config", "conf/shop.toml", "--profile", "audit", "--json")
    assert [json.loads(x)["topic"] for x in r.out.splitlines()] == ["a.c"]


def test_environment_selects_the_config(cli, write, workdir: Path, monkeypatch) -> None:
    write("other.toml", 'url = "sqlite:///other.db"\n')
    monkeypatch.setenv("EVENTBUS_CONFIG", "other.toml")
    assert cli("publish", "a.b").code == 0
    assert (workdir / "other.db").exists()
    monkeypatch.setenv("EVENTBUS_URL", "sqlite:///env.db")
    assert cli("publish", "a.b").code == 0
    assert (workdir / "env.db").exists()


def test_cli_options_do_not_leak_into_the_environment(cli, write) -> None:
    import os

    write("x.toml", 'url = "sqlite:///x.db"\n')
    cli("--config", "x.toml", "--profile", "nope", "log")
    assert "EVENTBUS_CONFIG" not in os.environ
    assert "EVENTBUS_PROFILE" not in os.environ


@pytest.mark.parametrize(
    ("argv", "toml", "message"),
    [
        (
            ["--config", "missing.toml", "publish", "a.b"],
            None,
            "missing.toml: config file not found",
        ),
        (["publish", "a.b"], 'ulr = "memory://"', "'ulr' is not a setting; did you mean 'url'?"),
        (["publish", "a.b"], 'broker = "rabbitmqq"', "did you mean 'rabbitmq'?"),
        (["publish", "a.b"], 'url = "nosuch://x"', "no adapter named 'nosuch'"),
        (["publish", "a.b"], 'url = "no scheme here"', "has no scheme"),
        (["--profile", "prod", "check"], 'url = "memory://"', "no such profile"),
        (["check"], 'url = "amqp://u:${RABBIT_PASSWORD}@h/"', "export RABBIT_PASSWORD="),
        (["log"], "[retry]\nmax_attempts = 0", "max_attempts must be at least 1"),
    ],
)
def test_config_errors_exit_2_with_one_line(
    cli, write, argv: list[str], toml: str | None, message: str
) -> None:
    if toml is not None:
        write("eventbus.toml", toml + "\n")
    r = cli(*argv)
    assert r.code == 2, r
    assert r.err.startswith("eventbus: error: ")
    assert message in r.err
    assert len(r.err.strip().splitlines()) == 1
    assert "Traceback" not in r.err


def test_worker_whose_module_meets_a_config_error(cli, write, monkeypatch) -> None:
    import sys

    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setitem(sys.modules, "shop_cfg_error", None)
    del sys.modules["shop_cfg_error"]
    write("eventbus.toml", "[worker]\nprefech = 1\n")
    write("shop_cfg_error.py", "from eventbus import EventBus\nbus = EventBus()\n")
    r = cli("worker", "shop_cfg_error:bus")
    assert r.code == 2
    assert r.err.startswith("eventbus: error: ")
    assert "'worker.prefech' is not a setting; did you mean 'prefetch'?" in r.err
    assert "Traceback" not in r.err


# -- adapters ------------------------------------------------------------------------------------


def test_adapters_lists_the_embedded_ones(cli) -> None:
    r = cli("adapters")
    assert r.code == 0
    assert "memory " in r.out and "sqlite " in r.out
    assert "schemes:      sqlite://" in r.out
    assert "capabilities:" in r.out
    assert "persistence" in r.out


def test_adapters_json(cli) -> None:
    r = cli("adapters", "--json")
    assert r.code == 0
    doc = json.loads(r.out)
    rows = {row["name"]: row for row in doc["adapters"]}
    assert {"memory", "sqlite"} <= rows.keys()
    sqlite = rows["sqlite"]
    assert sqlite["schemes"] == ["sqlite"]
    assert sqlite["sdk_installed"] is True
    assert sqlite["capabilities"]["persistence"] is True
    assert sqlite["capabilities"]["cross_process"] is True
    assert rows["memory"]["capabilities"]["cross_process"] is False
    for row in doc["adapters"]:
        assert set(row) >= {
            "name",
            "version",
            "schemes",
            "sdk",
            "sdk_installed",
            "extra",
            "capabilities",
        }
    assert isinstance(doc["load_errors"], dict)


# -- check -----------------------------------------------------------------------------------


def test_check_on_sqlite(cli, sqlite_config: Path) -> None:
    r = cli("check")
    assert r.code == 0, r.err
    assert f"config:   {sqlite_config}" in r.out
    assert "broker:   sqlite" in r.out
    for step in ("connect:", "declare:", "publish:", "receive:"):
        assert step in r.out
    assert r.out.rstrip().splitlines()[-1].startswith("ok: sqlite at sqlite:///bus.db")


def test_check_twice_leaves_one_probe_group_and_nothing_pending(cli, sqlite_config) -> None:
    assert cli("check").code == 0
    assert cli("check").code == 0
    bus = EventBus(config=load_config())
    try:
        assert bus.adapter.depth("eventbus-check") == 0  # type: ignore[attr-defined]
    finally:
        bus.close()


def test_check_on_memory_without_any_file(cli, write) -> None:
    write("eventbus.toml", 'url = "memory://"\n')
    r = cli("check")
    assert r.code == 0, r.err
    assert "(in this process only)" in r.out


def test_check_with_defaults(cli, workdir: Path) -> None:
    r = cli("check")
    assert r.code == 0, r.err
    assert "config:   none found; built-in defaults" in r.out
    assert "url:      sqlite:///eventbus.db" in r.out


def test_check_redacts_the_password(cli, write) -> None:
    write("eventbus.toml", 'broker = "memory"\nurl = "memory://user:hunter2@x/"\n')
    r = cli("check")
    assert "hunter2" not in r.out + r.err
    assert "memory://user:***@x/" in r.out


def test_check_on_a_corrupt_file_fails_with_one_line(cli, sqlite_config, workdir: Path) -> None:
    (workdir / "bus.db").write_bytes(b"this is not a database\x00" * 200)
    r = cli("check")
    assert r.code in (1, 2)
    assert r.err.startswith("eventbus: error: ")
    assert "bus.db" in r.err
    assert len(r.err.strip().splitlines()) == 1
    assert "Traceback" not in r.err


@pytest.mark.rabbitmq
def test_check_on_an_unreachable_broker_fails_with_one_line(cli, write) -> None:
    write("eventbus.toml", 'url = "amqp://guest:secret@127.0.0.1:1/"\n')
    r = cli("check", "--timeout", "15")
    assert r.code == 1, r
    assert r.err.startswith("eventbus: error: rabbitmq at amqp://guest:***@127.0.0.1:1/")
    assert "secret" not in r.out + r.err
    assert len(r.err.strip().splitlines()) == 1
    assert "Traceback" not in r.err


@pytest.mark.rabbitmq
def test_publish_to_an_unreachable_broker_keeps_the_event_in_the_outbox(
    cli, write, workdir: Path
) -> None:
    write("eventbus.toml", UNREACHABLE)
    r = cli("publish", "order.created", '{"id": 1}')
    assert r.code == 3, r  # kept, not delivered: distinct from 0
    assert r.out.rstrip().endswith("(outbox)")
    assert "kept in the outbox .eventbus/outbox.db, not yet delivered" in r.err
    assert "outbox .eventbus/outbox.db keeps 1 event(s)" in r.err
    assert "Traceback" not in r.err
    assert (workdir / ".eventbus" / "outbox.db").exists()


@pytest.mark.rabbitmq
def test_publish_without_outbox_to_an_unreachable_broker_exits_1(cli, write) -> None:
    write("eventbus.toml", UNREACHABLE + "outbox = false\n")
    r = cli("publish", "order.created", '{"id": 1}')
    assert r.code == 1, r
    assert r.err.rstrip().splitlines()[-1].startswith("eventbus: error: ")
    assert "Traceback" not in r.err


@pytest.mark.rabbitmq
def test_check_on_the_real_rabbitmq(cli, write) -> None:
    import os

    url = os.environ.get("EVENTBUS_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")
    write("eventbus.toml", f'url = "{url}"\n')
    for _ in range(2):  # the second run reuses the one check group
        r = cli("check")
        assert r.code == 0, r.err
        assert "receive:  ok" in r.out
        assert r.out.rstrip().splitlines()[-1].startswith("ok: rabbitmq at amqp://")
