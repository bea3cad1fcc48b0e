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

import itertools
import json
import logging
import os
import re
import socket
import sqlite3
import time
from collections.abc import Sequence
from typing import Any

from ..._envelope import Message
from ..._errors import ConfigError, EncodeError, EventBusError
from ..._routing import Matcher
from ...adapter._contract import Adapter, Consumer, LogEntry
from ._consumer import POLL_MIN, SqliteConsumer
from ._settings import CAPABILITIES, DEFAULT_MAX_SIZE, SQLITE_MAX_SIZE, SqliteSettings
from ._store import INSERT_KEYED, decode_patterns
from ._tooling import SqliteTooling

__all__ = ["LogEntry", "SqliteAdapter"]

logger = logging.getLogger("eventbus.sqlite")

_INSERT_LOG = "INSERT INTO log (published_at, topic, key, headers, body) VALUES (?, ?, ?, ?, ?)"
_INSERT_DELIVERY = "INSERT INTO deliveries (grp, seq, visible_at) VALUES (?, ?, ?)"
_GROUPS_VERSION = "SELECT value FROM meta WHERE key = 'groups_version'"


class SqliteAdapter(SqliteTooling, Adapter):
    """A broker in one SQLite file; see the module docstring. Thread-safe.

    The file, its connections and errors are :class:`~._store.SqliteStore`'s;
    log, retention and dead-letter tooling :class:`~._tooling.SqliteTooling`'s;
    members of a group are :class:`~._consumer.SqliteConsumer`.
    """

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
        self.poll_max = max(float(poll_max), POLL_MIN)
        self.retention_age, self.retention_count = _parse_retention(retention)
        self.capabilities = CAPABILITIES.replace(
            lease_seconds=self.lease, max_message_size=int(max_message_size)
        )
        self._owners = itertools.count(1)
        self._groups_version: Any = None
        self._routes: dict[str, tuple[int, ...]] = {}
        self._matchers: list[tuple[int, Matcher]] = []
        self._next_prune = 0.0
        super().__init__(path, busy_timeout, synchronous)  # opens the file last

    def _load_groups(self, conn: sqlite3.Connection) -> None:
        version = conn.execute(_GROUPS_VERSION).fetchone()
        if version != self._groups_version:
            rows = conn.execute("SELECT id, patterns FROM groups ORDER BY id").fetchall()
            self._matchers = [(gid, Matcher(decode_patterns(raw))) for gid, raw in rows]
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
                            execute(INSERT_KEYED, (gid, seq, key, now))
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

    @classmethod
    def from_settings(cls, settings: SqliteSettings) -> SqliteAdapter:
        return cls(
            settings.path,
            lease=settings.lease,
            busy_timeout=settings.busy_timeout,
            synchronous=settings.synchronous,
            retention=settings.retention,
            poll_max=settings.poll_max,
            max_message_size=settings.max_message_size,
        )

    def consumer(self, group: str, patterns: Sequence[str]) -> Consumer:
        self.declare(group, patterns)
        rows = self._read("SELECT id FROM groups WHERE name = ?", (group,))
        owner = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}:{next(self._owners)}"
        return SqliteConsumer(self, group, rows[0][0], owner)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if os.getpid() == self._pid:
                self._conn.close()
        self._notifier.notify()

    def __repr__(self) -> str:
        return f"<SqliteAdapter {self.path} lease={self.lease}>"


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
