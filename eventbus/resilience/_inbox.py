"""The idempotent consumer: an inbox keyed by (group, event id) that drops duplicates.

At-least-once delivery means a handler can see an event twice: a redelivery
after a crash before the ack, the outbox resending a batch whose confirmation
was lost, a producer retrying. With an inbox the worker runs a group's handlers
for an event id **once**; later copies are acked without calling them.

The protocol, per delivery, after decoding and before any handler::

    claim(group, id, lease) ─► "new"  : run the handlers
                                        ok     → complete(group, id)  (remembered for `retention`)
                                        raised → release(group, id)   (the retry runs them again)
                            ─► "done" : a duplicate: ack it, handlers not called
                            ─► "busy" : another member holds a live claim: deliver again after
                                        the claim's remaining time (it is done or released by then)

A claim is a lease, not a lock: if the member holding it dies, the claim runs
out after ``lease`` seconds and a redelivery takes over, so a crash never loses
an event. The price is that a member which dies *after* its handler's side
effects but *before* ``complete`` causes one repeat; make side effects
idempotent, or write them in the same database transaction as the inbox row
(PostgreSQL inbox) if that window matters.

Stores: :class:`SqliteInbox` (default; a file, shared by the processes of one
machine), :class:`RedisInbox` and :class:`PostgresInbox` (shared by every
machine; their client libraries are imported only when used:
``pip install 'eventbus[redis]'`` / ``'eventbus[postgres]'``). :func:`open_inbox`
picks one from a URL.
"""

# Table names are checked identifiers; every value is a bound parameter.
# ruff: noqa: S608

from __future__ import annotations

import importlib
import os
import sqlite3
import threading
import time
import uuid
from abc import ABC, abstractmethod
from pathlib import Path
from types import ModuleType
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

from .._errors import ConfigError, EventBusError
from .._sqlite_open import connect, describe

__all__ = [
    "Inbox",
    "InboxError",
    "PostgresInbox",
    "RedisInbox",
    "SqliteInbox",
    "open_inbox",
]

Claim = Literal["new", "done", "busy"]

DEFAULT_RETENTION = 7 * 24 * 3600.0


class InboxError(EventBusError):
    """The inbox store failed or could not be reached (the event is delivered again later)."""


class Inbox(ABC):
    """Remembers which events each group handled. Thread-safe; shared by a bus's workers."""

    #: Seconds a handled event id is remembered (duplicates later than that run again).
    retention: float = DEFAULT_RETENTION

    @abstractmethod
    def claim(self, group: str, event_id: str, lease: float) -> tuple[Claim, float]:
        """Try to take ``event_id`` for ``group`` for ``lease`` seconds.

        Returns ``("new", 0)`` if the caller now holds it, ``("done", 0)`` if it
        was handled already, ``("busy", seconds)`` if another member holds a
        live claim for that many more seconds. Raises :class:`InboxError`.
        """

    @abstractmethod
    def complete(self, group: str, event_id: str) -> None:
        """The handlers succeeded: remember ``event_id`` as done for ``retention`` seconds."""

    @abstractmethod
    def release(self, group: str, event_id: str) -> None:
        """The handlers failed: drop the caller's claim so a redelivery runs them again."""

    def close(self) -> None:  # noqa: B027 - optional for stores without resources
        """Release connections. Idempotent."""


def _import(module: str, store: str, extra: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ConfigError(
            f"the {store} inbox needs {module.split('.')[0]!r}, which is not installed: "
            f"pip install 'eventbus[{extra}]'"
        ) from exc


def _owner() -> str:
    return f"{os.getpid()}:{uuid.uuid4().hex[:12]}"


# -- SQLite --------------------------------------------------------------------------

#: Seconds a claim waits for another member's lock on the file.
_SQLITE_BUSY = 30.0

_SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS inbox (
    grp TEXT NOT NULL,
    id TEXT NOT NULL,
    done INTEGER NOT NULL,
    owner TEXT NOT NULL,
    until REAL NOT NULL,
    PRIMARY KEY (grp, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS inbox_expiry ON inbox (until);
"""


class SqliteInbox(Inbox):
    """The inbox in a SQLite file (default ``.eventbus/inbox.db``).

    Opened like every SQLite file of eventbus (``eventbus._sqlite_open``: WAL
    mode with ``synchronous=NORMAL``, retried set-up; a path that is a directory
    is a :class:`ConfigError`): a process crash loses nothing; a power loss may
    forget the last few ``complete`` marks, which only means those events could
    be handled once more, never lost.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] = ".eventbus/inbox.db",
        *,
        retention: float = DEFAULT_RETENTION,
    ) -> None:
        self.path = Path(path)
        self.retention = retention
        self._owner = _owner()
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db: sqlite3.Connection | None = None
        try:
            self._db = connect(self.path, what="inbox", busy_timeout=_SQLITE_BUSY)
            self._db.executescript(_SQLITE_SCHEMA)
        except sqlite3.Error as exc:
            if self._db is not None:
                self._db.close()
            raise InboxError(self._describe(exc, "open")) from exc
        self._next_purge = 0.0

    def _describe(self, exc: sqlite3.Error, action: str) -> str:
        return describe(exc, what="inbox", path=self.path, action=action, busy_timeout=_SQLITE_BUSY)

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise InboxError(f"inbox {self.path} is closed")
        return self._db

    def claim(self, group: str, event_id: str, lease: float) -> tuple[Claim, float]:
        now = time.time()
        with self._lock:
            db = self._conn()
            try:
                db.execute("BEGIN IMMEDIATE")
                try:
                    row = db.execute(
                        "SELECT done, until FROM inbox WHERE grp = ? AND id = ?", (group, event_id)
                    ).fetchone()
                    if row is None or row[1] <= now:  # unknown, or its claim/memory ran out
                        db.execute(
                            "INSERT OR REPLACE INTO inbox (grp, id, done, owner, until) "
                            "VALUES (?, ?, 0, ?, ?)",
                            (group, event_id, self._owner, now + lease),
                        )
                        result: tuple[Claim, float] = ("new", 0.0)
                    elif row[0]:
                        result = ("done", 0.0)
                    else:
                        result = ("busy", max(0.0, row[1] - now))
                    db.execute("COMMIT")
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise InboxError(self._describe(exc, "claim")) from exc
            if now >= self._next_purge:
                self._purge(now)
            return result

    def _purge(self, now: float) -> None:
        self._next_purge = now + 60.0
        try:
            self._conn().execute("DELETE FROM inbox WHERE until <= ?", (now,))
        except sqlite3.Error:
            pass  # best effort; expired rows are ignored anyway

    def complete(self, group: str, event_id: str) -> None:
        with self._lock:
            try:
                self._conn().execute(
                    "INSERT OR REPLACE INTO inbox (grp, id, done, owner, until) "
                    "VALUES (?, ?, 1, ?, ?)",
                    (group, event_id, self._owner, time.time() + self.retention),
                )
            except sqlite3.Error as exc:
                raise InboxError(self._describe(exc, "complete")) from exc

    def release(self, group: str, event_id: str) -> None:
        with self._lock:
            try:
                self._conn().execute(
                    "DELETE FROM inbox WHERE grp = ? AND id = ? AND done = 0 AND owner = ?",
                    (group, event_id, self._owner),
                )
            except sqlite3.Error as exc:
                raise InboxError(self._describe(exc, "release")) from exc

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def __repr__(self) -> str:
        return f"<SqliteInbox {str(self.path)!r}>"


# -- Redis ---------------------------------------------------------------------------

# KEYS[1] = the key; ARGV[1] = owner. Deletes the claim only if the caller still holds it.
_REDIS_RELEASE = """
if redis.call('GET', KEYS[1]) == 'p:' .. ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""


class RedisInbox(Inbox):
    """The inbox in Redis: one key per (group, event id), expiring on its own.

    A claim is ``SET key p:<owner> NX PX lease``; done is ``SET key d PX retention``.
    Keys are ``<prefix><group>:<event id>``. Needs redis-py (``eventbus[redis]``).
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        prefix: str = "eventbus:inbox:",
        retention: float = DEFAULT_RETENTION,
        client: Any = None,
    ) -> None:
        redis = _import("redis", "Redis", "redis")
        self._errors: tuple[type[BaseException], ...] = (redis.RedisError,)
        self._client = client if client is not None else redis.Redis.from_url(url)
        self._owns_client = client is None
        self.prefix = prefix
        self.retention = retention
        self._owner = _owner()
        self._release = self._client.register_script(_REDIS_RELEASE)

    def _key(self, group: str, event_id: str) -> str:
        return f"{self.prefix}{group}:{event_id}"

    def claim(self, group: str, event_id: str, lease: float) -> tuple[Claim, float]:
        key = self._key(group, event_id)
        try:
            for _ in range(3):  # the key may expire between SET NX and GET: try again
                if self._client.set(key, f"p:{self._owner}", nx=True, px=max(1, int(lease * 1000))):
                    return "new", 0.0
                pipe = self._client.pipeline()
                pipe.get(key)
                pipe.pttl(key)
                value, ttl = pipe.execute()
                if value is None:
                    continue
                if value == b"d":
                    return "done", 0.0
                return "busy", max(0.0, ttl / 1000.0)
        except self._errors as exc:
            raise InboxError(f"redis inbox: {exc}") from exc
        return "busy", 0.1

    def complete(self, group: str, event_id: str) -> None:
        try:
            self._client.set(
                self._key(group, event_id), b"d", px=max(1, int(self.retention * 1000))
            )
        except self._errors as exc:
            raise InboxError(f"redis inbox: {exc}") from exc

    def release(self, group: str, event_id: str) -> None:
        try:
            self._release(keys=[self._key(group, event_id)], args=[self._owner])
        except self._errors as exc:
            raise InboxError(f"redis inbox: {exc}") from exc

    def close(self) -> None:
        if self._owns_client:
            self._client.close()


# -- PostgreSQL ----------------------------------------------------------------------


class PostgresInbox(Inbox):
    """The inbox in a PostgreSQL table (default ``eventbus_inbox``, created if missing).

    Needs psycopg 3 (``eventbus[postgres]``). One connection in autocommit
    mode, shared by the bus's worker threads behind a lock.
    """

    def __init__(
        self,
        dsn: str = "postgresql://postgres@127.0.0.1:5432/postgres",
        *,
        table: str = "eventbus_inbox",
        retention: float = DEFAULT_RETENTION,
    ) -> None:
        if not table.replace("_", "").isalnum():
            raise ConfigError(f"inbox table name {table!r}: use letters, digits and _ only")
        psycopg = _import("psycopg", "PostgreSQL", "postgres")
        self._errors: tuple[type[BaseException], ...] = (psycopg.Error,)
        self._psycopg = psycopg
        self.dsn = dsn
        self.table = table
        self.retention = retention
        self._owner = _owner()
        self._lock = threading.Lock()
        self._conn: Any = None
        self._closed = False
        self._next_purge = 0.0
        with self._lock:
            self._execute(
                f"CREATE TABLE IF NOT EXISTS {table} ("
                " grp TEXT NOT NULL, id TEXT NOT NULL, done BOOLEAN NOT NULL,"
                " owner TEXT NOT NULL, until TIMESTAMPTZ NOT NULL, PRIMARY KEY (grp, id))"
            )

    def _execute(self, sql: str, params: tuple[Any, ...] = (), *, fetch: bool = False) -> Any:
        """Run one statement (reconnecting once if the connection broke); call with the lock."""
        if self._closed:
            raise InboxError("postgres inbox is closed")
        for attempt in (1, 2):
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = self._psycopg.connect(self.dsn, autocommit=True, connect_timeout=5)
                cur = self._conn.execute(sql, params)
                return cur.fetchall() if fetch else None
            except self._errors as exc:
                broken = (
                    self._conn is None
                    or self._conn.closed
                    or isinstance(exc, self._psycopg.OperationalError)
                )
                if attempt == 2 or not broken:
                    raise InboxError(f"postgres inbox: {exc}") from exc
                try:
                    if self._conn is not None:
                        self._conn.close()
                except self._errors:
                    pass
                self._conn = None
        raise AssertionError("unreachable")

    def claim(self, group: str, event_id: str, lease: float) -> tuple[Claim, float]:
        t = self.table
        with self._lock:
            rows = self._execute(
                f"INSERT INTO {t} AS i (grp, id, done, owner, until) "
                "VALUES (%s, %s, false, %s, now() + make_interval(secs => %s)) "
                "ON CONFLICT (grp, id) DO UPDATE SET done = false, owner = EXCLUDED.owner, "
                "until = EXCLUDED.until WHERE i.until <= now() "
                "RETURNING 1",
                (group, event_id, self._owner, lease),
                fetch=True,
            )
            if rows:
                self._maybe_purge()
                return "new", 0.0
            rows = self._execute(
                f"SELECT done, extract(epoch FROM until - now()) FROM {t} "
                "WHERE grp = %s AND id = %s",
                (group, event_id),
                fetch=True,
            )
        if not rows:
            return "busy", 0.05  # purged in between: the redelivery claims it
        done, left = rows[0]
        return ("done", 0.0) if done else ("busy", max(0.0, float(left)))

    def _maybe_purge(self) -> None:
        now = time.monotonic()
        if now >= self._next_purge:
            self._next_purge = now + 60.0
            self._execute(f"DELETE FROM {self.table} WHERE until <= now()")

    def complete(self, group: str, event_id: str) -> None:
        with self._lock:
            self._execute(
                f"INSERT INTO {self.table} (grp, id, done, owner, until) "
                "VALUES (%s, %s, true, %s, now() + make_interval(secs => %s)) "
                "ON CONFLICT (grp, id) DO UPDATE SET done = true, until = EXCLUDED.until",
                (group, event_id, self._owner, self.retention),
            )

    def release(self, group: str, event_id: str) -> None:
        with self._lock:
            self._execute(
                f"DELETE FROM {self.table} WHERE grp = %s AND id = %s AND NOT done AND owner = %s",
                (group, event_id, self._owner),
            )

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._conn is not None:
                try:
                    self._conn.close()
                except self._errors:
                    pass
                self._conn = None


def open_inbox(url: str) -> Inbox:
    """An inbox from a URL: ``sqlite:///path`` (or a bare path), ``redis://...``, ``postgresql://...``."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme in ("", "sqlite", "file"):
        path = unquote(parts.path) if scheme else url
        if scheme == "sqlite" and path.startswith("/") and not parts.netloc:
            path = path[1:] or ".eventbus/inbox.db"  # sqlite:///rel.db; sqlite:////abs.db
        return SqliteInbox(path or ".eventbus/inbox.db")
    if scheme in ("redis", "rediss", "unix"):
        return RedisInbox(url)
    if scheme in ("postgres", "postgresql"):
        return PostgresInbox(url)
    raise ConfigError(
        f"inbox URL {url!r}: use sqlite:///path/inbox.db, redis://host:6379/0 "
        "or postgresql://user@host/db"
    )
