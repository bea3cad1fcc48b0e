"""The file under the embedded SQLite broker: schema, connections, transactions, errors.

:class:`SqliteStore` opens the database (with :func:`eventbus._sqlite_open.connect`,
as the outbox and the inbox do, then creating or checking the schema), hands
out write transactions and reads on one shared connection behind a lock, opens
further connections for consumers, and turns
:mod:`sqlite3` errors into eventbus errors. A process forked with an open store
re-opens its connection. :class:`~eventbus.SqliteAdapter` builds on it;
the tables are described in that module's docstring.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from ..._envelope import Message
from ..._errors import (
    BrokerError,
    BrokerUnavailable,
    ClosedError,
    ConfigError,
    EventBusError,
    PublishError,
)
from ..._sqlite_open import connect, describe, error_kind

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS log (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, published_at REAL NOT NULL,
    topic TEXT NOT NULL, key TEXT, headers TEXT NOT NULL, body BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS groups (
    id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, patterns TEXT NOT NULL,
    declared_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS deliveries (
    id INTEGER PRIMARY KEY, grp INTEGER NOT NULL, seq INTEGER NOT NULL, key TEXT,
    visible_at REAL NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, owner TEXT,
    blocked INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS deliveries_ready ON deliveries (grp, blocked);
CREATE INDEX IF NOT EXISTS deliveries_key ON deliveries (grp, key) WHERE key IS NOT NULL;
CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY, grp INTEGER NOT NULL, seq INTEGER NOT NULL,
    attempt INTEGER NOT NULL, reason TEXT NOT NULL, dead_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS dead_letters_grp ON dead_letters (grp);
INSERT OR IGNORE INTO meta VALUES ('schema_version', 1), ('groups_version', 0);
"""

# A delivery with a key is ``blocked`` while an older one of that key is in its
# group; settling a key's oldest unblocks the next. So a member may take exactly
# the unblocked, visible deliveries, in id order, with no per-row subquery.
INSERT_KEYED = (
    "INSERT INTO deliveries (grp, seq, key, visible_at, blocked) VALUES "
    "(?1, ?2, ?3, ?4, EXISTS (SELECT 1 FROM deliveries WHERE grp = ?1 AND key = ?3))"
)
UNBLOCK = (
    "UPDATE deliveries SET blocked = 0 WHERE blocked = 1 AND id = "
    "(SELECT min(id) FROM deliveries WHERE grp = ? AND key = ?)"
)
UNBLOCK_ALL = (  # every key's oldest delivery in a group, after a bulk insert
    "UPDATE deliveries SET blocked = 0 WHERE grp = ?1 AND blocked = 1 AND (key IS NULL OR id IN "
    "(SELECT min(id) FROM deliveries WHERE grp = ?1 AND key IS NOT NULL GROUP BY key))"
)


class Notifier:
    """Wakes this process's consumers of one database file when something changes."""

    def __init__(self) -> None:
        self.cond = threading.Condition(threading.Lock())
        self.version = 0

    def notify(self) -> None:
        with self.cond:
            self.version += 1
            self.cond.notify_all()


_notifiers: weakref.WeakValueDictionary[str, Notifier] = weakref.WeakValueDictionary()
_notifiers_lock = threading.Lock()
_abandoned: list[sqlite3.Connection] = []  # inherited over fork: never touched, never closed


def _notifier_for(path: str) -> Notifier:
    with _notifiers_lock:
        n = _notifiers.get(path)
        if n is None:
            n = _notifiers[path] = Notifier()
        return n


class SqliteStore:
    """One SQLite broker file: its shared connection, schema and error mapping. Thread-safe."""

    def __init__(self, path: str | os.PathLike[str], busy_timeout: float, synchronous: str) -> None:
        self.path = os.path.abspath(os.fspath(path))
        self.busy_timeout = float(busy_timeout)
        self.synchronous = synchronous.lower()
        self._lock = threading.RLock()
        self._closed = False
        self._notifier = _notifier_for(self.path)
        self._pid = os.getpid()
        self._conn = self._open(schema=True)

    def _open(self, schema: bool = False) -> sqlite3.Connection:
        try:
            conn = connect(
                self.path,
                what="sqlite broker",
                busy_timeout=self.busy_timeout,
                synchronous=self.synchronous,
            )
        except sqlite3.Error as exc:
            raise self._error(exc, "open") from exc
        if schema:
            try:
                self._create_schema(conn)
            except BaseException as exc:
                conn.close()
                if isinstance(exc, sqlite3.Error):
                    raise self._error(exc, "open") from exc
                raise
        return conn

    def _create_schema(self, conn: sqlite3.Connection) -> None:
        tables = {
            name
            for (name,) in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        }
        row = None
        if "meta" in tables:
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if tables and (row is None or not {"log", "groups", "deliveries"} <= tables):
            shown = ", ".join(sorted(tables)[:5])
            raise ConfigError(
                f"sqlite broker {self.path} is another application's database (tables: "
                f"{shown}); point the url at a new file, e.g. sqlite:///eventbus.db"
            )
        if row is not None:
            if isinstance(row[0], int) and row[0] > SCHEMA_VERSION:
                raise ConfigError(
                    f"sqlite broker {self.path} has schema version {row[0]}, written by a newer "
                    f"eventbus (this one knows {SCHEMA_VERSION}); upgrade eventbus"
                )
            if row[0] == SCHEMA_VERSION:
                return
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _connection(self) -> sqlite3.Connection:
        """The shared connection, re-opened in a forked child; call with the lock held."""
        if self._closed:
            raise ClosedError(f"sqlite adapter {self.path} is closed")
        if os.getpid() != self._pid:
            _abandoned.append(self._conn)
            self._pid = os.getpid()
            self._conn = self._open()
        return self._conn

    def _error(self, exc: sqlite3.Error, action: str) -> EventBusError:
        message = describe(
            exc,
            what="sqlite broker",
            path=self.path,
            action=action,
            busy_timeout=self.busy_timeout,
            busy_fix="raise the busy_timeout option or find that process",
        )
        kind = error_kind(exc)
        if kind == "locked":
            return BrokerUnavailable(message)
        if kind == "access":
            return ConfigError(message)
        if kind == "corrupt" or action != "publish":
            return BrokerError(message)
        return PublishError(message)

    @contextmanager
    def _write(self, action: str) -> Iterator[sqlite3.Connection]:
        """A write transaction on the shared connection; errors wrapped."""
        with self._lock, self._transaction(self._connection(), action) as conn:
            yield conn

    @contextmanager
    def _transaction(self, conn: sqlite3.Connection, action: str) -> Iterator[sqlite3.Connection]:
        """A write transaction on ``conn`` (this store's or a consumer's); errors wrapped."""
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise self._error(exc, action) from exc

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        with self._lock:
            try:
                return self._connection().execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise self._error(exc, "read") from exc


def decode_patterns(raw: Any) -> list[str]:
    try:
        value = json.loads(raw)
    except (TypeError, ValueError):
        return []
    return [p for p in value if isinstance(p, str)] if isinstance(value, list) else []


def decode_message(topic: Any, key: Any, headers: Any, body: Any) -> Message:
    """A message from stored columns; anything odd (foreign rows) degrades, never raises."""
    try:
        raw = json.loads(headers) if isinstance(headers, (str, bytes)) else None
    except (ValueError, RecursionError):
        raw = None
    h = {k: v for k, v in raw.items() if isinstance(v, str)} if isinstance(raw, dict) else {}
    if isinstance(body, str):
        body = body.encode("utf-8", "surrogateescape")
    elif not isinstance(body, bytes):
        body = b"" if body is None else str(body).encode()
    return Message(
        topic=topic if isinstance(topic, str) else str(topic),
        body=body,
        headers=h,
        key=key if isinstance(key, str) else None,
    )
