"""Fixtures for the SQLite adapter tests: a fresh database file per test, helper
processes that are always killed at teardown, and a raw (non-eventbus) writer."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from eventbus import Matcher, SqliteAdapter

PROC = str(Path(__file__).with_name("_proc.py"))


@pytest.fixture
def db_path(tmp_path: Path) -> str:
    return str(tmp_path / "bus.db")


@pytest.fixture
def make_adapter(db_path: str) -> Iterator[Callable[..., SqliteAdapter]]:
    """New adapters on the test's file (short lease); all closed after the test."""
    made: list[SqliteAdapter] = []

    def make(**options: object) -> SqliteAdapter:
        a = SqliteAdapter(db_path, **{"lease": 2.0, **options})  # type: ignore[arg-type]
        made.append(a)
        return a

    yield make
    for a in made:
        a.close()


def raw_publish(path: str, topic: str, body: bytes, headers: str = "{}") -> None:
    """Put a message on the bus with plain sqlite3, as a foreign producer would:
    a log row and a delivery for every group whose patterns match."""
    conn = sqlite3.connect(path, isolation_level=None, timeout=10)
    try:
        conn.execute("BEGIN IMMEDIATE")
        seq = conn.execute(
            "INSERT INTO log (published_at, topic, key, headers, body) VALUES (?, ?, NULL, ?, ?)",
            (time.time(), topic, headers, body),
        ).lastrowid
        for gid, patterns in conn.execute("SELECT id, patterns FROM groups").fetchall():
            if Matcher(json.loads(patterns))(topic):
                conn.execute(
                    "INSERT INTO deliveries (grp, seq, visible_at) VALUES (?, ?, ?)",
                    (gid, seq, time.time()),
                )
        conn.execute("COMMIT")
    finally:
        conn.close()


def wait_for(check: Callable[[], object], timeout: float = 20.0, what: str = "") -> object:
    """Poll ``check`` until truthy, with a deadline (no fixed sleeps for delivery)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}")
        time.sleep(0.02)


class Procs:
    """Helper processes (tests/sqlite/_proc.py); every one is killed at teardown."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[str]] = []

    def start(self, *args: str, ready: bool = True) -> subprocess.Popen[str]:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        p = subprocess.Popen(
            [sys.executable, PROC, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.procs.append(p)
        if ready:
            assert p.stdout is not None
            line = p.stdout.readline().strip()
            if line != "ready":
                p.kill()
                _, err = p.communicate(timeout=10)
                raise AssertionError(f"helper {args} did not start: {line!r}\n{err}")
        return p

    def stop(self, p: subprocess.Popen[str], timeout: float = 20.0) -> tuple[str, str]:
        """SIGTERM (the worker stops gracefully) and collect its output."""
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=timeout)
        return out, err

    def cleanup(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            try:
                p.communicate(timeout=10)
            except (subprocess.TimeoutExpired, ValueError):
                pass


@pytest.fixture
def procs() -> Iterator[Procs]:
    p = Procs()
    yield p
    p.cleanup()


def read_records(path: Path) -> list[tuple[str, int, int]]:
    """Lines ``group n attempt`` written by a consumer helper process."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) == 3:
            out.append((parts[0], int(parts[1]), int(parts[2])))
    return out
