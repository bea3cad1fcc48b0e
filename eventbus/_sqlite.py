"""The embedded SQLite adapter: a durable broker in one file, shared by processes.

It is the default broker (``sqlite:///eventbus.db``) and needs no server. Any
process that opens the same file is on the same bus. URLs:
``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db``, with options in
the query (``?lease=5``) or in the ``options`` mapping (which wins):

- ``lease`` (30): seconds a delivery stays with its consumer before another
  member may get it (visibility timeout; what a killed process held comes back);
- ``busy_timeout`` (5): seconds to wait for another process's write lock before
  :class:`~eventbus.BrokerUnavailable`;
- ``synchronous`` (``normal``): SQLite's fsync policy. ``normal`` in WAL mode
  survives a crash of any process; ``full`` also survives power loss, slower;
- ``retention`` (keep all): prune the event log to an age (``"7d"``, ``"12h"``,
  ``"3600s"``) or a count (``"100000 events"``); events still waiting for a
  group or dead-lettered are always kept;
- ``poll_max`` (0.1): longest idle wait between checks for other processes'
  events (in-process publishes wake consumers at once);
- ``max_message_size`` (64 MiB): largest encoded event accepted; SQLite's own
  limit is 1e9 bytes, and every event is read whole into memory.

Tables: ``log`` (every published event, with ``seq`` and time: the audit trail,
listed by :meth:`SqliteAdapter.log`), ``groups`` (name, patterns),
``deliveries`` (one row per event per group: ``visible_at``, ``attempts``,
``owner``), ``dead_letters`` and ``meta`` (schema version). Publishing routes
each event, inside its transaction, to every group whose patterns match.

A delivery is visible when ``visible_at`` has passed; handing it out sets
``visible_at`` to the end of the lease and adds one to ``attempts``; ack deletes
it, ``nack(delay)`` and a consumer's ``close`` make it visible again. Events with
the same key go out one at a time, in order: only the oldest delivery of a key
in a group is ever handed out, so ordering per key holds across members,
crashes and retries.

Threading: one connection for publishing and tooling (behind a lock), one per
consumer (confined to its thread). Processes forked with an open adapter
re-open their connection.
"""

from __future__ import annotations

import difflib
import itertools
import json
import logging
import os
import re
import socket
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from ._adapter import Adapter, Consumer
from ._capabilities import Capabilities
from ._envelope import Delivery, Message
from ._errors import (
    BrokerError,
    BrokerUnavailable,
    ClosedError,
    ConfigError,
    EncodeError,
    EventBusError,
    PublishError,
)
from ._routing import Matcher
from .hookspecs import hookimpl

__all__ = ["LogEntry", "SqliteAdapter"]

logger = logging.getLogger("eventbus.sqlite")

SCHEMA_VERSION = 1
POLL_MIN = 0.005
DEFAULT_MAX_SIZE = 64 * 1024 * 1024
SQLITE_MAX_SIZE = 1_000_000_000  # SQLITE_MAX_LENGTH: the largest blob or string

CAPABILITIES = Capabilities(
    ordering_per_key=True,
    consumer_groups=True,
    persistence=True,
    replay=True,
    redelivery=True,
    native_dead_letter=True,
    delayed_delivery=True,
    batching=True,
    lease_seconds=30.0,
    cross_process=True,
    max_message_size=DEFAULT_MAX_SIZE,
)

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
_PEEK = "SELECT 1 FROM deliveries WHERE grp = ? AND blocked = 0 AND visible_at <= ? LIMIT 1"
_TAKE = (
    "SELECT d.id, d.attempts, d.key, l.topic, l.key, l.headers, l.body FROM deliveries AS d "
    "JOIN log AS l ON l.seq = d.seq WHERE d.grp = ? AND d.blocked = 0 AND d.visible_at <= ? "
    "ORDER BY d.id LIMIT ?"
)
_NEXT_DUE = (
    "SELECT min(visible_at) FROM deliveries WHERE grp = ? AND blocked = 0 AND visible_at > ?"
)
_INSERT_LOG = "INSERT INTO log (published_at, topic, key, headers, body) VALUES (?, ?, ?, ?, ?)"
_INSERT_DELIVERY = "INSERT INTO deliveries (grp, seq, visible_at) VALUES (?, ?, ?)"
_INSERT_KEYED = (
    "INSERT INTO deliveries (grp, seq, key, visible_at, blocked) VALUES "
    "(?1, ?2, ?3, ?4, EXISTS (SELECT 1 FROM deliveries WHERE grp = ?1 AND key = ?3))"
)
_UNBLOCK = (
    "UPDATE deliveries SET blocked = 0 WHERE blocked = 1 AND id = "
    "(SELECT min(id) FROM deliveries WHERE grp = ? AND key = ?)"
)
_UNBLOCK_ALL = (  # every key's oldest delivery in a group, after a bulk insert
    "UPDATE deliveries SET blocked = 0 WHERE grp = ?1 AND blocked = 1 AND (key IS NULL OR id IN "
    "(SELECT min(id) FROM deliveries WHERE grp = ?1 AND key IS NOT NULL GROUP BY key))"
)
_GROUPS_VERSION = "SELECT value FROM meta WHERE key = 'groups_version'"


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One published event as the log keeps it: its sequence number and time."""

    seq: int
    published_at: float
    message: Message


class _Notifier:
    """Wakes this process's consumers of one database file when something changes."""

    def __init__(self) -> None:
        self.cond = threading.Condition(threading.Lock())
        self.version = 0

    def notify(self) -> None:
        with self.cond:
            self.version += 1
            self.cond.notify_all()


_notifiers: weakref.WeakValueDictionary[str, _Notifier] = weakref.WeakValueDictionary()
_notifiers_lock = threading.Lock()
_abandoned: list[sqlite3.Connection] = []  # inherited over fork: never touched, never closed


def _notifier_for(path: str) -> _Notifier:
    with _notifiers_lock:
        n = _notifiers.get(path)
        if n is None:
            n = _notifiers[path] = _Notifier()
        return n


def _code(exc: sqlite3.Error) -> int:
    code = getattr(exc, "sqlite_errorcode", None)  # Python >= 3.11
    if isinstance(code, int):
        return code & 0xFF
    text = str(exc).lower()
    for needle, c in (
        ("locked", 5), ("not a database", 26), ("malformed", 11), ("readonly", 8),
        ("unable to open", 14), ("disk is full", 13),
    ):  # fmt: skip
        if needle in text:
            return c
    return 1


class SqliteAdapter(Adapter):
    """A broker in one SQLite file; see the module docstring. Thread-safe."""

    capabilities = CAPABILITIES

    def __init__(
        self,
        path: str | os.PathLike[str] = "eventbus.db",
        *,
        lease: float = 30.0,
        busy_timeout: float = 5.0,
        synchronous: str = "normal",
        retention: str | int | float | None = None,
        poll_max: float = 0.1,
        max_message_size: int = DEFAULT_MAX_SIZE,
    ) -> None:
        self.path = os.path.abspath(os.fspath(path))
        if lease <= 0 or busy_timeout < 0 or poll_max <= 0:
            raise ConfigError("sqlite adapter: lease and poll_max must be > 0, busy_timeout >= 0")
        if not 0 < max_message_size <= SQLITE_MAX_SIZE:
            raise ConfigError(
                f"sqlite adapter: max_message_size must be 1..{SQLITE_MAX_SIZE} bytes, "
                f"not {max_message_size!r}"
            )
        if synchronous.lower() not in ("off", "normal", "full", "extra"):
            raise ConfigError(
                "sqlite adapter: synchronous must be off, normal, full or extra, "
                f"not {synchronous!r}"
            )
        self.lease = float(lease)
        self.busy_timeout = float(busy_timeout)
        self.synchronous = synchronous.lower()
        self.poll_max = max(float(poll_max), POLL_MIN)
        self.retention_age, self.retention_count = _parse_retention(retention)
        self.capabilities = CAPABILITIES.replace(
            lease_seconds=self.lease, max_message_size=int(max_message_size)
        )
        self._lock = threading.RLock()
        self._closed = False
        self._notifier = _notifier_for(self.path)
        self._owners = itertools.count(1)
        self._owner_prefix = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self._groups_version: Any = None
        self._routes: dict[str, tuple[int, ...]] = {}
        self._matchers: list[tuple[int, Matcher]] = []
        self._next_prune = 0.0
        self._pid = os.getpid()
        self._conn = self._open(schema=True)

    # -- connections ------------------------------------------------------------
    def _enter_wal(self, conn: sqlite3.Connection) -> str:
        # Switching a new file to WAL takes a lock that busy_timeout does not
        # wait for: processes opening a new file at the same moment get
        # "database is locked" at once. Retry it until busy_timeout runs out.
        deadline = time.monotonic() + self.busy_timeout
        pause = 0.005
        while True:
            try:
                return str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0])
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(pause)  # backoff on a lock, bounded by busy_timeout
                pause = min(pause * 2, 0.1)

    def _open(self, schema: bool = False) -> sqlite3.Connection:
        directory = os.path.dirname(self.path)
        if not os.path.isdir(directory):
            raise ConfigError(
                f"sqlite broker {self.path}: directory {directory} does not exist; "
                "create it or point the url elsewhere (e.g. sqlite:///eventbus.db)"
            )
        if os.path.isdir(self.path):
            raise ConfigError(f"sqlite broker {self.path} is a directory; the url must name a file")
        try:
            conn = sqlite3.connect(
                self.path, timeout=self.busy_timeout, isolation_level=None,
                check_same_thread=False, cached_statements=64,
            )  # fmt: skip
        except sqlite3.Error as exc:
            raise self._error(exc, "open") from exc
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
            if schema:
                mode = self._enter_wal(conn)
                if str(mode).lower() != "wal":
                    raise ConfigError(
                        f"sqlite broker {self.path}: cannot switch to WAL mode (got {mode!r}); "
                        "put the file on a local file system"
                    )
            conn.execute(f"PRAGMA synchronous = {self.synchronous}")
            if schema:
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
            self._owner_prefix = f"{socket.gethostname()}:{self._pid}:{id(self):x}"
            self._conn = self._open()
        return self._conn

    def _error(self, exc: sqlite3.Error, action: str) -> EventBusError:
        code = _code(exc)
        where = f"sqlite broker {self.path}: {action} failed: {exc}"
        if code in (5, 6):  # BUSY, LOCKED
            return BrokerUnavailable(
                f"{where}; another process held the database lock for more than "
                f"{self.busy_timeout}s (raise the busy_timeout option or find that process)"
            )
        if code in (11, 26):  # CORRUPT, NOTADB
            return BrokerError(
                f"{where}; the file is not an SQLite database or is corrupt: point the url at "
                "another file, or move this one away to start a new broker"
            )
        if code in (3, 8, 14, 23):  # PERM, READONLY, CANTOPEN, AUTH
            return ConfigError(
                f"{where}; check that the file and its directory exist and are writable "
                "(SQLite also creates -wal and -shm files next to it)"
            )
        if action == "publish":
            return PublishError(where)
        return BrokerError(where)

    @contextmanager
    def _write(self, action: str) -> Iterator[sqlite3.Connection]:
        """A write transaction on the shared connection; errors wrapped."""
        with self._lock:
            conn = self._connection()
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

    # -- publishing -------------------------------------------------------------
    def _load_groups(self, conn: sqlite3.Connection) -> None:
        version = conn.execute(_GROUPS_VERSION).fetchone()
        if version != self._groups_version:
            rows = conn.execute("SELECT id, patterns FROM groups ORDER BY id").fetchall()
            self._matchers = [(gid, Matcher(_patterns(raw))) for gid, raw in rows]
            self._routes = {}
            self._groups_version = version

    def _route(self, topic: str) -> tuple[int, ...]:
        gids = self._routes.get(topic)
        if gids is None:
            if len(self._routes) > 10_000:
                self._routes.clear()
            gids = self._routes[topic] = tuple(g for g, m in self._matchers if m(topic))
        return gids

    def publish(self, messages: Sequence[Message]) -> None:
        if not messages:
            return
        now = time.time()
        rows = [(m, json.dumps(m.headers, separators=(",", ":"))) for m in messages]
        try:
            with self._write("publish") as conn:
                self._load_groups(conn)
                execute = conn.execute
                for m, headers in rows:
                    key = m.key
                    seq = execute(
                        _INSERT_LOG, (now, m.topic, key, headers, bytes(m.body))
                    ).lastrowid
                    for gid in self._route(m.topic):
                        if key is None:
                            execute(_INSERT_DELIVERY, (gid, seq, now))
                        else:
                            execute(_INSERT_KEYED, (gid, seq, key, now))
        except UnicodeEncodeError as exc:
            raise EncodeError(f"topic or key is not valid Unicode: {exc}") from None
        self._notifier.notify()
        if (self.retention_age or self.retention_count) and now >= self._next_prune:
            self._next_prune = now + 5.0
            try:  # the events are in: a failed prune must not look like a failed publish
                self.prune()
            except EventBusError as exc:
                logger.warning("sqlite broker %s: pruning the event log failed: %s", self.path, exc)

    def declare(self, group: str, patterns: Sequence[str]) -> None:
        patterns = list(Matcher(patterns).patterns)  # validates
        raw = json.dumps(patterns)
        with self._write("declare") as conn:
            row = conn.execute("SELECT patterns FROM groups WHERE name = ?", (group,)).fetchone()
            if row is not None and row[0] == raw:
                return
            if row is None:
                conn.execute(
                    "INSERT INTO groups (name, patterns, declared_at) VALUES (?, ?, ?)",
                    (group, raw, time.time()),
                )
            else:
                conn.execute("UPDATE groups SET patterns = ? WHERE name = ?", (raw, group))
            conn.execute("UPDATE meta SET value = value + 1 WHERE key = 'groups_version'")

    def consumer(self, group: str, patterns: Sequence[str]) -> Consumer:
        self.declare(group, patterns)
        rows = self._read("SELECT id FROM groups WHERE name = ?", (group,))
        owner = f"{self._owner_prefix}:{next(self._owners)}"
        return _SqliteConsumer(self, group, rows[0][0], owner)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if os.getpid() == self._pid:
                self._conn.close()
        self._notifier.notify()

    # -- tooling ----------------------------------------------------------------
    def _group_id(self, group: str) -> int | None:
        rows = self._read("SELECT id FROM groups WHERE name = ?", (group,))
        return rows[0][0] if rows else None

    def groups(self) -> dict[str, tuple[str, ...]]:
        """Every declared group with its patterns."""
        rows = self._read("SELECT name, patterns FROM groups ORDER BY name")
        return {name: tuple(_patterns(raw)) for name, raw in rows}

    def depth(self, group: str) -> int:
        """Events waiting for ``group`` (ready, delayed and in flight)."""
        gid = self._group_id(group)
        if gid is None:
            return 0
        return int(self._read("SELECT count(*) FROM deliveries WHERE grp = ?", (gid,))[0][0])

    def log(
        self, *, limit: int = 100, after: int = 0, pattern: str | None = None
    ) -> list[LogEntry]:
        """Published events with ``seq > after``, oldest first, at most ``limit``.

        ``pattern`` keeps only topics it matches (same wildcards as subscribe).
        Page through the log by passing the last entry's ``seq`` as ``after``.
        """
        matcher = Matcher([pattern]) if pattern is not None else None
        out: list[LogEntry] = []
        with self._lock:
            try:
                cur = self._connection().execute(
                    "SELECT seq, published_at, topic, key, headers, body FROM log "
                    "WHERE seq > ? ORDER BY seq LIMIT ?",
                    (after, -1 if matcher else limit),
                )
                while len(out) < limit:
                    batch = cur.fetchmany(500)
                    if not batch:
                        break
                    for seq, at, topic, key, headers, body in batch:
                        if matcher is None or matcher(topic):
                            out.append(LogEntry(seq, at, _message(topic, key, headers, body)))
                            if len(out) >= limit:
                                break
                cur.close()
            except sqlite3.Error as exc:
                raise self._error(exc, "read log") from exc
        return out

    def prune(self) -> int:
        """Apply the ``retention`` option now; returns how many log entries went.

        Works in short transactions of a few thousand rows, so publishers and
        consumers are never held up for long. Entries a group still waits
        for, or that are dead letters, stay.
        """
        if not (self.retention_age or self.retention_count):
            return 0
        with self._write("prune") as conn:
            lo, top = conn.execute("SELECT min(seq), max(seq) FROM log").fetchone()
            if top is None:
                return 0
            cut = top - self.retention_count + 1 if self.retention_count else 0
            if self.retention_age:
                row = conn.execute(
                    "SELECT seq FROM log WHERE published_at >= ? ORDER BY seq LIMIT 1",
                    (time.time() - self.retention_age,),
                ).fetchone()
                cut = max(cut, row[0] if row else top + 1)
        removed = 0
        while lo < cut:
            hi = min(lo + 5000, cut)
            with self._write("prune") as conn:
                removed += conn.execute(
                    "DELETE FROM log WHERE seq >= ?1 AND seq < ?2"
                    " AND seq NOT IN (SELECT seq FROM deliveries WHERE seq < ?2)"
                    " AND seq NOT IN (SELECT seq FROM dead_letters WHERE seq < ?2)",
                    (lo, hi),
                ).rowcount
            lo = hi
        return removed

    def dead_letters(self, group: str, limit: int = 100) -> list[tuple[Delivery, str]]:
        gid = self._group_id(group)
        if gid is None:
            return []
        rows = self._read(
            "SELECT x.id, x.attempt, x.reason, l.topic, l.key, l.headers, l.body "
            "FROM dead_letters AS x JOIN log AS l ON l.seq = x.seq "
            "WHERE x.grp = ? ORDER BY x.id LIMIT ?",
            (gid, limit),
        )
        return [
            (Delivery(_message(topic, key, headers, body), attempt, ident), reason)
            for ident, attempt, reason, topic, key, headers, body in rows
        ]

    def purge_dead_letters(self, group: str) -> int:
        """Delete the dead letters of ``group``; returns how many."""
        with self._write("purge dead letters") as conn:
            cur = conn.execute(
                "DELETE FROM dead_letters WHERE grp = (SELECT id FROM groups WHERE name = ?)",
                (group,),
            )
            return cur.rowcount

    def replay_dead_letters(self, group: str, limit: int | None = None) -> int:
        """Move up to ``limit`` (None: all) dead letters of ``group`` back to its queue,
        oldest first; attempts start again at 1."""
        moved = 0
        with self._write("replay dead letters") as conn:
            row = conn.execute("SELECT id FROM groups WHERE name = ?", (group,)).fetchone()
            cut = None
            if row is not None:  # the id of the last dead letter to move
                cut = conn.execute(
                    "SELECT max(id) FROM (SELECT id FROM dead_letters WHERE grp = ? "
                    "ORDER BY id LIMIT ?)",
                    (row[0], -1 if limit is None else limit),
                ).fetchone()[0]
            if row is not None and cut is not None:
                conn.execute(
                    "INSERT INTO deliveries (grp, seq, key, visible_at, blocked) "
                    "SELECT x.grp, x.seq, l.key, ?, 1 FROM dead_letters AS x "
                    "JOIN log AS l ON l.seq = x.seq WHERE x.grp = ? AND x.id <= ? ORDER BY x.id",
                    (time.time(), row[0], cut),
                )
                conn.execute(_UNBLOCK_ALL, (row[0],))
                moved = conn.execute(
                    "DELETE FROM dead_letters WHERE grp = ? AND id <= ?", (row[0], cut)
                ).rowcount
        if moved:
            self._notifier.notify()
        return moved

    def delete_group(self, group: str) -> None:
        """Remove ``group``: its waiting deliveries and dead letters go; the log stays."""
        with self._write("delete group") as conn:
            row = conn.execute("SELECT id FROM groups WHERE name = ?", (group,)).fetchone()
            if row is None:
                return
            conn.execute("DELETE FROM deliveries WHERE grp = ?", row)
            conn.execute("DELETE FROM dead_letters WHERE grp = ?", row)
            conn.execute("DELETE FROM groups WHERE id = ?", row)
            conn.execute("UPDATE meta SET value = value + 1 WHERE key = 'groups_version'")
        self._notifier.notify()

    def __repr__(self) -> str:
        return f"<SqliteAdapter {self.path} lease={self.lease}>"


class _SqliteConsumer(Consumer):
    """One member of a group, with its own connection; confined to one thread."""

    def __init__(self, adapter: SqliteAdapter, group: str, gid: int, owner: str) -> None:
        self._a = adapter
        self._group = group
        self._gid = gid
        self._owner = owner
        self._held: dict[int, tuple[int, Any]] = {}  # delivery id -> (attempts, key)
        self._closed = False
        self._conn = adapter._open()
        self._data_version = -1

    # one write transaction on this consumer's connection
    @contextmanager
    def _write(self, action: str) -> Iterator[sqlite3.Connection]:
        conn = self._conn
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
            raise self._a._error(exc, action) from exc

    def _check(self) -> None:
        if self._closed or self._a._closed:
            raise ClosedError(f"consumer of group {self._group!r} is closed")

    def _take(self, limit: int) -> tuple[list[Delivery], float | None]:
        """Lease up to ``limit`` deliveries; if none, also when the next one is due."""
        conn = self._conn
        now = time.time()
        try:
            self._data_version = conn.execute("PRAGMA data_version").fetchone()[0]
            if conn.execute(_PEEK, (self._gid, now)).fetchone() is None:
                return [], conn.execute(_NEXT_DUE, (self._gid, now)).fetchone()[0]
        except sqlite3.Error as exc:
            raise self._a._error(exc, "receive") from exc
        out: list[Delivery] = []
        with self._write("receive") as conn:
            now = time.time()
            rows = conn.execute(_TAKE, (self._gid, now, limit)).fetchall()
            if rows:
                until = now + self._a.lease
                conn.executemany(
                    "UPDATE deliveries SET attempts = attempts + 1, visible_at = ?, owner = ? "
                    "WHERE id = ?",
                    [(until, self._owner, r[0]) for r in rows],
                )
        held = self._held
        for ident, attempts, dkey, topic, key, headers, body in rows:
            held[ident] = (attempts + 1, dkey)
            out.append(Delivery(_message(topic, key, headers, body), attempts + 1, ident))
        return out, None

    def receive(self, max_messages: int, timeout: float) -> list[Delivery]:
        self._check()
        notifier = self._a._notifier
        deadline = time.monotonic() + timeout
        poll = POLL_MIN
        while True:
            seen = notifier.version
            got, due = self._take(max(1, max_messages))
            if got:
                return got
            while True:  # wait until something may have changed
                now = time.monotonic()
                if now >= deadline:
                    return []
                wait = min(deadline - now, poll)
                if due is not None:
                    wait = min(wait, max(due - time.time(), 0.0) + 0.001)
                with notifier.cond:
                    if notifier.version == seen:
                        notifier.cond.wait(wait)
                self._check()
                if notifier.version != seen or (due is not None and time.time() >= due):
                    break
                try:
                    version = self._conn.execute("PRAGMA data_version").fetchone()[0]
                except sqlite3.Error as exc:
                    raise self._a._error(exc, "receive") from exc
                if version != self._data_version:
                    poll = POLL_MIN
                    break
                poll = min(poll * 2, self._a.poll_max)

    def _settle(self, sql: str, rows: list[tuple[Any, ...]], action: str) -> None:
        with self._write(action) as conn:
            conn.executemany(sql, rows)
        self._a._notifier.notify()

    def ack(self, deliveries: Sequence[Delivery]) -> None:
        if not deliveries:
            return
        held = [(d.handle, *self._held.pop(d.handle, (-1, None))) for d in deliveries]
        keys = {key for _, _, key in held if key is not None}
        with self._write("ack") as conn:
            conn.executemany(
                "DELETE FROM deliveries WHERE id = ? AND attempts = ?", [h[:2] for h in held]
            )
            # a late ack (lease lost) deleted nothing; unblocking its key is then a no-op
            conn.executemany(_UNBLOCK, [(self._gid, key) for key in keys])
        self._a._notifier.notify()

    def nack(self, delivery: Delivery, delay: float) -> None:
        attempts, _ = self._held.pop(delivery.handle, (-1, None))
        self._settle(  # a keyed delivery stays its key's oldest: the key stays held
            "UPDATE deliveries SET visible_at = ?, owner = NULL WHERE id = ? AND attempts = ?",
            [(time.time() + max(delay, 0.0), delivery.handle, attempts)],
            "nack",
        )

    def dead_letter(self, delivery: Delivery, reason: str) -> None:
        attempts, key = self._held.pop(delivery.handle, (-1, None))
        with self._write("dead letter") as conn:
            cur = conn.execute(
                "INSERT INTO dead_letters (grp, seq, attempt, reason, dead_at) "
                "SELECT grp, seq, attempts, ?, ? FROM deliveries WHERE id = ? AND attempts = ?",
                (reason, time.time(), delivery.handle, attempts),
            )
            if cur.rowcount:
                conn.execute("DELETE FROM deliveries WHERE id = ?", (delivery.handle,))
                if key is not None:
                    conn.execute(_UNBLOCK, (self._gid, key))
        self._a._notifier.notify()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            if self._held:
                now = time.time()
                self._settle(
                    "UPDATE deliveries SET visible_at = ?, owner = NULL "
                    "WHERE id = ? AND attempts = ?",
                    [(now, ident, attempts) for ident, (attempts, _) in self._held.items()],
                    "close",
                )
                self._held.clear()
        finally:
            self._conn.close()


def _patterns(raw: Any) -> list[str]:
    try:
        value = json.loads(raw)
    except (TypeError, ValueError):
        return []
    return [p for p in value if isinstance(p, str)] if isinstance(value, list) else []


def _message(topic: Any, key: Any, headers: Any, body: Any) -> Message:
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


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def _parse_retention(value: str | int | float | None) -> tuple[float | None, int | None]:
    """``"7d"``/``"12h"``/``"90m"``/``"3600s"`` -> age; ``"100000 events"`` -> count."""
    if value is None or value == "":
        return None, None
    text = str(value).strip().lower()
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(s|m|h|d|w|events?)", text)
    if not m:
        raise ConfigError(
            f"sqlite adapter: retention {value!r} is not an age or a count; write e.g. "
            "'7d', '12h', '3600s' (keep that long) or '100000 events' (keep that many)"
        )
    number, unit = float(m.group(1)), m.group(2)
    if unit.startswith("event"):
        if number < 1 or number != int(number):
            raise ConfigError(f"sqlite adapter: retention {value!r} must keep at least 1 event")
        return None, int(number)
    return number * _UNITS[unit], None


_OPTIONS = {
    "lease": float,
    "busy_timeout": float,
    "synchronous": str,
    "retention": str,
    "poll_max": float,
    "max_message_size": int,
}


def _from_url(url: str, options: Mapping[str, Any]) -> SqliteAdapter:
    parts = urlsplit(url)
    if parts.scheme.lower() != "sqlite":
        raise ConfigError(f"sqlite adapter: url {url!r} must start with sqlite://")
    if parts.netloc:
        raise ConfigError(
            f"sqlite adapter: url {url!r} has a host part {parts.netloc!r}; write "
            "sqlite:///relative/path.db or sqlite:////absolute/path.db (three or four slashes)"
        )
    path = unquote(parts.path)
    path = path[1:] if path.startswith("/") else path
    if path in ("", ":memory:"):
        raise ConfigError(
            f"sqlite adapter: url {url!r} names no file; write e.g. sqlite:///eventbus.db "
            "(use memory:// for an in-process broker)"
        )
    merged: dict[str, Any] = dict(parse_qsl(parts.query, keep_blank_values=True))
    merged.update(options)
    kwargs: dict[str, Any] = {}
    for name, raw in merged.items():
        if name not in _OPTIONS:
            close = difflib.get_close_matches(name, list(_OPTIONS), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(
                f"sqlite adapter: unknown option {name!r}{hint} "
                f"(known: {', '.join(sorted(_OPTIONS))})"
            )
        kind = _OPTIONS[name]
        if kind is int:
            try:
                kwargs[name] = int(raw)
            except (TypeError, ValueError):
                raise ConfigError(
                    f"sqlite adapter: option {name!r} must be a whole number, not {raw!r}"
                ) from None
        elif kind is float:
            try:
                kwargs[name] = float(raw)
            except (TypeError, ValueError):
                raise ConfigError(
                    f"sqlite adapter: option {name!r} must be a number of seconds, not {raw!r}"
                ) from None
        else:
            kwargs[name] = raw if isinstance(raw, (int, float)) else str(raw)
    return SqliteAdapter(path, **kwargs)


@hookimpl
def eventbus_adapters() -> list[Any]:
    from ._plugins import AdapterSpec

    return [
        AdapterSpec(
            name="sqlite",
            factory=_from_url,
            schemes=("sqlite",),
            capabilities=CAPABILITIES,
            version=_version(),
            description="embedded durable broker in one SQLite file; the default",
            default_url="sqlite:///eventbus.db",
        )
    ]


def _version() -> str:
    from . import __version__

    return __version__
