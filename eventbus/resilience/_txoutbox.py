"""The transactional outbox, for apps that keep their own data in a SQL database.

The problem it solves: "save the order, then publish ``order.created``" has a
gap. Crash between the two and the order exists with no event; publish first
and roll back, and the event announces an order that doesn't exist. Instead,
write the event **into the app's database, in the same transaction** as the
business rows; a relay reads the table and publishes::

    with conn:                                   # one transaction
        conn.execute("INSERT INTO orders ...")
        outbox.add(conn, bus.event("order.created", {"id": 7}))
    # committed: both exist. Rolled back: neither does.

    relay = OutboxRelay(bus, connect=lambda: psycopg.connect(DSN))
    relay.start()                                # publishes committed rows, in order

``conn`` is a DB-API 2 connection (psycopg 3 or 2, sqlite3, PyMySQL, ...) or a
SQLAlchemy ``Connection``/``Session``; :meth:`TransactionalOutbox.add` only
executes INSERTs on it and never commits: the caller's transaction decides.

The relay takes the oldest rows with a row lock (``SELECT ... FOR UPDATE``
on PostgreSQL and MySQL, ``BEGIN IMMEDIATE`` on SQLite), publishes them with
the adapter in one batch, deletes them and commits. A second relay on the same
table waits for the first (so the order holds) and takes over if it dies. A
relay that dies after the broker confirmed but before its commit publishes the
batch again on restart: consumers drop those copies with the inbox.

Table (created by :meth:`TransactionalOutbox.create_table`, or by your migrations)::

    seq      auto-increment primary key   publish order
    topic    text                          event type (routing key)
    key      text, null                    ordering key
    headers  text                          CloudEvents attributes as JSON
    body     bytes (bytea / blob)          payload as encoded
    created  timestamp                     when the row was written
"""

# Table names are checked identifiers; every value is a bound parameter.
# ruff: noqa: S608

from __future__ import annotations

import json
import logging
import sys
import threading
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timezone
from typing import Any

from .._envelope import Event, Message, default_source, encode
from .._errors import BrokerError, ClosedError, ConfigError
from ..adapter._contract import Adapter
from ..contracts import REGISTRY, model_event

__all__ = ["OutboxRelay", "TransactionalOutbox"]

log = logging.getLogger("eventbus.txoutbox")

_PLACEHOLDER = {"qmark": "?", "format": "%s", "pyformat": "%s", "numeric": ":{n}", "named": ":p{n}"}
_DIALECT_BY_MODULE = {
    "psycopg": "postgresql",
    "psycopg2": "postgresql",
    "pg8000": "postgresql",
    "sqlite3": "sqlite",
    "pymysql": "mysql",
    "MySQLdb": "mysql",
    "mariadb": "mysql",
    "mysql": "mysql",
}
_DDL = {
    "postgresql": (
        "CREATE TABLE IF NOT EXISTS {t} (seq BIGSERIAL PRIMARY KEY, topic TEXT NOT NULL, "
        "key TEXT, headers TEXT NOT NULL, body BYTEA NOT NULL, "
        "created TIMESTAMPTZ NOT NULL DEFAULT now())"
    ),
    "sqlite": (
        "CREATE TABLE IF NOT EXISTS {t} (seq INTEGER PRIMARY KEY AUTOINCREMENT, "
        "topic TEXT NOT NULL, key TEXT, headers TEXT NOT NULL, body BLOB NOT NULL, "
        "created TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)"
    ),
    "mysql": (
        "CREATE TABLE IF NOT EXISTS {t} (seq BIGINT AUTO_INCREMENT PRIMARY KEY, "
        "topic VARCHAR(255) NOT NULL, `key` VARCHAR(255), headers TEXT NOT NULL, "
        "body LONGBLOB NOT NULL, created TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP)"
    ),
}


def _is_sqlalchemy(conn: Any) -> bool:
    return type(conn).__module__.startswith("sqlalchemy")


def _dialect(conn: Any) -> str:
    if _is_sqlalchemy(conn):
        bind = conn.get_bind() if hasattr(conn, "get_bind") else conn
        name = str(bind.dialect.name)
        return "mysql" if name == "mariadb" else name
    return _DIALECT_BY_MODULE.get(type(conn).__module__.split(".")[0], "unknown")


def _paramstyle(conn: Any) -> str:
    module = sys.modules.get(type(conn).__module__.split(".")[0])
    style = getattr(module, "paramstyle", None)
    if style not in _PLACEHOLDER:
        raise ConfigError(
            f"cannot tell the parameter style of {type(conn).__module__}.{type(conn).__name__}; "
            "pass a DB-API 2 connection or a SQLAlchemy Connection/Session"
        )
    return str(style)


def _placeholders(style: str, count: int) -> list[str]:
    return [_PLACEHOLDER[style].format(n=i + 1) for i in range(count)]


def _bind(style: str, values: Sequence[Any]) -> Any:
    return {f"p{i + 1}": v for i, v in enumerate(values)} if style == "named" else tuple(values)


class TransactionalOutbox:
    """Writes events into an outbox table inside the caller's transaction.

    ``source`` fills the CloudEvents ``source`` of events that have none.
    Events are encoded (and checked) by :meth:`add`, so an event that cannot
    be serialised raises there, inside the transaction, before commit.
    """

    def __init__(self, table: str = "eventbus_outbox", *, source: str | None = None) -> None:
        if not table.replace("_", "").replace(".", "").isalnum():
            raise ConfigError(f"outbox table name {table!r}: use letters, digits, _ and . only")
        self.table = table
        self.source = source

    def create_table(self, conn: Any) -> None:
        """Create the table if missing (PostgreSQL, SQLite, MySQL/MariaDB). Does not commit."""
        dialect = _dialect(conn)
        if dialect not in _DDL:
            raise ConfigError(
                f"no outbox DDL for {dialect!r}; create the table yourself "
                "(columns: the TransactionalOutbox docstring)"
            )
        self._execute(conn, _DDL[dialect].format(t=self.table), [])

    def _encode(self, event: Event) -> Message:
        if not event.source:
            event = event.replace(source=self.source or default_source())
        if event.time is None:
            event = event.replace(time=datetime.now(timezone.utc))
        return encode(event)

    def add(self, conn: Any, events: Event | object | Iterable[Event | object]) -> list[str]:
        """Insert ``events`` on ``conn`` (not committed); returns their ids in order.

        ``events`` is one event, one model of a class bound to an event type
        (``eventbus.contracts``), or an iterable of either.
        """
        single = isinstance(events, Event) or REGISTRY.for_class(type(events)) is not None
        items: Iterable[Any] = [events] if single else events  # type: ignore[assignment]
        source = self.source or default_source()
        batch = [e if isinstance(e, Event) else model_event(e, source) for e in items]
        messages = [self._encode(e) for e in batch]
        rows = [
            (
                m.topic,
                m.key,
                json.dumps(m.headers, ensure_ascii=False, separators=(",", ":")),
                m.body,
            )
            for m in messages
        ]
        if rows:
            self._execute(conn, None, rows)
        return [m.headers["id"] for m in messages]

    def _execute(self, conn: Any, ddl: str | None, rows: list[tuple[Any, ...]]) -> None:
        cols = (
            "topic, key, headers, body"
            if _dialect(conn) != "mysql"
            else "topic, `key`, headers, body"
        )
        if _is_sqlalchemy(conn):
            from sqlalchemy import text

            if ddl is not None:
                conn.execute(text(ddl))
                return
            sql = text(f"INSERT INTO {self.table} ({cols}) VALUES (:topic, :key, :headers, :body)")
            names = ("topic", "key", "headers", "body")
            conn.execute(sql, [dict(zip(names, r, strict=True)) for r in rows])
            return
        cur = conn.cursor()
        try:
            if ddl is not None:
                cur.execute(ddl)
                return
            style = _paramstyle(conn)
            marks = ", ".join(_placeholders(style, 4))
            cur.executemany(
                f"INSERT INTO {self.table} ({cols}) VALUES ({marks})",
                [_bind(style, r) for r in rows],
            )
        finally:
            cur.close()


class OutboxRelay:
    """Publishes committed outbox rows in order, then deletes them.

    ``target`` is an :class:`~eventbus.EventBus` (its adapter is used) or an
    :class:`~eventbus.Adapter`. ``connect`` returns a new DB-API connection
    (transactions not in autocommit), or pass a SQLAlchemy ``Engine`` instead.
    :meth:`run_once` sends one batch; :meth:`start` runs a daemon thread that
    polls every ``interval`` seconds when idle and backs off while the broker
    or the database fails. The relay publishes straight to the broker: the
    table already is the durable queue, so no local outbox is involved.
    """

    def __init__(
        self,
        target: Any,
        connect: Callable[[], Any] | Any,
        outbox: TransactionalOutbox | None = None,
        *,
        batch: int = 500,
        interval: float = 0.5,
        max_backoff: float = 30.0,
    ) -> None:
        adapter = target if isinstance(target, Adapter) else getattr(target, "adapter", None)
        if not isinstance(adapter, Adapter):
            raise TypeError("OutboxRelay needs an EventBus or an Adapter")
        self.adapter: Adapter = adapter
        self.outbox = outbox or TransactionalOutbox()
        self._engine: Any = connect if _is_sqlalchemy(connect) else None
        self._connect = None if self._engine is not None else connect
        self._conn: Any = None
        self.batch = batch
        self.interval = interval
        self.max_backoff = max_backoff
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.sent = 0  # events this relay published
        self.failures = 0  # batches the broker or the database refused

    # -- one batch ---------------------------------------------------------------
    def run_once(self) -> int:
        """Publish the oldest committed rows (up to ``batch``); how many were sent.

        Raises :class:`~eventbus.BrokerError` if the broker refused them (the
        rows stay), or the database driver's error.
        """
        if self._engine is not None:
            with self._engine.begin() as conn:
                return self._relay(conn, sqlalchemy=True)
        if self._conn is None:
            assert self._connect is not None
            self._conn = self._connect()
        conn = self._conn
        try:
            n = self._relay(conn, sqlalchemy=False)
            conn.commit()
            return n
        except BaseException:
            try:
                conn.rollback()
            except Exception:  # the connection is broken: open a new one next time
                self._drop_connection()
            raise

    def _relay(self, conn: Any, *, sqlalchemy: bool) -> int:
        dialect = _dialect(conn)
        t = self.outbox.table
        lock = " FOR UPDATE" if dialect in ("postgresql", "mysql") else ""
        key = "`key`" if dialect == "mysql" else "key"
        select = (
            f"SELECT seq, topic, {key}, headers, body FROM {t} "
            f"ORDER BY seq LIMIT {int(self.batch)}{lock}"
        )
        if sqlalchemy:
            from sqlalchemy import text

            if dialect == "sqlite" and not conn.connection.dbapi_connection.in_transaction:
                conn.exec_driver_sql("BEGIN IMMEDIATE")  # one relay at a time on SQLite
            rows = conn.execute(text(select)).fetchall()
        else:
            cur = conn.cursor()
            try:
                if dialect == "sqlite" and not conn.in_transaction:
                    cur.execute("BEGIN IMMEDIATE")  # one relay at a time on SQLite
                cur.execute(select)
                rows = cur.fetchall()
            finally:
                cur.close()
        if not rows:
            return 0
        messages = [
            Message(topic=topic, body=bytes(body), headers=json.loads(headers), key=k)
            for _, topic, k, headers, body in rows
        ]
        self.adapter.publish(messages)
        seqs = [int(r[0]) for r in rows]
        if sqlalchemy:
            from sqlalchemy import bindparam, text

            stmt = text(f"DELETE FROM {t} WHERE seq IN :seqs").bindparams(
                bindparam("seqs", expanding=True)
            )
            conn.execute(stmt, {"seqs": seqs})
        else:
            style = _paramstyle(conn)
            cur = conn.cursor()
            try:
                marks = ", ".join(_placeholders(style, len(seqs)))
                cur.execute(f"DELETE FROM {t} WHERE seq IN ({marks})", _bind(style, seqs))
            finally:
                cur.close()
        self.sent += len(messages)
        return len(messages)

    def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception as exc:
                log.debug("relay: closing a broken connection failed: %s", exc)

    # -- the thread ----------------------------------------------------------------
    def start(self) -> None:
        """Run the relay on a daemon thread until :meth:`stop`."""
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self.run, name="eventbus-relay", daemon=True)
            self._thread.start()

    def run(self) -> None:
        """Relay until :meth:`stop` (blocking)."""
        backoff = self.interval
        while not self._stop.is_set():
            try:
                n = self.run_once()
            except ClosedError:
                break
            except BrokerError as exc:
                self.failures += 1
                log.warning("relay: broker refused a batch (%s); retrying in %.1fs", exc, backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, self.max_backoff)
                continue
            except Exception as exc:  # the database failed: reconnect later
                self.failures += 1
                log.warning("relay: database error (%s); retrying in %.1fs", exc, backoff)
                self._drop_connection()
                self._stop.wait(backoff)
                backoff = min(backoff * 2, self.max_backoff)
                continue
            backoff = self.interval
            if n < self.batch:
                self._stop.wait(self.interval)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the thread after its batch in flight; close the connection. Idempotent."""
        self._stop.set()
        t, self._thread = self._thread, None
        if t is not None and t is not threading.current_thread():
            t.join(timeout)
        self._drop_connection()

    def __enter__(self) -> OutboxRelay:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
