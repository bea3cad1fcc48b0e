"""One member of a consumer group on the SQLite broker.

Each consumer has its own connection, confined to its thread. It leases up to
``max_messages`` visible, unblocked deliveries of its group (``visible_at``
moves to the end of the lease, ``attempts`` goes up by one), waits on the
file's :class:`~._store.Notifier` for this process's changes and
polls ``PRAGMA data_version`` for other processes' ones, backing off up to
``poll_max``. Settling checks ``attempts``, so a consumer whose lease ran out
changes nothing.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from ..._envelope import Delivery
from ..._errors import ClosedError
from ...adapter._contract import Consumer
from ._store import UNBLOCK, decode_message

if TYPE_CHECKING:
    from ._adapter import SqliteAdapter

POLL_MIN = 0.005

_PEEK = "SELECT 1 FROM deliveries WHERE grp = ? AND blocked = 0 AND visible_at <= ? LIMIT 1"
_TAKE = (
    "SELECT d.id, d.attempts, d.key, l.topic, l.key, l.headers, l.body FROM deliveries AS d "
    "JOIN log AS l ON l.seq = d.seq WHERE d.grp = ? AND d.blocked = 0 AND d.visible_at <= ? "
    "ORDER BY d.id LIMIT ?"
)
_NEXT_DUE = (
    "SELECT min(visible_at) FROM deliveries WHERE grp = ? AND blocked = 0 AND visible_at > ?"
)


class SqliteConsumer(Consumer):
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

    def _write(self, action: str) -> AbstractContextManager[sqlite3.Connection]:
        """One write transaction on this consumer's connection."""
        return self._a._transaction(self._conn, action)

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
            out.append(Delivery(decode_message(topic, key, headers, body), attempts + 1, ident))
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
            conn.executemany(UNBLOCK, [(self._gid, key) for key in keys])
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
                    conn.execute(UNBLOCK, (self._gid, key))
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
