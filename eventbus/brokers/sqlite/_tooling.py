"""Looking into and managing the SQLite broker: groups, depths, the event log, dead letters.

Everything on the embedded broker besides publishing and consuming (what
``eventbus log`` and ``eventbus dlq`` use): :class:`SqliteTooling` adds it to
:class:`~eventbus.brokers.sqlite._store.SqliteStore`; :class:`~eventbus.SqliteAdapter`
inherits it.
"""

from __future__ import annotations

import sqlite3
import time

from ..._envelope import Delivery
from ..._routing import Matcher
from ...adapter._contract import LogEntry
from ._store import UNBLOCK_ALL, SqliteStore, decode_message, decode_patterns


class SqliteTooling(SqliteStore):
    """Inspection, retention and dead-letter management on one broker file."""

    #: Set by the adapter from its ``retention`` option (None: no limit).
    retention_age: float | None
    retention_count: int | None

    def _group_id(self, group: str) -> int | None:
        rows = self._read("SELECT id FROM groups WHERE name = ?", (group,))
        return rows[0][0] if rows else None

    def groups(self) -> dict[str, tuple[str, ...]]:
        """Every declared group with its patterns."""
        rows = self._read("SELECT name, patterns FROM groups ORDER BY name")
        return {name: tuple(decode_patterns(raw)) for name, raw in rows}

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
                            out.append(LogEntry(seq, at, decode_message(topic, key, headers, body)))
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
            (Delivery(decode_message(topic, key, headers, body), attempt, ident), reason)
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
                conn.execute(UNBLOCK_ALL, (row[0],))
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
