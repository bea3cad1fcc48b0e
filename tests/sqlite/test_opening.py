"""Every SQLite file eventbus keeps (the broker's, the local outbox's, the inbox's) is
opened one way: WAL mode, its set-up retried while another connection writes."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from eventbus import ConfigError
from eventbus.resilience import InboxError, SqliteInbox

from ._proc import USERS, open_as
from .conftest import PROC

pytestmark = pytest.mark.sqlite


def _journal_mode(path: Path) -> str:
    conn = sqlite3.connect(path)
    try:
        return str(conn.execute("PRAGMA journal_mode").fetchone()[0])
    finally:
        conn.close()


@pytest.mark.parametrize("user", USERS)
def test_a_new_file_opens_while_another_connection_writes_to_it(user: str, tmp_path: Path) -> None:
    # Switching a new file to WAL fails at once while another connection holds the
    # write lock: the busy timeout does not apply to it. The opener waits it out.
    path = tmp_path / "new.db"
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    release = threading.Timer(0.3, holder.execute, ("COMMIT",))
    release.start()
    try:
        open_as(user, path)
    finally:
        release.join()
        holder.close()
    assert _journal_mode(path) == "wal"


@pytest.mark.parametrize("user", USERS)
def test_processes_opening_the_same_new_files_at_once_all_succeed_in_wal_mode(
    user: str, tmp_path: Path
) -> None:
    paths = [str(tmp_path / f"f{i}.db") for i in range(20)]  # each a new file, raced for
    procs = [
        subprocess.Popen(
            [sys.executable, PROC, "open", user, *paths],
            text=True,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        for _ in range(4)
    ]
    try:
        for p in procs:
            assert p.stdout is not None and p.stdout.readline() == "ready\n"
        for p in procs:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        results = [p.communicate(timeout=120)[0].split("\n")[:-1] for p in procs]
    finally:
        for p in procs:
            p.kill()
            p.wait()
    assert all(r == ["ok"] * len(paths) for r in results), results
    assert {_journal_mode(Path(p)) for p in paths} == {"wal"}


@pytest.mark.parametrize("user", USERS)
def test_a_directory_is_refused_with_the_path_named(user: str, tmp_path: Path) -> None:
    errors = {"broker": ConfigError, "outbox": sqlite3.Error, "inbox": ConfigError}
    with pytest.raises(errors[user], match="is a directory") as info:
        open_as(user, tmp_path)
    assert str(tmp_path) in str(info.value)


def test_an_inbox_on_a_foreign_file_says_what_the_file_is(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_bytes(b"these are my notes, not a database\n" * 200)
    with pytest.raises(InboxError, match="not an SQLite database or is corrupt") as info:
        SqliteInbox(path)
    assert str(path) in str(info.value)
