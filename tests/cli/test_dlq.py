"""``eventbus dlq list | show | replay | purge`` on the SQLite broker."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from eventbus import Event, SqliteAdapter, encode
from eventbus.testing import eventually

pytestmark = pytest.mark.sqlite

GROUP = "billing"


def _dead_letter(db: Path, n: int, reason: str = "RuntimeError: card declined") -> list[str]:
    """Publish ``n`` events to GROUP and dead-letter them through a real consumer."""
    a = SqliteAdapter(db)
    try:
        c = a.consumer(GROUP, ["order.*"])
        events = [Event(type="order.paid", data={"i": i}, source="/t") for i in range(n)]
        a.publish([encode(e) for e in events])
        left = n
        while left:
            got = eventually(lambda: c.receive(left, 0.5), what="the events")
            for d in got:
                c.dead_letter(d, reason)
            left -= len(got)
        c.close()
    finally:
        a.close()
    return [e.id for e in events]


class _Terminal(io.StringIO):
    """A stdin that says it is a terminal, with the user's answer in it."""

    def isatty(self) -> bool:
        return True


@pytest.fixture
def db(sqlite_config: Path, workdir: Path) -> Path:
    return workdir / "bus.db"


def test_list_text_and_json(cli, db: Path) -> None:
    ids = _dead_letter(db, 3)
    r = cli("dlq", "list", GROUP)
    assert r.code == 0, r.err
    lines = r.out.splitlines()
    assert lines[0].split() == ["ID", "#", "TYPE", "ATTEMPT", "REASON"]
    assert [ln.split()[0] for ln in lines[1:]] == ids
    assert [ln.split()[1] for ln in lines[1:]] == ["#1", "#2", "#3"]
    assert "card declined" in lines[1] and "order.paid" in lines[1]
    r = cli("dlq", "list", GROUP, "--json", "--limit", "2")
    records = [json.loads(ln) for ln in r.out.splitlines()]
    assert [x["id"] for x in records] == ids[:2]
    assert records[0]["data"] == {"i": 0} and records[0]["attempt"] == 1
    assert records[0]["reason"] == "RuntimeError: card declined"
    assert "first 2" in r.err


def test_list_of_a_group_without_dead_letters(cli, db: Path) -> None:
    _dead_letter(db, 0)  # declares the group, dead-letters nothing
    r = cli("dlq", "list", GROUP)
    assert r.code == 0 and "no dead letters" in r.out


def test_an_unknown_group_is_an_error_naming_the_groups(cli, db: Path) -> None:
    _dead_letter(db, 1)
    for argv in (
        ("list", "nobody"),
        ("show", "nobody", "#1"),
        ("replay", "nobody", "-y"),
        ("purge", "nobody", "-y"),
    ):
        r = cli("dlq", *argv)
        assert r.code == 1, (argv, r)
        assert "no group 'nobody'" in r.err and "groups: billing" in r.err, r.err


def test_list_without_a_group_lists_the_groups_with_dead_letters(cli, db: Path) -> None:
    _dead_letter(db, 2)
    a = SqliteAdapter(db)
    try:
        a.consumer("quiet", ["other.*"]).close()  # a group without dead letters
    finally:
        a.close()
    r = cli("dlq", "list")
    assert r.code == 0, r.err
    assert [ln.split() for ln in r.out.splitlines()] == [["GROUP", "DEAD", "LETTERS"], [GROUP, "2"]]
    r = cli("dlq", "list", "--json")
    assert [json.loads(ln) for ln in r.out.splitlines()] == [{"group": GROUP, "dead_letters": 2}]


def test_show_by_position(cli, db: Path) -> None:
    ids = _dead_letter(db, 3)
    for argv in (("#2",), ("--index", "2")):
        r = cli("dlq", "show", GROUP, *argv)
        assert r.code == 0, r.err
        assert json.loads(r.out)["id"] == ids[1]
    r = cli("dlq", "show", GROUP, "#4")
    assert r.code == 1 and "no dead letter #4" in r.err and "(3 there)" in r.err
    for bad in (("#x",), ("#0",), (), (ids[0], "--index", "1")):
        r = cli("dlq", "show", GROUP, *bad)
        assert r.code == 2 and "Traceback" not in r.err, (bad, r)


def test_show_one_and_a_missing_one(cli, db: Path) -> None:
    ids = _dead_letter(db, 2)
    r = cli("dlq", "show", GROUP, ids[1])
    assert r.code == 0, r.err
    record = json.loads(r.out)
    assert record["id"] == ids[1] and record["data"] == {"i": 1}
    assert record["attributes"]["type"] == "order.paid"
    r = cli("dlq", "show", GROUP, "no-such-id")
    assert r.code == 1 and "no dead letter with id 'no-such-id'" in r.err
    assert "Traceback" not in r.err


def test_replay_with_yes_and_limit_puts_them_back_with_attempt_1(cli, db: Path) -> None:
    ids = _dead_letter(db, 5)
    r = cli("dlq", "replay", GROUP, "--limit", "2", "--yes")
    assert r.code == 0, r.err
    assert "replayed 2 dead letter(s)" in r.err
    left = [json.loads(ln) for ln in cli("dlq", "list", GROUP, "--json").out.splitlines()]
    assert [x["id"] for x in left] == ids[2:]
    a = SqliteAdapter(db)
    try:
        c = a.consumer(GROUP, ["order.*"])
        got = eventually(lambda: c.receive(10, 0.5), what="the replayed events")
        assert [(d.message.headers["id"], d.attempt) for d in got] == [(i, 1) for i in ids[:2]]
        c.ack(got)
        c.close()
    finally:
        a.close()
    r = cli("dlq", "replay", GROUP, "-y")
    assert r.code == 0 and "replayed 3" in r.err
    r = cli("dlq", "replay", GROUP, "-y")
    assert r.code == 0 and "nothing to replay" in r.out


def test_purge_asks_on_a_terminal(cli, db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _dead_letter(db, 2)
    monkeypatch.setattr("sys.stdin", _Terminal("n\n"))
    r = cli("dlq", "purge", GROUP)
    assert r.code == 1 and "[y/N]" in r.err and "nothing deleted" in r.err
    assert len(cli("dlq", "list", GROUP, "--json").out.splitlines()) == 2
    monkeypatch.setattr("sys.stdin", _Terminal("y\n"))
    r = cli("dlq", "purge", GROUP)
    assert r.code == 0 and "purged 2 dead letter(s)" in r.out
    assert "no dead letters" in cli("dlq", "list", GROUP).out


def test_without_a_terminal_purge_and_replay_need_yes(run_cli, db: Path) -> None:
    _dead_letter(db, 1)
    for action in ("purge", "replay"):
        r = run_cli("dlq", action, GROUP, input="y\n")  # stdin is a pipe, not a terminal
        assert r.code == 2, r.err
        assert "refusing without --yes" in r.err and "Traceback" not in r.err
    r = run_cli("dlq", "purge", GROUP, "--yes")
    assert r.code == 0 and "purged 1" in r.out


def test_usage_errors(cli, db: Path, write) -> None:
    assert cli("dlq", "replay", GROUP, "--limit", "0", "--yes").code == 2
    write("mem.toml", 'url = "memory://"\n')
    r = cli("--config", "mem.toml", "dlq", "list", GROUP)
    assert r.code == 2 and "inside one process" in r.err
