"""The local outbox: a SQLite file that keeps events the broker could not take.

When the broker is down (the circuit breaker is open, or the publish retries
are spent) the publisher writes the encoded messages here and ``publish``
returns with outcome ``"outbox"``. The write is durable before that return:
the file is opened like every SQLite file of eventbus (``eventbus._sqlite_open``:
WAL mode, retried set-up) but with ``synchronous=FULL``, so the commit is
fsynced and survives a crash of the process or the machine. A :class:`OutboxDrainer`
thread republishes the rows **in the order they were written** once the broker
takes messages again, and deletes each batch only after the broker confirmed it
(a crash in between sends that batch twice; consumers drop the duplicates by
event id with the inbox, see ``eventbus.resilience.Inbox``).

Rows are tagged with a *destination* (the broker URL, or the adapter's class
when the bus was given an adapter instance), so one file can serve several
buses without sending an event to the wrong broker. Several processes may
share a file: a lease row per destination lets one drainer at a time send, so
the order holds across processes too; a dead drainer's lease runs out after
``lease`` seconds and another process takes over. A bus that starts on a file
with rows for its destination starts draining them (events kept by a process
that crashed are sent by the next one).

Nothing is pickled: headers are stored as JSON text, bodies as bytes.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

from .._envelope import Message
from .._errors import BrokerError, ClosedError, ConfigError
from .._sqlite_open import connect
from ._breaker import CircuitBreaker

__all__ = ["LocalOutbox", "OutboxDrainer"]

log = logging.getLogger("eventbus.outbox")

#: Seconds a statement waits for another process's lock on the file (a drainer's batch).
BUSY = 30.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    destination TEXT NOT NULL,
    topic TEXT NOT NULL,
    key TEXT,
    headers TEXT NOT NULL,
    body BLOB NOT NULL,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_by_destination ON outbox (destination, seq);
CREATE TABLE IF NOT EXISTS drain_lease (
    destination TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    until REAL NOT NULL
);
"""


class LocalOutbox:
    """Durable FIFO of encoded messages for one destination, in a SQLite file.

    Thread-safe (one connection behind a lock). The file and its directory are
    created on first use, not before: a bus whose broker never fails leaves no
    file behind. ``pending`` is this process's view: True from the first
    :meth:`add` until :meth:`peek` finds no row left for the destination.
    """

    def __init__(self, path: str | os.PathLike[str], destination: str, *, lease: float = 15.0):
        self.path = Path(path)
        self.destination = destination
        self.lease = lease
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._pending = False
        self._closed = False

    # -- opening ------------------------------------------------------------------
    def exists(self) -> bool:
        return self.path.is_file()

    def _conn(self) -> sqlite3.Connection:
        """The connection, opened (and the file created) on first use; call with the lock."""
        if self._closed:
            raise ClosedError(f"outbox {self.path} is closed")
        if self._db is None:
            parent = self.path.parent
            created = not parent.exists()
            parent.mkdir(parents=True, exist_ok=True)
            new_file = not self.path.exists()
            try:  # fsync on every commit
                db = connect(self.path, what="outbox", busy_timeout=BUSY, synchronous="full")
            except ConfigError as exc:  # a path that cannot hold it fails like a file that can't
                raise sqlite3.OperationalError(str(exc)) from exc  # be written (see add)
            try:
                db.executescript(_SCHEMA)
            except sqlite3.Error:
                db.close()
                raise
            if new_file:
                _fsync_dir(parent)
                if created:
                    _fsync_dir(parent.parent)
            self._db = db
            row = db.execute(
                "SELECT 1 FROM outbox WHERE destination = ? LIMIT 1", (self.destination,)
            ).fetchone()
            self._pending = self._pending or row is not None
        return self._db

    def open(self) -> None:
        """Open (creating if needed) the file now, and learn whether rows are waiting."""
        with self._lock:
            self._conn()

    # -- writing and reading ------------------------------------------------------
    @property
    def pending(self) -> bool:
        """Rows may be waiting for this destination (this process wrote some, or found some)."""
        return self._pending

    def add(self, messages: Sequence[Message], *, only_if_pending: bool = False) -> bool:
        """Append ``messages`` durably (fsynced) in order; all or none.

        With ``only_if_pending``, append only if rows are already waiting, and
        say whether it did: that is how a publisher keeps publish order while
        the outbox drains (new events queue behind the old ones).
        Raises :class:`sqlite3.Error` if the file cannot be written.
        """
        with self._lock:
            if only_if_pending and not self._pending:
                return False
            db = self._conn()
            now = time.time()
            rows = [
                (
                    self.destination,
                    m.topic,
                    m.key,
                    json.dumps(m.headers, ensure_ascii=False, separators=(",", ":")),
                    bytes(m.body),
                    now,
                )
                for m in messages
            ]
            db.execute("BEGIN IMMEDIATE")
            try:
                db.executemany(
                    "INSERT INTO outbox (destination, topic, key, headers, body, created) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    rows,
                )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            self._pending = True
            return True

    def peek(self, limit: int) -> list[tuple[int, Message]]:
        """The oldest ``limit`` rows of this destination, in write order (not removed).

        Finding none clears :attr:`pending`.
        """
        with self._lock:
            if self._closed:
                return []
            db = self._conn()
            rows = db.execute(
                "SELECT seq, topic, key, headers, body FROM outbox "
                "WHERE destination = ? ORDER BY seq LIMIT ?",
                (self.destination, limit),
            ).fetchall()
            if not rows:
                self._pending = False
        out: list[tuple[int, Message]] = []
        for seq, topic, key, headers, body in rows:
            out.append(
                (seq, Message(topic=topic, body=bytes(body), headers=json.loads(headers), key=key))
            )
        return out

    def remove(self, seqs: Sequence[int]) -> None:
        """Delete rows the broker confirmed."""
        with self._lock:
            if self._closed or self._db is None:
                return
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                db.executemany("DELETE FROM outbox WHERE seq = ?", [(s,) for s in seqs])
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def count(self) -> int:
        """Rows waiting for this destination (0 if the file does not exist)."""
        with self._lock:
            if self._db is None and not self.exists():
                return 0
            if self._closed:
                return self._count_closed()
            row = (
                self._conn()
                .execute("SELECT count(*) FROM outbox WHERE destination = ?", (self.destination,))
                .fetchone()
            )
            return int(row[0])

    def _count_closed(self) -> int:
        if not self.exists():
            return 0
        try:
            db = connect(self.path, what="outbox", busy_timeout=BUSY, synchronous="full")
        except (sqlite3.Error, ConfigError):
            return 0
        try:
            row = db.execute(
                "SELECT count(*) FROM outbox WHERE destination = ?", (self.destination,)
            ).fetchone()
            return int(row[0])
        except sqlite3.Error:
            return 0
        finally:
            db.close()

    # -- one drainer per destination, across processes ------------------------------
    def acquire_drain(self) -> bool:
        """Take (or renew) the right to drain this destination for ``lease`` seconds."""
        with self._lock:
            if self._closed:
                return False
            db = self._conn()
            now = time.time()
            db.execute("BEGIN IMMEDIATE")
            try:
                cur = db.execute(
                    "UPDATE drain_lease SET owner = ?, until = ? "
                    "WHERE destination = ? AND (owner = ? OR until < ?)",
                    (self.owner, now + self.lease, self.destination, self.owner, now),
                )
                got = cur.rowcount > 0
                if not got:
                    cur = db.execute(
                        "INSERT OR IGNORE INTO drain_lease (destination, owner, until) "
                        "VALUES (?, ?, ?)",
                        (self.destination, self.owner, now + self.lease),
                    )
                    got = cur.rowcount > 0
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            return got

    def release_drain(self) -> None:
        with self._lock:
            if self._closed or self._db is None:
                return
            self._db.execute(
                "DELETE FROM drain_lease WHERE destination = ? AND owner = ?",
                (self.destination, self.owner),
            )

    def close(self) -> None:
        """Close the file (rows stay for the next bus on it). Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._db is not None:
                try:
                    self._db.execute(
                        "DELETE FROM drain_lease WHERE destination = ? AND owner = ?",
                        (self.destination, self.owner),
                    )
                except sqlite3.Error as exc:
                    log.debug("outbox %s: releasing the drain lease failed: %s", self.path, exc)
                self._db.close()
                self._db = None

    def __repr__(self) -> str:
        return f"<LocalOutbox {str(self.path)!r} destination={self.destination!r}>"


def _fsync_dir(path: Path) -> None:
    """Make a new directory entry durable (POSIX); best effort elsewhere."""
    try:
        fd = os.open(str(path), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class OutboxDrainer:
    """A daemon thread that republishes an outbox in order when the broker takes it.

    It asks the circuit breaker before every batch (so while the breaker is open
    it waits instead of hammering the broker; when half-open, its batch is the
    trial), sends the oldest ``batch`` rows in one ``publish`` call, and deletes
    them once the broker confirmed. Failures go to the breaker and are retried.
    """

    def __init__(
        self,
        outbox: LocalOutbox,
        publish: Callable[[Sequence[Message]], None],
        breaker: CircuitBreaker,
        *,
        batch: int = 500,
        interval: float = 1.0,
    ) -> None:
        self.outbox = outbox
        self._publish = publish
        self._breaker = breaker
        self._batch = batch
        self._interval = interval
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._idle = threading.Condition()
        self._thread: threading.Thread | None = None
        self.sent = 0  # messages this drainer republished

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="eventbus-outbox", daemon=True)
            self._thread.start()

    def wake(self) -> None:
        """New rows: drain now rather than at the next interval."""
        self._wake.set()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def step(self) -> str:
        """Drain one batch: ``"sent"``, ``"empty"``, ``"open"``, ``"busy"`` or ``"failed"``."""
        outbox = self.outbox
        if not outbox.pending:
            return "empty"
        if self._breaker.state == "open":
            return "open"  # not due for a trial yet: don't even take the lease
        try:
            if not outbox.acquire_drain():
                return "busy"  # another process drains this destination
            rows = outbox.peek(self._batch)
        except (sqlite3.Error, ClosedError) as exc:
            log.warning("outbox %s: cannot read: %s", outbox.path, exc)
            return "failed"
        if not rows:
            self._release()
            return "empty"
        if not self._breaker.allow():
            self._release()
            return "open"
        try:
            self._publish([m for _, m in rows])
        except BrokerError as exc:
            self._breaker.failure()
            self._release()  # hold the lease only while sending
            log.info(
                "outbox %s: broker still refuses (%s); %d+ events wait", outbox.path, exc, len(rows)
            )
            return "failed"
        except ClosedError:
            self._stop.set()
            return "failed"
        self._breaker.success()
        try:
            outbox.remove([seq for seq, _ in rows])
        except (sqlite3.Error, ClosedError) as exc:
            # sent but not removed: they will be sent again; the inbox drops the copies
            log.warning(
                "outbox %s: sent %d events but cannot remove them: %s", outbox.path, len(rows), exc
            )
            return "failed"
        self.sent += len(rows)
        return "sent"

    def _release(self) -> None:
        try:
            self.outbox.release_drain()
        except (sqlite3.Error, ClosedError):
            pass  # the lease runs out by itself

    def _run(self) -> None:
        backoff = self._interval
        while not self._stop.is_set():
            try:
                result = self.step()
            except Exception as exc:  # never let the drainer die silently
                log.exception("outbox %s: drainer error: %s", self.outbox.path, exc)
                result = "failed"
            with self._idle:
                self._idle.notify_all()
            if result == "sent":
                backoff = self._interval
                continue
            if result == "empty":
                wait = 3600.0  # until woken by a new row
            elif result == "open":
                wait = max(0.01, min(self._breaker.retry_after(), 60.0))
            elif result == "busy":
                wait = max(self._interval, self.outbox.lease / 3)
            else:
                wait = backoff
                backoff = min(backoff * 2, 30.0)
            self._wake.wait(wait)
            self._wake.clear()

    def flush(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the outbox to empty; True if it did."""
        deadline = time.monotonic() + timeout
        self.wake()
        with self._idle:
            while self.outbox.pending and self.running:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._idle.wait(min(left, 0.1))
        return not self.outbox.pending

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread (the batch in flight finishes or fails first)."""
        self._stop.set()
        self._wake.set()
        t = self._thread
        if t is not None and t is not threading.current_thread():
            t.join(timeout)
